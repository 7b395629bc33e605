"""Settings from the environment (ttg_ray/config.py)."""

from ttg_ray.config import BrokerConfig, RayConfig


def test_ray_address_explicit_then_env_then_local(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert RayConfig.from_env().address is None
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert RayConfig.from_env().address == "ray://head:10001"
    assert RayConfig.from_env("10.0.0.1:6379").address == "10.0.0.1:6379"


def test_broker_urls_explicit_then_env_then_localhost(monkeypatch):
    monkeypatch.delenv("TTG_REDIS_URL", raising=False)
    monkeypatch.setenv("TTG_AMQP_URL", "amqp://u:p@mq:5672/%2F")
    config = BrokerConfig.from_env()
    assert config.url_for("redis") == "redis://127.0.0.1:6379/0"
    assert config.url_for("rabbitmq") == "amqp://u:p@mq:5672/%2F"
    assert BrokerConfig.from_env(redis_url="redis://r:1/2").url_for("redis") == "redis://r:1/2"
