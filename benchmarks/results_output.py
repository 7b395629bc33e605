"""Writing results: rows per second and file size of the JSON Lines and Parquet stores
for N trivial results, the W0 sweep's rate with no output, JSONL and Parquet, and the
driver's peak memory streaming 1M vs 10M parameters to Parquet.

    python -m benchmarks.results_output [--rows 10000000] [--w0 1000000] [--quick]

Each measurement runs in its own process (peak memory is VmHWM of that process).
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from benchmarks.compare import DRIVER as SCALE_DRIVER

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # the local clusters started here

STORE = """
import json, time
from ttg_ray.core.identity import SweepIdentity
from ttg_ray.core.params import ParamRange
from ttg_ray.engine.resume import open_output
from ttg_ray.workloads import seed_placeholder
n, batch = {n}, 50_000
space = ParamRange(n)
store = open_output({out!r}, SweepIdentity.of(seed_placeholder, space), space).store
values = [seed_placeholder(i, 0) for i in range(batch)]
started = time.perf_counter()
for lo in range(0, n, batch):
    # the same values, shifted indices: what the runner hands the store per chunk
    hi = min(lo + batch, n)
    store.write(range(lo, hi), range(lo, hi), values[: hi - lo], [])
store.close()
elapsed = time.perf_counter() - started
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({{"s": elapsed, "peak_mb": int(hwm.split()[1]) / 1024}}))
"""

# The driver script: benchmarks.compare's Scale run (the same sweep, rate and peak RSS).
DRIVER = SCALE_DRIVER


def run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def size_mb(path: str) -> float:
    if os.path.isdir(path):
        return sum(e.stat().st_size for e in os.scandir(path)) / 1e6
    return os.path.getsize(path) / 1e6


def check_rows(path: str, n: int) -> None:
    import ttg_ray

    frame = ttg_ray.read_results(path)
    if len(frame) != n or frame["index"].iloc[-1] != n - 1:
        raise AssertionError(f"{path}: {len(frame)} rows for {n}")


def store_table(n: int, check: bool) -> str:
    lines = [
        f"### Writing {n:,} trivial results (int param, float value), 50k rows per write",
        "",
        "| format | rows/s | file MB | writer peak RSS MB |",
        "|---|---:|---:|---:|",
    ]
    for suffix in ("jsonl", "parquet"):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, f"r.{suffix}")
            data = run(STORE.format(n=n, out=out))
            if check:
                check_rows(out, n)
            rate, mb = n / data["s"], size_mb(out)
            lines.append(f"| {suffix} | {rate:,.0f} | {mb:,.1f} | {data['peak_mb']:,.0f} |")
    return "\n".join(lines) + "\n"


def w0_table(n: int, big: int | None, backend: str) -> str:
    lines = [
        f"### W0 on the {backend} backend, 2 workers: {n:,} trivial parameters",
        "",
        "| output | params/s | driver peak RSS MB |",
        "|---|---:|---:|",
    ]
    for label, name in (("none", None), ("JSONL", "r.jsonl"), ("Parquet", "r.parquet")):
        with tempfile.TemporaryDirectory() as tmp:
            out = None if name is None else os.path.join(tmp, name)
            data = run(DRIVER.format(n=n, out=out, backend=backend))
            lines.append(f"| {label} | {data['rate']:,.0f} | {data['peak_mb']:,.0f} |")
    if big:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "r.parquet")
            data = run(DRIVER.format(n=big, out=out, backend=backend))
            lines.append(f"| Parquet, {big:,} | {data['rate']:,.0f} | {data['peak_mb']:,.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="0: skip the store runs")
    parser.add_argument("--w0", type=int, default=1_000_000, help="0: skip the W0 runs")
    parser.add_argument("--big", type=int, default=10_000_000, help="0: skip the 10M run")
    parser.add_argument("--backend", default="ray", help="for W0: ray, redis or rabbitmq")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--check", action="store_true", help="read every file back")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.w0, args.big = 200_000, 100_000, 0
    print(f"# Result output, {time.strftime('%Y-%m-%d')} on {platform.node()}")
    print(f"{os.cpu_count()} cores, Python {platform.python_version()}\n")
    if args.rows:
        print(store_table(args.rows, args.check), flush=True)
    if args.w0:
        print(w0_table(args.w0, args.big or None, args.backend))


if __name__ == "__main__":
    main()
