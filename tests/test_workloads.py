import pytest

from ttg_ray import workloads


def test_seed_placeholder_matches_the_predecessor_formula():
    for p in (0, 1, 7, 99, 100, 12345):
        assert workloads.seed_placeholder(p, work_ms=0) == (p * 7 + 13) % 1000 + float(
            f"0.{p % 100}"
        )
    assert workloads.seed_placeholder({"a": 1}, 0) == workloads.seed_placeholder({"a": 1}, 0)


def test_cpu_bound_is_deterministic():
    assert workloads.cpu_bound(5, 0.1) == workloads.cpu_bound(5, 0.1)
    assert workloads.cpu_bound(5, 0.1) != workloads.cpu_bound(6, 0.1)


def test_faulty_fail_and_flaky(tmp_path):
    with pytest.raises(ValueError, match="designed to fail"):
        workloads.faulty(3, fail_params=[3])
    kwargs = {"flaky_params": [4], "state_dir": str(tmp_path)}
    for _ in range(2):
        with pytest.raises(RuntimeError, match="flaky"):
            workloads.faulty(4, **kwargs)
    assert workloads.faulty(4, **kwargs) == workloads.seed_placeholder(4, 0)
    assert workloads.faulty(5, raise_rate=0.0) == workloads.seed_placeholder(5, 0)
