"""``python -m ttg_ray.run``: run a parameter sweep from the command line.

Exit codes: 0 every parameter succeeded, 1 some failed (listed), 2 bad usage or
input, 3 backend unreachable, 130 interrupted (rerun with --resume).
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ttg_ray.api import stream
from ttg_ray.backends.base import BACKENDS
from ttg_ray.cli.args import integer, number
from ttg_ray.cli.exits import run_main
from ttg_ray.cli.logs import configure_logging
from ttg_ray.core.events import lifecycle
from ttg_ray.core.functions import DEFAULT_FUNCTION, FunctionRef, accepts_kwarg
from ttg_ray.core.params import (
    Grid,
    ParamList,
    ParamRange,
    Space,
    parse_range,
    require_params,
)
from ttg_ray.core.sampling import QuasiRandom, RandomSample, parse_axis_text
from ttg_ray.engine.progress import ProgressDisplay, wanted_by_default
from ttg_ray.errors import InvalidSpace, UsageError

log = logging.getLogger("ttg_ray.run")

DEFAULT_PARAMS = 10_000
DEFAULT_WORK_MS = 1.0


class _Parser(argparse.ArgumentParser):
    """Bad usage gets one line, not the whole usage text; a misspelt option, the
    closest valid one."""

    def error(self, message: str) -> None:  # type: ignore[override]
        hint = self._closest_option(message)
        self.exit(2, f"error: {message}; {hint}see {self.prog} --help\n")

    def _closest_option(self, message: str) -> str:
        if not message.startswith("unrecognized arguments:"):
            return ""
        known = [o for o in self._option_string_actions if o.startswith("--")]
        for word in message.split(":", 1)[1].split():
            close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.7)
            if word.startswith("--") and close:
                return f"did you mean {close[0]}? "
        return ""


EPILOG = """\
exit codes:
  0    every parameter succeeded
  1    some parameters failed (listed; all are in --output)
  2    bad usage or input (nothing was started)
  3    backend unreachable (Ray address, Redis, RabbitMQ)
  130  interrupted (Ctrl-C); rerun with the same --output and --resume

examples:
  python -m ttg_ray.run --params 100000 --function ttg_ray.workloads:cpu_bound
  python -m ttg_ray.run --grid lr=log:1e-4:1e-1:20 --grid layers=1,2,3 --function mymod:train
  python -m ttg_ray.run --sample 200 --sampler sobol --grid lr=loguniform:1e-4:1e-1 \\
      --grid act=choice:relu,tanh --function mymod:train --output runs.jsonl
  python -m ttg_ray.run --range 0:1000000 --output out.jsonl --resume
  python -m ttg_ray.run --backend redis --workers 4 --params 10000
