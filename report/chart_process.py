"""Charts drawn in a helper process while a report lays out its text: `png_later(spec, ...) -> Callable[[], bytes]`.

vl-convert holds the GIL while it draws (measured: the main thread ran for 0.2 s of 1.2 s of drawing), and fpdf2's
text layout holds it too, so a thread cannot overlap the two; a second process can. One process, started with
"spawn" (a fork of a process running vl-convert's JavaScript engine is unsafe) on the first chart asked for and
kept for the next report, draws the charts in the order they were asked for. Where it cannot start, breaks or
does not answer, a chart is drawn in this process as before. benchmarks/calibration_pdf_speed.py measures it.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import logging
import multiprocessing
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["draw_here", "draw_png", "png_later"]

WAIT_S = 120.0  # a chart the helper has not drawn by then is drawn here instead

log = logging.getLogger(__name__)
_lock = threading.Lock()
_pool: cf.ProcessPoolExecutor | None = None
draw_here = False  # draw every chart in this process: set when the helper fails (or to compare)


def draw_png(spec: dict[str, Any], vl_version: str | None, scale: float) -> bytes:
    """A Vega-Lite spec as PNG through vl-convert (in whichever process calls it)."""
    import vl_convert as vlc

    return vlc.vegalite_to_png(spec, vl_version=vl_version, scale=scale)


def _helper() -> cf.ProcessPoolExecutor | None:
    global _pool
    with _lock:
        if _pool is None and not draw_here:
            _pool = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            atexit.register(_give_up, None)  # shut down before the interpreter tears down what the pool needs
        return None if draw_here else _pool


def _give_up(exc: BaseException | None) -> None:
    """No helper from now on (at exit, or after it failed: a helper that broke once is not trusted again)."""
    global _pool, draw_here
    with _lock:
        pool, _pool = _pool, None
        if exc is not None:
            draw_here = True
            log.warning("PDF charts are drawn in this process from now on: the helper process failed (%r)", exc)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def png_later(spec: dict[str, Any], vl_version: str | None, scale: float) -> Callable[[], bytes]:
    """Start drawing `spec` now; the returned function waits for its PNG (and raises what drawing raised)."""
    try:
        pool = _helper()
        future = pool.submit(draw_png, spec, vl_version, scale) if pool is not None else None
    except (OSError, RuntimeError, cf.BrokenExecutor) as exc:  # cannot start a process here; shut down at exit
        _give_up(exc)
        future = None
    if future is None:
        return lambda: draw_png(spec, vl_version, scale)

    def result() -> bytes:
        try:
            return future.result(timeout=WAIT_S)
        except (cf.BrokenExecutor, cf.TimeoutError) as exc:
            _give_up(exc)
            return draw_png(spec, vl_version, scale)

    return result
