"""Human formatting of figures: $1.9M, 23 days, 3.1e23 FLOP, 1,024 GPUs; an input's value and label as a reader
says them. The simulator's messages become the user's words in report.messages."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from simulator.words import article, gigabytes, hardware_name

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
DAYS_PER_YEAR = 365.25
HOURS_PER_DAY = 24.0


def _bad(x: Any) -> bool:
    return x is None or isinstance(x, bool) or not math.isfinite(float(x))


def plain(x: float) -> str:
    """About two significant figures, more for large whole numbers: 1.94 -> "1.9", 23.4 -> "23", 1234 -> "1,234",
    0.000059 -> "0.000059" (never an exponent)."""
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
    return number(x, 2)


SMALLEST_SHOWN = 1e-9  # below this a number is written "0" (a table of model outputs has no such digits)


def number(x: float, digits: int = 3) -> str:
    """`digits` significant figures, without an exponent and without trailing zeros; thousands separated:
    1.02170824 -> "1.02", 35.4746 -> "35.5", 1379.69 -> "1,380", 5.918e-05 -> "0.0000592", 2.0 -> "2"."""
    if _bad(x):
        return "n/a"
    x = float(x)
    if abs(x) < SMALLEST_SHOWN:
        return "0"
    rounded = float(f"{x:.{digits}g}")
    if abs(rounded) >= 1000:
        return f"{rounded:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


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
        return _units(hours, "hour")
    if x < 2 * DAYS_PER_YEAR:
        return _units(x, "day")
    return _units(x / DAYS_PER_YEAR, "year")


def _units(x: float, unit: str) -> str:
    text = plain(x)
    return f"{text} {unit}" if text == "1" else f"{text} {unit}s"


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
    """A memory size as every sentence says it (simulator.words.gigabytes); "n/a" when not a number."""
    return "n/a" if _bad(x) else gigabytes(x)


def size_bytes(x: float) -> str:
    """Bytes in decimal units: 202_381_762_560 -> "202 GB", 35e6 -> "35 MB"."""
    if _bad(x):
        return "n/a"
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(x) >= scale * 0.9995:
            return f"{plain(x / scale)} {unit}"
    return f"{plain(x)} bytes"


def ratio(x: float) -> str:
    """A ratio near 1 keeps its third decimal (a perplexity ratio 1.010); larger ones three figures: 35.5, 1,380."""
    if _bad(x):
        return "n/a"
    return f"{x:.3f}" if abs(x) < 10 else number(x)


def times(x: float) -> str:
    """A speed-up: 3.79×."""
    return "n/a" if _bad(x) else f"{x:.2f}×"


def nats(x: float) -> str:
    """A loss or a loss difference in nats per token: 1.868, 0.0061 (two figures below 0.1), 0."""
    if _bad(x):
        return "n/a"
    text = f"{x:.3f}" if abs(x) >= 0.1 else number(x, 2)
    return f"{text} nats/token"


def mwh(x: float) -> str:
    if _bad(x):
        return "n/a"
    if abs(x) < 1:
        return f"{plain(x * 1e3)} kWh"
    return f"{plain(x / 1e3)} GWh" if abs(x) >= 1e4 else f"{plain(x)} MWh"


def gpu_hours(x: float) -> str:
    return "n/a" if _bad(x) else f"{short(x)} GPU-h"


def _per(prefix: str, suffix: str, digits: int = 2) -> Callable[[float], str]:
    return lambda x: "n/a" if _bad(x) else f"{prefix}{x:,.{digits}f}{suffix}"


_BY_UNIT: dict[str, Callable[[float], str]] = {  # units as the registry declares them (simulator.inputs)
    "USD": usd, "days": days, "FLOP": flop, "GPU·h": gpu_hours, "fraction": pct, "GB": gb, "MWh": mwh,
    "s": seconds, "params": short, "tokens": short, "steps": short, "parameters": short,
    "tokens/s": lambda x: "n/a" if _bad(x) else f"{short(x)} tokens/s",
    "nats/token": nats, "bytes": size_bytes, "ratio": ratio, "×": times,
    "USD/GPU-hour": _per("$", " per GPU-hour"), "USD/kWh": _per("$", " per kWh", 3),
}


def _singular(unit: str) -> str:
    """The unit of one: "GPUs" -> "GPU", "micro-batches" -> "micro-batch", "requests/s" -> "request/s"."""
    head, slash, tail = unit.partition("/")
    if not re.fullmatch(r"[A-Za-z-]+s", head) or head.endswith("ss"):
        return unit
    return (head[:-2] if head.endswith(("ches", "shes", "xes")) else head[:-1]) + slash + tail


def unit_text(text: str, unit: str) -> str:
    """A formatted number and its unit, singular for one: ("1", "replicas") -> "1 replica"."""
    if not unit:
        return text
    return f"{text} {_singular(unit) if text == '1' else unit}"


def by_unit(value: Any, unit: str) -> str:
    """Format a figure's or an input's value by its registered unit (simulator.inputs.FIGURES / INPUTS)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if unit in _BY_UNIT:
        return _BY_UNIT[unit](value)
    if _bad(value):
        return "n/a"
    if float(value).is_integer() and abs(value) >= 1000:
        return unit_text(count(value), unit)
    return unit_text(plain(value), unit)


