from hypothesis import given
from hypothesis import strategies as st

from ttg_ray.core.ledger import IndexLedger


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(1, 10)), max_size=30))
def test_ledger_matches_a_set(ranges):
    ledger, reference = IndexLedger(), set()
    for lo, length in ranges:
        new = [i for i in range(lo, lo + length) if i not in reference]
        ledger.add_sorted(new)
        reference.update(new)
    assert len(ledger) == len(reference)
    assert all((i in ledger) == (i in reference) for i in range(-1, 215))
    gaps = [i for lo, hi in ledger.gaps(215) for i in range(lo, hi)]
    assert gaps == [i for i in range(215) if i not in reference]
    for lo in range(0, 210, 7):
        assert ledger.overlaps(lo, lo + 5) == any(i in reference for i in range(lo, lo + 5))


def test_in_order_results_stay_one_interval():
    ledger = IndexLedger()
    for lo in range(0, 10_000_000, 100_000):
        ledger.add_range(lo, lo + 100_000)
    assert ledger.intervals == 1 and len(ledger) == 10_000_000


def runs(indices: set[int]) -> int:
    """How many maximal runs of consecutive integers ``indices`` holds."""
    return sum(1 for i in indices if i - 1 not in indices)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 6)), max_size=20))
def test_intervals_stay_merged_and_gaps_stop_at_n(ranges):
    ledger, reference = IndexLedger(), set()
    for lo, length in ranges:
        new = [i for i in range(lo, lo + length) if i not in reference]
        ledger.add_sorted(new)
        reference.update(new)
        assert ledger.intervals == runs(reference)  # disjoint and never adjacent
    for n in (0, 1, 5, 30, 70):
        expected = [i for i in range(n) if i not in reference]
        gaps = ledger.gaps(n)
        assert [i for lo, hi in gaps for i in range(lo, hi)] == expected
        assert len(gaps) == runs(set(expected))
        assert all(lo < hi <= n for lo, hi in gaps)


def test_joins_left_right_both_and_empty_ranges():
    ledger = IndexLedger()
    ledger.add_range(5, 5)
    ledger.add_range(6, 4)
    ledger.add_sorted([])
    assert (len(ledger), ledger.intervals, ledger.gaps(3)) == (0, 0, [(0, 3)])
    ledger.add_range(0, 2)
    ledger.add_range(4, 6)
    ledger.add_range(2, 3)  # joins left
    ledger.add_range(3, 4)  # joins both
    assert (ledger.intervals, len(ledger)) == (1, 6)
    ledger.add_range(8, 9)
    ledger.add_range(7, 8)  # joins right
    assert (ledger.intervals, len(ledger), ledger.gaps(12)) == (2, 8, [(6, 7), (9, 12)])
    assert ledger.gaps(7) == [(6, 7)] and ledger.gaps(6) == [] and ledger.gaps(4) == []
    assert not ledger.overlaps(6, 7) and ledger.overlaps(6, 8) and ledger.overlaps(5, 6)
    assert -1 not in ledger and 9 not in ledger and 8 in ledger
    ledger.add_sorted([10, 11, 13])
    assert (ledger.intervals, len(ledger)) == (4, 11)
