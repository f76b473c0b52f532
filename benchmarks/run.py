"""`python -m benchmarks.run [--quick]`: every figure of the benchmark in one run on this
machine, printed as a table beside its target and written to var/bench/results.json.

A missed target is a finding, not a failure: the table says so, and docs/reliability.md
says what limits it, from a profile (`--profile` records one of each side of Concord's
path with py-spy into var/bench/).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import time
from typing import Any

from benchmarks import env, system, throughput

TARGETS: dict[str, tuple[str, Any]] = {
    "throughput_ratio": (">=", 0.5),
    "bulk_intake_reports_per_s": (">=", 2000),
    "urgent_latency_ms.p99": ("<=", 250),
    "pipeline_query_ms.p95": ("<=", 50),
    "rss_mb.*.under_load": ("<", 150),
}


def _get(results: dict, dotted: str) -> Any:
    value: Any = results
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def verdicts(results: dict) -> list[tuple[str, Any, str, str]]:
    rows = []
    for key, (op, target) in TARGETS.items():
        if "*" in key:
            head, _, tail = key.partition(".*.")
            for name, figures in sorted((results.get(head) or {}).items()):
                rows.append(_verdict(f"{head}.{name}.{tail}", figures.get(tail), op, target))
            continue
        rows.append(_verdict(key, _get(results, key), op, target))
    return rows


def _verdict(key: str, value: Any, op: str, target: Any) -> tuple[str, Any, str, str]:
    if not isinstance(value, int | float):
        return key, value, f"{op} {target}", "-"
    met = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    return key, value, f"{op} {target}", "met" if met else "MISSED"


def table(results: dict) -> str:
    lines = [f"{'figure':44} {'value':>14}  {'target':>10}  verdict"]
    shown = set()
    for key, value, target, verdict in verdicts(results):
        shown.add(key.split(".")[0])
        lines.append(f"{key:44} {_text(value):>14}  {target:>10}  {verdict}")
    for key, value in results.items():
        if key in shown or key.startswith("_") or key in ("machine", "mode", "when", "profiles"):
            continue
        if isinstance(value, dict):
            for sub, inner in value.items():
                lines.append(f"{key + '.' + sub:44} {_text(inner):>14}")
        else:
            lines.append(f"{key:44} {_text(value):>14}")
    return "\n".join(lines)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def profile(seconds: int = 10) -> dict[str, Any]:
    """py-spy flame data of each side of Concord's path while it carries events."""
    import threading

    pids: dict[str, int] = {}
    streaming = threading.Event()

    def measuring(started: dict[str, int]) -> None:
        pids.update(started)
        streaming.set()

    worker = threading.Thread(
        target=throughput.pipeline, args=(throughput.FULL.pipeline, measuring)
    )
    worker.start()
    outputs: dict[str, str] = {}
    if streaming.wait(180):
        time.sleep(1)  # into the measured stream
        for label, pid in pids.items():
            path = env.VAR / f"profile-{label}.txt"
            subprocess.run(
                [
                    str(env.BIN / "py-spy"),
                    "record",
                    "-p",
                    str(pid),
                    "-d",
                    str(seconds),
                    "-r",
                    "50",
                    "-f",
                    "raw",
                    "-o",
                    str(path),
                ],
                capture_output=True,
            )
            outputs[label] = str(path)
    worker.join()
    return {label: {"file": path, **summarise(path)} for label, path in outputs.items()}


def summarise(path: str, top: int = 25) -> dict[str, Any]:
    """A py-spy raw profile as the share of samples spent in each function, itself included
    (inclusive) and on its own (self): what to read first when a figure falls short."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            samples = int(count)
            total += samples
            frames = [
                frame.split(" (")[0] + " (" + frame.rsplit("/", 1)[-1].split(":")[0]
                if " (" in frame
                else frame
                for frame in stack.split(";")
            ]
            own[frames[-1]] = own.get(frames[-1], 0) + samples
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + samples

    def share(counts: dict[str, int]) -> dict[str, float]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return {frame: round(n / total, 3) for frame, n in ranked}

    return {"samples": total, "inclusive": share(inclusive), "self": share(own)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    parser.add_argument("--profile", action="store_true", help="py-spy profiles of the pipeline")
    parser.add_argument("--only", choices=("throughput", "system"), help="one part only")
    args = parser.parse_args(argv)
    logging.getLogger("amqp").setLevel(logging.ERROR)  # the RPC client's closing chatter
    env.VAR.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        },
    }
    if args.only in (None, "throughput"):
        results.update(throughput.run(throughput.QUICK if args.quick else throughput.FULL))
    if args.only in (None, "system"):
        results.update(system.run(args.quick))
    if args.profile:
        results["profiles"] = profile()
    results["seconds"] = round(time.time() - started, 1)
    path = env.VAR / "results.json"
    if args.only and path.exists():
        # One part measured again: the other part's figures of the last run are kept.
        results = {**json.loads(path.read_text()), **results}
    print(table(results))
    for label, figures in results.get("profiles", {}).items():
        print(f"\nprofile of the {label} ({figures['samples']} samples), inclusive share:")
        for frame, share in list(figures["inclusive"].items())[:15]:
            print(f"  {share:6.1%}  {frame}")
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwritten to {path.relative_to(env.REPO)} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
