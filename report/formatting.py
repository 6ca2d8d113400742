"""Human formatting of figures: $1.9M, 23 days, 3.1e23 FLOP, 1,024 GPUs. Pure functions of numbers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
DAYS_PER_YEAR = 365.25
HOURS_PER_DAY = 24.0


def _bad(x: Any) -> bool:
    return x is None or isinstance(x, bool) or not math.isfinite(float(x))


def plain(x: float) -> str:
    """About two significant figures, more for large whole numbers: 1.94 -> "1.9", 23.4 -> "23", 1234 -> "1,234"."""
    if _bad(x):
        return "n/a"
    x = float(x)
    size = abs(x)
    if size >= 100:
        return f"{x:,.0f}"
    if size >= 10:
        return f"{x:.0f}"
    if size >= 1:
        return f"{x:.1f}".removesuffix(".0")
    if size == 0:
        return "0"
    return f"{x:.2g}"


def short(x: float) -> str:
    """1.4e12 -> "1.4T", 7e10 -> "70B", 850_000 -> "850k", 12 -> "12"."""
    if _bad(x):
        return "n/a"
    for scale, suffix in _SUFFIXES:
        if abs(x) >= scale * 0.9995:
            return f"{plain(x / scale)}{suffix}"
    return plain(x)


def usd(x: float) -> str:
    if _bad(x):
        return "n/a"
    return f"-${short(-x)}" if x < 0 else f"${short(x)}"


def count(x: float) -> str:
    return "n/a" if _bad(x) else f"{round(float(x)):,}"


def days(x: float) -> str:
    """Wall-clock time in the unit a planner thinks in: minutes, hours, days, then years."""
    if _bad(x):
        return "n/a"
    hours = x * HOURS_PER_DAY
    if hours < 1:
        return f"{plain(hours * 60)} min"
    if hours < 48:
        return f"{plain(hours)} hours"
    if x < 2 * DAYS_PER_YEAR:
        return f"{plain(x)} days"
    return f"{plain(x / DAYS_PER_YEAR)} years"


def seconds(x: float) -> str:
    if _bad(x):
        return "n/a"
    return f"{plain(x * 1e3)} ms" if abs(x) < 1 else f"{plain(x)} s"


def flop(x: float) -> str:
    if _bad(x):
        return "n/a"
    mantissa, _, exponent = f"{x:.1e}".partition("e")
    return f"{mantissa}e{int(exponent)} FLOP"


def pct(x: float) -> str:
    """A fraction as a percentage: 0.412 -> "41%", 0.034 -> "3.4%"."""
    return "n/a" if _bad(x) else f"{plain(100 * x)}%"


def gb(x: float) -> str:
    return "n/a" if _bad(x) else f"{plain(x)} GB"


def mwh(x: float) -> str:
    if _bad(x):
        return "n/a"
    if abs(x) < 1:
        return f"{plain(x * 1e3)} kWh"
    return f"{plain(x / 1e3)} GWh" if abs(x) >= 1e4 else f"{plain(x)} MWh"


def gpu_hours(x: float) -> str:
    return "n/a" if _bad(x) else f"{short(x)} GPU-h"


def by_unit(value: Any, unit: str) -> str:
    """Format a simulator Figure's value by its unit (units as declared by the families, simulator.inputs.FIGURES)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    formatters = {
        "USD": usd, "days": days, "FLOP": flop, "GPU·h": gpu_hours, "fraction": pct, "GB": gb, "MWh": mwh,
        "s": seconds, "params": short, "tokens": short, "steps": short,
    }
    if unit in formatters:
        return formatters[unit](value)
    if unit == "t":
        return f"{plain(value)} t"
    return f"{plain(value)} {unit}".strip()


def loss(x: float) -> str:
    return "n/a" if _bad(x) else f"{x:.3f}"


def points(x: float) -> str:
    """A difference of two fractions in percentage points: 0.021 -> "2.1 pts"."""
    return "n/a" if _bad(x) else f"{plain(100 * x)} pts"


def delta(new: float, old: float, fmt: Callable[[float], str] = plain, relative: bool = True) -> str | None:
    """Signed change for st.metric: delta(25, 23, days) -> "+2 days (+8.7%)"; None when unchanged or unknown."""
    if _bad(new) or _bad(old):
        return None
    change = float(new) - float(old)
    if abs(change) <= 1e-9 * max(abs(float(new)), abs(float(old))):
        return None
    sign = "+" if change > 0 else "-"
    rel = f" ({sign}{pct(abs(change / float(old)))})" if relative and old else ""
    return f"{sign}{fmt(abs(change))}{rel}"


def hardware_name(label: str) -> str:
    """Catalog display name without the vendor: "NVIDIA H100 SXM5 80GB" -> "H100 SXM5 80GB"."""
    return re.sub(r"^(NVIDIA|AMD|Intel|Google)\s+", "", label)


def training_sentence(plan: Any, hbm_GB: float | None = None) -> str:
    """The answer to "what will training this cost?" in one sentence, from a simulator Plan."""
    s, t = plan.scenario, plan.training
    text = (
        f"Training a {short(s.model.params)} model on {short(s.training.tokens)} tokens takes "
        f"{days(t['wall_days'].value)} on {count(s.cluster.gpus)} {hardware_name(plan.hardware_label)} "
        f"and costs {usd(t['cost_usd'].value)}"
    )
    if not t["fits_memory"].value:
        room = f" of the {gb(hbm_GB)} each has" if hbm_GB else ""
        return f"{text}, but it does not fit: it needs {gb(t['memory_per_gpu_gb'].value)} per GPU{room}."
    return f"{text}."
