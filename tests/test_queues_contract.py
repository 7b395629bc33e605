"""One contract, every adapter: the in-memory reference, Redis Streams and RabbitMQ."""

from __future__ import annotations

import time
import uuid

import pytest
from conftest import missing_service

from ttg_ray.core.messages import decode_task
from ttg_ray.errors import BackendUnavailable, BadMessage
from ttg_ray.queues import QueueAdapter, open_adapter
from ttg_ray.queues.base import Quarantine

pytestmark = pytest.mark.timeout(60)

BROKERS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.integration),
    pytest.param("rabbitmq", id="rabbitmq", marks=pytest.mark.integration),
]


@pytest.fixture(params=BROKERS)
def connect(request, run_id):
    """A factory of adapters on one namespace of this test's own, purged afterwards."""
    name = request.param
    if name == "redis":
        url = request.getfixturevalue("redis_url")
    elif name == "rabbitmq":
        url = request.getfixturevalue("amqp_url")
    else:
        url = f"memory://{uuid.uuid4().hex}"
    opened: list[QueueAdapter] = []

    def factory(**kwargs) -> QueueAdapter:
        kwargs.setdefault("visibility_timeout_s", 0.3)
        adapter = open_adapter(name, url, run_id, **kwargs)
        adapter.declare(run_id)
        opened.append(adapter)
        return adapter

    yield factory
    cleaner = open_adapter(name, url, run_id)
    cleaner.purge(run_id)
    cleaner.close()
    for adapter in opened:
        adapter.close()


def take(adapter: QueueAdapter, consumer: str, n: int = 1, timeout_s: float = 20.0):
    """Consume until ``n`` deliveries arrived (the test timeout guards the wait)."""
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got += adapter.consume(consumer, timeout_s=0.2)
    return got


def test_publish_consume_ack(connect):
    q = connect()
    bodies = [b"one", b"two", b"three"]
    for body in bodies:
        q.publish(body)
    got = []
    for _ in bodies:  # a consumer holds one unacked message at a time (prefetch 1)
        (d,) = take(q, "c1")
        q.ack(d)
        got.append(d)
    assert sorted(d.body for d in got) == sorted(bodies)
    assert all(d.deliveries == 1 for d in got)
    assert q.consume("c1", timeout_s=0.3) == []
    assert q.depth().waiting == 0


def test_redelivery_after_consumer_dies(connect):
    publisher, dying, survivor = connect(), connect(), connect()
    publisher.publish(b"chunk")
    first = take(dying, "dying")
    assert [d.body for d in first] == [b"chunk"]
    dying.close()  # dies without acking
    again = take(survivor, "survivor")
    assert [d.body for d in again] == [b"chunk"]
    assert again[0].deliveries == 2
    survivor.ack(again[0])
    assert survivor.consume("survivor", timeout_s=0.5) == []


def test_retry_with_delay(connect):
    q = connect()
    q.publish(b"later")
    (d,) = take(q, "c1")
    q.nack(d, delay_s=1.5)
    assert q.consume("c1", timeout_s=0.2) == []  # not before its delay
    (again,) = take(q, "c1")
    assert again.body == b"later"
    assert again.deliveries == 1  # a retry is a fresh message, not a crash
    q.ack(again)


def test_quarantine_after_too_many_deliveries(connect):
    quarantine = Quarantine(max_deliveries=2)
    publisher = connect()
    publisher.publish(b"poison")
    seen, reasons = [], []
    for attempt in range(1, 4):
        consumer = connect()
        (d,) = take(consumer, f"victim{attempt}")
        seen.append(d.deliveries)
        reasons.append(quarantine.reason(d))
        if reasons[-1]:
            consumer.dead_letter(d, reasons[-1])
            break
        consumer.close()  # the chunk killed its worker
    assert seen == [1, 2, 3]
    assert reasons == [
        "",
        "",
        "delivered 3 times and never acknowledged: its worker died each time (limit 2)",
    ]
    letters = publisher.dead_letters()
    assert [body for body, _ in letters] == [b"poison"]
    assert "delivered 3 times" in letters[0][1]
    assert connect().consume("after", timeout_s=1.0) == []


def test_a_quarantined_chunk_whose_consumer_dies_is_quarantined_again(connect):
    """Pins f6eea68: consume() must not dead-letter a quarantined chunk itself. Its
    consumer reports it first; one that dies before dead-lettering it leaves it to be
    quarantined again, never lost in the dead-letter queue with no result sent."""
    quarantine = Quarantine(max_deliveries=1)
    publisher = connect()
    publisher.publish(b"poison")
    first = connect()
    (d,) = take(first, "victim1")
    assert quarantine.reason(d) == ""
    first.close()  # the chunk killed its worker
    second = connect()
    (d,) = take(second, "victim2")
    assert "delivered 2 times" in quarantine.reason(d)
    assert publisher.dead_letters() == []
    second.close()  # dies between consume() and dead_letter()
    third = connect()
    (d,) = take(third, "victim3")
    assert d.body == b"poison" and "delivered 3 times" in quarantine.reason(d)
    third.dead_letter(d, quarantine.reason(d))
    assert [body for body, _ in publisher.dead_letters()] == [b"poison"]
    assert third.consume("after", timeout_s=0.5) == []