"""


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m ttg_ray.run",
        description="Run f(param) over a parameter space, in chunks, on Ray, Redis or RabbitMQ.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--backend",
        choices=sorted(BACKENDS),
        default="ray",
        help="where chunks run (default: ray; a local Ray unless --address / RAY_ADDRESS)",
    )
    space = p.add_argument_group("parameter space (one of; default --params 10000)")
    space.add_argument("--params", type=integer(0), metavar="N", help="the integers 0..N-1")
    space.add_argument("--range", metavar="START:STOP[:STEP]", help="an integer range")
    space.add_argument(
        "--grid",
        action="append",
        metavar="NAME=VALUES",
        help="a grid axis, repeatable: NAME=1,2,3 | NAME=START:STOP[:STEP] (floats allowed: "
        "0:1:0.1) | NAME=lin:START:STOP:NUM | NAME=log:LOW:HIGH:NUM. With --sample: "
        "NAME=uniform:LOW:HIGH | loguniform:LOW:HIGH | randint:LOW:HIGH | choice:a,b,c",
    )
    space.add_argument(
        "--sample",
        type=integer(1),
        metavar="N",
        help="draw N points from the --grid distributions instead of the full grid",
    )
    space.add_argument(
        "--sampler",
        choices=("random", "sobol", "lhs"),
        default="random",
        help="with --sample: random draws, or a quasi-random design (sobol, lhs; need "
        "scipy) (default: random)",
    )
    space.add_argument("--seed", type=int, default=0, help="with --sample (default: 0)")
    space.add_argument(
        "--values", metavar="JSON|@FILE", help="an explicit JSON list of parameters, or @file"
    )
    fn = p.add_argument_group("function")
    fn.add_argument(
        "--function",
        default=DEFAULT_FUNCTION,
        metavar="MODULE:ATTR",
        help=f"the function to run, importable on the workers (default: {DEFAULT_FUNCTION})",
    )
    fn.add_argument(
        "--work-ms",
        type=number(0),
        metavar="MS",
        help=f"simulated work per parameter for the built-in workloads "
        f"(default {DEFAULT_WORK_MS:g} where the function takes it)",
    )
    fn.add_argument("--kwargs", metavar="JSON", help="keyword arguments for the function")
    fn.add_argument(
        "--setup",
        metavar="MODULE:ATTR",
        help="run once per worker process (load a model, a data set); the function is "
        "then called as f(param, what_setup_returned); importable on the workers, as "
        "--function is",
    )
    run = p.add_argument_group("execution")
    run.add_argument(
        "--chunk-size",
        type=integer(1),
        metavar="N",
        help="parameters per task (default: automatic, from measured task times)",
    )
    run.add_argument(
        "--workers",
        type=integer(1),
        metavar="N",
        help="local Ray CPUs, or local queue workers (default: the machine's CPUs)",
    )
    run.add_argument(
        "--max-retries",
        type=integer(0),
        default=3,
        metavar="N",
        help="runs again of a parameter that raised, or of a chunk whose worker died (default: 3)",
    )
    run.add_argument(
        "--timeout-s",
        type=number(0.001),
        metavar="S",
        help="a parameter running longer fails with TimeoutError (its worker is replaced)",
    )
    run.add_argument(
        "--max-memory-mb",
        type=number(1),
        metavar="MB",
        help="a worker growing past this fails its parameter with MemoryError",
    )
    run.add_argument("--address", metavar="ADDR", help="Ray cluster address (or RAY_ADDRESS)")
    run.add_argument("--spread", action="store_true", help="Ray: spread chunks across nodes")
    run.add_argument(
        "--autoscale-cpus",
        type=integer(0),
        default=0,
        metavar="N",
        help="Ray: ask the cluster's autoscaler for up to N CPUs while work remains",
    )
    run.add_argument("--no-dashboard", action="store_true", help="local Ray: no dashboard")
    run.add_argument("--redis-url", metavar="URL", help="redis backend (or TTG_REDIS_URL)")
    run.add_argument("--amqp-url", metavar="URL", help="rabbitmq backend (or TTG_AMQP_URL)")
    run.add_argument(
        "--external-workers", action="store_true", help="queues: start no local workers"
    )
    out = p.add_argument_group("output")
    out.add_argument(
        "--output",
        metavar="PATH",
        help="results: PATH.jsonl (one JSON line each) or PATH.parquet (a table)",
    )
    out.add_argument("--resume", action="store_true", help="skip what --output already holds")
    out.add_argument(
        "--retry-failed",
        action="store_true",
        help="run again only the parameters --output records as failed",
    )
    out.add_argument("--summary-json", metavar="PATH", help="write the summary as JSON")
    out.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="(default: text)"
    )
    out.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="(default: INFO; Ray's own messages show at DEBUG)",
    )
    out.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it shows only on a terminal anyway)",
    )
    return p


def space_from_args(args: argparse.Namespace) -> Space:
    given = [
        name for name in ("params", "range", "grid", "values") if getattr(args, name) is not None
    ]
    if len(given) > 1:
        raise UsageError(f"give only one of --params, --range, --grid, --values (got {given})")
    if args.sample is not None and args.grid is None:
        raise UsageError(
            "--sample draws from --grid distributions: add e.g. --grid lr=loguniform:1e-4:1e-1"
        )
    return require_params(
        _space(args),
        lambda: _given(args),
        "give at least one parameter (for --range START:STOP, STOP above START)",
    )


def _space(args: argparse.Namespace) -> Space:
    if args.range is not None:
        r = parse_range(args.range)
        return ParamRange(r.start, r.stop, r.step)
    if args.grid is not None:
        sampled = args.sample is not None
        axes = dict(parse_axis_text(text, sampled) for text in args.grid)
        if len(axes) != len(args.grid):
            raise InvalidSpace("each --grid axis name may be given only once")
        if not sampled:
            return Grid(axes)
        if args.sampler == "random":
            return RandomSample(args.sample, axes, seed=args.seed)
        return QuasiRandom(args.sample, axes, method=args.sampler, seed=args.seed)
    if args.values is not None:
        return ParamList(_load_values(args.values))
    return ParamRange(0, DEFAULT_PARAMS if args.params is None else args.params)


def _given(args: argparse.Namespace) -> str:
    for name in ("range", "values", "params"):
        value = getattr(args, name)
        if value is not None:
            return f"--{name} {value}"
    return "--params 0"


def _load_values(text: str) -> list[Any]:
    try:
        raw = Path(text[1:]).read_text() if text.startswith("@") else text
    except OSError as err:
        raise InvalidSpace(f"cannot read --values file {text[1:]}: {err.strerror}") from err
    try:
        values = json.loads(raw)
    except ValueError as err:
        raise InvalidSpace(f"--values must be a JSON list: {err}") from err
    if not isinstance(values, list):
        raise InvalidSpace(f"--values must be a JSON list, got {type(values).__name__}")
    return values


def function_from_args(args: argparse.Namespace):
    kwargs: dict[str, Any] = {}
    if args.kwargs:
        try:
            kwargs = json.loads(args.kwargs)
        except ValueError as err:
            raise UsageError(f"--kwargs must be a JSON object: {err}") from err
        if not isinstance(kwargs, dict):
            raise UsageError("--kwargs must be a JSON object, e.g. '{\"work_ms\": 5}'")
    fn = FunctionRef.parse(args.function).resolve()
    takes_work = accepts_kwarg(fn, "work_ms")
    if args.work_ms is not None and not takes_work:
        raise UsageError(f"--work-ms: {args.function} takes no work_ms argument")
    if takes_work and "work_ms" not in kwargs:
        kwargs["work_ms"] = DEFAULT_WORK_MS if args.work_ms is None else args.work_ms
    try:
        # With --setup the function also takes what setup returned.
        positional = (None, None) if getattr(args, "setup", None) else (None,)
        inspect.signature(fn).bind(*positional, **kwargs)
    except TypeError as err:
        raise UsageError(f"--kwargs do not fit {args.function}: {err}") from None
    except ValueError:
        pass  # a builtin without a signature: let the call decide
    return FunctionRef.parse(args.function, kwargs).resolve()


def _check_output(path: str | None) -> None:
    """--output: a Parquet directory (``.parquet``) needs a parent that exists; a result
    file must be writable (checked as any other file)."""
    if path is not None and Path(path).suffix == ".parquet":
        parent = Path(path).resolve().parent
        if not parent.is_dir():
            raise UsageError(
                f"--output {path}: cannot write there, {parent} does not exist; create it "
                f"(mkdir -p {parent}) or choose another path"
            )
        return
    _check_writable(path, "--output")


def _check_writable(path: str | None, flag: str) -> None:
    """Fail before the sweep, not after it, if ``path`` cannot be written."""
    if path is None:
        return
    target = Path(path)
    existed = target.exists()
    try:
        with open(target, "a"):
            pass
    except IsADirectoryError as err:
        raise UsageError(
            f"{flag} {path}: cannot write there, it is a directory; give a file path in it"
        ) from err
    except FileNotFoundError as err:
        raise UsageError(
            f"{flag} {path}: cannot write there, {target.parent} does not exist; create it "
            f"(mkdir -p {target.parent}) or choose another path"
        ) from err
    except OSError as err:
        raise UsageError(
            f"{flag} {path}: cannot write there ({err.strerror}); choose a writable path"
        ) from err
    if not existed:
        target.unlink()


def _catch_sigint() -> threading.Event:
    """SIGINT raises KeyboardInterrupt, as usual, and also sets the returned flag."""
    flag = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        flag.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    return flag


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_format, args.log_level)
    # The failed event is for log collectors; on a terminal one line is enough.
    on_error = (
        (lambda err: lifecycle(log, "failed", str(err))) if args.log_format == "json" else None
    )
    return run_main(lambda: _run(args), on_error)


def _run(args: argparse.Namespace) -> int:
    space = space_from_args(args)
    fn = function_from_args(args)
    _check_writable(args.summary_json, "--summary-json")
    _check_output(args.output)
    for flag, given in (("--resume", args.resume), ("--retry-failed", args.retry_failed)):
        if given and not args.output:
            raise UsageError(f"{flag} needs --output PATH.jsonl (the file to resume from)")
    bar = (
        ProgressDisplay(description=args.backend, failed=lambda: sweep.summary.failed)
        if not args.no_progress and wanted_by_default()
        else None
    )
    options: dict[str, Any] = {}
    if args.backend == "ray":
        options.update(spread=args.spread, address=args.address)
        if args.autoscale_cpus:
            options["autoscale_cpus"] = args.autoscale_cpus
        if args.no_dashboard:
            options["include_dashboard"] = False
    else:
        options.update(
            redis_url=args.redis_url,
            amqp_url=args.amqp_url,
            external_workers=args.external_workers,
            allow_modules=tuple(
                ref.partition(":")[0] for ref in (args.function, args.setup) if ref
            ),
        )
    sweep = stream(
        fn,
        space,
        backend=args.backend,
        chunk_size=args.chunk_size,
        workers=args.workers,
        max_retries=args.max_retries,
        timeout_s=args.timeout_s,
        max_memory_mb=args.max_memory_mb,
        output=args.output,
        resume=args.resume,
        on_error="record",  # every parameter runs; failures are listed and exit 1
        setup=FunctionRef.parse(args.setup).resolve() if args.setup else None,
        retry_failed=args.retry_failed,
        progress=bar if bar is not None else False,
        **options,
    )
    interrupted = _catch_sigint()
    try:
        for _ in sweep.batches():
            if interrupted.is_set():  # in case a library swallowed the KeyboardInterrupt
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        saved = f"; results so far are in {args.output}, rerun with --resume" if args.output else ""
        print(f"\ninterrupted{saved}", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    summary = sweep.summary
    print(summary.format_table())
    for failure in sweep.failures[:10]:
        print(
            f"failed: index {failure.index} param {failure.param!r}: {failure.type}: "
            f"{failure.message} (after {failure.attempts} attempt(s))"
        )
    if len(sweep.failures) > 10:
        where = f" (all are in {args.output})" if args.output else ""
        print(f"... and {len(sweep.failures) - 10} more failures{where}")
    if args.summary_json:
        Path(args.summary_json).write_text(summary.to_json() + "\n")
    return 0 if sweep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
