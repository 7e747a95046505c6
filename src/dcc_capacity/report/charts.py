"""Charts as inline SVG, drawn by matplotlib (Agg, no display, no fonts fetched).

Why SVG inline: the report is one file that opens offline and prints sharp.
Each figure's SVG ids are prefixed so several charts can share one HTML page
(matplotlib reuses ids such as ``patch_1`` in every figure), and the XML
prologue, DOCTYPE and RDF metadata (which carry external URLs) are dropped.
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = ["to_svg", "rates_chart", "latency_chart", "codes_chart", "resources_chart", "host_resources_chart",
           "stress_chart"]

plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "dcc-capacity", "font.size": 7.5,
                     "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 96})


def to_svg(fig: Any, prefix: str) -> str:
    """Serialise ``fig`` to a self-contained <svg> element with ids unique to ``prefix``."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\sxmlns:xlink="[^"]*"', "", svg)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{prefix}" ', 1)


def rates_chart(rates: pd.DataFrame, targets: dict[str, float]) -> str | None:
    """Offered (dashed) vs achieved (solid) request rate per user class, with the target rate."""
    if rates.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for i, (cls, df) in enumerate(rates.groupby("user_class", sort=True)):
        colour = f"C{i % 10}"
        ax.plot(df["t_s"], df["offered_rate"], ls="--", color=colour, lw=1, label=f"{cls} offered")
        ax.plot(df["t_s"], df["achieved_rate"], color=colour, lw=1.5, label=f"{cls} achieved")
        if targets.get(cls) is not None:
            ax.axhline(targets[cls], color=colour, ls=":", lw=1, label=f"{cls} target")
    ax.set_xlabel("time from start (s)")
    ax.set_ylabel("requests/s")
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    return to_svg(fig, "chart-rates")


def latency_chart(lat: pd.DataFrame) -> str | None:
    """Ack and TRT p50/p95/p99 per time bucket (log scale: tails are the point)."""
    if lat.empty or lat.drop(columns="t_s").isna().all().all():
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.0), sharex=True)
    for ax, m, title in ((axes[0], "ack", "synchronous acknowledgement"), (axes[1], "trt", "response (TRT)")):
        for q, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            ax.plot(lat["t_s"], lat[f"{m}_{q}"], ls=style, label=q)
        ax.set_title(title)
        ax.set_yscale("log")
        ax.set_xlabel("time from start (s)")
        ax.set_ylabel("ms")
        ax.legend(fontsize=7)
    return to_svg(fig, "chart-latency")


def codes_chart(codes: pd.DataFrame) -> str | None:
    """Non-OK outcomes by response code (the errors and throttling the SUT answered with)."""
    bad = codes[codes["outcome"] != "ok"]
    if bad.empty:
        return None
    labels = bad["outcome"] + " " + bad["ack_code"].where(bad["ack_code"] != "", "-") + "/" + \
        bad["response_code"].where(bad["response_code"] != "", "-")
    fig, ax = plt.subplots(figsize=(9, 0.4 + 0.3 * len(bad)))
    ax.barh(labels, bad["count"], color="C3")
    ax.set_xlabel("requests")
    ax.invert_yaxis()
    return to_svg(fig, "chart-codes")


def resources_chart(sut: pd.DataFrame | None, t0: float) -> str | None:
    """CPU, memory and queue depth of the SUT over time (from its /metrics samples)."""
    if sut is None or sut.empty:
        return None
    panels = [(c, lab) for c, lab in (("cpu_percent", "CPU %"), ("rss_bytes", "RSS MiB"),
                                       ("queue_depth", "queue depth"), ("in_flight", "in flight"))
              if c in sut.columns]
    if not panels:
        return None
    cols = min(len(panels), 2)
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.4 * rows), squeeze=False, layout="constrained")
    t = sut["ts"] - t0
    for ax, (col, label) in zip(axes.flat, panels, strict=False):
        y = sut[col] / 2**20 if col == "rss_bytes" else sut[col]
        ax.plot(t, y, lw=1)
        ax.set_title(label)
        ax.set_xlabel("time from start (s)")
        ax.set_ylim(bottom=0, top=max(float(y.max()) * 1.1, 1.0))
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return to_svg(fig, "chart-resources")


_HOST_PANELS = (
    ("CPU % (all cores)", (("cpu_percent", "-"),), 1.0, True),
    ("memory used %", (("mem_percent", "-"),), 1.0, True),
    ("disk MiB/s (read solid, write dashed)", (("disk_read_bytes_s", "-"), ("disk_write_bytes_s", "--")),
     2**-20, False),
    ("network MiB/s (receive solid, transmit dashed)", (("net_rx_bytes_s", "-"), ("net_tx_bytes_s", "--")), 2**-20,
     False),
    ("process CPU % (of one core)", (("process_cpu_percent", "-"),), 1.0, False),
    ("process RSS MiB", (("process_rss_bytes", "-"),), 2**-20, False),
)


def host_resources_chart(samples: pd.DataFrame | None, t0: float, gaps: list[dict[str, Any]]) -> str | None:
    """CPU, memory, disk and network per host over time (resources.csv); a gap breaks the line and is shaded.

    A failed sample has no value, so its line stops there rather than dropping to
    zero; the shading makes the hole visible even where a line is short.
    """
    if samples is None or samples.empty:
        return None
    panels = [p for p in _HOST_PANELS if any(c in samples and samples[c].notna().any() for c, _ in p[1])]
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.3 * rows), squeeze=False, layout="constrained")
    series = list(samples.groupby(["host", "source"], sort=True))
    multi = samples.groupby("host")["source"].nunique().to_dict()
    colours = {key: f"C{i % 10}" for i, (key, _df) in enumerate(series)}
    for ax, (title, cols_, scale, pct) in zip(axes.flat, panels, strict=False):
        shown: set[tuple[str, str]] = set()
        for (host, source), df in series:
            t = df["ts"] - t0
            for col, style in cols_:
                if col not in df or df[col].notna().sum() == 0:
                    continue
                shown.add((host, source))
                label = host + (f" ({source.split()[0]})" if multi.get(host, 1) > 1 else "")
                ax.plot(t, df[col] * scale, ls=style, lw=1.2, marker=".", ms=3, color=colours[(host, source)],
                        label=label if style == "-" else None)
        for g in gaps:  # only where the gapped series is drawn: an exporter's hole is not the emulator's
            if (g["host"], g["source"]) in shown:
                ax.axvspan(g["from_s"] - 0.5, g["to_s"] + 0.5, color=colours[(g["host"], g["source"])], alpha=0.15,
                           lw=0)
        ax.set_title(title)
        ax.set_xlabel("time from start (s)")
        ax.set_ylim(bottom=0, top=100 if pct else None)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6.5, loc="upper left")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    return to_svg(fig, "chart-host-resources")


def stress_chart(steps: list[dict[str, Any]]) -> str | None:
    """Offered vs achieved rate and ack p95 per stress step: the knee is where they part."""
    rows = [s for s in steps if "requests" in s]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.0))
    x = [s["step"] for s in rows]
    ax.plot(x, [s["offered_rate"] for s in rows], "o--", label="offered req/s")
    ax.plot(x, [s["achieved_rate"] for s in rows], "o-", label="achieved req/s")
    ax.set_xlabel("step")
    ax.set_ylabel("requests/s")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(x, [s["ack_p95"] for s in rows], "s:", color="C3", label="ack p95 ms")
    ax2.set_ylabel("ms")
    ax2.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=7)
    ax2.legend(loc="lower right", fontsize=7)
    return to_svg(fig, "chart-stress")
