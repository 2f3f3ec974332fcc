"""The planning page's charts, drawn with matplotlib (Agg, no display) as SVG documents.

Each chart goes into the page as an `<img>` whose source is the SVG as a data URI: the page's
Content Security Policy refuses inline style, which matplotlib's SVG is full of, but an image
is a document of its own, so the chart keeps its styling and the page needs no script and no
relaxed policy. Each chart has a table of the same figures beside it for screen readers.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import date
from typing import Any, Final

import matplotlib
from matplotlib.figure import Figure

matplotlib.use("Agg")  # never a display: safe in a server's threads, whatever else imports

WIDTH_IN: Final = 6.4
HEIGHT_IN: Final = 2.8
INK: Final = "#1f4e8c"
"""The pages' accent blue (style.css `--accent`), so charts and links match."""
BAND: Final = "#9db7d5"
MARK: Final = "#b3261e"


def _figure() -> tuple[Figure, Any]:
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    return figure, axes


def _data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    # Text stays text (searchable, scales with the image); ids repeat from run to run.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "kitledger"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def use_chart(days: Sequence[date], shares: Sequence[float | None]) -> str:
    """Daily share of the pool out on loan."""
    figure, axes = _figure()
    axes.bar(list(days), [100 * (s or 0.0) for s in shares], color=INK, width=0.8)
    axes.set_ylabel("% of pool out")
    axes.set_ylim(0, 100)
    figure.autofmt_xdate()
    return _data_uri(figure)


def hour_chart(rates: Sequence[tuple[float, float, float]], zone: str) -> str:
    """Requests per hour for each hour of the stores' day (`zone`), each with its interval
    (value, low, high)."""
    figure, axes = _figure()
    hours = list(range(len(rates)))
    values = [r[0] for r in rates]
    axes.bar(hours, values, color=INK, width=0.7)
    axes.errorbar(hours, values, yerr=[[r[0] - r[1] for r in rates],
                                       [r[2] - r[0] for r in rates]],
                  fmt="none", ecolor=MARK, elinewidth=1, capsize=2)
    axes.set_xticks(range(0, 24, 3))
    axes.set_xlabel(f"hour of day ({zone})")
    axes.set_ylabel("requests per hour")
    return _data_uri(figure)


def service_chart(sizes: Sequence[int], met: Sequence[tuple[float, float, float]],
                  target: float, today: int) -> str:
    """Share met at once against pool size, with its interval band, the target and today."""
    figure, axes = _figure()
    axes.fill_between(sizes, [100 * m[1] for m in met], [100 * m[2] for m in met],
                      color=BAND, label="95 % interval")
    axes.plot(sizes, [100 * m[0] for m in met], color=INK, marker="o", markersize=3,
              label="met at once")
    axes.axhline(100 * target, color=MARK, linestyle="--", linewidth=1, label="target")
    if sizes and sizes[0] <= today <= sizes[-1]:
        axes.axvline(today, color="#555555", linestyle=":", linewidth=1, label="today's pool")
    axes.set_xlabel("items in the pool")
    axes.set_ylabel("% met at once")
    axes.legend(loc="lower right", frameon=False)
    return _data_uri(figure)
