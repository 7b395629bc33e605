"""Turn benchmark measurements into Markdown tables, target verdicts and PNG plots."""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.startup import StartupRow
from benchmarks.systems import Timing

TTG_REFERENCE = "ttg_ray ray"
COMPUTE_ONLY = "parallel compute only"  # a reference, not a peer: it returns nothing


@dataclass(frozen=True)
class Machine:
    """Where and when: printed on every figure."""

    host: str
    date: str
    cores: int
    python: str

    @classmethod
    def here(cls) -> Machine:
        date = time.strftime("%Y-%m-%d")
        return cls(platform.node(), date, os.cpu_count() or 0, platform.python_version())

    def __str__(self) -> str:
        return f"{self.host}, {self.cores} cores, Python {self.python}, {self.date}"


@dataclass
class WorkloadResult:
    key: str
    title: str
    workers: int
    runs: dict[str, list[Timing]]
    notes: list[str] = field(default_factory=list)
    serial_name: str = "serial loop"
    chunk_size: int | None = None  # what ttg_ray's planner cuts; the chunked peers use it
    usage: dict[str, str] = field(default_factory=dict)  # system -> how it is used
    values_checked: list[str] = field(default_factory=list)  # systems whose values agreed

    def rate(self, system: str) -> float | None:
        runs = self.runs.get(system)
        return statistics.median(t.rate for t in runs) if runs else None

    @property
    def ceiling(self) -> float | None:
        """The zero-overhead ceiling: workers x the serial loop's rate in this run."""
        serial = self.rate(self.serial_name)
        return serial * self.workers if serial else None


@dataclass
class ScalePoint:
    backend: str
    n: int
    rates: list[float]
    peaks_mb: list[float]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)

    @property
    def peak_mb(self) -> float:
        return statistics.median(self.peaks_mb)


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}" if value and reference else "-"


