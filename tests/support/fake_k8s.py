"""A Kubernetes API server stand-in for ``python -m ttg_ray.kube`` tests: a real HTTP server
on 127.0.0.1 that serves ray.io/v1 custom objects at the REST paths the official client
calls, answers what a real API server answers (Status bodies, the plain-text 404 of a
resource that no CRD serves), records every request, and writes a kubeconfig for itself."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

OBJECT_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<namespace>[^/]+)"
    r"/(?P<plural>[^/]+)(?:/(?P<name>[^/?]+))?$"
)
PLURALS = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayService": "rayservices"}


def object_path(plural: str, name: str, namespace: str = "default") -> str:
    return f"/apis/ray.io/v1/namespaces/{namespace}/{plural}/{name}"


def status_body(code: int, reason: str, message: str, **details: str) -> dict:
    """A metav1.Status as the API server sends it with an error."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    body.update(message=message, reason=reason, code=code)
    if details:
        body["details"] = details
    return body


def forbidden(plural: str, name: str, verb: str, namespace: str = "default") -> dict:
    user = "system:serviceaccount:default:sweeper"
    return status_body(
        403,
        "Forbidden",
        f'{plural}.ray.io "{name}" is forbidden: User "{user}" cannot {verb} resource '
        f'"{plural}" in API group "ray.io" in the namespace "{namespace}"',
        name=name,
        group="ray.io",
        kind=plural,
    )


def use_kubeconfig(path: Path, monkeypatch: Any) -> Path:
    """``KUBECONFIG=path`` for this process: the client reads KUBECONFIG once, when
    ``kubernetes.config`` is imported, so setting the variable in a test is too late."""
    from kubernetes.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # no in-cluster fallback
    return path


@dataclass
class Request:
    method: str
    path: str
    body: Any
    authorization: str | None


@dataclass
class FakeKubeApi:
    """``objects`` maps a REST path to the object served there; ``served`` are the ray.io
    plurals whose CRD is installed; ``replies[(method, path)] = (code, body)`` overrides
    one answer (a dict body goes out as JSON). Use as a context manager."""

    token: str = "test-token"
    served: set[str] = field(default_factory=lambda: {"rayclusters", "rayjobs", "rayservices"})
    objects: dict[str, dict] = field(default_factory=dict)
    replies: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def add(self, obj: dict) -> str:
        meta = obj["metadata"]
        path = object_path(PLURALS[obj["kind"]], meta["name"], meta.get("namespace", "default"))
        self.objects[path] = obj
        return path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, directory: Path) -> Path:
        """A kubeconfig file whose current context is this server, with a bearer token."""
        path = directory / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    def use(self, directory: Path, monkeypatch: Any) -> Path:
        """Point the kubernetes client at this server, as ``KUBECONFIG`` would."""
        return use_kubeconfig(self.kubeconfig(directory), monkeypatch)

    def __enter__(self) -> FakeKubeApi:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if (method, path) in self.replies:
            return self.replies[(method, path)]
        match = OBJECT_PATH.match(path)
        if not match or match["group"] != "ray.io" or match["plural"] not in self.served:
            return 404, "404 page not found\n"  # what the API server says for no such resource
        if match["name"] is None:
            return self._create(match, path, body)
        return self._on_object(method, match, path, body)

    def _create(self, match: re.Match, path: str, body: dict) -> tuple[int, Any]:
        where = f"{path}/{body['metadata']['name']}"
        if where in self.objects:
            return 409, status_body(409, "AlreadyExists", f"{where} already exists")
        self.objects[where] = dict(body, metadata=dict(body["metadata"], resourceVersion="1"))
        return 201, self.objects[where]

    def _on_object(self, method: str, match: re.Match, path: str, body: Any) -> tuple[int, Any]:
        if path not in self.objects:
            plural, name = match["plural"], match["name"]
            return 404, status_body(
                404,
                "NotFound",
                f'{plural}.ray.io "{name}" not found',
                name=name,
                group="ray.io",
                kind=plural,
            )
        if method == "GET":
            return 200, self.objects[path]
        if method == "DELETE":  # a custom resource's DELETE returns the object it deleted
            return 200, self.objects.pop(path)
        self.objects[path] = body
        return 200, body


def _handler(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            path = self.path.split("?", 1)[0]
            auth = self.headers.get("Authorization")
            api.requests.append(Request(self.command, path, body, auth))
            if auth == f"Bearer {api.token}":
                code, reply = api.answer(self.command, path, body)
            else:
                code, reply = 401, status_body(401, "Unauthorized", "Unauthorized")
            data = (reply if isinstance(reply, str) else json.dumps(reply)).encode()
            self.send_response(code)
            kind = "text/plain; charset=utf-8" if isinstance(reply, str) else "application/json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_DELETE = do_POST = do_PUT = do_PATCH = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
