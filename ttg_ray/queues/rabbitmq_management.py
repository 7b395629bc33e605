"""RabbitMQ's management HTTP API, for what AMQP cannot tell: unacked (in-flight) messages
per queue and per consumer, and the broker's own ack count.

The API is found from the AMQP URL (same host, user, password and vhost; port 15672, or
15671 with TLS). Its figures are the broker's statistics, refreshed every 5 s by default
(``collect_statistics_interval``), so they lag the queue by up to that much.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ttg_ray.config import mask_url
from ttg_ray.errors import BackendUnavailable

HTTP_PORT = 15672
HTTPS_PORT = 15671


class ManagementUnavailable(BackendUnavailable):
    """The management API cannot be reached (plugin off, port closed, no permission)."""


@dataclass(frozen=True)
class QueueInfo:
    """One queue as the management API reports it."""

    ready: int
    unacked: int
    consumers: int
    acked: int | None  # acks since the queue was declared; None before any activity
    channel_of_consumer: dict[str, str]  # consumer tag -> channel name


@dataclass(frozen=True)
class ManagementAPI:
    """A read-only client of the management API of one vhost."""

    base_url: str  # http://host:15672/api
    user: str
    password: str
    vhost: str
    timeout_s: float = 2.0

    @classmethod
    def from_amqp_url(cls, amqp_url: str, port: int | None = None) -> ManagementAPI:
        parts = urlsplit(amqp_url)
        tls = parts.scheme == "amqps"
        port = port or (HTTPS_PORT if tls else HTTP_PORT)
        host = parts.hostname or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"  # an IPv6 literal
        # AMQP's default vhost is "/", written %2F in URLs; an empty path means it too.
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(
            base_url=f"{'https' if tls else 'http'}://{host}:{port}/api",
            user=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            vhost=vhost,
        )

    def _get(self, path: str) -> Any:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            self.base_url + path, headers={"Authorization": f"Basic {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise ManagementUnavailable(
                f"RabbitMQ management API at {mask_url(self.base_url)} answered {err.code} "
                f"{err.reason}; the user needs the 'monitoring' tag"
            ) from err
        except (OSError, ValueError) as err:  # URLError and timeouts are OSErrors
            raise ManagementUnavailable(
                f"cannot reach the RabbitMQ management API at {mask_url(self.base_url)}: "
                f"{err}; enable it with `rabbitmq-plugins enable rabbitmq_management`"
            ) from err

    def queue(self, name: str) -> QueueInfo | None:
        """The queue's counts, or None when there is no such queue."""
        data = self._get(f"/queues/{quote(self.vhost, safe='')}/{quote(name, safe='')}")
        if data is None:
            return None
        stats = data.get("message_stats") or {}
        return QueueInfo(
            ready=int(data.get("messages_ready") or 0),
            unacked=int(data.get("messages_unacknowledged") or 0),
            consumers=int(data.get("consumers") or 0),
            acked=int(stats["ack"]) if "ack" in stats else None,
            channel_of_consumer={
                c["consumer_tag"]: c["channel_details"]["name"]
                for c in data.get("consumer_details") or []
                if c.get("channel_details")
            },
        )

    def unacked_by_channel(self) -> dict[str, int]:
        """Unacked messages held by each open channel of the vhost."""
        path = f"/vhosts/{quote(self.vhost, safe='')}/channels?columns=name,messages_unacknowledged"
        channels = self._get(path) or []
        return {c["name"]: int(c.get("messages_unacknowledged") or 0) for c in channels}


def in_flight_by_consumer(info: QueueInfo, unacked: dict[str, int]) -> dict[str, int]:
    """Unacked messages per consumer of the queue. A channel's count covers every queue it
    consumes; a task consumer's channel consumes only the task queue, so it is that
    consumer's in-flight count."""
    return {tag: unacked.get(channel, 0) for tag, channel in info.channel_of_consumer.items()}
