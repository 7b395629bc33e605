"""The one error tree of ttg_ray; each type maps to a CLI exit code."""

from __future__ import annotations


class TtgError(Exception):
    """Base of every error ttg_ray raises on purpose."""

    exit_code = 1


class UsageError(TtgError):
    """Bad input from the user: arguments, spaces, functions, paths. Exit 2."""

    exit_code = 2


class InvalidSpace(UsageError):
    """A parameter space, range, grid or spec that cannot be built."""


class Unencodable(UsageError):
    """A value or parameter that a result file or queue message cannot keep exactly
    (see ttg_ray.core.codec); a parameter whose value is unencodable fails once."""


class InvalidFunction(UsageError):
    """A function reference that cannot be imported, called or sent to a worker."""


class OutputError(UsageError):
    """An output or resume file that cannot be written or does not match the sweep."""


class BackendUnavailable(TtgError):
    """A backend (Ray cluster, Redis, RabbitMQ) that cannot be reached. Exit 3."""

    exit_code = 3


class BadMessage(TtgError):
    """A queue message that is not valid JSON, has the wrong schema, or names a
    function off the allowlist. It is dead-lettered, never run."""


class SweepInterrupted(TtgError):
    """The driver was interrupted; results so far are in the store. Exit 130."""

    exit_code = 130