def cell(value: Any, unit: str = "") -> str:
    """One table cell: by its unit when the column has one, else three significant figures for a number,
    "yes"/"no" for a flag, text as it is, "" for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if unit:
        return by_unit(value, unit)
    value = float(value)
    return count(value) if value.is_integer() else number(value)


def table_text(frame: Any, units: Mapping[str, str] | None = None) -> Any:
    """A pandas table as the page shows it (a chart's table view): every cell formatted, `units` by column name
    (the registry's or the figure's unit); the chart and the CSV keep the numbers."""
    units = units or {}
    out = frame.copy()
    for column in out.columns:
        out[column] = [cell(v, units.get(column, "")) for v in out[column].tolist()]
    return out


def span(low: Any, high: Any, unit: str) -> str:
    """A range by unit, the shared unit written once: (24, 31, "days") -> "24–31 days"."""
    lo, hi = by_unit(low, unit), by_unit(high, unit)
    lo_num, _, lo_unit = lo.partition(" ")
    hi_num, _, hi_unit = hi.partition(" ")
    if lo_unit and lo_unit == hi_unit:
        return f"{lo_num}–{hi_num} {lo_unit}"
    return f"{lo}–{hi}"


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


_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}<>#|~$])")


def md_escape(text: str) -> str:
    """Text shown through Streamlit Markdown exactly as written: names from files and links can't format,
    link or run LaTeX ("$" would start math)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def training_subject(params: float | None, tokens: float | None, active: float | None = None) -> str:
    """"Training an 8B model on 2T tokens"; "Training a 31B mixture-of-experts model (3.4B active) on 36T tokens"
    when `active` (the active parameters) is below the total; "Training this model" when the size is unknown."""
    moe = not _bad(params) and not _bad(active) and float(active) < float(params)
    kind = f"mixture-of-experts model ({short(active)} active)" if moe else "model"
    model = f"{article(short(params))} {short(params)} {kind}" if not _bad(params) else "this model"
    on = f" on {short(tokens)} tokens" if not _bad(tokens) else ""
    return f"Training {model}{on}"


def on_gpus(gpus: float, hardware_label: str) -> str:
    """"1,024 H100 SXM5 80GB", or "an H100 SXM5 80GB" for one."""
    name = hardware_name(hardware_label)
    return f"{article(name)} {name}" if gpus == 1 else f"{count(gpus)} {name}"


def training_sentence(plan: Any) -> str:
    """The answer to "what will training this cost?" in one sentence, from a simulator Plan; where the plan does
    not fit in memory, the memory rule's own sentence follows (simulator.words.does_not_fit)."""
    s, t = plan.scenario, plan.training
    text = (
        f"{training_subject(s.model.params, s.training.tokens, plan.value('model.active_params'))} takes {days(t['wall_days'].value)} on "
        f"{on_gpus(s.cluster.gpus, plan.hardware_label)} and costs {usd(t['cost_usd'].value)}."
    )
    memory = next((w.text for w in plan.warnings if w.code == "memory"), None)
    return f"{text} {memory}" if memory and not t["fits_memory"].value else text


def input_text(inp: Any, value: Any, device_name: Callable[[str], str] = str, with_unit: bool = True) -> str:
    """A registered input's value as a reader says it: "$3.49", "1.4T", "80%", "Ring all-reduce", "H100 SXM5
    80GB"; `with_unit=False` leaves plain numbers bare (for a table with a unit column)."""
    if value is None:
        return "auto" if inp.derived is not None else "none"
    if inp.kind == "choice":
        return str(inp.choice_labels.get(value, value))
    if inp.kind == "bool":
        return "on" if value else "off"
    if inp.kind == "device":
        return hardware_name(device_name(value))
    if isinstance(value, str):  # a named value of a number input ("max")
        return value
    shown = {"USD": usd, "USD/GPU-hour": lambda v: f"${v:,.2f}", "USD/kWh": lambda v: f"${v:,.3f}",
             "fraction": pct, "tokens": short, "parameters": short}.get(inp.unit)
    if shown is not None and not (inp.unit == "tokens" and abs(value) < 1e9):  # a vocabulary stays exact
        return shown(value)
    text = count(value) if float(value).is_integer() else plain(value)
    return unit_text(text, inp.unit) if with_unit and not unit_in_label(inp) else text


def _says(label: str, unit: str) -> bool:
    """Whether a label already says the unit as a word ("GPUs" in "GPUs per node"; not "s" in "target")."""
    return bool(unit) and re.search(rf"(?<!\w){re.escape(unit)}(?!\w)", label, re.IGNORECASE) is not None


def unit_in_label(inp: Any) -> bool:
    return _says(inp.label, inp.unit)


def labelled(inp: Any) -> str:
    """An input's label with its unit, as its widget shows it: "Requests per second (requests/s)", "Parameters
    (billions)" when the widget scales it, "Time-to-first-token target (s)", "GPUs per node" (said already)."""
    unit = inp.widget_unit if inp.scale != 1 else inp.unit
    return f"{inp.label} ({unit})" if unit and not _says(inp.label, unit) else inp.label
