#!/usr/bin/env bash
# Bring up ttg_ray on a local Kind cluster: Kind (1 control plane + 3 workers), the KubeRay
# operator 1.7.0 (Helm), the ttg-ray image built and loaded into Kind, the Secrets, and the
# RayCluster; with --with-queues also Redis, RabbitMQ and the queue workers. Records what it
# created in a state file, so kuberay/down.sh removes exactly that and nothing else.
#
#   kuberay/up.sh [--with-queues] [--cluster NAME] [--help]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CLUSTER=${TTG_KIND_CLUSTER:-ttg}
NAMESPACE=default
KUBERAY_VERSION=1.7.0
KUBERAY_NAMESPACE=kuberay-system
VERSION=0.1.0
BASE_IMAGE=ttg-ray:${VERSION}
STATE_DIR=${TTG_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/ttg-ray}
WITH_QUEUES=0
WAIT_TIMEOUT=${TTG_WAIT_TIMEOUT:-600s}

usage() {
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "up.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --with-queues) WITH_QUEUES=1 ;;
        --cluster) CLUSTER=${2:?--cluster needs a name}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
STATE_FILE="$STATE_DIR/$CLUSTER.state"

# The image tag names the code in it: VERSION-<commit>, plus -dirty-<content hash> for
# uncommitted changes. A re-run after a change gets a new tag, so applying the manifests
# changes the pod templates and the pods are replaced (a reused tag changed nothing, and
# the Ray pods kept the old code).
image_tag() {
    local commit sum
    commit=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null) || commit=nogit
    if [ "$commit" != nogit ] && [ -z "$(git -C "$ROOT" status --porcelain -- Dockerfile pyproject.toml ttg_ray)" ]; then
        echo "ttg-ray:$VERSION-$commit"
        return
    fi
    sum=$(cd "$ROOT" && find Dockerfile pyproject.toml ttg_ray -type f ! -name '*.pyc' -print0 \
        | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
    echo "ttg-ray:$VERSION-$commit-dirty-$sum"
}
IMAGE=${TTG_IMAGE:-$(image_tag)}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"
}

check_prerequisites() {
    need docker "install Docker Engine or Docker Desktop (https://docs.docker.com/get-docker/)"
    need kind "install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
    need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
    need helm "install Helm 3 (https://helm.sh/docs/intro/install/)"
    docker info >/dev/null 2>&1 || die "docker is installed but the daemon does not answer; start it"
}

record() {
    mkdir -p "$STATE_DIR"
    grep -qx "$1" "$STATE_FILE" 2>/dev/null || echo "$1" >>"$STATE_FILE"
}

create_cluster() {
    if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
        echo "Kind cluster $CLUSTER exists; using it"
    else
        echo "Creating Kind cluster $CLUSTER (1 control plane + 3 workers)"
        kind create cluster --name "$CLUSTER" --config "$HERE/kind-config.yaml" --wait 180s
        record created_cluster
    fi
    kubectl config use-context "kind-$CLUSTER" >/dev/null
}

install_kuberay() {
    if helm status kuberay-operator -n "$KUBERAY_NAMESPACE" >/dev/null 2>&1; then
        echo "KubeRay operator already installed; using it"
        return
    fi
    echo "Installing the KubeRay operator $KUBERAY_VERSION with Helm"
    helm repo add kuberay https://ray-project.github.io/kuberay-helm/ >/dev/null 2>&1 || true
    helm repo update kuberay >/dev/null
    helm install kuberay-operator kuberay/kuberay-operator --version "$KUBERAY_VERSION" \
        --namespace "$KUBERAY_NAMESPACE" --create-namespace --wait --timeout 5m
    record installed_kuberay
}

build_image() {
    echo "Building $IMAGE and loading it into Kind"
    local commit
    commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
    # No provenance attestation: its manifest is left out of `docker save`, which breaks
    # `kind load` with Docker's containerd image store (kubernetes-sigs/kind#3795).
    docker build --provenance=false -t "$IMAGE" \
        --build-arg VERSION="$VERSION" \
        --build-arg GIT_COMMIT="$commit" \
        --build-arg BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$ROOT"
    record built_image
    record "image $IMAGE"
    load_image
}

