"""Charts drawn in a helper process while a report lays out its text: `png_later(spec, ...) -> Callable[[], bytes]`.

vl-convert holds the GIL while it draws (measured: the main thread ran for 0.2 s of 1.2 s of drawing), and fpdf2's
text layout holds it too, so a thread cannot overlap the two; a second process can. One helper, started on the
first chart asked for and kept for the next report, draws the charts in the order they were asked for. It is a
plain `python -m report.chart_process` reading pickled specs on its stdin and writing PNGs on its stdout, not a
multiprocessing pool: "spawn" re-runs the caller's main script in the child (a script without a
`__name__ == "__main__"` guard would run twice), and a fork of a process running vl-convert's JavaScript engine
is unsafe. Where the helper cannot start, dies or does not answer, charts are drawn in this process, as before.
benchmarks/calibration_pdf_speed.py measures it.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import itertools
import logging
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

__all__ = ["draw_here", "draw_png", "png_later"]

WAIT_S = 120.0  # a chart the helper has not drawn by then is drawn here instead
HEADER = struct.Struct(">I")  # each message: its length, then the pickle

log = logging.getLogger(__name__)
draw_here = False  # draw every chart in this process: set when the helper fails (or to compare)
_lock = threading.Lock()
_helper: _Helper | None = None


class HelperGoneError(OSError):
    """The helper process exited (or could not be written to) before it answered."""


def draw_png(spec: dict[str, Any], vl_version: str | None, scale: float) -> bytes:
    """A Vega-Lite spec as PNG through vl-convert (in whichever process calls it)."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(spec, vl_version=vl_version, scale=scale)


def _send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        raise EOFError
    return pickle.loads(stream.read(HEADER.unpack(head)[0]))


class _Helper:
    """The helper process, the charts asked of it, a thread that writes them to it (the pipe fills while it
    draws, and the caller must not wait for that) and one that hands each PNG to its future."""

    def __init__(self) -> None:
        path = os.pathsep.join(p for p in sys.path if p)  # `report` is found where this process found it
        self.proc = subprocess.Popen([sys.executable, "-m", "report.chart_process"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=os.environ | {"PYTHONPATH": path})
        self.waiting: dict[int, cf.Future] = {}
        self.ids = itertools.count()
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.gone: str | None = None  # why it can no longer be used
        self.lock = threading.Lock()
        threading.Thread(target=self._write, name="chart-helper-writer", daemon=True).start()
        threading.Thread(target=self._read, name="chart-helper-reader", daemon=True).start()

    def submit(self, spec: dict[str, Any], vl_version: str | None, scale: float) -> cf.Future:
        future: cf.Future = cf.Future()
        with self.lock:
            if self.gone is not None:
                raise HelperGoneError(self.gone)
            key = next(self.ids)
            self.waiting[key] = future
        self.outbox.put((key, spec, vl_version, scale))
        return future

    def _write(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                _send(self.proc.stdin, message)
            except (OSError, ValueError) as exc:  # a closed pipe: the helper is gone
                self._fail(f"cannot write to the helper process: {exc}")
                return
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # the helper stops at the end of its input

    def _read(self) -> None:
        try:
            while True:
                key, ok, payload = _receive(self.proc.stdout)
                with self.lock:
                    future = self.waiting.pop(key)
                if ok:
                    future.set_result(payload)
                else:
                    future.set_exception(ValueError(payload))
        except Exception:  # EOF (it exited) or a garbled answer
            self._fail(f"the helper process stopped answering (exit status {self.proc.poll()})")

    def _fail(self, why: str) -> None:
        """Whatever waits is drawn here (the futures raise HelperGoneError)."""
        with self.lock:
            self.gone = self.gone or why
            waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            future.set_exception(HelperGoneError(why))

    def close(self) -> None:
        self.outbox.put(None)
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _started() -> _Helper | None:
    global _helper
    with _lock:
        if _helper is None and not draw_here:
            _helper = _Helper()
            atexit.register(_give_up, None)
        return None if draw_here else _helper


def _give_up(exc: BaseException | None) -> None:
    """No helper from now on (at exit, or after it failed: a helper that failed once is not trusted again)."""
    global _helper, draw_here
    with _lock:
        helper, _helper = _helper, None
        if exc is not None:
            draw_here = True
            log.warning("PDF charts are drawn in this process from now on: the helper process failed (%r)", exc)
    if helper is not None:
        helper.close()


def png_later(spec: dict[str, Any], vl_version: str | None, scale: float) -> Callable[[], bytes]:
    """Start drawing `spec` now; the returned function waits for its PNG (and raises what drawing raised)."""
    try:
        helper = _started()
        future = helper.submit(spec, vl_version, scale) if helper is not None else None
    except (OSError, ValueError, TypeError) as exc:  # no process can be started here, or it is gone
        _give_up(exc)
        future = None
    if future is None:
        return lambda: draw_png(spec, vl_version, scale)

    def result() -> bytes:
        try:
            return future.result(timeout=WAIT_S)
        except (HelperGoneError, cf.TimeoutError) as exc:
            _give_up(exc)
            return draw_png(spec, vl_version, scale)

    return result


def serve() -> None:
    """The helper: draw each spec read from stdin, answer (key, ok, PNG or error text) on stdout, until EOF."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else printed goes to stderr, never into the answers
    while True:
        try:
            key, spec, vl_version, scale = _receive(sys.stdin.buffer)
        except EOFError:
            return
        try:
            answer = (key, True, draw_png(spec, vl_version, scale))
        except Exception as exc:
            answer = (key, False, f"{type(exc).__name__}: {exc}")
        _send(out, answer)


if __name__ == "__main__":
    serve()
