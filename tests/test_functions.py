import functools

import pytest

from ttg_ray import workloads
from ttg_ray.core.functions import Allowlist, FunctionRef, accepts_kwarg, ref_of
from ttg_ray.errors import InvalidFunction


def test_parse_and_resolve_binds_kwargs():
    fn = FunctionRef.parse("ttg_ray.workloads:seed_placeholder", {"work_ms": 0}).resolve()
    assert fn(7) == workloads.seed_placeholder(7, work_ms=0) == 62.7  # 0.{7}, as the seed did


@pytest.mark.parametrize(
    "text, message",
    [
        ("nocolon", "module:attr"),
        ("no_such_module_xyz:f", "cannot import"),
        ("ttg_ray.workloads:nope", "no attribute"),
        ("ttg_ray.workloads:CPU_ITERATIONS_PER_MS", "not a function"),
    ],
)
def test_bad_references_say_what_is_wrong(text, message):
    with pytest.raises(InvalidFunction, match=message):
        FunctionRef.parse(text).resolve()


def test_ref_of_top_level_function_and_partial():
    assert ref_of(workloads.cpu_bound).name == "ttg_ray.workloads:cpu_bound"
    ref = ref_of(functools.partial(workloads.seed_placeholder, work_ms=3))
    assert ref.kwargs == {"work_ms": 3}


def test_lambdas_and_closures_cannot_travel_by_name():
    with pytest.raises(InvalidFunction, match="lambda"):
        ref_of(lambda p: p)

    def inner(p):
        return p

    with pytest.raises(InvalidFunction):
        ref_of(inner)


def test_allowlist():
    allow = Allowlist(["mypkg.sim"])
    allow.check(FunctionRef.parse("ttg_ray.workloads:cpu_bound"))
    allow.check(FunctionRef.parse("mypkg.sim:f"))
    with pytest.raises(InvalidFunction, match="--allow-module os"):
        allow.check(FunctionRef.parse("os:system"))


def test_accepts_kwarg():
    assert accepts_kwarg(workloads.seed_placeholder, "work_ms")
    assert not accepts_kwarg(abs, "work_ms")


def test_partial_with_positional_arguments_cannot_travel_by_name():
    with pytest.raises(InvalidFunction, match="by keyword"):
        ref_of(functools.partial(workloads.seed_placeholder, 3))
