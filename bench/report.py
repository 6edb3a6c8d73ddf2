"""The short human-readable report printed by ``python -m bench``."""

from __future__ import annotations

from typing import Any


def _ms(spread: dict[str, Any], digits: int = 1) -> str:
    """A ``Spread`` dict in seconds as ``median ms (min-max, MAD)``."""
    return (
        f"{spread['median'] * 1000:.{digits}f} ms "
        f"(min {spread['minimum'] * 1000:.{digits}f}, max {spread['maximum'] * 1000:.{digits}f}, "
        f"MAD {spread['mad'] * 1000:.{digits}f}, n={spread['runs']})"
    )


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def _size(num: float) -> str:
    return f"{num / 1_000_000:.2f} MB"


def _status(part: dict[str, Any]) -> str | None:
    status = part.get("status", "ok")
    return None if status == "ok" else str(status)


def render_cold(cold: dict[str, Any]) -> list[str]:
    ok = "OK" if cold["import_ratio_ok"] else "ABOVE TARGET"
    rss = cold["maxrss_kib"]
    lines = [
        f"1. Cold start ({cold['runs_per_mode']} fresh processes per figure, medians)",
        f"   import boto3 (floor)           {_ms(cold['import_boto3_s'])}",
        f"   import lambda_fn.app           {_ms(cold['import_app_s'])}",
        f"   ratio app / boto3              {cold['import_ratio_app_over_boto3']:.2f}x "
        f"(per-run min {cold['import_ratio_per_run']['minimum']:.2f}, "
        f"max {cold['import_ratio_per_run']['maximum']:.2f}; target <= "
        f"{cold['import_ratio_target']}x: {ok})",
        f"   first delivery (as deployed)              {_ms(cold['first_delivery_s'])}",
        "   first delivery (TRACE_REMOTE_CALLS=true)  " + _ms(cold["first_delivery_traced_s"]),
        f"   second delivery, same process  {_ms(cold['second_delivery_s'])}",
        f"   -> one-off cost of the first delivery: "
        f"{cold['first_delivery_one_off_s'] * 1000:.0f} ms",
        f"   import boto3+requests (pre-loaded by the fakes, not in 'first delivery') "
        f"{_ms(cold['import_boto3_requests_s'])}",
        f"   cold total estimate (import app + first delivery + boto3/requests import): "
        f"{cold['cold_total_estimate_s'] * 1000:.0f} ms",
        f"   peak RSS: boto3 {_mib(rss['boto3']['median'])}, app import "
        f"{_mib(rss['app_import']['median'])}, first delivery with moto in-process "
        f"{_mib(rss['first_delivery_with_fakes']['median'])} "
        f"(+{_mib(rss['first_delivery_increase_over_fakes']['median'])} over the fakes)",
        f"   first delivery correct (2 launched, 2 tasks, 2 JIT configs): "
        f"{cold['first_delivery_correct']}",
        "   heaviest imports of `import lambda_fn.app` (cumulative ms, -X importtime):",
    ]
    for item in cold["top_imports_app"][:8]:
        lines.append(f"     {item['cumulative_ms']:8.1f}  {'  ' * item['depth']}{item['module']}")
    lines.append("   self import time by package, `import lambda_fn.app`:")
    lines.append(
        "     "
        + ", ".join(f"{p['package']} {p['self_ms']:.1f}" for p in cold["import_packages_app"][:8])
    )
    lines.append("   imports during import + first delivery (after the fakes), by package (ms):")
    lines.append(
        "     "
        + ", ".join(
            f"{p['package']} {p['self_ms']:.1f}" for p in cold["import_packages_first_delivery"][:8]
        )
    )
    lines.append("   heaviest of those (cumulative ms):")
    for item in cold["top_imports_first_delivery"][:6]:
        lines.append(f"     {item['cumulative_ms']:8.1f}  {'  ' * item['depth']}{item['module']}")
    return lines


