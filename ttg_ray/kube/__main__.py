"""``python -m ttg_ray.kube render|apply|status|delete|submit``."""

from ttg_ray.kube.cli import main

raise SystemExit(main())
