"""``python -m bench.ab REF [RUNS]``: first delivery, as deployed, of REF against this tree.

``git archive REF`` is unpacked under ``build/bench-baseline/<commit>/`` and the same
cold child (``bench._coldchild first``) of each tree runs alternately in fresh
processes, with this interpreter, so machine load affects both alike; medians
are printed. Each tree measures its own default configuration ("as deployed").
"""

from __future__ import annotations

import compileall
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.coldstart import ROOT, run_child

#: How one child runs: ``run_child``'s signature (the tests pass one that keeps the output).
ChildRunner = Callable[..., tuple[dict[str, Any], str]]

BASELINES = ROOT / "build" / "bench-baseline"


def baseline_tree(ref: str) -> Path:
    """REF's files (``git archive``), unpacked once per commit (a branch name or ``HEAD``
    moves: the tree is keyed by the commit it names now)."""
    commit = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{ref}^{{commit}}"],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    target = BASELINES / commit
    if not (target / "bench" / "_coldchild.py").is_file():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", "-C", str(ROOT), "archive", commit],  # noqa: S607
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(  # noqa: S603
            ["tar", "-x", "-C", str(target)],  # noqa: S607
            input=archive,
            check=True,
        )
    return target


def compile_tree(root: Path) -> None:
    """Bytecode for the tree's ``lambda_fn``, so both trees start alike.

    The children read only existing ``.pyc`` files (``PYTHONDONTWRITEBYTECODE``): a freshly
    unpacked baseline would otherwise compile its modules during its first delivery while
    this tree reads the bytecode its tests left (a bias of ~35 ms, measured)."""
    compileall.compile_dir(root / "lambda_fn", quiet=1)


def compare(ref: str, runs: int, *, child: ChildRunner = run_child) -> dict[str, list[float]]:
    """First-delivery seconds per tree, ``runs`` each, interleaved."""
    trees = {ref: baseline_tree(ref), "this tree": ROOT}
    for root in trees.values():
        compile_tree(root)
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(runs):
        for name, root in trees.items():
            result, _ = child("first", root=root)
            seconds[name].append(float(result["first_delivery_s"]))
    return seconds


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    runs = int(argv[1]) if len(argv) > 1 else 7
    for name, values in compare(argv[0], runs).items():
        ms = sorted(round(value * 1000) for value in values)
        print(f"{name:<12} first delivery median {statistics.median(ms):7.1f} ms  runs {ms}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
