"""The runner's in-flight bound follows the backend's capacity while the sweep runs, and
the backend hears how much work is left (so an autoscaling one can ask and give back)."""

from __future__ import annotations

from tests.support.fakes import InlineBackend
from ttg_ray.core.params import ParamRange
from ttg_ray.engine.runner import Runner


class GrowingBackend(InlineBackend):
    """Results come back one per poll; capacity grows from 1 to 4 after a few chunks,
    as when nodes join a cluster mid-sweep."""

    def __init__(self) -> None:
        super().__init__(slots=1)
        self.wanted: list[int] = []
        self.in_flight_seen: list[tuple[int, int]] = []  # (capacity, chunks in flight)

    @property
    def capacity(self) -> int:
        return 4 if len(self.submitted) >= 3 else 1

    def want(self, chunks: int) -> None:
        self.wanted.append(chunks)

    def submit(self, chunk) -> None:
        super().submit(chunk)
        self.in_flight_seen.append((self.capacity, len(self._ready)))

    def poll(self, timeout_s: float):
        ready, self._ready = self._ready[:1], self._ready[1:]
        return ready


def _run(backend: GrowingBackend, params: int = 400) -> Runner:
    runner = Runner(backend, lambda p: p * 2, ParamRange(0, params), "cap", chunk_size=10)
    for _ in runner.batches():
        pass
    return runner


def test_in_flight_bound_grows_with_capacity():
    backend = GrowingBackend()
    runner = _run(backend)
    assert runner.summary.processed == 400
    assert max(n for cap, n in backend.in_flight_seen if cap == 1) <= 2
    assert max(n for cap, n in backend.in_flight_seen if cap == 4) > 2  # up to 2 x 4


def test_backend_hears_the_work_left_falling_to_zero():
    backend = GrowingBackend()
    _run(backend)
    assert backend.wanted[0] == 40  # 400 parameters in chunks of 10, none sent yet
    assert backend.wanted[-1] == 0
    assert all(a >= b for a, b in zip(backend.wanted, backend.wanted[1:]))
