import zlib

import pytest

from ttg_ray import workloads


def test_seed_placeholder_matches_the_predecessor_formula():
    for p in (0, 1, 7, 99, 100, 12345):
        assert workloads.seed_placeholder(p, work_ms=0) == (p * 7 + 13) % 1000 + float(
            f"0.{p % 100}"
        )
    # A grid point maps to the CRC-32 of its sorted JSON, then through the same formula.
    p = zlib.crc32(b'{"a": 1}')
    assert workloads.seed_placeholder({"a": 1}, 0) == (p * 7 + 13) % 1000 + float(f"0.{p % 100}")
    assert workloads.seed_placeholder(4.0, 0) == workloads.seed_placeholder(4, 0) == 41.4


def lcg_chain(x: int, steps: int) -> int:
    for _ in range(steps):
        x = (x * 1103515245 + 12345) % 2**31
    return x


def test_cpu_bound_is_a_fixed_hash_chain():
    steps = int(0.1 * workloads.CPU_ITERATIONS_PER_MS)
    assert workloads.cpu_bound(5, 0.1) == lcg_chain(5, steps)
    assert workloads.cpu_bound(6, 0.1) == lcg_chain(6, steps) != lcg_chain(5, steps)
    assert workloads.cpu_bound(7, 0) == 7


def test_faulty_fail_and_flaky(tmp_path):
    with pytest.raises(ValueError, match="designed to fail"):
        workloads.faulty(3, fail_params=[3])
    kwargs = {"flaky_params": [4], "state_dir": str(tmp_path)}
    for _ in range(2):
        with pytest.raises(RuntimeError, match="flaky"):
            workloads.faulty(4, **kwargs)
    assert workloads.faulty(4, **kwargs) == workloads.seed_placeholder(4, 0)
    assert workloads.faulty(5, raise_rate=0.0) == workloads.seed_placeholder(5, 0)
