"""Turn benchmark measurements into Markdown tables, target verdicts and PNG plots."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.systems import Timing

TTG_REFERENCE = "ttg_ray ray"


@dataclass
class WorkloadResult:
    key: str
    title: str
    workers: int
    runs: dict[str, list[Timing]]
    notes: list[str] = field(default_factory=list)
    serial_name: str = "serial loop"

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
    if ceiling:
        lines += [
            f"Ideal (zero-overhead ceiling): {w.workers} x serial = {ceiling:,.0f} params/s.",
            "",
        ]
    lines += [
        "| system | params/s (median) | min-max | x ideal | x ttg_ray ray | start-up s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in w.runs.items():
        if not runs:
            continue
        rates = [t.rate for t in runs]
        med = statistics.median(rates)
        startup = statistics.median(t.startup_s for t in runs)
        lines.append(
            f"| {name} | {med:,.0f} | {min(rates):,.0f}-{max(rates):,.0f} | "
            f"{_ratio(med, ceiling)} | {_ratio(med, ttg)} | {startup:.2f} |"
        )
    lines += [f"\n{note}" for note in w.notes]
    return "\n".join(lines) + "\n"


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
    w0 = results.get("W0")
    if w0 and w0.rate(TTG_REFERENCE) and w0.rate("multiprocessing.Pool.map"):
        r = w0.rate(TTG_REFERENCE) / w0.rate("multiprocessing.Pool.map")
        out.append(f"- W0 ttg_ray ray vs Pool.map: {r:.3f}x (>= 0.8): {_verdict(r >= 0.8)}")
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


def plot(results: dict[str, WorkloadResult], points: list[ScalePoint], stem: Path) -> list[Path]:
    """Efficiency per system per workload (ideal = 1), and driver memory and throughput
    against sweep size. Returns the PNG files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    shown = [w for w in results.values() if w.ceiling]
    if shown:
        cols = min(2, len(shown))
        rows = (len(shown) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), squeeze=False)
        for ax in axes.flat[len(shown) :]:
            ax.set_visible(False)
        for ax, w in zip(axes.flat, shown):
            names = [n for n in w.runs if w.runs[n] and n != w.serial_name]
            meds = [w.rate(n) / w.ceiling for n in names]
            lows = [m - min(t.rate for t in w.runs[n]) / w.ceiling for n, m in zip(names, meds)]
            highs = [max(t.rate for t in w.runs[n]) / w.ceiling - m for n, m in zip(names, meds)]
            colors = ["tab:blue" if n.startswith("ttg_ray") else "tab:gray" for n in names]
            ax.barh(names, meds, xerr=[lows, highs], color=colors)
            ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
            ax.set_title(f"{w.key}: {w.title}", fontsize=9)
            ax.set_xlabel("throughput / ideal (workers x serial rate)")
            ax.invert_yaxis()
            ax.tick_params(axis="y", labelsize=8)
        fig.tight_layout()
        path = stem.with_name(stem.name + "-throughput.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if points:
        fig, (mem_ax, rate_ax) = plt.subplots(1, 2, figsize=(10, 4))
        for backend in dict.fromkeys(p.backend for p in points):
            mine = sorted((p for p in points if p.backend == backend), key=lambda p: p.n)
            ns = [p.n for p in mine]
            mem_ax.plot(ns, [p.peak_mb for p in mine], marker="o", label=f"ttg_ray {backend}")
            rate_ax.plot(ns, [p.rate for p in mine], marker="o", label=f"ttg_ray {backend}")
        for ax, label in ((mem_ax, "driver peak RSS (MB)"), (rate_ax, "params/s")):
            ax.set_xscale("log")
            ax.set_xlabel("sweep size (parameters)")
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.legend()
        mem_ax.set_title("Driver memory against sweep size")
        rate_ax.set_title("Throughput against sweep size")
        fig.tight_layout()
        path = stem.with_name(stem.name + "-scale.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
