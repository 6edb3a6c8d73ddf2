"""Cold start: fresh child processes (see :mod:`bench._coldchild`).

Each figure is the median of ``runs`` children; the modes are interleaved
run by run so drift on the machine affects them alike, and ratios are taken
between medians of the same run of ``python -m bench``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._coldchild import MARKER
from bench.stats import ratio, spread

ROOT = Path(__file__).resolve().parent.parent
MODES = ("boto3", "deps", "app", "first", "first-traced")
IMPORT_RATIO_TARGET = 1.3


def _child_env(root: Path = ROOT) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "POWERTOOLS_"))
    }
    env["PYTHONPATH"] = str(root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # measure against the existing .pyc files only
    return env


def run_child(
    mode: str, *, importtime: bool = False, root: Path = ROOT
) -> tuple[dict[str, Any], str]:
    """Run one child of the tree at ``root``; its result and (with ``importtime``) stderr."""
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        out = Path(tmp) / "result.json"
        argv = [sys.executable]
        if importtime:
            argv += ["-X", "importtime"]
        argv += ["-m", "bench._coldchild", mode, str(out)]
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv,
            cwd=root,
            env=_child_env(root),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start child {mode!r} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result, proc.stderr


@dataclass(frozen=True)
class ImportLine:
    self_us: int
    cumulative_us: int
    depth: int
    module: str


def parse_importtime(stderr: str, *, after_marker: bool = False) -> list[ImportLine]:
    """Parse ``-X importtime`` output (optionally only what follows the timer marker)."""
    lines = stderr.splitlines()
    if after_marker:
        if MARKER not in lines:
            return []
        lines = lines[lines.index(MARKER) + 1 :]
    parsed: list[ImportLine] = []
    for line in lines:
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = line.split(":", 1)[1].split("|", 2)
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        self_us, cumulative, name = fields
        stripped = name.lstrip(" ")
        depth = (len(name) - len(stripped) - 1) // 2
        parsed.append(ImportLine(int(self_us), int(cumulative), depth, stripped.strip()))
    return parsed


def top_imports(lines: list[ImportLine], count: int = 10) -> list[dict[str, Any]]:
    """The heaviest imports by cumulative time (roots and nested alike)."""
    ordered = sorted(lines, key=lambda line: line.cumulative_us, reverse=True)[:count]
    return [
        {"module": line.module, "cumulative_ms": round(line.cumulative_us / 1000, 2),
         "self_ms": round(line.self_us / 1000, 2), "depth": line.depth}
        for line in ordered
    ]  # fmt: skip


def by_package(lines: list[ImportLine], count: int = 10) -> list[dict[str, Any]]:
    """Self import time summed per top-level package (no double counting)."""
    totals: dict[str, int] = defaultdict(int)
    modules: dict[str, int] = defaultdict(int)
    for line in lines:
        top = line.module.split(".", 1)[0]
        totals[top] += line.self_us
        modules[top] += 1
    ordered = sorted(totals.items(), key=lambda item: item[1], reverse=True)[:count]
    return [
        {"package": name, "self_ms": round(us / 1000, 2), "modules": modules[name]}
        for name, us in ordered
    ]


@dataclass
class ColdResult:
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    app_imports: list[ImportLine] = field(default_factory=list)
    delivery_imports: list[ImportLine] = field(default_factory=list)

    def values(self, mode: str, key: str) -> list[float]:
        return [float(run[key]) for run in self.runs[mode]]

    def summary(self) -> dict[str, Any]:
        boto3 = spread(self.values("boto3", "import_s"))
        deps = spread(self.values("deps", "import_s"))
        app = spread(self.values("app", "import_s"))
        first = spread(self.values("first", "first_delivery_s"))
        second = spread(self.values("first", "second_delivery_s"))
        first_traced = spread(self.values("first-traced", "first_delivery_s"))
        import_ratio = ratio(app.median, boto3.median)
        per_run_ratio = spread(
            [
                ratio(a, b)
                for a, b in zip(
                    self.values("app", "import_s"), self.values("boto3", "import_s"), strict=True
                )
            ]
        )
        first_runs = self.runs["first"]
        rss_delta = [run["maxrss_kib"] - run["maxrss_before_timer_kib"] for run in first_runs]
        return {
            "runs_per_mode": len(self.runs["boto3"]),
            "import_boto3_s": boto3.as_dict(),
            "import_boto3_requests_s": deps.as_dict(),
            "import_app_s": app.as_dict(),
            "import_ratio_app_over_boto3": round(import_ratio, 3),
            "import_ratio_per_run": per_run_ratio.as_dict(),
            "import_ratio_target": IMPORT_RATIO_TARGET,
            "import_ratio_ok": import_ratio <= IMPORT_RATIO_TARGET,
            "first_delivery_s": first.as_dict(),
            "first_delivery_traced_s": first_traced.as_dict(),
            "second_delivery_s": second.as_dict(),
            "first_delivery_one_off_s": round(first.median - second.median, 6),
            "cold_total_estimate_s": round(app.median + first.median + deps.median, 6),
            "maxrss_kib": {
                "boto3": spread(self.values("boto3", "maxrss_kib")).as_dict(),
                "app_import": spread(self.values("app", "maxrss_kib")).as_dict(),
                "first_delivery_with_fakes": spread(self.values("first", "maxrss_kib")).as_dict(),
                "first_delivery_increase_over_fakes": spread(
                    [float(v) for v in rss_delta]
                ).as_dict(),
            },
            "preloaded_by_fakes": first_runs[0]["preloaded_by_fakes"],
            "first_delivery_correct": all(
                run["statuses"] == ["launched", "launched"]
                and run["tasks_started"] == 2
                and run["jit_configs_issued"] == 2
                for mode in ("first", "first-traced")
                for run in self.runs[mode]
            ),
            "top_imports_app": top_imports(self.app_imports),
            "import_packages_app": by_package(self.app_imports),
            "top_imports_first_delivery": top_imports(self.delivery_imports),
            "import_packages_first_delivery": by_package(self.delivery_imports),
        }


def run(runs: int = 5) -> ColdResult:
    """``runs`` children per mode (interleaved) plus two ``-X importtime`` children."""
    result = ColdResult(runs={mode: [] for mode in MODES})
    for _ in range(runs):
        for mode in MODES:
            child, _stderr = run_child(mode)
            result.runs[mode].append(child)
    _, stderr = run_child("app", importtime=True)
    result.app_imports = parse_importtime(stderr, after_marker=True)
    _, stderr = run_child("first", importtime=True)
    result.delivery_imports = parse_importtime(stderr, after_marker=True)
    return result
