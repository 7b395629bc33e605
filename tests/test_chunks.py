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
