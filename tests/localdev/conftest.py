"""One moto server per test module (starting one takes ~0.3 s; resetting is faster)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localdev import moto_server


@pytest.fixture(scope="module")
def moto() -> Iterator[moto_server.MotoServer]:
    with moto_server.start() as server:
        yield server


@pytest.fixture
def clean_moto(moto: moto_server.MotoServer) -> moto_server.MotoServer:
    moto.reset()
    return moto
