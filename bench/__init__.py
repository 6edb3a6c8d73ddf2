"""Offline benchmarks of the webhook dispatch path (``python -m bench``).

The dispatch path's physical limit is one GitHub API round trip
(``generate-jitconfig``) plus one ECS ``RunTask`` call. These benchmarks
measure what the Lambda adds on top of that, with no network and no AWS:

- :mod:`bench.coldstart` -- fresh processes: ``import lambda_fn.app`` against a
  bare ``import boto3``, and the first delivery (moto + ``responses`` in the child).
- :mod:`bench.warm` -- per-delivery handler cost with AWS and GitHub answered by
  in-process fakes at the botocore / requests transport layer.
- :mod:`bench.burst` -- a shuffled burst of duplicate deliveries through a local
  HTTP endpoint and a moto server, with proof of exactly-once launches.
- :mod:`bench.package` -- the size of the Lambda asset as deployed.

Nothing here asserts timings; ``tests/bench`` checks correctness only.
"""

from __future__ import annotations
