"""The linear pre-scan of untrusted JSON: nesting depth, string lengths and container sizes, before any parser runs.

A vectorised scan (numpy, no recursion, no backtracking regex) finds the strings (a quote preceded by an odd run
of backslashes is escaped), then nesting depth, string length and the items of every array and object: a
100,000-deep `[[[[...` is refused here, before `json.loads` could recurse.
"""

from __future__ import annotations

import numpy as np

from simulator.safe_json_errors import JSONInputError
from simulator.safe_json_limits import SHOW_CHARS

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


def prescan(data: bytes, source: str, max_depth: int, max_items: int, max_keys: int, max_string: int) -> None:
    """Refuse `data` (a JSONInputError naming `source` and the line and column) past any of the caps."""
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