def render_warm(warm: dict[str, Any]) -> list[str]:
    budget = warm["remote_budget_ms"]
    lines = [
        f"2. Warm handler overhead ({warm['rounds']} interleaved rounds; AWS and GitHub "
        "answered in-process at the botocore/requests transport layer)",
        f"   remote-call budget assumed: GitHub JIT {budget['github_generate_jitconfig']:.0f} ms"
        f" + RunTask {budget['ecs_run_task']:.0f} ms + 2 DynamoDB writes "
        f"{budget['dynamodb_put_item'] + budget['dynamodb_update_item']:.0f} ms = "
        f"{warm['remote_budget_total_ms']:.0f} ms",
        "   scenario      n      p50 us    p99 us   p50 share  p99 share  p50 across rounds",
    ]
    for name, item in warm["scenarios"].items():
        rounds = item["p50_across_rounds_us"]
        lines.append(
            f"   {name:<10} {item['deliveries']:>5}  {item['p50_us']:>9.0f} {item['p99_us']:>9.0f}"
            f"   {item['p50_share_of_remote_budget_pct']:>7.2f}%  "
            f"{item['p99_share_of_remote_budget_pct']:>7.2f}%  "
            f"{rounds['minimum']:.0f}-{rounds['maximum']:.0f} us (MAD {rounds['mad']:.0f})"
        )
    calls = ", ".join(f"{k} {v}" for k, v in warm["aws_calls"].items())
    lines.append(f"   calls answered: {calls}; JIT configs {warm['jit_configs_issued']}")
    return lines


def render_burst(burst: dict[str, Any]) -> list[str]:
    answers = ", ".join(f"{k}: {v}" for k, v in burst["answers"].items())
    return [
        f"3. Burst ({burst['deliveries']} deliveries = {burst['jobs']} jobs x 2, shuffled, "
        f"{burst['clients']} concurrent clients; {burst['harness']})",
        f"   throughput {burst['throughput_per_s']:.1f} deliveries/s "
        f"(wall {burst['wall_s']:.2f} s); latency p50 {burst['latency_p50_ms']:.1f} ms, "
        f"p99 {burst['latency_p99_ms']:.1f} ms, max {burst['latency_max_ms']:.1f} ms",
        f"   answers: {answers}",
        f"   PROOF tasks in moto (list_tasks) = {burst['tasks_started']} (expected "
        f"{burst['jobs']}), JIT configs issued = {burst['jit_configs_issued']}, jobs with a "
        f"task = {burst['distinct_jobs_with_task']}, lost = {burst['lost_jobs']}, duplicate "
        f"launches = {burst['duplicate_launches']}, HTTP errors = {len(burst['http_errors'])}"
        f" -> {'CORRECT' if burst['correct'] else 'WRONG'}",
        f"   (+1 warm-up job before the clock: {burst['tasks_total_with_warmup']} tasks, "
        f"{burst['jit_configs_total_with_warmup']} JIT configs in total)",
    ]


def render_start(start: dict[str, Any]) -> list[str]:
    sc = start["scenario"]
    lines = [
        f"4. Start latency ({sc['jobs']} jobs, {sc['burst']} at once then one every "
        f"{sc['mean_gap_s']:.0f} s on average; ECS start {sc['start_delay_s']:.0f} s, "
        f"assignment {sc['assign_s']:.0f} s, jobs {sc['job_s']:.0f} s, max_runners "
        f"{sc['max_runners']}; virtual clock, product code on moto + the GitHub model)",
    ]
    for key in ("without_pool", "with_pool"):
        run = start[key]
        lines.append(
            f"   warm_runners={run['warm_runners']}: queued->started p50 "
            f"{run['queued_to_started_p50_s']:.1f} s, p90 {run['queued_to_started_p90_s']:.1f} s, "
            f"max {run['queued_to_started_max_s']:.1f} s; tasks started {run['tasks_started']} "
            f"for {run['jobs_started']} jobs; most running at once {run['max_running_tasks']} "
            f"-> {'CORRECT' if not run['violations'] else 'WRONG: ' + '; '.join(run['violations'])}"
        )
    return lines


