"""The layers of ttg_ray/ as an import rule: each folder imports only from itself and the
layers below it, and each client library is imported in one place (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ttg_ray"
SHARED = {"ttg_ray.errors", "ttg_ray.config"}

# What each layer may import from ttg_ray, besides itself and SHARED.
ALLOWED = {
    "core": set(),
    "queues": {"ttg_ray.core"},
    "backends": {"ttg_ray.core", "ttg_ray.queues"},
    "engine": {"ttg_ray.core", "ttg_ray.backends.base"},
    "api": {"ttg_ray.core", "ttg_ray.engine", "ttg_ray.backends.base"},
    "cli": {"ttg_ray.core", "ttg_ray.engine", "ttg_ray.backends", "ttg_ray.queues", "ttg_ray.api"},
    "kube": {"ttg_ray.backends.ray_jobs", "ttg_ray.cli.exits", "ttg_ray.engine.store"},
    "config": set(),
    "errors": set(),
    "workloads": set(),
}
# Client libraries, and the only modules allowed to import each.
CLIENTS = {
    "ray": (
        "backends/ray.py",
        "backends/ray_cancel.py",
        "backends/ray_jobs.py",
        "backends/ray_session.py",
    ),
    "redis": ("queues/redis_streams.py",),
    "pika": ("queues/rabbitmq.py",),
    "kubernetes": ("kube/",),
    "yaml": ("kube/",),
    "jsonschema": (),
    "pandas": ("engine/table.py",),
    "pyarrow": ("engine/table.py",),
}
SHIMS = {"run.py", "worker.py", "monitor.py", "kuberay.py", "__init__.py"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _allowed(layer: str, name: str) -> bool:
    prefixes = ALLOWED[layer] | SHARED | {f"ttg_ray.{layer}"}
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_layer_imports_only_the_layers_below(path):
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) == 1 and rel.name in SHIMS:
        return  # the front door and the `python -m` shims may import any layer
    layer = _layer(path)
    assert layer in ALLOWED, f"{rel}: a module outside the known layers"
    wrong = [
        n
        for n in _imports(path)
        if n.startswith("ttg_ray.") and n != "ttg_ray" and not _allowed(layer, n)
    ]
    assert not wrong, f"{rel} ({layer}) imports above its layer: {wrong}"


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_each_client_library_is_imported_in_one_place(client):
    importers = {
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if any(n == client or n.startswith(client + ".") for n in _imports(path))
    }
    allowed = CLIENTS[client]
    stray = sorted(m for m in importers if not any(m == a or m.startswith(a) for a in allowed))
    assert not stray, f"{client} is imported outside {allowed or 'the package'}: {stray}"


def test_the_package_root_holds_only_a_handful_of_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == sorted(
        [
            "__init__.py",
            "api.py",
            "config.py",
            "errors.py",
            "workloads.py",
            *SHIMS - {"__init__.py"},
        ]
    )
