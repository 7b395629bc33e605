"""``python -m ttg_ray.monitor``: the queue monitor (the code lives in ttg_ray.cli.monitor)."""

from ttg_ray.cli.monitor import main

if __name__ == "__main__":
    raise SystemExit(main())
