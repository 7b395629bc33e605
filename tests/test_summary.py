"""Value statistics computed per chunk and merged on the driver: exactly the statistics
of all values at once (math.fsum semantics), whatever the chunking."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from ttg_ray.core.chunks import Chunk
from ttg_ray.core.results import ChunkResult
from ttg_ray.core.summary import Summary, ValueStats, exact_partials

finite = st.floats(-1e300, 1e300)  # sums that overflow are tested apart
numbers = st.one_of(finite, st.integers(-(2**60), 2**60))


@given(st.lists(numbers, max_size=200), st.integers(1, 50))
def test_merged_chunk_stats_equal_the_stats_of_all_values(values, size):
    merged = ValueStats()
    for lo in range(0, len(values), size):
        merged = merged.merge(ValueStats.of(values[lo : lo + size]))
    assert merged.count == len(values)
    if values:
        assert merged.total == math.fsum(values)
        assert (merged.low, merged.high) == (min(values), max(values))
    else:
        assert (merged.total, merged.low, merged.high) == (0.0, None, None)


@given(st.lists(finite, max_size=100))
def test_exact_partials_sum_exactly_to_the_values(values):
    parts = exact_partials(values)
    assert math.fsum(parts) == math.fsum(values)
    assert math.fsum([*values, *(-p for p in parts)]) == 0.0


def test_sums_that_float_addition_gets_wrong_are_exact():
    chunks = [[1e16], [1.0], [-1e16], [1.0]]  # float addition of chunk sums gives 0 or 2
    merged = ValueStats()
    for chunk in chunks:
        merged = merged.merge(ValueStats.of(chunk))
    assert merged.total == 2.0
    many = ValueStats()
    for _ in range(100):  # more partials than the merge keeps: compacted, still exact
        many = many.merge(ValueStats.of([0.1, 1e20, -1e20]))
    assert many.total == math.fsum([0.1, 1e20, -1e20] * 100)
    assert len(many.partials) <= 33


def test_non_numbers_nan_and_bools_are_left_out():
    stats = ValueStats.of([1.0, "text", None, math.nan, True, 2])
    assert (stats.count, stats.total, stats.low, stats.high) == (2, 3.0, 1.0, 2)


def test_infinities_and_overflow():
    assert ValueStats.of([math.inf, 1.0]).total == math.inf
    assert math.isnan(ValueStats.of([math.inf, -math.inf]).total)
    assert math.isnan(ValueStats.of([math.inf]).merge(ValueStats.of([-math.inf])).total)
    assert ValueStats.of([1e308, 1e308]).total == math.inf


def test_chunk_stats_travel_as_json_and_are_dropped_when_not_finite():
    chunk = Chunk("r", "c1", 0, 3)
    result = ChunkResult.of(chunk, values=[0.1, 0.2, 0.3], stats=ValueStats.of([0.1, 0.2, 0.3]))
    back = ChunkResult.from_dict(json.loads(json.dumps(result.to_dict(), allow_nan=False)))
    assert back == result
    odd = ChunkResult.of(chunk, values=[math.inf], stats=ValueStats.of([math.inf]))
    assert odd.to_dict()["stats"] is None


def test_summary_reads_its_statistics_from_the_merged_stats():
    summary = Summary(backend="ray", run_id="r")
    summary.add_stats(ValueStats.of([1.0, 5.0]))
    summary.add_values([3.0, "x"])
    assert summary.numeric_count == 3
    assert (summary.value_sum, summary.value_avg) == (9.0, 3.0)
    assert (summary.value_min, summary.value_max) == (1.0, 5.0)
