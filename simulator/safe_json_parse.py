"""Parsing untrusted JSON with hooks: over-long numbers, NaN/Infinity, overflow, repeated keys and unpaired
surrogates are refused with the JSON path of the value, and a syntax error is told in words."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from simulator.safe_json_errors import JSONInputError, shorten
from simulator.safe_json_limits import SHOW_CHARS


class _Flagged:
    """A value the parser met and refused; found with its JSON path after parsing (only then is the tree
    walked), so the message can say `model.params: ...`."""

    __slots__ = ("problem",)

    def __init__(self, problem: str):
        self.problem = problem


class _DuplicateKeys(dict):
    """An object whose key `key` was repeated; kept (with its values) so its path can be found."""

    __slots__ = ("key",)


def _key(key: str) -> str:
    return key if len(key) <= SHOW_CHARS else f"{key[:SHOW_CHARS]}..."


def _path_of_first_flag(root: Any) -> tuple[str, str] | None:
    """(JSON path, problem) of the first refused value, in document order; an iterative walk."""
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Flagged):
            return path, node.problem
        if isinstance(node, _DuplicateKeys):
            return path, f"duplicate key {shorten(node.key, SHOW_CHARS)}: each key may appear once in an object"
        if isinstance(node, dict):  # keys cut short: a path never carries a 1 MB key back
            stack.extend((v, f"{path}.{_key(k)}" if path else _key(k)) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))
    return None


# A \uD800-\uDFFF escape: json.loads turns one without its partner into an unpaired surrogate, which no encoder
# can write (a chart, a page or a PDF showing it would crash); searched for before the tree is walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(text: str) -> str:
    """`text` with unpaired surrogates written as \\udxxx, safe to print."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def _path_of_first_surrogate(root: Any) -> tuple[str, str] | None:
    """(JSON path, problem) of the first key or string holding an unpaired surrogate, in document order."""
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            found = _SURROGATE.search(node)
            if found:
                return path, (f"the text holds an unpaired surrogate escape \\u{ord(found.group()):04x} (half of a "
                              "UTF-16 pair, not a character); remove it or give the whole pair")
        elif isinstance(node, dict):
            items = []
            for k, v in node.items():
                where = f"{path}.{_key(_escaped(k))}" if path else _key(_escaped(k))
                items.append((v, where))
                if _SURROGATE.search(k):
                    items[-1] = (k, where)  # the key itself is the offender
            stack.extend(reversed(items))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))
    return None


def syntax_problem(exc: json.JSONDecodeError, text: str) -> str:
    """A JSONDecodeError in words: what is wrong, then "at line L column C" (json's own messages for a control
    character and an open string end in "at": it is not repeated), then how to fix it where that is known."""
    where = f"at line {exc.lineno} column {exc.colno}"
    if exc.msg.startswith("Invalid control character") and exc.pos < len(text):
        return (f"not valid JSON: a raw control character (U+{ord(text[exc.pos]):04X}) inside a string {where}; "
                "write it as an escape such as \\n or \\t, or remove it")
    end = text.rstrip()
    cut = exc.pos >= len(end) or exc.msg.startswith("Unterminated") or not end.endswith(("}", "]"))
    hint = " (file truncated?)" if cut else ""
    return f"not valid JSON: {exc.msg.removesuffix(' at')} {where}{hint}"


def _hooks(max_number: int) -> tuple[dict[str, Callable[..., Any]], list[bool]]:
    flagged = [False]

    def flag(problem: str) -> _Flagged:
        flagged[0] = True
        return _Flagged(problem)

    def too_long(text: str) -> _Flagged:
        return flag(f"number {text[:20]}... has {len(text):,} characters, over the {max_number}-character cap "
                    "for a number")

    def parse_int(text: str) -> int | _Flagged:
        return too_long(text) if len(text) > max_number else int(text)

    def parse_float(text: str) -> float | _Flagged:
        if len(text) > max_number:
            return too_long(text)
        value = float(text)
        if not math.isfinite(value):
            return flag(f"number {text} overflows to infinity (the largest is about 1.8e308)")
        return value

    def parse_constant(name: str) -> _Flagged:
        return flag(f"{name} is not allowed (JSON numbers must be finite; use null)")

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) == len(items):
            return out
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                break
            seen.add(key)
        flagged[0] = True
        dup = _DuplicateKeys(out)
        dup.key = key
        return dup

    return ({"parse_int": parse_int, "parse_float": parse_float, "parse_constant": parse_constant,
             "object_pairs_hook": pairs}, flagged)


def parse(text: str, source: str, max_number: int) -> Any:
    """`json.loads` of `text` with the hooks; the first refused value, then the first unpaired surrogate, is a
    JSONInputError naming `source` and its JSON path (a syntax error stays a json.JSONDecodeError)."""
    hooks, flagged = _hooks(max_number)
    value = json.loads(text, **hooks)
    if flagged[0]:
        found = _path_of_first_flag(value)
        if found is not None:
            path, problem = found
            raise JSONInputError(source, problem, path)
    if _SURROGATE_ESCAPE.search(text):
        found = _path_of_first_surrogate(value)
        if found is not None:
            path, problem = found
            raise JSONInputError(source, problem, path)
    return value
