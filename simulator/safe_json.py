"""The one bounded JSON reader for untrusted text: scenario files and strings, `--grid-json`, calibration
profiles, the app's uploads.

Every limit is declared once below. They are enforced before or during parsing, in time linear in the input:

1. size: a file is `stat`ed and then read at most `max_bytes + 1` bytes (never a 10 GB read);
2. encoding: the bytes must be UTF-8 (a BOM is allowed);
3. a vectorised pre-scan (numpy, no recursion, no backtracking regex) finds the strings (a quote preceded by
   an odd run of backslashes is escaped), then nesting depth, string length and the items of every array and
   object. A 100,000-deep `[[[[...` is refused here, before `json.loads` could recurse;
4. `json.loads` with hooks: number literals longer than `MAX_NUMBER_CHARS` are never handed to `int()`
   (a 310-digit integer is a message, not an OverflowError, and Python's 4,300-digit limit is never reached),
   NaN/Infinity and float overflow are refused, and a repeated key in an object is refused. These are reported
   with the JSON path of the value (`model.params`, `measurements[3].median_s`);
5. RecursionError and MemoryError while parsing become messages too.

Every failure is one `JSONInputError` (a ValueError) whose message names the source (file name or field) and
shows at most a short, truncated excerpt of the offending value. Imports only stdlib + numpy.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# ---------------------------------------------------------------- limits (each declared once, here)

# A calibration profile: the largest shipped is ~0.5 MB; 100,000 measurements stay under ~15 MB.
MAX_PROFILE_BYTES = 20 * 1024 * 1024
# A scenario file or string, or a --grid-json object: a few hundred bytes in practice.
MAX_SCENARIO_BYTES = 1024 * 1024
# Deepest [ / { nesting: a scenario needs 2, a grid 2, a profile about 8; json.loads recurses once per level.
MAX_DEPTH = 64
# Longest number literal: float64 needs at most 24 characters; this keeps int() far from Python's 4,300-digit
# limit and a 310-digit integer out of float() (OverflowError).
MAX_NUMBER_CHARS = 40
# Most items in one JSON array: profiles cap measurements at 100,000; a grid's value list is far shorter.
MAX_ARRAY_ITEMS = 1_000_000
# Most keys in one JSON object: the largest shipped object has 30.
MAX_OBJECT_KEYS = 10_000
# Longest string (or key), in bytes of JSON text between its quotes: the largest shipped string is ~700 bytes.
MAX_STRING_BYTES = 1024 * 1024
# How much of an offending value a message shows.
SHOW_CHARS = 60

__all__ = ["MAX_ARRAY_ITEMS", "MAX_DEPTH", "MAX_NUMBER_CHARS", "MAX_OBJECT_KEYS", "MAX_PROFILE_BYTES",
           "MAX_SCENARIO_BYTES", "MAX_STRING_BYTES", "JSONInputError", "loads", "max_depth", "read_bytes",
           "read_file", "read_stream", "read_upload", "shorten", "source_name"]


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


# ---------------------------------------------------------------- reading bytes, capped


def source_name(path: Any, limit: int = 200) -> str:
    """A file or upload name for messages, cut to `limit` characters."""
    text = path if isinstance(path, str) else str(os.fspath(path)) if isinstance(path, os.PathLike) else repr(path)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def read_bytes(path: str | os.PathLike[str], *, max_bytes: int = MAX_SCENARIO_BYTES, source: str | None = None) -> bytes:
    """A file's bytes, refused past `max_bytes` before it is read (and again if it grows while read)."""
    where = source or source_name(path)
    try:
        p = Path(path)
        size = p.stat().st_size
        if size > max_bytes:
            raise JSONInputError(where, f"file is {size:,} bytes, over the {max_bytes:,}-byte cap", kind="limit")
        with p.open("rb") as f:
            return read_stream(f, max_bytes=max_bytes, source=where)
    except JSONInputError:
        raise
    except IsADirectoryError:
        raise JSONInputError(where, "cannot read: it is a directory, not a file", kind="read") from None
    except OSError as exc:
        raise JSONInputError(where, f"cannot read the file ({exc.strerror or type(exc).__name__})",
                             kind="read") from None
    except (ValueError, TypeError) as exc:  # a NUL in the name, a path that is not a path
        raise JSONInputError(where, f"cannot read the file ({shorten(str(exc), 120)})", kind="read") from None


def read_stream(stream: BinaryIO | Any, *, max_bytes: int = MAX_SCENARIO_BYTES, source: str = "input") -> bytes:
    """At most `max_bytes` from a binary (or text) stream such as standard input; refused when there is more."""
    try:
        data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise JSONInputError(source, f"cannot read ({exc.strerror or type(exc).__name__})", kind="read") from None
    except UnicodeDecodeError:
        raise JSONInputError(source, "not a UTF-8 text file", kind="encoding") from None
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    if len(data) > max_bytes:
        raise JSONInputError(source, f"more than the {max_bytes:,}-byte cap", kind="limit")
    return bytes(data)


