"""Fault injection with an honest ledger (issue 5).

    python -m benchmarks.chaos [--quick] [--backends ray,redis,rabbitmq] [--scenarios a,b]

For each backend, runs a sweep per scenario while injecting one fault, reads the result
file back and prints one JSON ledger line per scenario: expected, ok, failed, lost,
duplicated, unexpected (from the file), reexecuted (from the function's own call log),
recovery_s (sweep time over a fault-free run of the same sweep, start-up excluded) and
wall_s (start-up included). A scenario
passes when nothing is lost, duplicated or unexpected, ok + failed == expected, and the
failed parameters are exactly those designed to fail. Exit code 1 if any fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import TextIO

from benchmarks.chaos_fn import call_counts
from benchmarks.chaos_ledger import Ledger, count, markdown
from benchmarks.chaos_scenarios import QUEUES, SCENARIOS, Ctx, baseline
from ttg_ray.workloads import seed_placeholder

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("ray", *QUEUES)
DEFAULT_URLS = {
    "redis": os.environ.get("TTG_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get("TTG_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
}


def expected_value(index: int) -> float:
    return seed_placeholder(index, 0)


def run_one(name: str, ctx: Ctx, baseline_s: float | None) -> Ledger:
    scenario, _ = SCENARIOS[name]
    ledger = Ledger(ctx.backend, name, ctx.n)
    started = time.monotonic()
    outcome = None
    try:
        outcome = scenario(ctx)
    except Exception as err:
        traceback.print_exc()
        ledger.problems.append(f"{type(err).__name__}: {err}")
    ledger.wall_s = outcome.wall_s if outcome else time.monotonic() - started
    count(ledger, ctx.tmp / "out.jsonl", expected_value, call_counts(ctx.calls_dir()))
    if outcome is not None:
        ledger.designed_to_fail = outcome.designed_to_fail
        ledger.problems += outcome.problems
        reference = outcome.baseline_s if outcome.baseline_s is not None else baseline_s
        if reference is not None:
            ledger.recovery_s = max(0.0, outcome.sweep_s - reference)
    return ledger


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.chaos",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--quick", action="store_true", help="tiny sweeps, for the smoke test")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--params", type=int, help="sweep size (default 20000, quick 3000)")
    p.add_argument("--work-ms", type=float, default=1.0, help="simulated work per parameter")
    p.add_argument("--redis-url", default=DEFAULT_URLS["redis"])
    p.add_argument("--amqp-url", default=DEFAULT_URLS["rabbitmq"])
    p.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--no-markdown", action="store_true", help="print the JSON lines only")
    args = p.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    for kind, given, known in (
        ("backend", args.backends, BACKENDS),
        ("scenario", args.scenarios, SCENARIOS),
    ):
        unknown = set(given) - set(known)
        if unknown:
            p.error(f"unknown {kind}(s) {sorted(unknown)}; choose from {sorted(known)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Queue workers and Ray workers import benchmarks.chaos_fn from here.
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), path) if p)
    urls = {"redis": args.redis_url, "rabbitmq": args.amqp_url}
    # Stdout carries the ledger lines only: Ray's log monitor prints worker deaths to
    # sys.stdout, so everything else goes to stderr while the scenarios run.
    ledger_out, sys.stdout = sys.stdout, sys.stderr
    try:
        return _run_all(args, argv, urls, ledger_out)
    finally:
        sys.stdout = ledger_out


def _run_all(
    args: argparse.Namespace, argv: list[str] | None, urls: dict[str, str], ledger_out: TextIO
) -> int:
    n = args.params or (3000 if args.quick else 20_000)
    ledgers: list[Ledger] = []
    with tempfile.TemporaryDirectory(prefix="ttg-chaos-") as tmp:
        for backend in args.backends:
            names = [s for s in args.scenarios if backend in SCENARIOS[s][1]]
            if not names:
                continue

            def ctx(name: str, backend: str = backend) -> Ctx:
                scratch = Path(tmp) / backend / name
                scratch.mkdir(parents=True)
                return Ctx(
                    backend,
                    n,
                    args.work_ms,
                    workers=3,
                    chunk_size=25 if args.quick else 50,
                    tmp=scratch,
                    timeout_s=180 if args.quick else 300,
                    kill_every_s=1.0 if args.quick else 2.0,
                    broker_url=urls.get(backend),
                )

            baseline_s = _baseline(ctx("fault-free"))
            for name in names:
                print(f"-- {backend}: {name}", file=sys.stderr, flush=True)
                ledger = run_one(name, ctx(name), baseline_s)
                ledgers.append(ledger)
                print(json.dumps(ledger.to_json_dict()), file=ledger_out, flush=True)
    passed = sum(led.passed for led in ledgers)
    print(f"{passed} of {len(ledgers)} scenarios passed", file=sys.stderr)
    if not args.no_markdown and ledgers:
        _write_markdown(args, argv, ledgers)
    return 0 if passed == len(ledgers) else 1


def _baseline(ctx: Ctx) -> float | None:
    """Wall time of the same sweep with no fault, the reference for recovery_s."""
    try:
        return baseline(ctx).sweep_s
    except Exception as err:
        print(f"fault-free run on {ctx.backend} failed: {err}", file=sys.stderr)
        return None
    finally:
        shutil.rmtree(ctx.tmp, ignore_errors=True)


def _write_markdown(args: argparse.Namespace, argv: list[str] | None, ledgers: list[Ledger]):
    date, host = time.strftime("%Y-%m-%d"), platform.node()
    given = " ".join(sys.argv[1:] if argv is None else argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{date}-{host}-chaos{'-quick' if args.quick else ''}.md"
    text = (
        f"## Chaos ledger, {date} on {host}\n\n"
        f"{os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Command: `python -m benchmarks.chaos {given}`.\n\n" + markdown(ledgers)
    )
    failing = [led for led in ledgers if not led.passed]
    for led in failing:
        text += f"\n- {led.backend} {led.scenario}: " + "; ".join(led.reasons())
    path.write_text(text + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
