"""Settings from the environment (ttg_ray/config.py)."""

import pytest

from ttg_ray.config import BrokerConfig, RayConfig
from ttg_ray.errors import UsageError


def test_ray_address_explicit_then_env_then_local(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert RayConfig.from_env().address is None
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert RayConfig.from_env().address == "ray://head:10001"
    assert RayConfig.from_env("10.0.0.1:6379").address == "10.0.0.1:6379"


def test_local_ray_workers_get_the_drivers_priority_unless_ray_is_told_otherwise(monkeypatch):
    monkeypatch.delenv("RAY_worker_niceness", raising=False)
    assert RayConfig.from_env().worker_niceness == 0
    monkeypatch.setenv("RAY_worker_niceness", "15")
    assert RayConfig.from_env().worker_niceness == 15


def test_a_niceness_that_is_not_a_number_says_what_to_set(monkeypatch):
    monkeypatch.setenv("RAY_worker_niceness", "low")
    with pytest.raises(UsageError) as err:
        RayConfig.from_env()
    assert str(err.value) == (
        "RAY_worker_niceness='low' is not an integer; set it to a niceness "
        "(0 = the driver's priority, 15 = Ray's default) or unset it"
    )


def test_broker_urls_explicit_then_env_then_localhost(monkeypatch):
    monkeypatch.delenv("TTG_REDIS_URL", raising=False)
    monkeypatch.setenv("TTG_AMQP_URL", "amqp://u:p@mq:5672/%2F")
    config = BrokerConfig.from_env()
    assert config.url_for("redis") == "redis://127.0.0.1:6379/0"
    assert config.url_for("rabbitmq") == "amqp://u:p@mq:5672/%2F"
    assert BrokerConfig.from_env(redis_url="redis://r:1/2").url_for("redis") == "redis://r:1/2"
