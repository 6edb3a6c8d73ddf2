"""Parse botocore's data files once per process instead of once per boto3 Session.

Each new Session's loader parses ``endpoints.json`` and the service models again (about
0.16 s per Session). The tests reset the handler's Session for every test, and moto's
backends make Sessions of their own, so sharing one loader is most of a fake-AWS test's
setup time (docs/performance.md, "Test suite duration"). The files are read-only package
data, and one loader already hands the same parsed objects to every client of its Session,
so sharing it across Sessions changes nothing a caller can observe -- except memory left
behind, which is why the cold-start benchmark turns it off before its timer.
"""

from __future__ import annotations

from collections.abc import Callable


def share_loader() -> Callable[[], None]:
    """Every botocore Session made from now on shares one loader; returns the undo."""
    import functools

    import botocore.loaders
    import botocore.session

    original = botocore.session.create_loader
    botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)

    def restore() -> None:
        botocore.session.create_loader = original

    return restore
