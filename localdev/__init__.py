"""Local, offline stand-ins for everything the webhook Lambda talks to.

The pieces are small and independent so they can be combined differently by
the demo (``python -m localdev.demo``), ``fargate-runners serve`` and the
benchmarks:

- :mod:`localdev.moto_server` -- a moto server on 127.0.0.1 (AWS).
- :mod:`localdev.provision` -- creates in it what ``cdk deploy`` would create.
- :mod:`localdev.github_model` -- the one model of GitHub's REST API (state, routes,
  status codes, fault injection) that every GitHub double serves: the HTTP server
  below, the tests' ``responses`` fixture and the benchmarks' ``requests`` adapter.
- :mod:`localdev.github_stub` -- that model over HTTP, plus GitHub as webhook sender.
- :mod:`localdev.endpoint` -- the real Lambda handler behind ``POST /webhook``,
  speaking API Gateway REST proxy events (payload 1.0).
- :mod:`localdev.deliveries` -- signed ``workflow_job`` deliveries.
- :mod:`localdev.env` -- point the in-process handler at all of the above.

Nothing in ``lambda_fn`` imports this package.
"""
