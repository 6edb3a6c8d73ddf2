"""``python -m bench [--smoke] [--only PART ...] [--json PATH]``: run, print, write JSON."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import report

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = ROOT / "build" / "bench" / "report.json"
PARTS = ("cold", "warm", "burst", "start", "package", "scale")


@dataclass(frozen=True)
class Sizes:
    cold_runs: int
    warm_per_round: int
    warm_rounds: int
    warm_warmup: int
    burst_jobs: int
    burst_clients: int
    start_jobs: int
    #: Steady load: jobs an hour and simulated minutes; reconciler: finished jobs.
    scale_rates: tuple[int, ...]
    scale_minutes: float
    scale_histories: tuple[int, ...]


FULL = Sizes(
    cold_runs=5,
    warm_per_round=600,
    warm_rounds=5,
    warm_warmup=50,
    burst_jobs=250,
    burst_clients=8,
    start_jobs=60,
    scale_rates=(1000, 3000),
    scale_minutes=15,
    scale_histories=(150, 500, 2000),
)
SMOKE = Sizes(
    cold_runs=2,
    warm_per_round=100,
    warm_rounds=2,
    warm_warmup=10,
    burst_jobs=20,
    burst_clients=8,
    start_jobs=16,
    scale_rates=(1000,),
    scale_minutes=1,
    scale_histories=(3, 12),
)


def _cold(sizes: Sizes) -> dict[str, Any]:
    from bench import coldstart

    return coldstart.run(runs=sizes.cold_runs).summary()


def _warm(sizes: Sizes) -> dict[str, Any]:
    from bench import warm

    return warm.run(
        per_round=sizes.warm_per_round, rounds=sizes.warm_rounds, warmup=sizes.warm_warmup
    ).summary()


def _burst(sizes: Sizes) -> dict[str, Any]:
    try:
        from bench import burst
    except ImportError as exc:  # pragma: no cover - localdev missing
        return {"status": f"skipped: {exc}"}
    return burst.run(jobs=sizes.burst_jobs, clients=sizes.burst_clients).summary()


def _start(sizes: Sizes) -> dict[str, Any]:
    from bench import start_latency

    return start_latency.run(start_latency.Scenario(jobs=sizes.start_jobs))


def _package(sizes: Sizes) -> dict[str, Any]:
    from bench import package

    return package.run()


def _scale(sizes: Sizes) -> dict[str, Any]:
    from bench import scale

    return scale.run(sizes.scale_rates, sizes.scale_minutes, sizes.scale_histories)


RUNNERS: dict[str, Callable[[Sizes], dict[str, Any]]] = {
    "cold": _cold,
    "warm": _warm,
    "burst": _burst,
    "start": _start,
    "package": _package,
    "scale": _scale,
}


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="few runs, small burst (CI)")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="machine-readable report")
    args = parser.parse_args(argv)

    sizes = SMOKE if args.smoke else FULL
    parts = args.only or list(PARTS)
    results: dict[str, Any] = {
        "mode": "smoke" if args.smoke else "full",
        "sizes": sizes.__dict__,
        "machine": machine(),
        "parts": {},
    }
    started = time.perf_counter()
    failed = False
    for part in PARTS:
        if part not in parts:
            continue
        part_started = time.perf_counter()
        print(f"[bench] {part} ...", file=sys.stderr, flush=True)
        try:
            outcome = RUNNERS[part](sizes)
        except Exception as exc:
            failed = True
            outcome = {"status": f"error: {type(exc).__name__}: {exc}"}
        outcome["elapsed_s"] = round(time.perf_counter() - part_started, 2)
        results["parts"][part] = outcome
    results["elapsed_s"] = round(time.perf_counter() - started, 2)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(report.render(results))
    shown = args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json
    print(f"\n(machine-readable: {shown})")
    correct = report.all_correct(results)
    return 1 if failed or not correct else 0


if __name__ == "__main__":
    raise SystemExit(main())
