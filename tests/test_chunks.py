import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttg_ray.core.chunks import Chunk, ChunkPlanner


def drain(planner: ChunkPlanner, per_param_s: float = 0.001) -> list[Chunk]:
    chunks = []
    while (chunk := planner.next_chunk()) is not None or not planner.exhausted:
        if chunk is None:  # waiting for a probe: report one
            planner.observe(chunks[-1].chunk_id, chunks[-1].size, chunks[-1].size * per_param_s)
            continue
        chunks.append(chunk)
    return chunks


def covered(chunks: list[Chunk]) -> list[int]:
    return sorted(i for c in chunks for i in c.iter_indices())


@given(
    st.lists(st.tuples(st.integers(0, 500), st.integers(0, 60)), max_size=6),
    st.one_of(st.none(), st.integers(1, 50)),
    st.integers(1, 8),
)
def test_plan_covers_every_index_exactly_once(raw_gaps, chunk_size, workers):
    gaps, cursor = [], 0
    for start, length in raw_gaps:
        lo = cursor + start
        gaps.append((lo, lo + length))
        cursor = lo + length
    planner = ChunkPlanner("r", gaps, chunk_size, workers=workers)
    chunks = drain(planner)
    assert covered(chunks) == [i for lo, hi in gaps for i in range(lo, hi)]
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_fixed_chunk_size():
    chunks = drain(ChunkPlanner("r", [(0, 1000)], chunk_size=100))
    assert [c.size for c in chunks] == [100] * 10


def test_automatic_size_probes_then_targets_duration():
    planner = ChunkPlanner("r", [(0, 1_000_000)], workers=2, target_chunk_s=1.0)
    probes = [planner.next_chunk(), planner.next_chunk()]
    assert [p.size for p in probes] == [16, 16]
    assert planner.next_chunk() is None  # waits for a probe's timing
    planner.observe(probes[0].chunk_id, 16, 16 * 0.001)  # 1 ms per parameter
    assert planner.next_chunk().size == 1000  # about 1 s of work


def test_a_lost_probe_is_replaced_by_another():
    planner = ChunkPlanner("r", [(0, 1000)], workers=1)
    probe = planner.next_chunk()
    assert planner.next_chunk() is None
    planner.lost(probe.chunk_id)
    assert planner.next_chunk().size == 16


def test_automatic_size_shrinks_at_the_end_and_is_capped():
    planner = ChunkPlanner("r", [(0, 10_000)], workers=3, min_chunk_s=0.05, max_size=500)
    planner.observe(
        planner.next_chunk().chunk_id, 16, 16 * 1e-6
    )  # trivial work: capped by max_size
    assert planner.next_chunk().size == 500
    planner = ChunkPlanner("r", [(0, 3000)], workers=3, target_chunk_s=10.0, min_chunk_s=0.01)
    planner.observe(planner.next_chunk().chunk_id, 16, 16 * 0.001)
    sizes = [c.size for c in drain(planner)]
    assert sizes[0] > sizes[-1]  # guided: large first, small last
    assert min(sizes[:-1]) >= 10  # never below min_chunk_s worth, but for the remainder


def test_halves_and_retry_chunks_keep_their_lineage():
    chunk = Chunk("r", "c000003", 10, 20)
    a, b = chunk.halves()
    assert (a.lo, a.hi, b.lo, b.hi) == (10, 15, 15, 20)
    assert (a.chunk_id, b.chunk_id) == ("c000003a", "c000003b")
    retry = chunk.with_indices([12, 17, 13], attempt=2, suffix="-r2")
    assert retry.indices == (12, 13, 17) and retry.attempt == 2
    assert list(retry.iter_indices()) == [12, 13, 17]
    assert chunk.with_indices([4, 5, 6], 2, "-r2").indices is None  # contiguous stays a range


def test_planner_defaults_and_gap_order():
    planner = ChunkPlanner("run-9", [(10, 12), (20, 20), (30, 31)], workers=0)
    assert (planner.workers, planner.target_chunk_s, planner.min_chunk_s) == (1, 1.0, 0.02)
    assert (planner.probe_size, planner.max_size, planner.fixed_size) == (16, 100_000, None)
    assert planner.remaining == 3 and not planner.exhausted
    first = planner.next_chunk()
    assert first == Chunk("run-9", "c000000", 10, 12) and planner.remaining == 1
    assert planner.waiting_for_probe and planner.next_chunk() is None  # one worker, one probe
    planner.observe("c000000", 2, 0.002)
    assert not planner.waiting_for_probe
    assert planner.next_chunk() == Chunk("run-9", "c000001", 30, 31)
    assert planner.exhausted and planner.remaining == 0 and planner.next_chunk() is None


