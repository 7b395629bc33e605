"""``python -m ttg_ray.run``: the sweep command (the code lives in ttg_ray.cli.run)."""

from ttg_ray.cli.run import main

if __name__ == "__main__":
    raise SystemExit(main())
