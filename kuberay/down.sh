#!/usr/bin/env bash
# Remove what kuberay/up.sh created, and only that, as recorded in its state file: the Kind
# cluster if up.sh created it (which takes everything in it along), else the ttg-ray objects
# (label app.kubernetes.io/part-of=ttg-ray) and the KubeRay operator if up.sh installed it.
# The image is removed only with --remove-image.
#
#   kuberay/down.sh [--dry-run] [--remove-image] [--cluster NAME] [--help]
set -euo pipefail

CLUSTER=${TTG_KIND_CLUSTER:-ttg}
NAMESPACE=default
KUBERAY_NAMESPACE=kuberay-system
STATE_DIR=${TTG_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/ttg-ray}
DRY_RUN=0
REMOVE_IMAGE=0

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --remove-image) REMOVE_IMAGE=1 ;;
        --cluster) CLUSTER=${2:?--cluster needs a name}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "down.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
STATE_FILE="$STATE_DIR/$CLUSTER.state"

run() {
    if [ "$DRY_RUN" = 1 ]; then
        echo "would run: $*"
    else
        echo "+ $*"
        "$@"
    fi
}

recorded() {
    grep -qx "$1" "$STATE_FILE"
}

if [ ! -f "$STATE_FILE" ]; then
    echo "Nothing recorded by up.sh for cluster $CLUSTER ($STATE_FILE); nothing to remove."
    exit 0
fi

if recorded created_cluster; then
    run kind delete cluster --name "$CLUSTER"
else
    context=(--context "kind-$CLUSTER" -n "$NAMESPACE")
    if recorded applied_ray || recorded applied_queues; then
        run kubectl "${context[@]}" delete rayjob,raycluster,deployment,service,pvc,secret \
            -l app.kubernetes.io/part-of=ttg-ray --ignore-not-found
    fi
    if recorded installed_kuberay; then
        run helm --kube-context "kind-$CLUSTER" uninstall kuberay-operator -n "$KUBERAY_NAMESPACE"
    fi
fi
if [ "$REMOVE_IMAGE" = 1 ] && recorded built_image; then
    # Every tag up.sh built (one per commit it ran at), as recorded.
    images=$(sed -n 's/^image //p' "$STATE_FILE")
    for image in ${images:-${TTG_IMAGE:-ttg-ray:0.1.0}}; do
        run docker image rm "$image"
    done
fi
if [ "$DRY_RUN" = 1 ]; then
    echo "Dry run: nothing was changed."
else
    rm -f "$STATE_FILE"
fi
