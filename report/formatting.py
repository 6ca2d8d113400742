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
    return "n/a" if _bad(x) else f"{plain(x)} GB"


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
    "nats/token": lambda x: "n/a" if _bad(x) else f"{x:.3f} nats/token",
    "USD/GPU-hour": _per("$", " per GPU-hour"), "USD/kWh": _per("$", " per kWh", 3),
}


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
        return f"{count(value)} {unit}".strip()
    return f"{plain(value)} {unit}".strip()


def span(low: Any, high: Any, unit: str) -> str:
    """A range by unit, the shared unit written once: (24, 31, "days") -> "24–31 days"."""
    lo, hi = by_unit(low, unit), by_unit(high, unit)
    lo_num, _, lo_unit = lo.partition(" ")
    hi_num, _, hi_unit = hi.partition(" ")
    if lo_unit and lo_unit == hi_unit:
        return f"{lo_num}–{hi_num} {lo_unit}"
    return f"{lo}–{hi}"


_LETTER_AN = set("AEFHILMNORSX")  # letters whose spoken name starts with a vowel: "an H100", "an MI300X"


def article(text: str) -> str:
    """"a" or "an" for the way `text` is spoken: an A100, an H100, a B200, an 8B, an 11B, a 175B, an Instinct."""
    word = text.strip().split(" ", 1)[0] if text.strip() else ""
    if not word:
        return "a"
    if word[0].isdigit():
        whole = re.match(r"[\d,]*", word).group(0).replace(",", "")
        spoken_eleven = whole[:2] in ("11", "18") and len(whole) % 3 == 2  # eleven, eighteen (thousand, ...)
        return "an" if word[0] == "8" or spoken_eleven else "a"
    letters = re.sub(r"[^A-Za-z]", "", word)
    initialism = len(word) == 1 or any(c.isdigit() for c in word) or (letters.isupper() and len(letters) > 1)
    if initialism:
        return "an" if word[0].upper() in _LETTER_AN else "a"
    return "an" if word[0].lower() in "aeiou" else "a"


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


def hardware_name(label: str) -> str:
    """Catalog display name without the vendor: "NVIDIA H100 SXM5 80GB" -> "H100 SXM5 80GB"."""
    return re.sub(r"^(NVIDIA|AMD|Intel|Google)\s+", "", label)


def training_subject(params: float | None, tokens: float | None) -> str:
    """"Training an 8B model on 2T tokens"; "Training this model" when the size is unknown."""
    model = f"{article(short(params))} {short(params)} model" if not _bad(params) else "this model"
    on = f" on {short(tokens)} tokens" if not _bad(tokens) else ""
    return f"Training {model}{on}"


def on_gpus(gpus: float, hardware_label: str) -> str:
    """"1,024 H100 SXM5 80GB", or "an H100 SXM5 80GB" for one."""
    name = hardware_name(hardware_label)
    return f"{article(name)} {name}" if gpus == 1 else f"{count(gpus)} {name}"


def does_not_fit(need_gb: float, hbm_GB: float, hardware_label: str) -> str:
    """"Does not fit: needs 96 GB per GPU, but an H100 SXM5 80GB has 80 GB." """
    name = hardware_name(hardware_label)
    return f"Does not fit: needs {gb(need_gb)} per GPU, but {article(name)} {name} has {gb(hbm_GB)}."


def training_sentence(plan: Any, hbm_GB: float | None = None) -> str:
    """The answer to "what will training this cost?" in one sentence, from a simulator Plan."""
    s, t = plan.scenario, plan.training
    text = (
        f"{training_subject(s.model.params, s.training.tokens)} takes {days(t['wall_days'].value)} on "
        f"{on_gpus(s.cluster.gpus, plan.hardware_label)} and costs {usd(t['cost_usd'].value)}"
    )
    if not t["fits_memory"].value:
        room = f" of the {gb(hbm_GB)} each has" if hbm_GB else ""
        return f"{text}, but it does not fit: it needs {gb(t['memory_per_gpu_gb'].value)} per GPU{room}."
    return f"{text}."


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
    shown = {"USD/GPU-hour": lambda v: f"${v:,.2f}", "USD/kWh": lambda v: f"${v:,.3f}", "fraction": pct,
             "tokens": short, "parameters": short}.get(inp.unit)
    if shown is not None and not (inp.unit == "tokens" and abs(value) < 1e9):  # a vocabulary stays exact
        return shown(value)
    number = count(value) if float(value).is_integer() else plain(value)
    unit = "" if not with_unit or not inp.unit or inp.unit.lower() in inp.label.lower() else f" {inp.unit}"
    return number + unit
