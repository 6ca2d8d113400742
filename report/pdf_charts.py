"""Charts in the PDF reports: an Altair chart drawn to PNG offline by vl-convert (in a helper process,
report.chart_process), and a row of charts placed on the page with its heading and caption kept together."""

from __future__ import annotations

import functools
import io
import logging
import struct
from collections.abc import Callable, Sequence
from typing import Any

import altair as alt

from report import chart_process
from report.pdf_doc import GREY, MARGIN, TEXT_W, Doc

CHART_SCALE = 2.0  # PNG pixels per Vega pixel: sharp when printed
FULL_CHART_PX, HALF_CHART_PX, HALF_CHART_HEIGHT_PX = 560, 250, 230
PICTURE_GAP_MM = 6.0  # between charts side by side
PAGE_RESERVE_MM = 24.0  # of a page's height never taken by one chart: its heading and the caption's first lines
NOT_DRAWN = "(Chart not drawn here; its data follow in words.)"

log = logging.getLogger(__name__)

Picture = tuple[bytes | None, str]  # a chart's PNG (None: it could not be drawn) and its description (alt text)


@functools.cache
def _vl_version() -> str | None:
    """The Vega-Lite version vl-convert should use: Altair's own (major.minor), if it has it."""
    import vl_convert as vlc

    wanted = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    return wanted if wanted in vlc.get_vegalite_versions() else None


def chart_spec(chart: alt.TopLevelMixin | dict[str, Any], width_px: int, height_px: int | None = None
               ) -> dict[str, Any]:
    """An Altair chart (or its Vega-Lite spec as a dict) as the spec to draw, `width_px` Vega pixels wide."""
    size = {"width": width_px} | ({} if height_px is None else {"height": height_px})
    return (chart if isinstance(chart, dict) else chart.to_dict(validate=False)) | size  # not .properties(): a copy


def chart_png(chart: alt.TopLevelMixin | dict[str, Any], width_px: int, height_px: int | None = None) -> bytes:
    """An Altair chart (or its Vega-Lite spec as a dict) as PNG through vl-convert (no browser, offline), at
    `width_px` Vega pixels wide."""
    return chart_process.draw_png(chart_spec(chart, width_px, height_px), _vl_version(), CHART_SCALE)


def render(draw: Any, width_px: int, height_px: int | None = None) -> bytes | None:
    """One chart as PNG, or None when it cannot be rendered (a missing or failing renderer must not lose the
    rest of the report: the chart's description is printed either way)."""
    try:
        return chart_png(draw(), width_px, height_px)
    except Exception as exc:
        log.warning("PDF chart not rendered: %s", exc)
        return None


def render_later(draw: Any, width_px: int, height_px: int | None = None) -> Callable[[], bytes | None]:
    """`render` started now: the spec is built here and drawn by report.chart_process's helper process while
    the caller lays out its text; calling the result waits for the PNG (None when it cannot be drawn)."""
    try:
        pending = chart_process.png_later(chart_spec(draw(), width_px, height_px), _vl_version(), CHART_SCALE)
    except Exception as exc:
        log.warning("PDF chart not rendered: %s", exc)
        return lambda: None

    def png() -> bytes | None:
        try:
            return pending()
        except Exception as exc:
            log.warning("PDF chart not rendered: %s", exc)
            return None

    return png


def _height(png: bytes, width_mm: float) -> float:
    """The height in mm of `png` drawn `width_mm` wide (its aspect ratio, read from the PNG header)."""
    px_w, px_h = struct.unpack(">II", png[16:24])
    return width_mm * px_h / px_w


def _sizes(doc: Doc, pictures: Sequence[Picture]) -> list[tuple[float, float]]:
    """(width, height) in mm of each picture of a row laid across the text width: equal slots, each as tall as its
    aspect ratio makes it, narrowed to fit a page's height; a chart not drawn takes its note's height."""
    slot = (TEXT_W - PICTURE_GAP_MM * (len(pictures) - 1)) / len(pictures)
    tallest = doc.page_break_trigger - doc.t_margin - PAGE_RESERVE_MM
    sizes = []
    for png, _ in pictures:
        if png is None:
            doc.font(8.5, colour=GREY)
            sizes.append((slot, float(doc.multi_cell(slot, 4, doc.clean(NOT_DRAWN), align="L", dry_run=True,
                                                     output="HEIGHT"))))
            continue
        height = _height(png, slot)
        sizes.append((slot, height) if height <= tallest else (slot * tallest / height, tallest))
    return sizes


def row_height(doc: Doc, pictures: Sequence[Picture]) -> float:
    """How tall `place` will make this row of pictures, in mm."""
    return max(height for _, height in _sizes(doc, pictures))


def place(doc: Doc, pictures: Sequence[Picture], after_mm: float = 1.0) -> None:
    """The one way a PDF puts charts on its page: `pictures` side by side across the text width (one: the full
    width), at the cursor or on a new page when the tallest does not fit in what is left of this one; the cursor
    then moves below the tallest (and `after_mm` more), so that what follows never prints over a chart. A chart
    that could not be drawn (None) leaves a note in its place; its description is the picture's alt text."""
    sizes = _sizes(doc, pictures)
    tallest = max(height for _, height in sizes)
    doc.room(tallest)
    top = doc.get_y()
    slot = (TEXT_W - PICTURE_GAP_MM * (len(pictures) - 1)) / len(pictures)
    for i, ((png, description), (width, height)) in enumerate(zip(pictures, sizes, strict=True)):
        x = MARGIN + i * (slot + PICTURE_GAP_MM)
        if png is None:
            doc.set_xy(x, top)
            doc.font(8.5, colour=GREY)
            doc.multi_cell(width, 4, doc.clean(NOT_DRAWN), align="L")
        else:
            doc.image(io.BytesIO(png), x=x, y=top, w=width, h=height, alt_text=doc.clean(description)[:500])
    doc.set_xy(MARGIN, top + tallest + after_mm)


def figure(doc: Doc, title: str, pictures: Sequence[Picture], caption: str | None = None, *,
           size: float = 12.5) -> None:
    """A heading, its row of charts (`place`; kept on one page with the heading and the caption's first lines) and
    the caption (default: the charts' descriptions)."""
    doc.heading(title, size=size, keep=row_height(doc, pictures) + 14)
    place(doc, pictures)
    doc.para(" ".join(d for _, d in pictures) if caption is None else caption, 8, colour=GREY)