def render_package(package: dict[str, Any]) -> list[str]:
    layer = package["with_powertools_layer"]
    lines = [
        f"5. Lambda asset (pip for Python {package['python_version']} / {package['platform']}, "
        f"as fargate_runners/bundling.py; zip deflate-9; deps "
        f"{'cached' if package['cached_dependencies'] else 'freshly built'})",
        f"   total: {_size(package['zipped_bytes'])} zipped, "
        f"{_size(package['unzipped_bytes'])} unzipped, {package['files']} files",
        f"   with the Powertools public layer: {_size(layer['zipped_bytes'])} zipped, "
        f"{_size(layer['unzipped_bytes'])} unzipped",
        "     (assumed in the layer: " + ", ".join(layer["assumed_layer_provides"]) + ")",
        "   top packages (unzipped / zipped):",
    ]
    for item in package["top_packages"]:
        mark = "  [layer]" if item["in_layer"] else ""
        lines.append(
            f"     {item['package']:<24} {_size(item['unzipped_bytes']):>9} "
            f"{_size(item['zipped_bytes']):>9}{mark}"
        )
    return lines


def render_scale(scale: dict[str, Any]) -> list[str]:
    lines = ["6. Scale: GitHub calls per job, jobs an hour per token, reconciler vs history"]
    for load in scale["loads"]:
        lines.append(
            f"   {load['jobs_per_hour']:>5} jobs/h ({load['jobs']} jobs, "
            f"{load['simulated_minutes']:g} simulated min): calls/job dispatch "
            f"{load['github_calls_per_job_dispatch']}, reconciler "
            f"{load['github_calls_per_job_reconciler']}, total "
            f"{load['github_calls_per_job_total']}; reconciler {load['reconciler_calls_per_run']}"
            f" calls/run; one PAT sustains {load['pat_sustains_jobs_per_hour']} jobs/h, one App "
            f"installation {load['app_sustains_jobs_per_hour'][0]}-"
            f"{load['app_sustains_jobs_per_hour'][1]}; lost {load['lost_jobs']}, two runners "
            f"{load['jobs_with_two_runners']}"
        )
    for item in scale["reconciler"]:
        lines.append(
            f"   reconciler, {item['finished_jobs']:>5} finished + {item['busy_jobs']} busy jobs: "
            f"{item['github_calls']} GitHub calls ({item['job_lookups']} job lookups), "
            f"{item['wall_s']} s of a {item['budget_s']:g} s budget"
        )
    lines.append(f"   reconciler calls flat across history: {scale['reconciler_calls_flat']}")
    lines.append(f"   correct: {scale['correct']}")
    return lines


RENDERERS = {
    "cold": render_cold,
    "warm": render_warm,
    "burst": render_burst,
    "start": render_start,
    "package": render_package,
    "scale": render_scale,
}
TITLES = {
    "cold": "1. Cold start",
    "warm": "2. Warm",
    "burst": "3. Burst",
    "start": "4. Start latency",
    "package": "5. Asset",
    "scale": "6. Scale",
}


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Dispatch-path benchmark ({results['mode']}) -- Python {m['python']} on "
        f"{m['machine']}, {m['cpus']} CPUs, load {m['load_average_1m']}; "
        f"{results['elapsed_s']:.0f} s",
        "",
    ]
    for name, part in results["parts"].items():
        status = _status(part)
        if status is not None:
            lines.append(f"{TITLES[name]}: {status}")
        else:
            lines.extend(RENDERERS[name](part))
        lines.append(f"   ({part.get('elapsed_s', 0):.1f} s)")
        lines.append("")
    return "\n".join(lines).rstrip()


def all_correct(results: dict[str, Any]) -> bool:
    """No part failed its correctness checks (timings are never judged)."""
    parts = results["parts"]
    for name in ("burst", "scale"):
        if name in parts and _status(parts[name]) is None and not parts[name]["correct"]:
            return False
    start = parts.get("start")
    if (
        start is not None
        and _status(start) is None
        and any(start[key]["violations"] for key in ("without_pool", "with_pool"))
    ):
        return False
    return not (
        "cold" in parts
        and _status(parts["cold"]) is None
        and not parts["cold"]["first_delivery_correct"]
    )
