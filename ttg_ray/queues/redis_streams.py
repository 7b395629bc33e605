"""Redis Streams adapter (the only module that imports redis).

Tasks live in a stream with the consumer group ``ttg-workers``; an acked entry is also
deleted, so the stream holds only work not yet done. A consumer that dies leaves its
entries pending; once idle past the visibility timeout another consumer takes them
over with XAUTOCLAIM, and the pending list's delivery count decides quarantine. A busy
consumer resets the idle time of its entries (``touch``), so the timeout can be seconds.
Delayed retries wait in a sorted set until due. Results go to ``ttg:results:{run_id}``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ttg_ray.config import TlsFiles, mask_url
from ttg_ray.errors import BackendUnavailable, UsageError
from ttg_ray.queues.base import Delivery, QueueAdapter, QueueStats

GROUP = "ttg-workers"
DLQ_MAXLEN = 10_000
KEY_TTL_S = 86_400  # results nobody collects, and a killed run's keys, expire
_MAX_BLOCK_S = 2.0
RUNNING_FRESH_S = 10.0

# Move due delayed retries back into the task stream, atomically.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local body = string.sub(member, string.find(member, '\\n', 1, true) + 1)
  redis.call('XADD', KEYS[2], '*', 'body', body)
end
return #due
"""


class RedisStreamsAdapter(QueueAdapter):
    name = "redis"

    def __init__(self, url: str, namespace: str | None = None, **kwargs):
        super().__init__(url, namespace, **kwargs)
        suffix = f":{namespace}" if namespace else ""
        self.tasks_key = f"ttg:tasks{suffix}"
        self.retry_key = f"ttg:retry{suffix}"
        self.dlq_key = f"ttg:dlq{suffix}"
        self.acked_key = f"ttg:acked{suffix}"
        self.running_key = f"ttg:running{suffix}"
        self._last_reclaim = 0.0
        self._last_promote = 0.0
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise UsageError(
                f"{mask_url(url)} is not a Redis URL; use redis://[:password@]host:port/db "
                "(or rediss:// for TLS) in --redis-url / TTG_REDIS_URL"
            )
        with self._guard():
            self._redis = redis.Redis.from_url(
                url,
                socket_connect_timeout=self.connect_timeout_s,
                socket_timeout=_MAX_BLOCK_S + self.connect_timeout_s,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
                **_tls_kwargs(url),
            )
            self._redis.ping()
            self._promote = self._redis.register_script(_PROMOTE)
        self._group_ready = False
        self._known_consumers: set[str] = set()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Translate redis-py errors into BackendUnavailable with what to do next."""
        try:
            yield
        except redis.AuthenticationError as err:
            raise self._credentials_refused(err) from err
        except (redis.ConnectionError, redis.TimeoutError) as err:
            if "CERTIFICATE" in str(err).upper():
                raise BackendUnavailable(
                    f"TLS to Redis at {mask_url(self.url)} failed: {err}; give the CA that "
                    "signed its certificate (ssl_ca_certs= in the URL or TTG_TLS_CA_FILE)"
                ) from err
            raise BackendUnavailable(
                f"cannot reach Redis at {mask_url(self.url)}: {err}; "
                "start redis-server or pass --redis-url / TTG_REDIS_URL"
            ) from err
        except redis.exceptions.NoPermissionError as err:
            raise BackendUnavailable(
                f"the Redis user of {mask_url(self.url)} lacks a right ({err}); grant it the "
                "ACL rules in the README's Security section"
            ) from err
        except redis.ResponseError as err:
            if any(word in str(err) for word in ("NOAUTH", "WRONGPASS", "AUTH")):
                raise self._credentials_refused(err) from err
            raise

    def _credentials_refused(self, err: Exception) -> BackendUnavailable:
        return BackendUnavailable(
            f"Redis at {mask_url(self.url)} rejected the credentials ({err}); "
            "check the password in --redis-url / TTG_REDIS_URL"
        )

    def _forget_group(self, err: redis.ResponseError) -> None:
        """After NOGROUP (the stream was purged), recreate the group on next use; any
        other error is raised."""
        if "NOGROUP" not in str(err):
            raise err
        self._group_ready = False
        self._known_consumers.clear()

    def results_key(self, run_id: str) -> str:
        return f"ttg:results:{run_id}"

    def declare(self, run_id: str | None = None) -> None:
        with self._guard():
            self._ensure_group()

    def _ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self.tasks_key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
        self._group_ready = True

    def publish(self, body: bytes) -> None:
        with self._guard():
            pipe = self._redis.pipeline(transaction=False)
            pipe.xadd(self.tasks_key, {"body": body})
            self._expire(pipe, self.tasks_key)
            pipe.execute()

    def _expire(self, pipe, key: str) -> None:
        # A run's own keys vanish a day after their last write, even if the driver
        # that should delete them was killed.
        if self.namespace:
            pipe.expire(key, KEY_TTL_S)

    def consume(self, consumer: str, timeout_s: float, count: int = 1) -> list[Delivery]:
        return self._reclaim(consumer, count) or self._fetch(consumer, timeout_s, count)

    def _fetch(self, consumer: str, timeout_s: float, count: int) -> list[Delivery]:
        with self._guard():
            if not self._group_ready:
                self._ensure_group()
            if consumer not in self._known_consumers:
                # a blocked XREADGROUP that gets nothing does not register its consumer
                self._redis.xgroup_createconsumer(self.tasks_key, GROUP, consumer)
                self._known_consumers.add(consumer)
            self._promote_due()
            block_ms = max(1, int(min(timeout_s, _MAX_BLOCK_S) * 1000))
            try:
                reply = self._redis.xreadgroup(
                    GROUP, consumer, {self.tasks_key: ">"}, count=count, block=block_ms
                )
            except redis.ResponseError as err:
                self._forget_group(err)
                return []
        return [
            Delivery(id=entry_id, body=fields.get(b"body", b""), consumer=consumer)
            for _, entries in reply or ()
            for entry_id, fields in entries
        ]

    def _promote_due(self) -> None:
        now = time.time()
        if now - self._last_promote >= 0.2:
            self._last_promote = now
            self._promote(keys=[self.retry_key, self.tasks_key], args=[now])

    def ack(self, delivery: Delivery) -> None:
        with self._guard():
            pipe = self._redis.pipeline(transaction=True)
            pipe.xack(self.tasks_key, GROUP, delivery.id)
            pipe.xdel(self.tasks_key, delivery.id)
            pipe.incr(self.acked_key)
            self._expire(pipe, self.acked_key)
            pipe.execute()

    def nack(self, delivery: Delivery, delay_s: float = 0.0) -> None:
        member = str(delivery.id if isinstance(delivery.id, str) else delivery.id.decode())
        with self._guard():
            pipe = self._redis.pipeline(transaction=True)
            pipe.zadd(
                self.retry_key, {member.encode() + b"\n" + delivery.body: time.time() + delay_s}
            )
            pipe.xack(self.tasks_key, GROUP, delivery.id)
            pipe.xdel(self.tasks_key, delivery.id)
            pipe.execute()
        self._last_promote = 0.0

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._guard():
            pipe = self._redis.pipeline(transaction=True)
            pipe.xadd(
                self.dlq_key,
                {"body": delivery.body, "reason": reason, "deliveries": delivery.deliveries},
                maxlen=DLQ_MAXLEN,
            )
            self._expire(pipe, self.dlq_key)
            pipe.xack(self.tasks_key, GROUP, delivery.id)
            pipe.xdel(self.tasks_key, delivery.id)
            pipe.execute()

    def _reclaim(self, consumer: str, count: int) -> list[Delivery]:
        # XAUTOCLAIM scans the pending list; a few times per visibility timeout is plenty
        now = time.monotonic()
        if now - self._last_reclaim < min(1.0, self.visibility_timeout_s / 3):
            return []
        self._last_reclaim = now
        with self._guard():
            try:
                reply = self._redis.xautoclaim(
                    self.tasks_key,
                    GROUP,
                    consumer,
                    min_idle_time=int(self.visibility_timeout_s * 1000),
                    count=count,
                )
            except redis.ResponseError as err:
                self._forget_group(err)
                return []
            claimed, deleted = reply[1], reply[2] if len(reply) > 2 else []
            if deleted:
                self._redis.xack(self.tasks_key, GROUP, *deleted)
            claimed = [(i, f) for i, f in claimed if f]
            if not claimed:
                return []
            pipe = self._redis.pipeline(transaction=False)
            for entry_id, _ in claimed:
                pipe.xpending_range(self.tasks_key, GROUP, entry_id, entry_id, 1)
            counts = pipe.execute()
        return [
            Delivery(
                id=entry_id,
                body=fields.get(b"body", b""),
                deliveries=info[0]["times_delivered"] if info else 2,
                consumer=consumer,
            )
            for (entry_id, fields), info in zip(claimed, counts)
        ]

    def touch(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        with self._guard():
            self._redis.xclaim(
                self.tasks_key,
                GROUP,
                deliveries[0].consumer,
                min_idle_time=0,
                message_ids=[d.id for d in deliveries],
                justid=True,
            )

    def note_running(self, consumer: str, beat: bytes | None) -> None:
        with self._guard():
            if beat is None:
                self._redis.hdel(self.running_key, consumer)
                return
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(self.running_key, consumer, f"{time.time()}\n".encode() + beat)
            pipe.expire(self.running_key, KEY_TTL_S)
            pipe.execute()

    def running(self) -> list[bytes]:
        with self._guard():
            entries = self._redis.hgetall(self.running_key)
        fresh_after = time.time() - RUNNING_FRESH_S  # a killed worker's last beat fades
        out = []
        for raw in entries.values():
            stamp, _, beat = raw.partition(b"\n")
            if float(stamp) > fresh_after:
                out.append(beat)
        return out

    def dead_letters(self, limit: int = 100) -> list[tuple[bytes, str]]:
        with self._guard():
            entries = self._redis.xrange(self.dlq_key, count=limit)
        return [(f.get(b"body", b""), f.get(b"reason", b"").decode()) for _, f in entries]

    def publish_result(self, run_id: str, body: bytes) -> None:
        key = self.results_key(run_id)
        with self._guard():
            pipe = self._redis.pipeline(transaction=False)
            pipe.xadd(key, {"body": body})
            pipe.expire(key, KEY_TTL_S)
            pipe.execute()

    def consume_results(self, run_id: str, timeout_s: float, count: int = 100) -> list[bytes]:
        key = self.results_key(run_id)
        block_ms = max(1, int(min(timeout_s, _MAX_BLOCK_S) * 1000))
        with self._guard():
            # Read entries are deleted, so reading from 0 is correct after any restart.
            reply = self._redis.xread({key: "0-0"}, count=count, block=block_ms)
            entries = [e for _, batch in reply or () for e in batch]
            if entries:
                self._redis.xdel(key, *[entry_id for entry_id, _ in entries])
        return [fields.get(b"body", b"") for _, fields in entries]

    def depth(self, run_id: str | None = None) -> QueueStats:
        with self._guard():
            pipe = self._redis.pipeline(transaction=False)
            pipe.xlen(self.tasks_key)
            pipe.zcard(self.retry_key)
            pipe.xlen(self.dlq_key)
            pipe.get(self.acked_key)
            pipe.xlen(self.results_key(run_id)) if run_id else pipe.echo("0")
            length, retrying, dlq, acked, results = pipe.execute()
            try:
                consumers = self._redis.xinfo_consumers(self.tasks_key, GROUP)
            except redis.ResponseError:
                consumers = []
        # Killed workers stay in the group; count only those seen recently.
        alive_ms = max(10.0, 3 * self.visibility_timeout_s) * 1000
        by_consumer = {
            _text(c["name"]): c["pending"]
            for c in consumers
            if c["pending"] or c["idle"] < alive_ms
        }
        in_flight = sum(c["pending"] for c in consumers)
        return QueueStats(
            waiting=max(0, length - in_flight),
            in_flight=in_flight,
            in_flight_by_consumer=by_consumer,
            retrying=retrying,
            dead_letters=dlq,
            consumers=sum(1 for c in consumers if c["idle"] < alive_ms),
            results_waiting=int(results),
            acked=int(acked or 0),
        )

    def purge(self, run_id: str | None = None, *, queues: bool = True) -> None:
        keys = [self.tasks_key, self.retry_key, self.dlq_key, self.acked_key, self.running_key]
        keys = keys if queues else []
        if run_id:
            keys.append(self.results_key(run_id))
        if not keys:
            return
        with self._guard():
            self._redis.delete(*keys)
        self._group_ready = False

    def close(self) -> None:
        self._redis.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _tls_kwargs(url: str) -> dict[str, str]:
    """TTG_TLS_* files for a rediss:// URL; ssl_* parameters in the URL win over them."""
    if not url.startswith("rediss://"):
        return {}
    tls = TlsFiles.from_env()
    files = {"ssl_ca_certs": tls.ca_file, "ssl_certfile": tls.cert_file}
    files["ssl_keyfile"] = tls.key_file
    return {name: path for name, path in files.items() if path}
