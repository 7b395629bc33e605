"""ttg_ray: parameter sweeps across a cluster, on Ray (default), Redis Streams or RabbitMQ.

``ttg_ray.compute(f, 10_000)`` returns every value in parameter order;
``ttg_ray.stream(f, range(10**7), output="out.jsonl")`` yields them as they complete.
The local Ray the first call starts stays up for later calls; ``ttg_ray.shutdown()``
stops it (it also stops when the process exits).
"""

from ttg_ray.api import VERSION, Sweep, SweepResult, compute, read_results, shutdown, stream
from ttg_ray.core.params import Grid, ParamList, ParamRange, Space
from ttg_ray.core.sampling import (
    Choice,
    FloatRange,
    Linspace,
    Logspace,
    LogUniform,
    QuasiRandom,
    RandInt,
    RandomSample,
    Uniform,
)
from ttg_ray.errors import SweepFailed, TtgError

__all__ = [
    "Choice",
    "FloatRange",
    "Grid",
    "Linspace",
    "LogUniform",
    "Logspace",
    "ParamList",
    "ParamRange",
    "QuasiRandom",
    "RandInt",
    "RandomSample",
    "Space",
    "Sweep",
    "SweepFailed",
    "SweepResult",
    "TtgError",
    "Uniform",
    "compute",
    "read_results",
    "shutdown",
    "stream",
]
__version__ = VERSION