def _as_bytes(data: bytes | bytearray | memoryview | str, source: str, max_bytes: int) -> bytes:
    if isinstance(data, str):
        if len(data) > max_bytes:  # a character is at least one byte: refuse before encoding
            raise JSONInputError(source, f"text is {len(data):,} characters, over the {max_bytes:,}-byte cap",
                                 kind="limit")
        data = data.encode("utf-8", errors="surrogatepass")  # a lone surrogate then fails the UTF-8 check
    elif not isinstance(data, bytes | bytearray | memoryview):
        raise JSONInputError(source, f"expected JSON text or bytes, got {type(data).__name__}", kind="read")
    if len(data) > max_bytes:
        raise JSONInputError(source, f"input is {len(data):,} bytes, over the {max_bytes:,}-byte cap", kind="limit")
    return bytes(data)


# ---------------------------------------------------------------- the linear pre-scan

_BACKSLASH, _QUOTE = ord("\\"), ord('"')
_OPEN = np.zeros(256, dtype=bool)
_OPEN[[ord("["), ord("{")]] = True
_CLOSE = np.zeros(256, dtype=bool)
_CLOSE[[ord("]"), ord("}")]] = True
_STRUCT = _OPEN | _CLOSE
_STRUCT[ord(",")] = True


def _string_quotes(b: np.ndarray) -> np.ndarray:
    """Positions of the unescaped quotes, in order: they open and close strings alternately.

    A quote is escaped when the run of backslashes just before it is odd (`\\"` escaped, `\\\\"` not).
    Outside strings a backslash is invalid JSON: the parser stops there, before any bracket the scan and the
    parser could disagree on. O(n) masks + O(k log k) on the quotes and backslashes."""
    quotes = np.flatnonzero(b == _QUOTE)
    slashes = np.flatnonzero(b == _BACKSLASH)
    if quotes.size == 0 or slashes.size == 0:
        return quotes
    run_starts = np.ones(slashes.size, dtype=bool)
    run_starts[1:] = slashes[1:] != slashes[:-1] + 1
    start_of = np.maximum.accumulate(np.where(run_starts, slashes, 0))  # each backslash's run start
    j = np.searchsorted(slashes, quotes) - 1  # the last backslash before each quote
    jj = np.maximum(j, 0)
    touching = (j >= 0) & (slashes[jj] == quotes - 1)
    run = np.where(touching, quotes - start_of[jj], 0)
    return quotes[run % 2 == 0]


