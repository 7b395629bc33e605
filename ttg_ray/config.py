"""Settings read from the environment: the only module that reads os.environ."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ttg_ray.errors import UsageError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def mask_url(url: str) -> str:
    """The URL with its password replaced by '***', safe to log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True)
class RayConfig:
    """Where the Ray backend connects: explicit address, else RAY_ADDRESS, else local."""

    address: str | None = None

    @classmethod
    def from_env(cls, address: str | None = None) -> RayConfig:
        return cls(address=address or os.environ.get("RAY_ADDRESS") or None)


@dataclass(frozen=True)
class BrokerConfig:
    """Broker URLs: explicit, else TTG_REDIS_URL / TTG_AMQP_URL, else localhost."""

    redis_url: str = DEFAULT_REDIS_URL
    amqp_url: str = DEFAULT_AMQP_URL

    @classmethod
    def from_env(cls, redis_url: str | None = None, amqp_url: str | None = None) -> BrokerConfig:
        return cls(
            redis_url=redis_url or os.environ.get("TTG_REDIS_URL") or DEFAULT_REDIS_URL,
            amqp_url=amqp_url or os.environ.get("TTG_AMQP_URL") or DEFAULT_AMQP_URL,
        )

    def url_for(self, backend: str) -> str:
        """The URL of the broker that ``backend`` ('redis' or 'rabbitmq') uses."""
        return self.redis_url if backend == "redis" else self.amqp_url


@dataclass(frozen=True)
class SigningConfig:
    """The shared message-signing keys: TTG_SIGNING_KEY, else the file named by
    TTG_SIGNING_KEY_FILE (a mounted Kubernetes Secret), else none (signing off).
    Parsed by ttg_ray.core.signing.Keyring.parse; never logged or shown."""

    text: str = field(default="", repr=False)
    source: str = "TTG_SIGNING_KEY"

    @classmethod
    def from_env(cls) -> SigningConfig:
        if os.environ.get("TTG_SIGNING_KEY"):
            return cls(os.environ["TTG_SIGNING_KEY"], "TTG_SIGNING_KEY")
        path = os.environ.get("TTG_SIGNING_KEY_FILE")
        if not path:
            return cls()
        try:
            return cls(Path(path).read_text(), f"TTG_SIGNING_KEY_FILE ({path})")
        except OSError as err:
            raise UsageError(
                f"cannot read the signing key file {path} ({err.strerror}); fix "
                "TTG_SIGNING_KEY_FILE or mount the Secret there"
            ) from err


@dataclass(frozen=True)
class TlsFiles:
    """CA, client certificate and key for rediss:// and amqps:// URLs that do not name
    their own: TTG_TLS_CA_FILE, TTG_TLS_CERT_FILE, TTG_TLS_KEY_FILE (PEM paths)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_env(cls) -> TlsFiles:
        return cls(
            ca_file=os.environ.get("TTG_TLS_CA_FILE") or None,
            cert_file=os.environ.get("TTG_TLS_CERT_FILE") or None,
            key_file=os.environ.get("TTG_TLS_KEY_FILE") or None,
        )


@dataclass(frozen=True)
class WorkerContext:
    """Who is logging: worker id, host, and the pod and node when on Kubernetes."""

    worker_id: str
    hostname: str
    pod_name: str | None
    node_name: str | None

    @classmethod
    def from_env(cls, worker_id: str | None = None) -> WorkerContext:
        hostname = socket.gethostname()
        return cls(
            worker_id=worker_id or os.environ.get("TTG_WORKER_ID") or f"{hostname}-{os.getpid()}",
            hostname=hostname,
            pod_name=os.environ.get("POD_NAME") or None,
            node_name=os.environ.get("NODE_NAME") or None,
        )


def child_env(**overrides: str) -> dict[str, str]:
    """This process's environment with ``overrides``, for the processes it starts."""
    return {**os.environ, **overrides}