def test_fixed_size_plans_send_no_probes_and_learn_nothing():
    planner = ChunkPlanner("r", [(0, 10)], chunk_size=4, workers=1)
    chunks = [planner.next_chunk() for _ in range(3)]
    assert [(c.lo, c.hi) for c in chunks] == [(0, 4), (4, 8), (8, 10)]
    assert not planner.waiting_for_probe
    planner.observe(chunks[0].chunk_id, 4, 1.0)
    assert planner.per_param_s is None and planner.next_size() == 4


def test_observe_smooths_and_ignores_empty_chunks():
    planner = ChunkPlanner("r", [(0, 100)], workers=2)
    probe = planner.next_chunk()
    planner.observe(probe.chunk_id, 0, 5.0)  # no parameters: no timing
    assert planner.per_param_s is None and not planner.waiting_for_probe
    planner.observe("x", 10, 1.0)
    assert planner.per_param_s == 0.1
    planner.observe("y", 10, 2.0)  # half the parameters timed so far: weight 1/2
    assert planner.per_param_s == pytest.approx(0.5 * 0.1 + 0.5 * 0.2)
    planner.observe("z", 10, 0.0)  # instant work still counts as a tiny time
    share = 10 / (10 + 0.8 * 10 + 10)
    assert planner.per_param_s == pytest.approx((1 - share) * 0.15 + share * 1e-8)


def test_a_cold_probe_does_not_outweigh_the_chunk_after_it():
    # Measured on a fresh Ray (W5): a 16-parameter probe at 0.43 ms a parameter (the
    # worker's first calls), then 369 parameters at 0.152 ms. The old smoothing (the
    # new rate at weight 0.2) said 0.37 ms; weighted by parameters it is 0.16.
    planner = ChunkPlanner("r", [(0, 2000)], workers=2)
    planner.observe(planner.next_chunk().chunk_id, 16, 16 * 0.00043)
    planner.observe("c", 369, 369 * 0.000152)
    share = 369 / (369 + 16)
    assert planner.per_param_s == pytest.approx((1 - share) * 0.00043 + share * 0.000152)
    assert planner.per_param_s < 0.00017


def test_a_small_slow_chunk_moves_the_estimate_by_the_smoothing():
    # W4's shape: cheap parameters, then the slow ones at the end of the space. A chunk
    # of 20 slow ones is a small share of the parameters timed, yet moves the estimate
    # by SMOOTHING (0.2), and a few more make it the slow rate's order.
    planner = ChunkPlanner("r", [(0, 10_000)], workers=2)
    for i in range(5):
        planner.observe(f"cheap{i}", 500, 500 * 0.0002)
    planner.observe("slow", 20, 20 * 0.05)
    assert planner.per_param_s == pytest.approx(0.8 * 0.0002 + 0.2 * 0.05)
    for i in range(3):
        planner.observe(f"slow{i}", 20, 20 * 0.05)
    assert planner.per_param_s > 0.025


def test_next_size_is_the_smallest_of_target_guided_and_cap():
    planner = ChunkPlanner(
        "r", [(0, 4000)], workers=2, target_chunk_s=1.0, min_chunk_s=0.05, max_size=900
    )
    planner.per_param_s = 0.002  # target 500, at least 25, guided 4000 / 4 = 1000
    assert planner.next_size() == 500
    planner.remaining = 1200  # guided 300
    assert planner.next_size() == 300
    planner.remaining = 20  # guided 5, but never below 25 (min_chunk_s)
    assert planner.next_size() == 25
    planner.per_param_s = 0.0001  # target 10,000: capped at 900
    planner.remaining = 100_000
    assert planner.next_size() == 900
    planner.per_param_s = 10.0  # a single parameter is longer than the target
    assert planner.next_size() == 1


def test_probes_wait_per_worker():
    planner = ChunkPlanner("r", [(0, 100)], workers=2, probe_size=3)
    a, b = planner.next_chunk(), planner.next_chunk()
    assert (a.size, b.size) == (3, 3) and planner.next_chunk() is None
    planner.lost(a.chunk_id)
    c = planner.next_chunk()
    assert (c.lo, c.hi, c.chunk_id) == (6, 9, "c000002") and planner.next_chunk() is None


def test_halves_of_odd_and_sparse_chunks():
    a, b = Chunk("r", "c1", 0, 5, attempt=3).halves()
    assert (a.lo, a.hi, b.lo, b.hi, a.attempt, b.attempt) == (0, 2, 2, 5, 3, 3)
    a, b = Chunk("r", "c2", 1, 9, indices=(1, 4, 6, 8)).halves()
    assert (a.indices, b.indices) == ((1, 4), (6, 8))
    assert (a.lo, a.hi, b.lo, b.hi, a.size, b.size) == (1, 5, 6, 9, 2, 2)
    assert Chunk("r", "c3", 7, 9, indices=(7, 8)).size == 2 and Chunk("r", "c", 3, 9).size == 6


def test_one_worker_by_default_and_a_one_parameter_chunk_is_timed():
    planner = ChunkPlanner("r", [(0, 10)])
    assert planner.workers == 1
    planner.observe("x", 1, 0.5)
    assert planner.per_param_s == 0.5
