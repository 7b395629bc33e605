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


EMPTY_HINT = (
    "pass a count n > 0, a non-empty range or list, a dict of non-empty axes, or a Space "
    "with at least one parameter"
)


@pytest.fixture
def no_backend(monkeypatch):
    """Any backend opened from here on fails the test."""
    from ttg_ray.backends.base import Backend

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"the {self.name} backend was opened")

    monkeypatch.setattr(Backend, "open", refuse)


@pytest.mark.parametrize(
    "params, given",
    [([], "[]"), (range(0), "range(0, 0)"), (0, "0"), (range(5, 5), "range(5, 5)")],
)
@pytest.mark.parametrize("backend", ["ray", "redis", "rabbitmq"])
def test_an_empty_space_fails_before_any_backend_opens(no_backend, params, given, backend):
    where = {"address": "127.0.0.1:1"} if backend == "ray" else {"redis_url": "redis://127.0.0.1:1"}
    if backend == "rabbitmq":
        where = {"amqp_url": "amqp://127.0.0.1:1"}
    for entry in (ttg_ray.compute, ttg_ray.stream):
        with pytest.raises(InvalidSpace) as err:
            entry(square, params, backend=backend, **where)
        assert isinstance(err.value, UsageError)
        assert str(err.value) == (
            f"the parameter space is empty (params={given}): nothing to run; {EMPTY_HINT}"
        )


def test_an_empty_space_fails_on_a_ray_address_nothing_listens_on():
    with pytest.raises(InvalidSpace, match=r"^the parameter space is empty \(params=\[\]\)"):
        ttg_ray.compute(square, [], address="127.0.0.1:1", progress=False)


def test_an_empty_grid_axis_fails_before_any_backend_opens(no_backend):
    for entry in (ttg_ray.compute, ttg_ray.stream):
        with pytest.raises(InvalidSpace) as err:
            entry(square, {"a": [1, 2], "b": []})
        assert str(err.value) == "grid axis 'b' is empty; give it at least one value"


def test_an_empty_space_of_a_space_class_fails_too(no_backend):
    with pytest.raises(InvalidSpace, match=r"^the parameter space is empty \(params=ParamList"):
        ttg_ray.compute(square, ttg_ray.ParamList([]))
