"""``python -m ttg_ray.kuberay``: the old name of ``python -m ttg_ray.kube``, kept for one
release (0.2); it will be removed in 0.3."""

from ttg_ray.kube.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
