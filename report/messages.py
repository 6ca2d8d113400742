"""Simulator messages in the user's words: the one translation point between the JSON's language of a rule, a
check or a note and what the pages and PDFs show."""

from __future__ import annotations

import re
from typing import Any

from report.formatting import by_unit, input_text, number, short, usd
from simulator.words import hardware_name

# The simulator's rules and checks speak the JSON's language, for the CLI: a field is named by its dotted key
# and a value is written `key = value` ("cluster.gpus = 12: ... use a multiple of 8 GPUs"). The pages and the
# PDFs show every such message through `in_words`, the one translation point: keys become the labels the widgets
# show, values are formatted by the registry's unit, choice codes become their labels. One sentence per rule (the
# CLI's and the page's cannot drift apart), and a rule added later is translated without more work.

_KEY = re.compile(r"(?<![\w.])([a-z][a-z0-9_]*\.[A-Za-z][A-Za-z0-9_]*)(?![\w])")
_VALUE = r"\s*=\s*('[^']*'|\"[^\"]*\"|\S+?)(?=[:;,.)]*(?:\s|$))"
_SECTION_LEAD = re.compile(r"^([a-z]+): ")
_EXPONENT = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?[eE][+-]?\d+)(?![\w.])(?! FLOP)")
_LONG_DECIMAL = re.compile(r"(?<![\w.])(-?\d+\.\d{5,})(?![\w.])")
_LONG_DOLLARS = re.compile(r"\$(\d{1,3}(?:,\d{3})+(?:\.\d+)?)(?!\d)")
_LIST = re.compile(r"\(([^()]+)\)")


def _registered() -> tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]:
    from simulator.inputs import FIGURES, INPUTS, SECTIONS  # the registry; report reads it, never the reverse

    return INPUTS, FIGURES, SECTIONS


def _label(key: str) -> str | None:
    inputs, figures, _ = _registered()
    spec = inputs.get(key) or figures.get(key)
    return None if spec is None else spec.label


def _quoted(text: str) -> str:
    return f"“{text}”" if " " in text else text


def _choice_label(inp: Any, code: str) -> str | None:
    label = inp.choice_labels.get(code)
    return None if label is None or label == code else _quoted(label)


def _value_words(key: str, raw: str) -> str:
    """One value of `key` as the user reads it; the raw text when it is not a value of that field."""
    inputs, figures, _ = _registered()
    text = raw.strip("'\"")
    inp = inputs.get(key)
    if inp is not None and inp.kind == "choice":
        return _choice_label(inp, text) or text
    if inp is not None and inp.kind == "bool" and text.lower() in ("true", "false"):
        return input_text(inp, text.lower() == "true")
    if inp is not None and inp.kind == "device":
        from simulator.catalog import load_catalog  # datasheet names; a profile's id stays as written

        spec = load_catalog().get(text)
        return hardware_name(spec.display_name) if spec is not None else text
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return text
    if inp is not None and inp.kind in ("int", "float"):
        return input_text(inp, int(value) if inp.kind == "int" and value.is_integer() else value)
    figure = figures.get(key)
    return by_unit(value, figure.unit) if figure is not None else text


def _assignment(match: re.Match[str]) -> str:
    key, raw = match.group(1), match.group(2)
    label = _label(key)
    return match.group(0) if label is None else f"{label} = {_value_words(key, raw)}"


def _choice_lists(text: str, keys: list[str]) -> str:
    """A parenthesised list of one mentioned choice's codes, "(rtn, gptq, awq)", in its labels; and codes with an
    underscore (never an English word) wherever they stand."""
    inputs, _, _ = _registered()
    choices = [inputs[k] for k in keys if k in inputs and inputs[k].kind == "choice"]

    def listed(m: re.Match[str]) -> str:
        items = [i.strip() for i in m.group(1).split(",")]
        for inp in choices:
            if len(items) > 1 and all(i in inp.choices for i in items):
                return "(" + ", ".join(str(inp.choice_labels.get(i, i)) for i in items) + ")"
        return m.group(0)

    text = _LIST.sub(listed, text)
    for inp in choices:
        for code in inp.choices:
            if isinstance(code, str) and "_" in code and (label := _choice_label(inp, code)):
                text = re.sub(rf"(?<![\w.]){re.escape(code)}(?!\w)", label, text)
    return text


def in_words(message: str) -> str:
    """A simulator message (a rule's, a check's, a note's) in the user's words: dotted keys become labels,
    `key = value` becomes "Label = value" formatted by unit, choice codes become their labels, and numbers lose
    their exponents and long tails: "cluster.gpus = 12: ..." -> "GPUs = 12: ...", "model.params = 6.469e+10:
    counted from the shape" -> "Parameters = 65B: counted from the shape"."""
    text = str(message)
    keys = [k for k in _KEY.findall(text) if _label(k) is not None]
    if keys:
        text = _choice_lists(text, keys)
        text = re.sub(_KEY.pattern + _VALUE, _assignment, text)
        text = _KEY.sub(lambda m: _label(m.group(1)) or m.group(0), text)
        for label in {_label(k) for k in keys}:  # "Price per GPU-hour (Price per GPU-hour)": said once
            text = text.replace(f"{label} ({label})", str(label))
    _, _, sections = _registered()
    lead = _SECTION_LEAD.match(text)
    if lead and lead.group(1) in sections:
        text = lead.group(1).capitalize() + text[len(lead.group(1)):]
    text = _LONG_DOLLARS.sub(lambda m: usd(float(m.group(1).replace(",", ""))), text)
    text = _EXPONENT.sub(lambda m: short(float(m.group(1))), text)
    return _LONG_DECIMAL.sub(lambda m: number(float(m.group(1))), text)
