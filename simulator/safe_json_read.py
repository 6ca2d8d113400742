"""Reading untrusted input's bytes, capped: a file is refused by its size before it is read, a stream past the cap."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

from simulator.safe_json_errors import JSONInputError, shorten
from simulator.safe_json_limits import MAX_SCENARIO_BYTES


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


def as_bytes(data: bytes | bytearray | memoryview | str, source: str, max_bytes: int) -> bytes:
    """JSON text or bytes as bytes, refused past `max_bytes` (a str before it is encoded)."""
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
