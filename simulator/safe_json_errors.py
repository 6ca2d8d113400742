"""How refused JSON input is told: one `JSONInputError`, and short, bounded excerpts of any value."""

from __future__ import annotations

import reprlib
from typing import Any

from simulator.safe_json_limits import SHOW_CHARS


class JSONInputError(ValueError):
    """Untrusted JSON that cannot be used. `source`: the file or field; `path`: the JSON path inside it (or "");
    `problem`: what is wrong; `kind`: "read" (cannot read the file), "limit" (a cap above), "encoding",
    "syntax" or "value" (a refused number, constant or duplicate key). `str(exc)` is `"source: path: problem"`."""

    def __init__(self, source: str, problem: str, path: str = "", kind: str = "value"):
        self.source, self.problem, self.path, self.kind = source, problem, path, kind
        super().__init__(f"{source}: {path + ': ' if path else ''}{problem}")


class _Bounded(reprlib.Repr):
    """reprlib with every size bounded, and no str() of a huge int (Python refuses past 4,300 digits)."""

    def __init__(self, limit: int):
        super().__init__()
        self.maxlevel = 3
        self.maxtuple = self.maxlist = self.maxarray = self.maxdict = self.maxset = self.maxfrozenset = 6
        self.maxdeque = 6
        self.maxstring = self.maxother = self.maxlong = limit

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 4 * self.maxlong:
            return f"<an integer of about {int(x.bit_length() * 0.30103):,} digits>"
        return super().repr_int(x, level)


def shorten(value: Any, limit: int = SHOW_CHARS) -> str:
    """A short display of any value: never the whole of a 50 MB string, never str() of a 5,000-digit int,
    never a recursive repr of a deep list. At most about `limit` characters."""
    if isinstance(value, str | bytes | bytearray):
        text = repr(value[: limit + 1])
        if len(value) > limit or len(text) > limit + 2:
            return f"{text[:limit]}... ({len(value):,} characters)"
        return text
    text = _Bounded(limit).repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."
