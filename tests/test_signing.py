"""Message signing: the keyring (pure), and a worker that refuses every task it cannot
verify, with the reason, while it runs the signed ones and signs their results."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from ttg_ray.backends.queue_worker import QueueWorker, WorkerSettings
from ttg_ray.config import SigningConfig
from ttg_ray.core.chunks import Chunk
from ttg_ray.core.functions import FunctionRef
from ttg_ray.core.messages import decode_result, encode_task
from ttg_ray.core.params import ParamRange
from ttg_ray.core.signing import Keyring, SignatureError, key_id_of, keyring_from
from ttg_ray.errors import BadMessage, UsageError
from ttg_ray.queues import open_adapter
from ttg_ray.workloads import seed_placeholder

SECRET = "s3cret-" + "a" * 24
OTHER = "0th3r-" + "b" * 24
KEYS = Keyring.parse(f"k2:{SECRET}")
BODY = b'{"v":1,"x":2}'
PLACEHOLDER = FunctionRef.parse("ttg_ray.workloads:seed_placeholder", {"work_ms": 0})


def test_sealed_message_opens_to_the_same_bytes():
    sealed = KEYS.seal(BODY, "task")
    assert sealed.startswith(b"ttg-sig:v1:k2:") and sealed.endswith(b"\n" + BODY)
    assert KEYS.open(sealed, "task") == BODY
    assert KEYS.open(sealed.decode(), "task") == BODY


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (BODY, "task message is not signed"),
        (Keyring.parse(f"k2:{OTHER}").seal(BODY, "task"), "wrong signature for key id 'k2'"),
        (Keyring.parse(f"evil:{OTHER}").seal(BODY, "task"), "unknown key id 'evil'"),
        (KEYS.seal(BODY, "task") + b" ", "wrong signature"),
        (KEYS.seal(BODY, "result"), "wrong signature"),  # a result's signature is no task's
        (b"ttg-sig:v1:k2:zz\n" + BODY, "malformed signature header"),
        (b"ttg-sig:v1:k2:" + b"0" * 64, "malformed signature header"),
    ],
    ids=["unsigned", "wrong-secret", "unknown-key", "altered", "purpose", "bad-hex", "no-body"],
)
def test_what_does_not_verify_is_refused_with_its_reason(data, reason):
    with pytest.raises(SignatureError, match=reason) as info:
        KEYS.open(data, "task")
    assert isinstance(info.value, BadMessage)  # so workers dead-letter it
    assert SECRET not in str(info.value)


def test_rotation_the_first_key_signs_and_every_key_verifies():
    old = Keyring.parse(f"k1:{OTHER}")
    both = Keyring.parse(f"k2:{SECRET}, k1:{OTHER}")
    assert both.active == "k2"
    assert both.open(old.seal(BODY, "task"), "task") == BODY
    with pytest.raises(SignatureError, match="unknown key id 'k2'"):
        old.open(both.seal(BODY, "task"), "task")


def test_a_bare_key_gets_a_fingerprint_id_the_same_everywhere():
    ring = Keyring.parse(SECRET)
    assert ring.active == key_id_of(SECRET.encode()) and ring.active.startswith("k")
    assert Keyring.parse(f"\n{SECRET}\n").open(ring.seal(BODY, "result"), "result") == BODY


def test_signing_off_passes_unsigned_and_refuses_signed():
    off = Keyring.parse("")
    assert not off.enabled and off.seal(BODY, "task") == BODY
    assert off.open(BODY, "task") == BODY
    with pytest.raises(SignatureError, match="this process has no signing key"):
        off.open(KEYS.seal(BODY, "task"), "task")


@pytest.mark.parametrize(
    ("text", "secret"), [("tiny-key", "tiny-key"), ("bad!id:" + SECRET, SECRET)]
)
def test_bad_keys_are_usage_errors_that_never_echo_the_key(text, secret):
    with pytest.raises(UsageError) as info:
        Keyring.parse(text)
    assert secret not in str(info.value)


def test_keys_never_show_in_repr():
    assert SECRET not in repr(KEYS) and SECRET not in repr(SigningConfig(SECRET))


def test_key_from_the_environment_or_a_file(monkeypatch, tmp_path):
    monkeypatch.delenv("TTG_SIGNING_KEY", raising=False)
    monkeypatch.delenv("TTG_SIGNING_KEY_FILE", raising=False)
    assert not keyring_from(SigningConfig.from_env()).enabled
    key_file = tmp_path / "key"
    key_file.write_text(f"k9:{SECRET}\n")
    monkeypatch.setenv("TTG_SIGNING_KEY_FILE", str(key_file))
    assert keyring_from(SigningConfig.from_env()).active == "k9"
    monkeypatch.setenv("TTG_SIGNING_KEY", f"k8:{SECRET}")  # the variable wins
    assert keyring_from(SigningConfig.from_env()).active == "k8"
    monkeypatch.delenv("TTG_SIGNING_KEY")
    monkeypatch.setenv("TTG_SIGNING_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="cannot read the signing key file"):
        SigningConfig.from_env()


@pytest.mark.timeout(60)
def test_worker_dead_letters_forged_tasks_and_signs_its_results(monkeypatch, run_id):
    monkeypatch.setenv("TTG_SIGNING_KEY", f"k2:{SECRET}")
    url = f"memory://{uuid.uuid4().hex}"
    driver = open_adapter("memory", url, run_id)
    driver.declare(run_id)
    forged = FunctionRef.parse("ttg_ray.workloads:faulty", {"fail_params": list(range(10))})
    evil = encode_task(Chunk(run_id, "forged", 0, 10), ParamRange(10), forged)
    driver.publish(evil)
    driver.publish(Keyring.parse(f"k2:{OTHER}").seal(evil, "task"))
    driver.publish(Keyring.parse(f"old:{OTHER}").seal(evil, "task"))
    good = encode_task(Chunk(run_id, "good", 0, 10), ParamRange(10), PLACEHOLDER)
    driver.publish(KEYS.seal(good, "task"))
    worker = QueueWorker(WorkerSettings(backend="memory", url=url, namespace=run_id))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    bodies: list[bytes] = []
    deadline = time.monotonic() + 20
    while not bodies and time.monotonic() < deadline:
        bodies += driver.consume_results(run_id, timeout_s=0.2)
    time.sleep(0.3)  # a refusal result, had one been sent, would be here by now
    bodies += driver.consume_results(run_id, timeout_s=0.2)
    worker.stop()
    thread.join(10)
    ((body,),) = [bodies]  # only the signed chunk's result: forgeries get no reply
    result = decode_result(KEYS.open(body, "result"))
    assert result.chunk_id == "good" and not result.failures
    assert result.values == [seed_placeholder(i, 0) for i in range(10)]
    reasons = [reason for _, reason in driver.dead_letters()]
    assert len(reasons) == 3
    assert "not signed" in reasons[0]
    assert "wrong signature for key id 'k2'" in reasons[1]
    assert "unknown key id 'old'" in reasons[2]