# kind load docker-image fails with "content digest ... not found" under Docker's containerd
# image store (kind#3795); a single-platform archive loads there too.
load_image() {
    if kind load docker-image "$IMAGE" --name "$CLUSTER"; then
        return
    fi
    echo "kind load docker-image failed; retrying with a single-platform archive (kind#3795)" >&2
    local archive platform
    archive=$(mktemp "${TMPDIR:-/tmp}/ttg-image.XXXXXX")
    platform=$(docker version --format '{{.Server.Os}}/{{.Server.Arch}}' 2>/dev/null || echo linux/amd64)
    if ! docker image save --platform "$platform" -o "$archive" "$IMAGE" \
        || ! kind load image-archive "$archive" --name "$CLUSTER"; then
        rm -f "$archive"
        die "cannot load $IMAGE into Kind; turn off Docker's containerd image store (Docker Desktop: Settings > General > 'Use containerd for pulling and storing images'; Docker Engine: \"features\": {\"containerd-snapshotter\": false} in /etc/docker/daemon.json) and re-run"
    fi
    rm -f "$archive"
}

# The checked-in manifests name ttg-ray:VERSION; apply them with this build's tag instead.
apply_with_image() {
    sed "s#image: $BASE_IMAGE\$#image: $IMAGE#" "$1" | kubectl apply -n "$NAMESPACE" -f -
}

random_hex() {
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}

# Creates a Secret with random values once; an existing one is kept, never rotated here.
ensure_secret() {
    local name=$1
    shift
    if kubectl get secret "$name" -n "$NAMESPACE" >/dev/null 2>&1; then
        return
    fi
    local args=()
    for pair in "$@"; do
        args+=("--from-literal=$pair")
    done
    kubectl create secret generic "$name" -n "$NAMESPACE" "${args[@]}" >/dev/null
    kubectl label secret "$name" -n "$NAMESPACE" app.kubernetes.io/part-of=ttg-ray >/dev/null
    echo "Created Secret $name"
}

apply_ray() {
    ensure_secret ttg-ray-auth "auth_token=$(random_hex)$(random_hex)"
    # upgradeStrategy Recreate: a new image tag replaces the head and the workers.
    apply_with_image "$HERE/raycluster.yaml"
    echo "Waiting for the RayCluster (conditions RayClusterProvisioned, HeadPodReady)"
    kubectl wait -n "$NAMESPACE" raycluster/ttg-ray --for=condition=RayClusterProvisioned \
        --timeout="$WAIT_TIMEOUT"
    kubectl wait -n "$NAMESPACE" raycluster/ttg-ray --for=condition=HeadPodReady \
        --timeout="$WAIT_TIMEOUT"
}

apply_queues() {
    # Admin passwords for the brokers, the least-privilege worker users' passwords, and
    # the key that signs task and result messages (an existing Secret is kept as it is).
    ensure_secret ttg-redis-auth "password=$(random_hex)" "worker_password=$(random_hex)"
    ensure_secret ttg-rabbitmq-auth "username=ttg" "password=$(random_hex)" \
        "worker_password=$(random_hex)"
    ensure_secret ttg-signing-key "signing_key=k1:$(random_hex)$(random_hex)"
    kubectl apply -n "$NAMESPACE" -f "$HERE/redis.yaml" -f "$HERE/rabbitmq.yaml"
    kubectl rollout status -n "$NAMESPACE" deploy/ttg-redis --timeout="$WAIT_TIMEOUT"
    kubectl rollout status -n "$NAMESPACE" deploy/ttg-rabbitmq --timeout="$WAIT_TIMEOUT"
    apply_with_image "$HERE/queue-workers.yaml"
    kubectl rollout status -n "$NAMESPACE" deploy/ttg-worker-redis --timeout="$WAIT_TIMEOUT"
    kubectl rollout status -n "$NAMESPACE" deploy/ttg-worker-rabbitmq --timeout="$WAIT_TIMEOUT"
}

print_next_steps() {
    cat <<MSG

Ray cluster ttg-ray is ready. Dashboard and job API:
  kubectl port-forward -n $NAMESPACE svc/ttg-ray-head-svc 8265:8265
  open http://127.0.0.1:8265 (it asks for the token below)
Ray 2.60 token authentication is on; clients need the token:
  export RAY_AUTH_MODE=token
  export RAY_AUTH_TOKEN=\$(kubectl get secret ttg-ray-auth -n $NAMESPACE -o jsonpath='{.data.auth_token}' | base64 -d)
Run a sweep on it (image $IMAGE):
  python -m ttg_ray.kube submit --address http://127.0.0.1:8265 -- --params 100000 --spread
Remove what this script created:  kuberay/down.sh   (preview: kuberay/down.sh --dry-run)
MSG
}

check_prerequisites
create_cluster
install_kuberay
build_image
apply_ray
if [ "$WITH_QUEUES" = 1 ]; then
    apply_queues
    record applied_queues
fi
record applied_ray
print_next_steps
