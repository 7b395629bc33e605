"""Kubernetes and KubeRay: render the manifests, apply them through the API, submit a
sweep to a cluster's job API (``python -m ttg_ray.kube ...``). The only package that
imports kubernetes and yaml; it sits beside the CLI, above everything else."""
