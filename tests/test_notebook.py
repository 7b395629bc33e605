"""ttg_ray in a real Jupyter kernel, as a data scientist uses it: the progress bar is
drawn as a widget, Ray's own chatter stays out of the cells, and the second call reuses
the Ray the first one started."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import missing_service

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[1]

CELLS = [
    "import os\nos.environ['RAY_AUTH_MODE'] = 'disabled'\nimport ray, ttg_ray",
    "first = ttg_ray.compute(abs, range(-1000, 1000), workers=2, include_dashboard=False)\n"
    "first_node = ray.get_runtime_context().get_node_id()",
    "second = ttg_ray.compute(abs, 1000, workers=2, include_dashboard=False)\n"
    "print(json.dumps({'first': sum(first.values), 'second': sum(second.values),\n"
    "    'same_ray': first_node == ray.get_runtime_context().get_node_id()}))",
    "ttg_ray.shutdown()",
]


# Each "interrupt" cell is interrupted (as the stop button or Ctrl-C does: SIGINT to the
# kernel) 2 s into a sweep of 6 s on two workers; Ray's driver used to abort the kernel
# after a few of them.
INTERRUPTED = [
    "import os\nos.environ['RAY_AUTH_MODE'] = 'disabled'\nimport ray, ttg_ray\n"
    "from ttg_ray import workloads",
    "ttg_ray.compute(abs, 10, workers=2, include_dashboard=False)\n"
    "node = ray.get_runtime_context().get_node_id()",
    *["# interrupt\nttg_ray.compute(workloads.seed_placeholder, 12000, chunk_size=50)"] * 4,
    "after = ttg_ray.compute(abs, 1000, workers=2, include_dashboard=False)\n"
    "print(json.dumps({'sum': sum(after.values),\n"
    "    'same_ray': node == ray.get_runtime_context().get_node_id()}))",
    "ttg_ray.shutdown()",
]


def _run_notebook(cells: list[str] = CELLS) -> tuple[list[dict], dict]:
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        missing_service("nbclient and ipykernel (pip install -e '.[test]')")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.cells[0].source = "import json\n" + nb.cells[0].source
    client = NotebookClient(
        nb,
        timeout_func=lambda cell: 2 if cell.source.startswith("# interrupt") else 180,
        interrupt_on_timeout=True,
        allow_error_names=["KeyboardInterrupt"],
        kernel_name="python3",
        store_widget_state=True,
    )
    client.execute(cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)))
    outputs = [out for cell in nb.cells for out in cell.get("outputs", [])]
    return outputs, nb.metadata.get("widgets", {})


def test_compute_in_a_notebook_draws_a_widget_bar_and_reuses_its_ray():
    outputs, widgets = _run_notebook()
    printed = [o["text"] for o in outputs if o["output_type"] == "stream"]
    # Only what the cells print: no Ray start-up warnings, no raylet lines.
    assert [o["name"] for o in outputs if o["output_type"] == "stream"] == ["stdout"]
    assert json.loads(printed[0]) == {"first": 1_000_000, "second": 999 * 1000 // 2,
                                      "same_ray": True}  # fmt: skip
    shown = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(shown) == 2  # one live bar a call
    state = widgets["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [
        out["data"]["text/plain"]
        for model in state.values()
        if model["model_name"] == "OutputModel"
        for out in model["state"]["outputs"]
    ]
    # Each bar's last frame: the sweep done, its failures counted.
    assert any("2000/2000" in bar and "0 failed" in bar for bar in bars)
    assert any("1000/1000" in bar and "0 failed" in bar for bar in bars)


def test_interrupting_cells_leaves_the_kernel_and_its_warm_ray_working():
    outputs, _ = _run_notebook(INTERRUPTED)
    errors = [o["ename"] for o in outputs if o["output_type"] == "error"]
    assert errors == ["KeyboardInterrupt"] * 4
    printed = [o["text"] for o in outputs if o["output_type"] == "stream"]
    assert json.loads(printed[-1]) == {"sum": 999 * 1000 // 2, "same_ray": True}
