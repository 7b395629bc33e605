"""Argument types shared by the command-line tools: numbers with a lower bound, whose
errors say what was expected."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def integer(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def number(minimum: float) -> Callable[[str], float]:
    """An argparse type: a number >= ``minimum`` (NaN refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum:g}, got {text}")
        return value

    return parse


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend redis|rabbitmq and the broker URLs, as the queue tools take them."""
    parser.add_argument("--backend", required=True, choices=("redis", "rabbitmq"))
    parser.add_argument("--redis-url", help="else TTG_REDIS_URL, else localhost")
    parser.add_argument("--amqp-url", help="else TTG_AMQP_URL, else localhost")
