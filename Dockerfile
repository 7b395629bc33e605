# syntax=docker/dockerfile:1
# One image for the Ray head, the Ray workers, the RayJob submitter and the queue workers.
# Build: docker build --build-arg VERSION=0.1.0 --build-arg GIT_COMMIT=$(git rev-parse HEAD) \
#          -t ttg-ray:0.1.0 .    (kuberay/up.sh does this and loads it into Kind)
# Ray must equal the pin everywhere. With the job API (`kube submit`, RayJob) the sweep's
# driver runs inside this image, so the client's Python need not match; only a Ray Client
# (ray://) driver outside the cluster must match Python's minor version too. 3.11 keeps
# the image on the development interpreter all the same.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS builder
# Same as the pin in pyproject.toml (ray[default]>=2.60,<2.61) and rayVersion in kuberay/.
ARG RAY_VERSION=2.60.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, so editing the package does not reinstall Ray.
RUN pip install --no-cache-dir "ray[default]==${RAY_VERSION}" "redis>=5.0,<9" "pika>=1.3,<2"
COPY pyproject.toml README* ./
COPY ttg_ray ./ttg_ray
RUN pip install --no-cache-dir . \
    && python -c "import ray, sys; assert ray.__version__ == '${RAY_VERSION}', ray.__version__"

FROM python:${PYTHON_VERSION}-slim-bookworm
ARG VERSION=0.1.0
ARG GIT_COMMIT=unknown
ARG BUILD_DATE=unknown
ARG RAY_VERSION=2.60.0
LABEL org.opencontainers.image.title="ttg-ray" \
      org.opencontainers.image.description="Parameter sweeps on Ray, Redis Streams or RabbitMQ" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="MIT" \
      io.ray.version="${RAY_VERSION}"
# UID/GID 1000: the manifests' runAsUser/fsGroup rely on it.
RUN groupadd --gid 1000 ttg \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/ttg --shell /bin/bash ttg
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/ttg \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /home/ttg
USER 1000:1000
CMD ["python", "-m", "ttg_ray.run", "--help"]
