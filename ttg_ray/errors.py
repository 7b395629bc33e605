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


class SweepFailed(TtgError):
    """A parameter failed for good under ``on_error="raise"``: the sweep stopped at it.
    ``failure`` has its index, parameter, error and traceback; ``partial`` the results so
    far (a SweepResult from compute(), None from stream(), which yielded them)."""

    def __init__(self, failure: object, partial: object = None):
        self.failure = failure
        self.partial = partial
        index = getattr(failure, "index", "?")
        param = getattr(failure, "param", None)
        kind = getattr(failure, "type", "Error")
        message = getattr(failure, "message", "")
        attempts = getattr(failure, "attempts", 1)
        text = f"parameter {index} ({param!r:.200}) failed after {attempts} attempt(s): "
        text += f"{kind}: {message}"
        trace = getattr(failure, "traceback", "")
        if trace:
            text += "\n\nIts traceback (in the worker):\n" + trace.rstrip()
        text += '\n\nPass on_error="record" to run every parameter and collect the failures.'
        super().__init__(text)
