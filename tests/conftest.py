"""Shared fixtures: service URLs, and the rule that a missing service skips locally but
fails under CI, so CI can never pass with integration tests silently skipped."""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest
from hypothesis import settings

# Under mutmut (which sets MUTANT_UNDER_TEST) each mutant reruns the property tests:
# fewer examples keep a full mutation run to minutes; they still find what they find.
settings.register_profile("mutation", max_examples=15, deadline=None)

REDIS_URL = os.environ.get("TTG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("TTG_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

# Local clusters started by the tests run without Ray 2.60's token authentication.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

# Ray workers and worker subprocesses inherit this, so they can import the test modules
# whose functions the tests send them (pickled by reference).
_HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_HERE, os.path.dirname(_HERE), os.environ.get("PYTHONPATH")) if p
)


def missing_service(what: str) -> None:
    """Skip when run by hand, fail under CI=true."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is not available, and CI requires it", pytrace=False)
    pytest.skip(f"{what} is not available")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _reachable(REDIS_URL, 6379):
        missing_service(f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def amqp_url() -> str:
    if not _reachable(AMQP_URL, 5672):
        missing_service(f"RabbitMQ at {AMQP_URL}")
    return AMQP_URL


@pytest.fixture
def run_id() -> str:
    """A run id of this test's own, so tests never share keys or queues."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _quick_property_tests_under_mutmut():
    if os.environ.get("MUTANT_UNDER_TEST"):
        settings.load_profile("mutation")
    yield
