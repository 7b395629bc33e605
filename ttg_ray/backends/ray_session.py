"""The process-wide Ray connection ttg_ray makes: started (or joined) by the first sweep
that needs it, reused by every later one, and released at exit or by ``shutdown()``.

Starting a local Ray costs seconds; a notebook calls compute() many times, so the Ray it
starts stays up for the life of the process, as the Ray that Ray's own auto-init starts
does. A later sweep asking for a different Ray (another address, another number of local
CPUs, the dashboard switched on or off) restarts it. A Ray the user started or joined
with ray.init() is used as it is and never stopped here.

Ctrl-C while a local Ray starts would leave its processes behind (ray.init is not
interruptible half-way), so SIGINT is held until ray.init returns, then the new Ray is
stopped (every process it started, found by PID) and KeyboardInterrupt raised.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import ray

from ttg_ray.errors import BackendUnavailable

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0  # an address that does not answer a TCP connect within this is down


@dataclass(frozen=True)
class RayWanted:
    """Which Ray a sweep asks for: a cluster address, or a local Ray with these settings
    (None = whatever is running, or Ray's default when starting)."""

    address: str | None = None
    num_cpus: int | None = None
    include_dashboard: bool | None = None

    def differs_from(self, running: RayWanted) -> list[str]:
        """The settings that need a restart to honour; empty when ``running`` will do."""
        if self.address != running.address:
            return ["address"]
        if self.address is not None:
            return []
        changed = []
        if self.num_cpus is not None and self.num_cpus != running.num_cpus:
            changed.append("workers")
        if self.include_dashboard is not None and self.include_dashboard != (
            running.include_dashboard is not False
        ):
            changed.append("include_dashboard")
        return changed


@dataclass
class _Session:
    wanted: RayWanted
    dashboard_url: str | None
    pids: dict[int, int] = field(default_factory=dict)  # pid -> start time, of a local Ray


_session: _Session | None = None
_lock = threading.RLock()
_exit_hook = False


def connect(wanted: RayWanted) -> str:
    """Make sure this process is connected to the Ray ``wanted`` describes; returns a
    phrase saying which one (for the log). Raises BackendUnavailable when it cannot."""
    global _session
    with _lock:
        if ray.is_initialized():
            if _session is None:
                return "the Ray this process already started or joined"
            changed = wanted.differs_from(_session.wanted)
            if not changed:
                return "the Ray ttg_ray started earlier in this process (warm)"
            log.info("restarting Ray: %s changed", ", ".join(changed))
            shutdown()
        _session = _start(wanted)
        return "a new local Ray" if wanted.address is None else f"Ray at {wanted.address}"


def shutdown() -> None:
    """Stop the Ray that ttg_ray started in this process (or leave the cluster it joined).
    A Ray the user started with ray.init() is left alone. Safe to call at any time."""
    global _session
    with _lock:
        session, _session = _session, None
        if session is None:
            return
        doomed = _family(session.pids) if session.pids else {}
        if ray.is_initialized():
            ray.shutdown()
        _reap(doomed)


def dashboard_url() -> str | None:
    """The dashboard of the Ray ttg_ray started, if it has one."""
    return _session.dashboard_url if _session is not None else None


def _quiet_ray_logs() -> dict[str, Any]:
    """Ray's own Python log lines: through ttg_ray's handlers when the CLI set them up
    (so they are JSON under --log-format json), WARNING and up, and Ray's token-auth
    notice only at DEBUG (the dashboard line says what to do about the token)."""
    ours = logging.getLogger("ttg_ray")
    debug = ours.getEffectiveLevel() <= logging.DEBUG
    if not debug:
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    if not ours.handlers:  # a library user's logging set-up decides; Ray keeps its own
        return {"logging_level": logging.DEBUG if debug else logging.WARNING}
    ray_logger = logging.getLogger("ray")
    ray_logger.handlers[:] = list(ours.handlers)
    ray_logger.propagate = False
    ray_logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    return {"configure_logging": False}


def _start(wanted: RayWanted) -> _Session:
    global _session, _exit_hook
    kwargs: dict[str, Any] = _quiet_ray_logs()
    if wanted.address is not None:
        _probe(wanted.address)
        where = f"the Ray cluster at {wanted.address}"
        kwargs["address"] = wanted.address
    else:
        where = "a local Ray"
        kwargs["address"] = "local"  # never join a cluster that happens to run here
        if wanted.num_cpus is not None:
            kwargs["num_cpus"] = wanted.num_cpus
        if wanted.include_dashboard is not None:
            kwargs["include_dashboard"] = wanted.include_dashboard
    log.info("connecting to %s", where)
    started = time.monotonic()
    before = set(_children(os.getpid()))
    interrupted = threading.Event()
    try:
        for attempt in (1, 2):
            try:
                with _sigint_held(interrupted):
                    context = ray.init(**kwargs)
                break
            except Exception as err:  # Ray raises bare Exception for a start-up time-out
                # A failed start may still have started processes: ours are the new children.
                _reap(_family({p: t for p, t in _children(os.getpid()).items() if p not in before}))
                # Ray waits a fixed 30 s for its raylet; a busy machine can take longer.
                timed_out = "timed out during startup" in str(err)
                if attempt == 2 or interrupted.is_set() or not timed_out:
                    raise
                log.warning("the local Ray timed out starting (busy machine?); trying once more")
    except Exception as err:
        if interrupted.is_set():
            raise KeyboardInterrupt from err
        if wanted.address is None:
            raise BackendUnavailable(
                f"a local Ray did not start: {err}; on a busy machine try again, or with "
                "fewer --workers; Ray's logs are in /tmp/ray/session_latest/logs"
            ) from err
        raise BackendUnavailable(
            f"cannot reach {where}: {err}; check --address / RAY_ADDRESS (and "
            "RAY_AUTH_TOKEN if the cluster uses token authentication), or give neither "
            "to run on a local Ray"
        ) from err
    pids: dict[int, int] = {}
    if wanted.address is None:
        pids = {p: t for p, t in _children(os.getpid()).items() if p not in before}
    if not _exit_hook:
        # Registered after ray.init's own exit hook, so it runs first, while the Ray
        # processes can still be found as the driver's descendants.
        atexit.register(shutdown)
        _exit_hook = True
    dashboard = getattr(context, "dashboard_url", None) or None
    session = _Session(wanted, dashboard, pids)
    if interrupted.is_set():
        _session = session
        shutdown()
        raise KeyboardInterrupt
    log.info(
        "connected to %s in %.1f s%s",
        where,
        time.monotonic() - started,
        _dashboard_note(dashboard) if dashboard else "",
    )
    return session


def _dashboard_note(dashboard: str) -> str:
    note = f"; dashboard at http://{dashboard}"
    # A local Ray turns token authentication on unless RAY_AUTH_MODE=disabled, and the
    # dashboard then asks for the token.
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":
        note += (
            " (token authentication is on: the browser asks for the token, which "
            "`ray get-auth-token` prints; RAY_AUTH_MODE=disabled turns it off)"
        )
    return note


def _probe(address: str) -> None:
    """Fail in seconds on an address nothing listens on, rather than letting Ray retry
    its GCS connection for minutes."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # let Ray interpret it (and say what is wrong)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        raise BackendUnavailable(
            f"cannot reach the Ray cluster at {address}: {err.strerror or err}; check "
            "--address / RAY_ADDRESS (host and GCS port, e.g. 10.0.0.5:6379), or give "
            "neither to run on a local Ray"
        ) from err


@contextlib.contextmanager
def _sigint_held(flag: threading.Event) -> Iterator[None]:
    """Hold SIGINT (set ``flag`` instead of raising) for the duration, in the main
    thread; elsewhere Python delivers no SIGINT anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def hold(signum: int, frame: Any) -> None:
        flag.set()

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# Process bookkeeping through /proc (Linux; elsewhere these find nothing, and Ray's own
# shutdown is all there is).


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    if fields[0] in ("Z", "X"):  # exited, waiting to be reaped: gone for our purposes
        return None
    return int(fields[1]), int(fields[19])


def _all() -> dict[int, tuple[int, int]]:
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    out = {}
    for name in names:
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                out[int(name)] = stat
    return out


def _children(parent: int) -> dict[int, int]:
    return {pid: start for pid, (ppid, start) in _all().items() if ppid == parent}


def _family(roots: dict[int, int]) -> dict[int, int]:
    """``roots`` (still the same processes) and all their descendants."""
    table = _all()
    family = {p: t for p, t in roots.items() if p in table and table[p][1] == t}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start) in table.items():
            if ppid in family and pid not in family:
                family[pid] = start
                grew = True
    return family


def _reap(processes: dict[int, int], grace_s: float = 3.0) -> None:
    """Wait for ``processes`` to exit, then SIGKILL those that have not (some Ray agents
    ignore SIGTERM); a PID now owned by another process is left alone."""
    deadline = time.monotonic() + grace_s
    alive = dict(processes)
    while alive:
        alive = {p: t for p, t in alive.items() if (_stat(p) or (0, -1))[1] == t}
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if alive:
        log.debug("killed %d leftover Ray process(es): %s", len(alive), sorted(alive))
