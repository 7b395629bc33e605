"""``python -m ttg_ray.worker``: a queue worker (the code lives in ttg_ray.cli.worker)."""

from ttg_ray.cli.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
