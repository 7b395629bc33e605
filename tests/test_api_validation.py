"""The public API refuses bad arguments up front, with errors that say what to pass,
before any backend starts (so these need no service)."""

import pytest

import ttg_ray
from ttg_ray.errors import InvalidFunction, InvalidSpace, UsageError


def square(p):
    return p * p


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1, got 0"),
        ({"chunk_size": 2.5}, "chunk_size must be an integer >= 1, got 2.5"),
        ({"chunk_size": True}, "chunk_size must be an integer >= 1, got True"),
        ({"workers": 0}, "workers must be an integer >= 1, got 0"),
        ({"workers": "2"}, "workers must be an integer >= 1, got '2'"),
        ({"max_retries": -1}, "max_retries must be an integer >= 0, got -1"),
        (
            {"resume": True},
            "resume and retry_failed need the output file of the earlier run (output=PATH)",
        ),
        (
            {"retry_failed": True},
            "resume and retry_failed need the output file of the earlier run (output=PATH)",
        ),
    ],
)
def test_bad_counts_and_options_are_usage_errors(kwargs, message):
    for entry in (ttg_ray.compute, ttg_ray.stream):
        with pytest.raises(UsageError) as err:
            entry(square, 10, **kwargs)
        assert str(err.value) == message


def test_zero_retries_and_one_worker_are_allowed_values():
    # the boundaries themselves pass validation (the run itself needs Ray: not started)
    with pytest.raises(UsageError, match="unknown option 'colour'"):
        ttg_ray.compute(square, 3, max_retries=0, workers=1, chunk_size=1, colour="red")


def test_unknown_backend_and_option():
    with pytest.raises(UsageError) as err:
        ttg_ray.compute(square, 10, backend="carrier-pigeon")
    assert "carrier-pigeon" in str(err.value)
    with pytest.raises(UsageError) as err:
        ttg_ray.compute(square, 10, colour="red")
    assert str(err.value).startswith("unknown option 'colour' for the ray backend; ")


def test_a_function_and_a_space_are_checked_first():
    with pytest.raises(InvalidFunction) as err:
        ttg_ray.compute(42, 10)
    assert str(err.value) == "fn must be callable, got int"
    with pytest.raises(InvalidSpace, match="not a bool"):
        ttg_ray.compute(square, True)
    with pytest.raises(InvalidSpace, match=">= 0, got -5"):
        ttg_ray.stream(square, -5)
