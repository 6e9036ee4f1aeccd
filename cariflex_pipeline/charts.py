"""Charts for the Dagster UI: small PNGs embedded in markdown metadata, in site time, with units.

An operator would rather look at the day than read 96 numbers. These are plain functions of arrays (no Dagster,
no store); the assets call them with what they computed. matplotlib's Agg backend draws without a screen.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from datetime import datetime

import matplotlib

matplotlib.use("Agg")  # before pyplot: no screen on a server
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

_SIZE = (9.0, 4.8)  # inches at 80 dpi: 720 x 384 px, readable beside the metadata table
_DPI = 80


def horizon_chart(slot_starts: Sequence[datetime], power_kw: Mapping[str, Sequence[float]],
                  site_limit_kw: Sequence[float], price_eur_per_mwh: Sequence[float | None],
                  load_control_pct: Sequence[float | None], title: str) -> bytes:
    """The plan over the horizon: planned power per device stacked (charging up, discharging down) against the
    site limit, and below it the price and the load-control signal, per slot in the slots' own time zone."""
    figure, (power_axis, price_axis) = plt.subplots(2, 1, figsize=_SIZE, dpi=_DPI, sharex=True,
                                                    gridspec_kw={"height_ratios": [2.2, 1]})
    try:
        edges = _edges(slot_starts)
        names = sorted(power_kw)
        values = np.array([np.asarray(power_kw[name], dtype=float) for name in names]).reshape(len(names), -1)
        charging, discharging = np.clip(values, 0, None), np.clip(values, None, 0)
        if names:
            power_axis.stackplot(edges[:-1], charging, labels=names, step="post", alpha=0.85)
            if discharging.any():
                power_axis.stackplot(edges[:-1], discharging, step="post", alpha=0.5)
        power_axis.step(edges, _closed(site_limit_kw), where="post", color="black", linewidth=1.5,
                        label="site limit")
        power_axis.set_ylabel("kW")
        power_axis.set_title(title, fontsize=10)
        power_axis.legend(loc="upper left", fontsize=7, ncol=6, framealpha=0.8)
        power_axis.grid(alpha=0.3)
        price_axis.step(edges, _closed(price_eur_per_mwh), where="post", color="tab:red", label="price")
        price_axis.set_ylabel("EUR/MWh", color="tab:red")
        control_axis = price_axis.twinx()
        control_axis.step(edges, _closed(load_control_pct), where="post", color="tab:blue", linestyle="--",
                          label="load control")
        control_axis.set_ylabel("load control %", color="tab:blue")
        control_axis.set_ylim(0, 105)
        price_axis.grid(alpha=0.3)
        _time_axis(price_axis, slot_starts)
        return _png(figure)
    finally:
        plt.close(figure)


def day_curve_chart(slot_starts: Sequence[datetime], values: Sequence[float | None], title: str,
                    unit: str) -> bytes:
    """One series over a day (or any run of slots), as steps: each slot holds its value until the next."""
    figure, axis = plt.subplots(figsize=(_SIZE[0], 3.0), dpi=_DPI)
    try:
        edges = _edges(slot_starts)
        axis.step(edges, _closed(values), where="post", color="tab:green")
        axis.set_ylabel(unit)
        axis.set_title(title, fontsize=10)
        axis.grid(alpha=0.3)
        _time_axis(axis, slot_starts)
        return _png(figure)
    finally:
        plt.close(figure)


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that the Dagster UI shows as the picture (a data URI: nothing to serve, nothing to expire)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _edges(slot_starts: Sequence[datetime]) -> list[datetime]:
    """Slot starts plus the end of the last slot, so that the last step is drawn whole."""
    if not slot_starts:
        return []
    step = slot_starts[1] - slot_starts[0] if len(slot_starts) > 1 else None
    return [*slot_starts, slot_starts[-1] + step] if step else list(slot_starts)


def _closed(values: Sequence[float | None]) -> np.ndarray:
    """Per-slot values as floats (a missing value: a gap in the line), the last repeated for the end edge."""
    array = np.array([np.nan if value is None else float(value) for value in values], dtype=float)
    return np.append(array, array[-1:]) if len(array) else array


def _time_axis(axis, slot_starts: Sequence[datetime]) -> None:
    zone = slot_starts[0].tzinfo if slot_starts else None
    axis.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M\n%d %b", tz=zone))
    axis.set_xlabel(f"site time ({getattr(zone, 'key', zone)})")


def _png(figure: Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()
