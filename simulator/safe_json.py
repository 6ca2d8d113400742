"""The one bounded JSON reader for untrusted text: scenario files and strings, `--grid-json`, calibration
profiles, the app's uploads.

Every limit is declared once, in simulator/safe_json_limits.py. They are enforced before or during parsing, in
time linear in the input:

1. size (safe_json_read.py): a file is `stat`ed and then read at most `max_bytes + 1` bytes (never a 10 GB read);
2. encoding: the bytes must be UTF-8 (a BOM is allowed);
3. a vectorised pre-scan (safe_json_scan.py; numpy, no recursion, no backtracking regex) finds the strings (a
   quote preceded by an odd run of backslashes is escaped), then nesting depth, string length and the items of
   every array and object. A 100,000-deep `[[[[...` is refused here, before `json.loads` could recurse;
4. `json.loads` with hooks (safe_json_parse.py): number literals longer than `MAX_NUMBER_CHARS` are never handed
   to `int()` (a 310-digit integer is a message, not an OverflowError, and Python's 4,300-digit limit is never
   reached), NaN/Infinity and float overflow are refused, and a repeated key in an object is refused. These are
   reported with the JSON path of the value (`model.params`, `measurements[3].median_s`);
5. RecursionError and MemoryError while parsing become messages too.

Every failure is one `JSONInputError` (a ValueError, safe_json_errors.py) whose message names the source (file
name or field) and shows at most a short, truncated excerpt of the offending value. These modules import only
stdlib + numpy.
"""

from __future__ import annotations

import json
import os
from typing import Any

from simulator.safe_json_errors import JSONInputError, shorten
from simulator.safe_json_limits import (
    MAX_ARRAY_ITEMS,
    MAX_DEPTH,
    MAX_NUMBER_CHARS,
    MAX_OBJECT_KEYS,
    MAX_SCENARIO_BYTES,
    MAX_STRING_BYTES,
)
from simulator.safe_json_parse import parse, syntax_problem
from simulator.safe_json_read import as_bytes, read_bytes, source_name
from simulator.safe_json_scan import prescan

__all__ = ["loads", "read_file", "read_upload"]


def loads(data: bytes | bytearray | memoryview | str, *, source: str = "JSON input",
          max_bytes: int = MAX_SCENARIO_BYTES, max_depth: int = MAX_DEPTH, max_number_chars: int = MAX_NUMBER_CHARS,
          max_items: int = MAX_ARRAY_ITEMS, max_keys: int = MAX_OBJECT_KEYS,
          max_string_bytes: int = MAX_STRING_BYTES) -> Any:
    """Parse untrusted JSON text (bytes or str) within the limits; any failure is a JSONInputError naming
    `source`. Linear time in the input; never recurses deeper than `max_depth`."""
    raw = as_bytes(data, source, max_bytes)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JSONInputError(source, f"not a UTF-8 text file ({exc.reason} at byte {exc.start:,})",
                             kind="encoding") from None
    try:
        prescan(raw, source, max_depth, max_items, max_keys, max_string_bytes)
        return parse(text, source, max_number_chars)
    except JSONInputError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONInputError(source, syntax_problem(exc, text), kind="syntax") from None
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
