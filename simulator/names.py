"""The one check of a name a user gives: a scenario's `name` (the PDF's title, the saved scenario's label) and a
calibration profile's `name` (its device's label and id). Every place a name enters calls `checked_name`, so a name
that loads is one every page, chart and PDF can show.

A name is one line of any Unicode text. Refused, with a sentence that says what to change: text that is not a
string; an unpaired surrogate (half of a UTF-16 pair, as a JSON "\\ud800" escape makes: no encoder can write it, so
a chart or a PDF would crash on it); a control character; more than `max_chars` characters; and text that shows
nothing once whitespace and invisible format characters (zero-width spaces and joiners, direction marks, ...) are
trimmed. Runs of whitespace become one space and the ends are trimmed, so whitespace alone is the empty name.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
_INVISIBLE = ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp")  # control, format, surrogate, separators


class NameProblemError(ValueError):
    """A name that cannot be used; `str(exc)` says why and what to change (without the field's name)."""


def _shows_something(text: str) -> bool:
    return any(unicodedata.category(ch) not in _INVISIBLE for ch in text)


def checked_name(value: Any, max_chars: int) -> str:
    """`value` as a name on one line: runs of whitespace become one space, the ends trimmed ("" when only
    whitespace was given). Raises NameProblemError for what no page can show (see the module's docstring)."""
    if not isinstance(value, str):
        raise NameProblemError(f"expected text, got {type(value).__name__}")
    found = _SURROGATE.search(value)
    if found:
        raise NameProblemError(f"character {found.start() + 1:,} is an unpaired surrogate (U+{ord(found.group()):04X}, half of "
                      "a UTF-16 pair) that no file or page can show; retype the name as plain text")
    name = " ".join(value.split())
    if len(name) > max_chars:
        raise NameProblemError(f"{len(name):,} characters; at most {max_chars:,}")
    control = next((ch for ch in name if unicodedata.category(ch) == "Cc"), None)
    if control is not None:
        raise NameProblemError(f"contains the control character U+{ord(control):04X}; use plain text")
    if name and not _shows_something(name):
        raise NameProblemError(f"shows nothing: its {len(name):,} characters are all invisible (zero-width spaces, joiners "
                      "or direction marks); type a visible name")
    return name