def test_malformed_message_goes_to_dead_letters(connect):
    q = connect()
    q.publish(b"{not json")
    (d,) = take(q, "c1")
    with pytest.raises(BadMessage) as err:
        decode_task(d.body)
    q.dead_letter(d, str(err.value))
    assert q.dead_letters() == [(b"{not json", str(err.value))]
    assert "not valid JSON" in q.dead_letters()[0][1]
    assert q.consume("c1", timeout_s=0.3) == []
    assert q.depth().dead_letters == 1


def test_purge_removes_everything(connect, run_id):
    q = connect()
    for i in range(5):
        q.publish(b"x%d" % i)
    q.publish_result(run_id, b"r")
    q.purge(run_id)
    q.declare(run_id)
    stats = q.depth(run_id)
    assert (stats.waiting, stats.results_waiting, stats.dead_letters) == (0, 0, 0)
    assert q.consume("c1", timeout_s=0.3) == []


def test_results_round_trip(connect, run_id):
    worker, driver = connect(), connect()
    for i in range(3):
        worker.publish_result(run_id, b"result %d" % i)
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    while len(got) < 3 and time.monotonic() < deadline:
        got += driver.consume_results(run_id, timeout_s=0.2)
    assert got == [b"result 0", b"result 1", b"result 2"]
    assert driver.consume_results(run_id, timeout_s=0.2) == []


def test_long_consumer_keeps_its_claim(connect):
    publisher, busy, other = connect(), connect(), connect()
    publisher.publish(b"long")
    (d,) = take(busy, "busy")
    for _ in range(6):  # twice the visibility timeout, touching all the while
        time.sleep(0.1)
        busy.touch([d])
        assert other.consume("other", timeout_s=0.0) == []
    busy.ack(d)


@pytest.mark.parametrize(
    "name,url,needle",
    [
        ("redis", "redis://:secret@127.0.0.1:1/0", "cannot reach Redis"),
        ("rabbitmq", "amqp://guest:secret@127.0.0.1:1/%2F", "cannot reach RabbitMQ"),
    ],
)
def test_unreachable_broker_is_backend_unavailable(name, url, needle):
    with pytest.raises(BackendUnavailable) as err:
        open_adapter(name, url, "x", connect_timeout_s=2)
    assert needle in str(err.value)
    assert "secret" not in str(err.value) and "***" in str(err.value)


@pytest.mark.integration
def test_wrong_rabbitmq_credentials(amqp_url):
    bad = amqp_url.replace("guest:guest", "guest:wrong-password")
    with pytest.raises(BackendUnavailable) as err:
        open_adapter("rabbitmq", bad, "x", connect_timeout_s=3)
    assert "credentials" in str(err.value)
    assert "wrong-password" not in str(err.value)


def test_note_running_is_seen_by_another_connection_until_cleared(connect):
    worker, monitor = connect(), connect()
    worker.note_running("w1", b'{"v": 1, "running": {"chunk_id": "c1"}}')
    seen = monitor.running()
    if worker.name == "rabbitmq":  # no place for it on the broker: documented, kept empty
        assert seen == []
        return
    assert seen == [b'{"v": 1, "running": {"chunk_id": "c1"}}']
    worker.note_running("w1", None)
    assert monitor.running() == []


@pytest.mark.integration
def test_wrong_redis_password(tmp_path):
    """A Redis of the test's own that wants a password: a wrong one is refused with a
    message that names the flag and hides the password."""
    import socket
    import subprocess

    from tests.support.brokers import free_port
    from tests.support.tools import find_tool

    if find_tool("redis-server") is None:
        missing_service("the redis-server binary")
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd += ["--appendonly", "no", "--dir", str(tmp_path), "--requirepass", "right-one"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        with pytest.raises(BackendUnavailable) as err:
            open_adapter("redis", f"redis://:not-it@127.0.0.1:{port}/0", "x").depth()
        assert "rejected the credentials" in str(err.value)
        assert "--redis-url / TTG_REDIS_URL" in str(err.value)
        assert "not-it" not in str(err.value)
        good = open_adapter("redis", f"redis://:right-one@127.0.0.1:{port}/0", "x")
        assert good.depth().waiting == 0
        good.close()
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.integration
def test_a_rabbitmq_vhost_that_is_refused(amqp_url):
    bad = amqp_url.rsplit("/", 1)[0] + "/ttg-no-such-vhost"
    with pytest.raises(BackendUnavailable) as err:
        open_adapter("rabbitmq", bad, "x", connect_timeout_s=3)
    assert "refused access to the vhost" in str(err.value)
    assert "credentials" not in str(err.value)


@pytest.mark.integration
def test_a_result_for_a_finished_run_is_dropped_with_a_warning(amqp_url, run_id, caplog):
    # The run's result queue is gone (its driver finished): the publish is unroutable.
    late = open_adapter("rabbitmq", amqp_url, run_id)
    try:
        late.publish_result(f"{run_id}-gone", b"late result")
        assert (
            f"run {run_id}-gone has no result queue any more (finished?); result dropped"
            in caplog.messages
        )
        late.publish_result(f"{run_id}-gone", b"again")  # the channel still works
        assert late.depth().waiting == 0
    finally:
        late.close()
