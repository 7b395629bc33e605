#!/usr/bin/env bash
# Rehearse the RayCluster on this machine, without Docker or Kubernetes: the head and one
# network-namespace host per worker replica on a bridge of their own, each running the
# `ray start` KubeRay would run in its pod (token auth on); the RayJob's sweep submitted to
# the head's job API from this side; everything torn down at the end. Needs root and
# iproute2. Options, and sweep arguments after '--', as for
#   python -m ttg_ray.kube rehearse [--workers N] [--kill-node-at PCT] [--add-node-at PCT]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" -m ttg_ray.kube rehearse "$@"
