"""Value statistics computed per chunk and merged on the driver: exactly the statistics
of all values at once (math.fsum semantics), whatever the chunking."""

from __future__ import annotations

import json
import math
from fractions import Fraction

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
    assert ValueStats.of([True, 2.0]) == ValueStats.of([2.0, False]) == ValueStats.of([2.0])


def test_infinities_and_overflow():
    assert ValueStats.of([math.inf, 1.0]).total == math.inf
    assert math.isnan(ValueStats.of([math.inf, -math.inf]).total)
    assert math.isnan(ValueStats.of([math.inf]).merge(ValueStats.of([-math.inf])).total)
    assert ValueStats.of([1e308, 1e308]).total == math.inf
    assert ValueStats.of([1e308, 1e308, 1e308, -1e308]).total == math.inf


def test_merges_past_the_compaction_keep_infinities_and_overflow():
    both = ValueStats.of([math.inf]).merge(ValueStats.of([-math.inf]))
    big = ValueStats()
    for _ in range(40):  # more than 32 partials: compacting inf and -inf fails, is skipped
        both = both.merge(ValueStats.of([0.1, 1e20, -1e20]))
        big = big.merge(ValueStats.of([1e308]))
    assert (both.count, len(both.partials)) == (122, 42) and math.isnan(both.total)
    # Past the float range, the exact sum is still carried: as floats of at most the largest.
    assert (big.count, big.total) == (40, math.inf) and len(big.partials) < 40
    assert sum(map(Fraction, big.partials)) == 40 * Fraction(1e308)


def test_huge_values_that_cancel_sum_exactly_across_chunks():
    # math.fsum overflows on the way for these although their sum is a float
    assert ValueStats.of([1e308, 1e308, -1e308]).total == 1e308
    merged = ValueStats.of([1e308, 1e308]).merge(ValueStats.of([-1e308, 0.5]))
    assert merged.total == math.fsum([1e308, 0.5]) and merged.count == 4
    negative = ValueStats.of([-1e308, -1e308]).merge(ValueStats.of([1e308]))
    assert negative.total == -1e308
    assert sum(map(Fraction, ValueStats.of([1e308, 1e308]).partials)) == 2 * Fraction(1e308)
    assert ValueStats.of([-1e308] * 1000 + [1.0]).total == -math.inf  # beyond 64 floats
    assert ValueStats.of([1e308] * 1000).total == math.inf
    assert ValueStats.of([1e308, -math.inf, 1e308]).total == -math.inf
    assert ValueStats.of([1e308, 1e308, math.inf]).total == math.inf


def test_exact_partials_exactly():
    assert exact_partials([]) == exact_partials([1.0, -1.0]) == (0.0,)
    assert exact_partials(iter([0.1, 0.2])) == (0.30000000000000004, -2.7755575615628914e-17)
    assert exact_partials([0.1, 0.2], 0.1 + 0.2) == (0.30000000000000004, -2.7755575615628914e-17)


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


def a_summary() -> Summary:
    summary = Summary(
        "redis", "run-9", total=12345, processed=2345, succeeded=2300, failed=45,
        skipped_resumed=10000, duplicates_discarded=7, retries=90, chunks=31,
        duration_s=1.23456, startup_s=0.56789,
    )  # fmt: skip
    summary.add_values([1.5, 2500.25, -3.0])
    summary.chunks_per_node.update({"node-b": 1200, "node-a": 3})
    summary.failed_indices.extend(range(100, 1145))
    return summary


def test_summary_as_a_dict_and_as_json():
    data = a_summary().to_dict()
    assert data == {
        "backend": "redis", "run_id": "run-9", "total": 12345, "processed": 2345,
        "succeeded": 2300, "failed": 45, "skipped_resumed": 10000, "duplicates_discarded": 7,
        "retries": 90, "chunks": 31, "duration_s": 1.2346, "startup_s": 0.5679,
        "params_per_second": 1899.46, "sum": 2498.75, "avg": 2498.75 / 3, "min": -3.0,
        "max": 2500.25, "chunks_per_node": {"node-a": 3, "node-b": 1200},
        "failed_indices": list(range(100, 1100)),  # the first thousand
    }  # fmt: skip
    assert list(data["chunks_per_node"]) == ["node-a", "node-b"]
    assert a_summary().to_json() == json.dumps(data, indent=2)


def test_summary_table():
    assert a_summary().format_table() == "\n".join([
        "backend               redis",
        "run id                run-9",
        "parameters            12,345",
        "processed             2,345",
        "succeeded             2,300",
        "failed                45",
        "skipped (resumed)     10,000",
        "duplicates discarded  7",
        "retries               90",
        "chunks                31",
        "start-up              0.57 s",
        "duration              1.23 s",
        "throughput            1,899.5 params/s",
        "sum                   2,498.7500",
        "avg                   832.9167",
        "min                   -3.0000",
        "max                   2,500.2500",
        "chunks per node:",
        "  node-a                     3",
        "  node-b                 1,200",
        "failed indices: " + ", ".join(map(str, range(100, 120))) + " (+1025 more)",
    ])  # fmt: skip


def test_an_empty_summary_table():
    summary = Summary("ray", "r0")
    summary.failed_indices.extend(range(20))
    data = summary.to_dict()
    assert (data["sum"], data["avg"], data["min"], data["max"]) == (None, None, None, None)
    assert data["params_per_second"] == 0.0
    lines = summary.format_table().splitlines()
    assert lines[12:] == [
        "throughput            0.0 params/s",
        "sum                   -",
        "avg                   -",
        "min                   -",
        "max                   -",
        "chunks per node:",
        "failed indices: " + ", ".join(map(str, range(20))),  # all 20: no "more"
    ]
    summary.failed_indices.append(20)
    assert summary.format_table().endswith(", 19 (+1 more)")
