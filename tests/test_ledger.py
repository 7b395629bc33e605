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