class _Scan:
    """What the pre-scan found: positions are byte offsets into the data."""

    def __init__(self, data: bytes):
        b = np.frombuffer(data, dtype=np.uint8)
        self.data = data
        self.quotes = _string_quotes(b)
        events = np.flatnonzero(_STRUCT[b])
        inside = (np.searchsorted(self.quotes, events) % 2) == 1  # an odd number of quotes before: in a string
        self.events = events[~inside]
        chars = b[self.events]
        self.opens = _OPEN[chars]
        step = self.opens.astype(np.int64) - _CLOSE[chars]
        self.depth = np.cumsum(step)  # depth after each event

    def max_depth(self) -> int:
        return int(self.depth.max(initial=0))

    def first_deeper(self, limit: int) -> int:
        return int(self.events[np.argmax(self.depth > limit)])

    def longest_string(self) -> tuple[int, int]:
        """(length in bytes, position of its opening quote) of the longest string; an unterminated one runs to
        the end."""
        starts = self.quotes[0::2]
        if starts.size == 0:
            return 0, 0
        ends = np.append(self.quotes[1::2], len(self.data))[: starts.size]
        lengths = ends - starts - 1
        i = int(np.argmax(lengths))
        return int(lengths[i]), int(starts[i])

    def largest_containers(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((items, position) of the largest array, (keys, position) of the largest object), counted by the
        commas at each container's own depth (a stable sort by depth groups each container's events)."""
        empty = ((0, 0), (0, 0))
        if not self.opens.any():
            return empty
        commas = ~self.opens & (self.data_chars() == ord(","))
        order = np.argsort(self.depth, kind="stable")
        d_sorted = self.depth[order]
        is_open = self.opens[order]
        idx = np.arange(order.size)
        last_open = np.maximum.accumulate(np.where(is_open, idx, -1))
        is_comma = commas[order]
        owner = last_open[is_comma]
        ok = owner >= 0
        ok[ok] = d_sorted[owner[ok]] == d_sorted[is_comma][ok]  # same depth: the comma's own container
        counts = np.bincount(owner[ok], minlength=order.size) + 1  # items = commas + 1 (0 or 1 items: +1 too)
        opener_pos = self.events[order]
        kinds = self.data_chars()[order]
        out = []
        for kind in (ord("["), ord("{")):
            mask = is_open & (kinds == kind)
            if not mask.any():
                out.append((0, 0))
                continue
            c = np.where(mask, counts, 0)
            i = int(np.argmax(c))
            out.append((int(c[i]), int(opener_pos[i])))
        return out[0], out[1]

    def data_chars(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype=np.uint8)[self.events]

    def where(self, pos: int) -> str:
        return where(self.data, pos)


def where(data: bytes, pos: int) -> str:
    """`line L column C` (1-based; columns in characters) of a byte offset."""
    newline = b"\n"
    line_start = data.rfind(newline, 0, pos) + 1
    column = len(data[line_start:pos].decode("utf-8", errors="replace")) + 1
    return f"line {data.count(newline, 0, pos) + 1} column {column}"


def max_depth(data: bytes) -> int:
    """Deepest [ / { nesting outside strings, by a linear scan (no recursion, no parser)."""
    return _Scan(bytes(data)).max_depth()


def _prescan(data: bytes, source: str, max_depth: int, max_items: int, max_keys: int, max_string: int) -> None:
    scan = _Scan(data)
    depth = scan.max_depth()
    if depth > max_depth:
        raise JSONInputError(source, f"nesting depth {depth:,} exceeds the cap of {max_depth} "
                                     f"(at {scan.where(scan.first_deeper(max_depth))})", kind="limit")
    length, at = scan.longest_string()
    if length > max_string:
        excerpt = data[at + 1: at + 1 + SHOW_CHARS].decode("utf-8", errors="replace")
        raise JSONInputError(source, f"a string of {length:,} bytes at {scan.where(at)} ({excerpt!r}...) is over "
                                     f"the {max_string:,}-byte cap for one string", kind="limit")
    (items, at_array), (keys, at_object) = scan.largest_containers()
    if items > max_items:
        raise JSONInputError(source, f"an array of {items:,} items at {scan.where(at_array)} is over the cap of "
                                     f"{max_items:,} items", kind="limit")
    if keys > max_keys:
        raise JSONInputError(source, f"an object of {keys:,} keys at {scan.where(at_object)} is over the cap of "
                                     f"{max_keys:,} keys", kind="limit")


# ---------------------------------------------------------------- parsing with hooks


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


def _syntax_problem(exc: json.JSONDecodeError, text: str) -> str:
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


def loads(data: bytes | bytearray | memoryview | str, *, source: str = "JSON input",
          max_bytes: int = MAX_SCENARIO_BYTES, max_depth: int = MAX_DEPTH, max_number_chars: int = MAX_NUMBER_CHARS,
          max_items: int = MAX_ARRAY_ITEMS, max_keys: int = MAX_OBJECT_KEYS,
          max_string_bytes: int = MAX_STRING_BYTES) -> Any:
    """Parse untrusted JSON text (bytes or str) within the limits; any failure is a JSONInputError naming
    `source`. Linear time in the input; never recurses deeper than `max_depth`."""
    raw = _as_bytes(data, source, max_bytes)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JSONInputError(source, f"not a UTF-8 text file ({exc.reason} at byte {exc.start:,})",
                             kind="encoding") from None
    try:
        _prescan(raw, source, max_depth, max_items, max_keys, max_string_bytes)
        hooks, flagged = _hooks(max_number_chars)
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
    except JSONInputError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONInputError(source, _syntax_problem(exc, text), kind="syntax") from None
    except RecursionError:
        raise JSONInputError(source, "nesting too deep to parse", kind="limit") from None
    except MemoryError:
        raise JSONInputError(source, "too large to parse in the memory available", kind="limit") from None
    except (ValueError, TypeError, OverflowError) as exc:  # none expected: the hooks flag, they do not raise
        raise JSONInputError(source, f"not valid JSON: {shorten(str(exc), 200)}", kind="syntax") from None


def read_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_SCENARIO_BYTES, source: str | None = None,
              **limits: int) -> Any:
    """Read and parse a JSON file within the limits (`limits`: the keyword caps of `loads`)."""
    where = source or source_name(path)
    return loads(read_bytes(path, max_bytes=max_bytes, source=where), source=where, max_bytes=max_bytes, **limits)


def read_upload(data: bytes, name: str, max_bytes: int) -> Any:
    """Parse an uploaded file's bytes (the app's uploads); messages name the upload by `name`."""
    return loads(data, source=source_name(name), max_bytes=max_bytes)

