"""Session-scoped synths of the CDK app, each synthesized once per test run and shared by
the xdist workers (``tests.kit.infra.cached_synth``)."""

from __future__ import annotations

import pytest

from tests.kit.infra import (
    EDGE_CONTEXT,
    EXISTING_VPC_CONTEXT,
    NO_BUNDLING,
    STEPS_CONTEXT,
    TEST_CONTEXT,
    Synth,
    cached_synth,
)


@pytest.fixture(scope="session")
def main_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """New VPC, two profiles, with the real (pip-bundled) Lambda asset."""
    return cached_synth(tmp_path_factory, "main", TEST_CONTEXT)


@pytest.fixture(scope="session")
def existing_vpc_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Existing VPC and subnets, imported PAT secret, default profile."""
    return cached_synth(tmp_path_factory, "vpc", {**EXISTING_VPC_CONTEXT, **NO_BUNDLING})


@pytest.fixture(scope="session")
def edge_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Watchdog off, no alarms, managed task role policy, non-ECR mirror, profile subnets."""
    return cached_synth(tmp_path_factory, "edge", {**EDGE_CONTEXT, **NO_BUNDLING})


@pytest.fixture(scope="session")
def steps_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """One managed-steps profile: the step task definition and the runner role's grants."""
    return cached_synth(tmp_path_factory, "steps", {**STEPS_CONTEXT, **NO_BUNDLING})


@pytest.fixture(scope="session")
def audit_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """A synth whose acknowledgments are recorded instead of applied.

    The report then lists every finding; the tests compare it with the
    acknowledgments one by one (none missing, none stale).
    """
    return cached_synth(tmp_path_factory, "audit", TEST_CONTEXT, audited=True)


@pytest.fixture(scope="session")
def steps_audit_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """:func:`audit_synth` of the managed-steps context."""
    return cached_synth(tmp_path_factory, "steps-audit", STEPS_CONTEXT, audited=True)