def workload_table(w: WorkloadResult) -> str:
    ceiling, ttg = w.ceiling, w.rate(TTG_REFERENCE)
    lines = [f"### {w.key}: {w.title}", ""]
    facts = []
    if ceiling:
        facts.append(
            f"Ideal (zero-overhead ceiling): {w.workers} x serial = {ceiling:,.0f} params/s."
        )
    if w.chunk_size:
        facts.append(f"ttg_ray's chunk for this work: {w.chunk_size:,} parameters.")
    if facts:
        lines += [" ".join(facts), ""]
    lines += [
        "| system | usage | params/s (median) | min-max | x ideal | x ttg_ray ray | start-up s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in w.runs.items():
        if not runs:
            continue
        rates = [t.rate for t in runs]
        med = statistics.median(rates)
        startup = statistics.median(t.startup_s for t in runs)
        lines.append(
            f"| {name} | {w.usage.get(name, '')} | {med:,.0f} | "
            f"{min(rates):,.0f}-{max(rates):,.0f} | "
            f"{_ratio(med, ceiling)} | {_ratio(med, ttg)} | {startup:.2f} |"
        )
    if w.values_checked:
        lines.append(f"\nSame values from: {', '.join(w.values_checked)}.")
    lines += [f"\n{note}" for note in w.notes]
    return "\n".join(lines) + "\n"


def startup_table(rows: list[StartupRow]) -> str:
    lines = [
        "### Start-up and footprint: a tiny sweep (8 trivial parameters, 2 workers)",
        "",
        "Time to the first result, cold (first call in a fresh process, imports included) "
        "and warm (second call in it); memory of the whole process tree while up and idle "
        "(PSS splits shared pages between processes; RSS counts them in each). Brokers are "
        "shared services and not counted. Medians, min-max in brackets.",
        "",
        "| system | first result cold s | warm s | idle PSS MB | idle RSS MB | processes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.system} | {_spread(r.cold_s, '.2f')} | {_spread(r.warm_s, '.2f')} | "
            f"{_spread(r.pss_mb, ',.0f')} | {_spread(r.rss_mb, ',.0f')} | {r.processes} |"
        )
    return "\n".join(lines) + "\n"


def _spread(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    if len(values) < 2:
        return format(med, fmt)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def scale_table(points: list[ScalePoint]) -> str:
    lines = [
        "### Scale: trivial parameters streamed to --output",
        "",
        "| backend | parameters | params/s (median) | min-max | driver peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| ttg_ray {p.backend} | {p.n:,} | {p.rate:,.0f} | "
            f"{min(p.rates):,.0f}-{max(p.rates):,.0f} | {p.peak_mb:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def targets(results: dict[str, WorkloadResult], points: list[ScalePoint]) -> str:
    """The issue's bar, each with its measured ratio."""
    out: list[str] = []
    for key in ("W1", "W2"):
        w = results.get(key)
        if w is None or not w.ceiling:
            continue
        for name in w.runs:
            if name.startswith("ttg_ray") and w.rate(name):
                r = w.rate(name) / w.ceiling
                out.append(f"- {key} {name}: {r:.3f} of ideal (>= 0.97): {_verdict(r >= 0.97)}")
        ttg = w.rate(TTG_REFERENCE)
        for peer in ("plain Ray tasks of 100", "ray.util.multiprocessing.Pool", "Dask client.map"):
            if ttg and w.rate(peer):
                r = ttg / w.rate(peer)
                out.append(f"- {key} ttg_ray ray vs {peer}: {r:.3f}x (> 1): {_verdict(r > 1)}")
    for key, w in results.items():
        ttg = w.rate(TTG_REFERENCE)
        peers = {
            n: w.rate(n)
            for n, runs in w.runs.items()
            if runs and not n.startswith("ttg_ray") and n not in (w.serial_name, COMPUTE_ONLY)
        }
        if ttg and peers:
            best = max(peers, key=peers.get)
            r = ttg / peers[best]
            out.append(f"- {key} ttg_ray ray vs the fastest peer ({best}): {r:.3f}x")
    for key in ("W0", "W7"):  # issue 17: cheap functions
        out.extend(_overhead_targets(key, results.get(key)))
    w3 = results.get("W3")
    if w3 and w3.ceiling:
        for name in w3.runs:
            if name.startswith("ttg_ray") and w3.rate(name):
                r = w3.rate(name) / w3.ceiling
                out.append(f"- W3 {name}: {r:.3f} of ideal (>= 0.90): {_verdict(r >= 0.9)}")
    by_backend: dict[str, dict[int, ScalePoint]] = {}
    for p in points:
        by_backend.setdefault(p.backend, {})[p.n] = p
    for backend, sizes in by_backend.items():
        if len(sizes) < 2:
            continue
        small, large = sorted(sizes)[-2:]
        a, b = sizes[small], sizes[large]
        rate, mem = b.rate / a.rate, b.peak_mb / a.peak_mb
        out.append(
            f"- Scale {backend} {large:,} vs {small:,}: throughput {rate:.3f}x (>= 0.90): "
            f"{_verdict(rate >= 0.9)}; peak memory {mem:.3f}x (<= 1.10): {_verdict(mem <= 1.1)}"
        )
    return "### Targets\n\n" + ("\n".join(out) if out else "(none measured)") + "\n"


def _overhead_targets(key: str, w: WorkloadResult | None) -> list[str]:
    """Issue 17's targets for a workload of cheap parameters: >= 1.3x Pool.map and >= 0.5
    of the ideal; and how far any system could get past Pool.map on these cores."""
    ttg = w.rate(TTG_REFERENCE) if w else None
    if not ttg:
        return []
    out = []
    pool = w.rate("multiprocessing.Pool.map")
    if pool:
        r = ttg / pool
        out.append(f"- {key} ttg_ray ray vs Pool.map: {r:.3f}x (>= 1.3): {_verdict(r >= 1.3)}")
        if w.rate(COMPUTE_ONLY):
            r = w.rate(COMPUTE_ONLY) / pool
            out.append(
                f"- {key} parallel compute only vs Pool.map: {r:.3f}x (the most any system gets)"
            )
    if w.ceiling:
        r = ttg / w.ceiling
        out.append(f"- {key} ttg_ray ray: {r:.3f} of ideal (>= 0.5): {_verdict(r >= 0.5)}")
    return out


def _kind(name: str, usage: str) -> str:
    if name.startswith("ttg_ray"):
        return "ttg_ray"
    prefix = usage.split(":")[0]
    return prefix if prefix in ("best", "naive", "reference") else "default"


COLORS = {
    "ttg_ray": "tab:blue",
    "best": "tab:green",
    "naive": "tab:orange",
    "default": "tab:gray",
    "reference": "black",
}
KIND_LABELS = {
    "ttg_ray": "ttg_ray",
    "best": "peer, best practice",
    "naive": "peer, naive use",
    "default": "peer, default settings",
}


def plot(
    results: dict[str, WorkloadResult],
    points: list[ScalePoint],
    startup: list[StartupRow],
    stem: Path,
    machine: Machine,
) -> list[Path]:
    """One figure per family: throughput against the ideal (a panel per workload), start-up
    (time to first result, cold and warm), memory (idle process tree, and the driver
    against sweep size). Returns the PNG files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = [
        ("throughput", _throughput_figure(plt, results)),
        ("startup", _startup_figure(plt, startup)),
        ("memory", _memory_figure(plt, startup, points)),
    ]
    written = []
    for name, fig in figures:
        if fig is None:
            continue
        fig.text(0.995, 0.005, str(machine), ha="right", va="bottom", fontsize=8, color="dimgray")
        fig.tight_layout(rect=(0, 0.02, 1, 1))
        path = stem.with_name(f"{stem.name}-{name}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _throughput_figure(plt, results: dict[str, WorkloadResult]):
    shown = [w for w in results.values() if w.ceiling]
    if not shown:
        return None
    cols = min(2, len(shown))
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 0.9 + 0.28 * 16 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.set_visible(False)
    for ax, w in zip(axes.flat, shown):
        names = [n for n in w.runs if w.runs[n] and n != w.serial_name]
        meds = [w.rate(n) / w.ceiling for n in names]
        lows = [m - min(t.rate for t in w.runs[n]) / w.ceiling for n, m in zip(names, meds)]
        highs = [max(t.rate for t in w.runs[n]) / w.ceiling - m for n, m in zip(names, meds)]
        kinds = [_kind(n, w.usage.get(n, "")) for n in names]
        ax.barh(names, meds, xerr=[lows, highs], color=[COLORS[k] for k in kinds])
        for y, m in enumerate(meds):
            ax.text(m, y, f" {m:.2f}", va="center", fontsize=7)
        ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{w.key}: {w.title}", fontsize=9)
        ax.set_xlabel("throughput / ideal (workers x serial rate); 1 = no overhead")
        ax.set_xlim(0, max(1.15, max(meds, default=1) * 1.15))
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[k]) for k in KIND_LABELS]
    fig.legend(handles, KIND_LABELS.values(), loc="upper right", fontsize=8, ncol=4)
    return fig


def _startup_figure(plt, rows: list[StartupRow]):
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.8 + 0.45 * len(rows)))
    names = [r.system for r in rows]
    ys = range(len(rows))
    cold = [r.median("cold_s") for r in rows]
    warm = [r.median("warm_s") for r in rows]
    ax.barh([y - 0.2 for y in ys], cold, height=0.4, label="cold: first call in a process")
    ax.barh([y + 0.2 for y in ys], warm, height=0.4, label="warm: second call")
    for y, c, w in zip(ys, cold, warm):
        ax.text(c, y - 0.2, f" {c:.2f} s", va="center", fontsize=7)
        ax.text(w, y + 0.2, f" {w:.2f} s", va="center", fontsize=7)
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("time to the first result of a tiny sweep (s, log scale)")
    ax.set_title("Start-up: time to first result, cold and warm")
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    return fig


def _memory_figure(plt, rows: list[StartupRow], points: list[ScalePoint]):
    panels = bool(rows) + bool(points)
    if not panels:
        return None
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4.2), squeeze=False)
    axes = list(axes.flat)
    if rows:
        ax = axes.pop(0)
        names = [r.system for r in rows]
        pss = [r.median("pss_mb") for r in rows]
        ax.barh(names, pss, color="tab:purple")
        for y, v in enumerate(pss):
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=7)
        ax.set_xlabel("idle footprint, whole process tree (PSS, MB)")
        ax.set_title("Memory while up and idle")
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
    if points:
        ax = axes.pop(0)
        for backend in dict.fromkeys(p.backend for p in points):
            mine = sorted((p for p in points if p.backend == backend), key=lambda p: p.n)
            ax.plot([p.n for p in mine], [p.peak_mb for p in mine], marker="o", label=backend)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("sweep size (parameters, streamed to --output)")
        ax.set_ylabel("driver peak RSS (MB)")
        ax.set_title("ttg_ray driver memory against sweep size")
        ax.legend(fontsize=8)
    return fig
