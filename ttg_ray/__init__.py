"""ttg_ray: parameter sweeps across a cluster, on Ray (default), Redis Streams or RabbitMQ.

``ttg_ray.compute(f, 10_000)`` returns every value in parameter order;
``ttg_ray.stream(f, range(10**7), output="out.jsonl")`` yields them as they complete.
"""

from ttg_ray.api import VERSION, Sweep, SweepResult, compute, read_results, stream
from ttg_ray.core.params import Grid, ParamList, ParamRange, Space
from ttg_ray.errors import TtgError

__all__ = [
    "Grid",
    "ParamList",
    "ParamRange",
    "Space",
    "Sweep",
    "SweepResult",
    "TtgError",
    "compute",
    "read_results",
    "stream",
]
__version__ = VERSION
