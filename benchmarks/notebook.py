"""How long a notebook waits: ttg_ray.compute()'s first call (a local Ray starts), its
second call (the warm Ray is reused), five notebook-style calls with different spaces and
functions, and the start-up of joblib, multiprocessing.Pool and Dask beside them.

    python -m benchmarks.notebook [--out benchmarks/results/notebook.json]

Each system runs in a fresh process of its own, so every first call is a cold start.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

# Local clusters started here run without Ray 2.60's token authentication.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

N = 1000


def _ttg() -> dict[str, float]:
    import ttg_ray

    out: dict[str, float] = {}
    t = time.perf_counter()
    ttg_ray.compute(abs, N, progress=False)
    out["first_call_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ttg_ray.compute(abs, N, progress=False)
    out["second_call_s"] = time.perf_counter() - t
    calls = [
        (abs, N),
        (math.sqrt, ttg_ray.Linspace(0.0, 1.0, 500)),
        (str, {"lr": ttg_ray.Logspace(1e-4, 1e-1, 10), "layers": [1, 2, 3]}),
        (repr, ttg_ray.RandomSample(200, {"lr": ttg_ray.LogUniform(1e-4, 1e-1)}, seed=0)),
        (len, (str(i) for i in range(300))),
    ]
    t = time.perf_counter()
    for fn, params in calls:
        ttg_ray.compute(fn, params, progress=False)
    out["five_calls_s"] = time.perf_counter() - t
    t = time.perf_counter()
    ttg_ray.shutdown()
    out["shutdown_s"] = time.perf_counter() - t
    return out


def _pool() -> dict[str, float]:
    import multiprocessing

    t = time.perf_counter()
    with multiprocessing.Pool(2) as pool:
        pool.map(abs, range(N))
        first = time.perf_counter() - t
        t = time.perf_counter()
        pool.map(abs, range(N))
        second = time.perf_counter() - t
    return {"first_call_s": first, "second_call_s": second}


def _joblib() -> dict[str, float]:
    from joblib import Parallel, delayed

    t = time.perf_counter()
    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(N))
    first = time.perf_counter() - t
    t = time.perf_counter()
    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(N))
    return {"first_call_s": first, "second_call_s": time.perf_counter() - t}


def _dask() -> dict[str, float]:
    from dask.distributed import Client, LocalCluster

    t = time.perf_counter()
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        client.gather(client.map(abs, range(N)))
        first = time.perf_counter() - t
        t = time.perf_counter()
        client.gather(client.map(abs, range(N), pure=False))
        second = time.perf_counter() - t
    return {"first_call_s": first, "second_call_s": second}


SYSTEMS = {"ttg_ray": _ttg, "pool": _pool, "joblib": _joblib, "dask": _dask}


def _one(name: str) -> dict[str, float]:
    """Run ``name`` in a fresh interpreter (a cold start), including its imports."""
    code = (
        "import json, time; t = time.perf_counter(); "
        "from benchmarks.notebook import SYSTEMS; "
        f"r = SYSTEMS[{name!r}](); r['process_s'] = time.perf_counter() - t; "
        "print('RESULT', json.dumps(r))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the numbers as JSON here")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    args = parser.parse_args(argv)
    results = {name: _one(name) for name in args.systems.split(",")}
    for name, r in results.items():
        cells = "  ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
        )
        print(f"{name:<8} {cells}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"n": N, "cpus": os.cpu_count(), "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
