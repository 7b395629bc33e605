"""Several Ray nodes on one machine (ray.cluster_utils.Cluster): chunks land on every
worker node, and losing a node mid-run loses and duplicates nothing."""

import pytest
import ray
from ray.cluster_utils import Cluster

import ttg_ray
from ttg_ray import workloads

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def cluster():
    # A head that runs no tasks and three one-CPU workers, as the Kind layout has.
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(3)]
    cluster.wait_for_nodes()
    ttg_ray.shutdown()  # a warm ttg_ray Ray an earlier test module left up
    ray.init(address=cluster.address, logging_level="ERROR")
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def slow_placeholder(p):
    return workloads.seed_placeholder(p, work_ms=2)


def test_node_removed_at_30_percent_loses_nothing(cluster):
    cluster, workers = cluster
    n = 4000
    removed = []

    def remove_a_node_at_30_percent(done, total):
        if not removed and done >= 0.3 * total:
            cluster.remove_node(workers[0])
            removed.append(done)

    result = ttg_ray.compute(
        slow_placeholder, n, chunk_size=40, spread=True, progress=remove_a_node_at_30_percent
    )
    assert removed, "the node was never removed"
    assert removed[0] < n, "the node was removed after the work was done"
    assert result.ok, result.failures[:3]
    assert result.values == [workloads.seed_placeholder(i, 0) for i in range(n)]
    summary = result.summary
    assert summary.processed == n and summary.duplicates_discarded == 0
    assert summary.retries == 0  # Ray's own retries did the work, not the runner's splits
    # Chunks ran on every worker node, the removed one included.
    assert len(summary.chunks_per_node) == 3, summary.chunks_per_node
