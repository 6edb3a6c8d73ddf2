"""The tests' helpers: an importable package that holds no tests (issue 26).

Test modules and ``conftest.py`` files import what they share from here, never from
one another. What the demo and the benchmarks use too (signed deliveries, API Gateway
events, the Lambda context) lives in ``localdev``; the handler's cache reset is
``lambda_fn.aws.reset_caches``.

- :mod:`tests.kit.world` -- the provisioned stack in moto (``FakeAws``), profiles, retry path.
- :mod:`tests.kit.github` -- the GitHub model behind ``responses`` (``FakeGitHub``), the App.
- :mod:`tests.kit.events` -- payloads and deliveries through the real handler.
- :mod:`tests.kit.retry` -- drain the retry queue; tasks per job.
- :mod:`tests.kit.faults` -- AWS faults injected on the handler's own clients.
- :mod:`tests.kit.reconcile` -- run the reconciler; stop a task; a hook delivery record.
- :mod:`tests.kit.cli` -- GitHub as the CLI meets it, protections (the stack: ``localdev.fake_stack``).
- :mod:`tests.kit.infra` -- CDK contexts, the synth cache, template helpers.
"""

from __future__ import annotations

import os

from localdev.botocore_data import share_loader

# moto must be imported before any boto3 client exists, and tests never use real AWS.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "FargateRunnersTest",
        "POWERTOOLS_SERVICE_NAME": "runner-webhook",
        # Fargate uses no AMIs: without this, every new moto EC2 backend parses moto's
        # list of 1,300 AMIs (0.27 s, twice per test using fake AWS).
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

# Parse botocore's data once per test process (localdev.botocore_data says why).
share_loader()
