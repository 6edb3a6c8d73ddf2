"""Write a release's synthesized templates: the baseline the upgrade test compares with.

``python -m tests.upgrade.baseline COMMIT`` (``make upgrade-baseline COMMIT=...``) checks
COMMIT out in a temporary git worktree, synthesizes each configuration of
``contexts.json`` with *that* commit's code (its ``cdk.app.build_app``, this virtualenv)
and writes ``tests/upgrade/<COMMIT>/<configuration>.template.json``. CI clones the
repository fresh and possibly shallow, so the baseline is committed rather than rebuilt.

At each release: run it with the release's commit, point ``BASELINE`` in
``test_upgrade.py`` at the new folder and delete the old one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
CONTEXTS = HERE / "contexts.json"
GIT = shutil.which("git") or "git"

#: Run inside the old commit's worktree: its own code, no Lambda bundling, no cdk-nag.
_SYNTH = """
import json, sys
from cdk.app import build_app
context, outdir = json.loads(sys.argv[1]), sys.argv[2]
app, stack = build_app(context={**context, "aws:cdk:bundling-stacks": []}, outdir=outdir,
                       nag=False)
app.synth()
print(f"{outdir}/{stack.artifact_id}.template.json")
"""


def contexts() -> dict[str, dict[str, object]]:
    """The compared configurations (``_comment`` left out)."""
    data: dict[str, dict[str, object]] = json.loads(CONTEXTS.read_text())
    return {name: context for name, context in data.items() if not name.startswith("_")}


def synthesize(tree: Path, context: dict[str, object], outdir: Path) -> dict[str, object]:
    """The template ``tree``'s code synthesizes for ``context`` (in a child process)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    result = subprocess.run(
        [sys.executable, "-c", _SYNTH, json.dumps(context), str(outdir)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"synth failed in {tree}:\n{result.stderr[-4000:]}")
    path = Path(result.stdout.strip().splitlines()[-1])
    template: dict[str, object] = json.loads(path.read_text())
    return template


def synthesize_today(context: dict[str, Any], outdir: Path) -> dict[str, Any]:
    """The template this tree's code synthesizes for ``context`` (in this process)."""
    from cdk.app import build_app

    app, stack = build_app(
        context={**context, "aws:cdk:bundling-stacks": []}, outdir=str(outdir), nag=False
    )
    app.synth()
    template: dict[str, Any] = json.loads(
        (outdir / f"{stack.artifact_id}.template.json").read_text()
    )
    return template


def write_baseline(commit: str) -> Path:
    """Synthesize every configuration at ``commit`` into ``tests/upgrade/<short commit>/``."""
    short = subprocess.run(
        [GIT, "rev-parse", "--short=7", commit],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = HERE / short
    target.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"release-{short}-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            [GIT, "worktree", "add", "--detach", str(tree), short],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        try:
            for name, context in contexts().items():
                template = synthesize(tree, context, Path(tmp) / name)
                out = target / f"{name}.template.json"
                out.write_text(json.dumps(template, indent=1, sort_keys=True) + "\n")
                print(f"wrote {out.relative_to(REPO_ROOT)}")
        finally:
            subprocess.run(
                [GIT, "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT, check=False
            )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commit", help="the release's commit (e.g. a3ba4bf)")
    write_baseline(parser.parse_args().commit)


if __name__ == "__main__":
    main()
