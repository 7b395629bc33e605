"""Private, secured brokers for tests: a throwaway CA made with openssl, a TLS-only
redis-server with a least-privilege ACL user, and a RabbitMQ node with only a TLS
listener and a least-privilege user on its own vhost. Random free ports, temp dirs,
stopped by PID. The rights granted here are the ones README.md and kuberay/ document."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from benchmarks.faults import free_port  # the one port picker of tests and chaos runs

# The Redis rights of the ttg user (README "Security"; kuberay/redis.yaml): its own keys,
# no channels, and only the commands the adapter sends (ZRANGEBYSCORE, ZREM and XADD
# also inside its EVALSHA script, where ACLs apply too).
REDIS_ACL_RULES = (
    "resetkeys ~ttg:* resetchannels -@all +ping +echo +multi +exec +evalsha +script|load "
    "+get +incrby +del +expire +xadd +xread +xreadgroup +xack +xdel +xlen +xrange "
    "+xautoclaim +xclaim +xpending +xinfo|consumers +xgroup|create +xgroup|createconsumer "
    "+zadd +zrem +zrangebyscore +zcard +hset +hdel +hgetall"
)
# The RabbitMQ rights of the ttg user on vhost ttg: configure, write, read. Publishing
# through the default exchange (tasks, retries, dead letters, results) needs write on
# amq.default.
RABBIT_PERMISSIONS = (r"^ttg\.", r"^(ttg\..*|amq\.default)$", r"^ttg\.")
TTG_USER = "ttg"
TTG_VHOST = "ttg"


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate for 127.0.0.1/localhost, a client
    certificate, and a second CA that signed neither (the wrong one)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _new_ca(name: str, cwd: Path) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
        "-subj", f"/CN=ttg test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd,
    )  # fmt: skip


def _new_leaf(name: str, usage: str, cwd: Path) -> None:
    ext = cwd / f"{name}.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext.name, cwd=cwd,
    )  # fmt: skip


def make_pki(directory: Path) -> Pki:
    """A throwaway CA with server and client certificates, in ``directory``."""
    _new_ca("ca", directory)
    _new_ca("wrong-ca", directory)
    _new_leaf("server", "serverAuth", directory)
    _new_leaf("client", "clientAuth", directory)
    for pem in directory.iterdir():
        pem.chmod(0o644)  # the RabbitMQ node runs as the rabbitmq user
    d = directory
    return Pki(
        d / "ca.pem", d / "server.pem", d / "server.key", d / "client.pem", d / "client.key",
        d / "wrong-ca.pem",
    )  # fmt: skip


def shared_tempdir(prefix: str) -> Path:
    """A temp dir others may read: the rabbitmq user cannot traverse pytest's tmp_path."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o777)
    return path


def wait_for(check, proc: subprocess.Popen, what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            check()
            return
        except Exception:
            assert proc.poll() is None, f"{what} exited during start"
            assert time.monotonic() < deadline, f"{what} did not start in {timeout_s} s"
            time.sleep(0.2)


class TlsRedis:
    """redis-server with only a TLS port (client certificates required), the default
    user off and the ttg user with REDIS_ACL_RULES."""

    def __init__(self, pki: Pki, directory: Path):
        self.pki, self.dir, self.port = pki, directory, free_port()
        self.password = secrets.token_hex(16)
        self.admin_password = secrets.token_hex(16)  # for the test to read ACL LOG
        self.proc: subprocess.Popen | None = None

    def url(self, ca: Path | None = None, client_cert: bool = True) -> str:
        """A rediss:// URL for the ttg user; CA and client certificate as URL parameters
        (``ca=None`` leaves them to TTG_TLS_*)."""
        url = f"rediss://{TTG_USER}:{self.password}@127.0.0.1:{self.port}/0"
        if ca is None:
            return url
        query = f"ssl_ca_certs={quote(str(ca))}"
        if client_cert:
            query += f"&ssl_certfile={quote(str(self.pki.client_cert))}"
            query += f"&ssl_keyfile={quote(str(self.pki.client_key))}"
        return f"{url}?{query}"

    def start(self) -> None:
        conf = self.dir / "redis.conf"
        # In a file, not on the command line, so the password never shows in `ps`.
        conf.write_text(
            f"port 0\ntls-port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f'save ""\nappendonly no\ntls-cert-file {self.pki.server_cert}\n'
            f"tls-key-file {self.pki.server_key}\ntls-ca-cert-file {self.pki.ca}\n"
            "tls-auth-clients yes\nuser default off\n"
            f"user {TTG_USER} on >{self.password} {REDIS_ACL_RULES}\n"
            f"user admin on >{self.admin_password} ~* &* +@all\n"
        )
        self.proc = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL)
        wait_for(
            lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close(),
            self.proc,
            "redis-server",
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def rabbit_password_hash(password: str) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


class TlsRabbit:
    """A RabbitMQ node of its own with only a TLS listener (client certificates
    required), no guest, and the ttg user with RABBIT_PERMISSIONS on vhost ttg."""

    def __init__(self, pki: Pki):
        self.pki = pki
        self.dir = shared_tempdir("ttg-rabbit-tls-")
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        configure, write, read = RABBIT_PERMISSIONS
        definitions = {
            "users": [
                {
                    "name": TTG_USER,
                    "password_hash": rabbit_password_hash(self.password),
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": [],
                }
            ],
            "vhosts": [{"name": TTG_VHOST}],
            "permissions": [
                {"user": TTG_USER, "vhost": TTG_VHOST, "configure": configure,
                 "write": write, "read": read}
            ],
        }  # fmt: skip
        files = {
            "definitions.json": json.dumps(definitions),
            "plugins": "[].",
            "rabbitmq.conf": (
                f"listeners.tcp = none\nlisteners.ssl.default = {self.port}\n"
                f"ssl_options.cacertfile = {pki.ca}\nssl_options.certfile = {pki.server_cert}\n"
                f"ssl_options.keyfile = {pki.server_key}\nssl_options.verify = verify_peer\n"
                "ssl_options.fail_if_no_peer_cert = true\n"
                f"load_definitions = {self.dir / 'definitions.json'}\n"
            ),
        }
        for name, text in files.items():
            (self.dir / name).write_text(text)
            (self.dir / name).chmod(0o666)
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": f"ttgtls{self.port}@localhost",
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        }
        self.env.pop("RABBITMQ_NODE_PORT", None)

    def url(self, ca: Path | None = None, client_cert: bool = True) -> str:
        """An amqps:// URL for the ttg user on vhost ttg; CA and client certificate in
        pika's ssl_options= URL parameter (``ca=None`` leaves them to TTG_TLS_*)."""
        url = f"amqps://{TTG_USER}:{self.password}@127.0.0.1:{self.port}/{TTG_VHOST}"
        if ca is None:
            return url
        options = {"ca_certs": str(ca)}
        if client_cert:
            options |= {"certfile": str(self.pki.client_cert), "keyfile": str(self.pki.client_key)}
        return f"{url}?ssl_options={quote(repr(options))}"

    def start(self, ready) -> None:
        """Start the node; ``ready()`` raises until it accepts a client."""
        self.proc = subprocess.Popen(
            ["rabbitmq-server"], env=self.env, stdout=subprocess.DEVNULL, start_new_session=True
        )
        wait_for(ready, self.proc, "rabbitmq-server", timeout_s=120)

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            beam = int((self.dir / "pid").read_text().strip())
            os.kill(beam, signal.SIGTERM)
            self.proc.wait(60)
        shutil.rmtree(self.dir, ignore_errors=True)
