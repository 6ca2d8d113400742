"""The PDF summary of a training plan: `plan_pdf(plan, scaling_sweep=None, baseline=None) -> bytes`.

One A4 document a planner can forward: the answer sentence first (the Train page's own), the key figures with
their P10–P90 ranges and provenance, ideal against expected wall time, the warnings with what would make the
plan fit, the page's Altair charts rendered offline by vl-convert, every input (given, derived or default), how
the inputs were completed, and where every figure and hardware number comes from. docs/reports.md maps each part
to its source.

Text goes through one font choice: DejaVu Sans from the system (Debian: fonts-dejavu-core) with fallback fonts
for the scripts it lacks (Chinese and Japanese, Korean, the Indic scripts, Thai and more, emoji in colour; see
FALLBACKS), each loaded only when a text needs it, and the text shaping of complex scripts switched on only for
a document that has them. A character no installed font has prints as "?" and the document ends with a note that
names it. Without DejaVu the PDF uses the built-in Helvetica with every non-Latin-1 character transliterated or
replaced. Nothing here raises on odd text, and a chart that cannot be drawn is replaced by its text description.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import io
import logging
import os
import struct
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from report import chart_process, charts, ranges_text
from report import formatting as fmt
from simulator.families import FAMILIES
from simulator.inputs import FIGURES, INPUTS
from simulator.plan import VERSION
from simulator.presets import PRESETS
from simulator.training import choice
from simulator.training.choice import chosen_by_planner
from simulator.words import NO_NEARBY_FIT

__all__ = ["KEY_FIGURES", "Picture", "fallback_for", "figure", "fonts_found", "place", "plan_pdf", "row_height"]

FONT_DIRS = (  # where DejaVu Sans and the fallbacks live on common systems (searched in this order)
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu: fonts-dejavu-core
    Path("/usr/share/fonts/dejavu-sans-fonts"), Path("/usr/share/fonts/dejavu"),  # Fedora, older RPM systems
    Path("/usr/share/fonts/TTF"),  # Arch
    Path("/usr/share/fonts/truetype/droid"), Path("/usr/share/fonts-droid-fallback/truetype"),  # fonts-droid-fallback
    Path("/usr/share/fonts/google-droid-sans-fonts"),
    Path("/usr/share/fonts/truetype/nanum"), Path("/usr/share/fonts/naver-nanum"),  # fonts-nanum
    Path("/usr/share/fonts/truetype/noto"), Path("/usr/share/fonts/noto"),  # fonts-noto-core, -color-emoji; Arch
    Path("/usr/share/fonts/google-noto"), Path("/usr/share/fonts/google-noto-color-emoji-fonts"),  # Fedora
    Path("/usr/local/share/fonts"), Path("/Library/Fonts"), Path.home() / "Library" / "Fonts",
)
REGULAR, BOLD = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"
NOTO_SCRIPTS = (  # fonts-noto-core's fonts for scripts DejaVu Sans lacks or covers in part
    "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada", "Malayalam", "Sinhala",
    "Thai", "Lao", "Khmer", "Myanmar", "Ethiopic", "Georgian", "Armenian", "Arabic", "Hebrew", "Syriac", "Thaana",
    "Mongolian", "Cherokee", "CanadianAboriginal", "Tifinagh", "NKo", "Javanese", "Balinese", "Adlam",
)
FALLBACKS = (  # for characters DejaVu Sans lacks, tried in this order (each: the first of its file names found)
    ("DroidSansFallbackFull.ttf", "DroidSansFallback.ttf"),  # Chinese, Japanese (fonts-droid-fallback)
    ("NanumGothic.ttf",),  # Korean: Hangul (fonts-nanum)
    *((f"NotoSans{script}-Regular.ttf",) for script in NOTO_SCRIPTS),
    ("NotoColorEmoji.ttf",),  # emoji, drawn in colour (fonts-noto-color-emoji)
)
FAMILY, CORE_FAMILY = "dejavu", "helvetica"
SHAPED = {0x200C, 0x200D}  # zero-width (non-)joiners: they steer how Indic and emoji sequences join
MOST_NAMED = 12  # characters the note on unprintable ones names (the rest are counted)
KEY_FIGURES = (  # the page's metric rows, then the step the figures are made of
    "training.wall_days", "training.cost_usd", "training.gpu_hours", "training.energy_mwh", "training.goodput",
    "training.mfu", "training.memory_per_gpu_gb", "quality.loss", "training.step_time_s", "training.tokens_per_s",
    "training.flops_total",
)
GOODPUT_PARTS = ("checkpoint_days", "failure_days", "eval_days", "warmup_days")
SUPERSCRIPTS = "¹²³⁴⁵⁶⁷⁸⁹"
PAGE_W, MARGIN = 210.0, 15.0
TEXT_W = PAGE_W - 2 * MARGIN
CHART_SCALE = 2.0  # PNG pixels per Vega pixel: sharp when printed
FULL_CHART_PX, HALF_CHART_PX, HALF_CHART_HEIGHT_PX = 560, 250, 230
GREY, DARK, RULE = (90, 90, 90), (20, 20, 20), (200, 200, 200)
PICTURE_GAP_MM = 6.0  # between charts side by side
PAGE_RESERVE_MM = 24.0  # of a page's height never taken by one chart: its heading and the caption's first lines
NOT_DRAWN = "(Chart not drawn here; its data follow in words.)"
HEADINGS = FontFace(emphasis="BOLD", fill_color=(236, 236, 236))
TRANSLIT = str.maketrans({  # for the built-in font: typographic characters it lacks, as the nearest it has
    "—": "-", "–": "-", "‑": "-", "−": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "...", "→": "->",
    "←": "<-", "≤": "<=", "≥": ">=", "≈": "~", "κ": "k", "α": "a", "β": "b", "λ": "l", "τ": "t",
    "δ": "d", "Ψ": "Psi", "σ": "s", "⌈": "ceil(", "⌉": ")", "√": "sqrt", "•": "-", "\u00a0": " ",
})

log = logging.getLogger(__name__)
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)  # it warns of every hinting table it drops

Picture = tuple[bytes | None, str]  # a chart's PNG (None: it could not be drawn) and its description (alt text)


@functools.cache
def _find(name: str) -> Path | None:
    for folder in FONT_DIRS:
        path = folder / name
        if path.is_file():
            return path
    spec = importlib.util.find_spec("matplotlib")  # matplotlib, where installed, ships DejaVu Sans
    if spec is not None and spec.origin and name in (REGULAR, BOLD):
        path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / name
        if path.is_file():
            return path
    return None


def fonts_found() -> dict[str, Any]:
    """The font files this machine gives the PDF: {"regular", "bold"} -> path or None, and "fallbacks" -> the paths
    found of FALLBACKS, in its order."""
    fallbacks = (next((p for p in map(_find, names) if p is not None), None) for names in FALLBACKS)
    return {"regular": _find(REGULAR), "bold": _find(BOLD), "fallbacks": tuple(p for p in fallbacks if p is not None)}


@functools.cache
def _cmap(path: Path) -> frozenset[int]:
    """The code points a font file has glyphs for (read once per process, only its cmap table)."""
    from fontTools.ttLib import TTFont  # fpdf2's own dependency

    try:
        with TTFont(str(path), lazy=True) as font:
            return frozenset(font.getBestCmap() or ())
    except Exception as exc:  # a broken font file: it covers nothing
        log.warning("PDF fallback font %s not readable: %s", path, exc)
        return frozenset()


def fallback_for(ch: str) -> Path | None:
    """The fallback font file that draws `ch` on this machine (the first in FALLBACKS' order), or None."""
    return next((p for p in fonts_found()["fallbacks"] if ord(ch) in _cmap(p)), None)


def _needs_shaping(ch: str) -> bool:
    """True for a character that is drawn right only with text shaping: right-to-left letters, combining marks
    (Indic and Thai vowel signs, viramas), joiners, and the regional indicators that pair into flags."""
    return (unicodedata.bidirectional(ch) in ("R", "AL") or unicodedata.category(ch) in ("Mn", "Mc")
            or ord(ch) in SHAPED or 0x1F1E6 <= ord(ch) <= 0x1F1FF)


class _Doc(FPDF):
    """A4 portrait with the report's fonts, headings, paragraphs and tables; every text goes through `clean`."""

    def __init__(self, footer: str, fonts: Mapping[str, Any]) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(True, margin=16)
        self.footer_text = footer
        self.fallback_paths: tuple[Path, ...] = tuple(fonts.get("fallbacks") or ())
        self.fallbacks_loaded: dict[int, str] = {}  # index in fallback_paths -> the family it was added as
        self.unprintable: set[str] = set()  # characters no font has, printed as "?" (named in a note at the end)
        self.shaping = False
        self.unicode = fonts.get("regular") is not None
        self.covered: set[int] = set()
        if self.unicode:
            self.add_font(FAMILY, "", str(fonts["regular"]))
            self.add_font(FAMILY, "B", str(fonts.get("bold") or fonts["regular"]))
            self.covered = set(self.fonts[FAMILY].cmap) & set(self.fonts[f"{FAMILY}B"].cmap)
        self.family_name = FAMILY if self.unicode else CORE_FAMILY

    # ---------------------------------------------------------------- text
    def clean(self, text: Any) -> str:
        """`text` as the document's fonts can draw it: control characters as spaces, format marks dropped (the
        joiners kept), lone surrogates and characters no font has as "?"."""
        out = []
        for ch in unicodedata.normalize("NFC", str(text)):
            category = unicodedata.category(ch)
            if ch == "\n":
                out.append(ch)
            elif category == "Cc":
                out.append(" ")
            elif category == "Cf" and ord(ch) not in SHAPED:  # zero-width and direction marks
                continue
            elif category in ("Cs", "Co", "Cn"):  # lone surrogates, private use, unassigned
                out.append("?")
            else:
                out.append(ch)
        text = "".join(out)
        return self._drawable(text) if self.unicode else self._latin1(text)

    def _drawable(self, text: str) -> str:
        missing = {ch for ch in text if ord(ch) not in self.covered and ch != "\n"}
        if missing:
            self._add_fallbacks(missing)
            missing = {ch for ch in missing if ord(ch) not in self.covered}
        if not self.shaping and any(map(_needs_shaping, text)):
            self._start_shaping()
        if not missing:
            return text
        self.unprintable |= missing
        return "".join("?" if ch in missing else ch for ch in text)

    def _add_fallbacks(self, missing: set[str]) -> None:
        """Load the fallback fonts that draw some of `missing` (the first in FALLBACKS' order for each character),
        once per document and only when a text needs them."""
        wanted = {ord(ch) for ch in missing}
        added = False
        for i, path in enumerate(self.fallback_paths):
            if not wanted:
                break
            if i in self.fallbacks_loaded or not wanted & _cmap(path):
                continue
            family = f"fallback{i}"
            try:
                self.add_font(family, "", str(path))
            except Exception as exc:  # a broken font file: keep going with "?"
                log.warning("PDF fallback font %s not usable: %s", path, exc)
                self.fallbacks_loaded[i] = ""
                continue
            self.fallbacks_loaded[i] = family
            self.covered |= set(self.fonts[family].cmap)
            wanted -= self.covered
            added = True
        if added:
            self.set_fallback_fonts([f for _, f in sorted(self.fallbacks_loaded.items()) if f], exact_match=False)

    def _start_shaping(self) -> None:
        """Text shaping (HarfBuzz through uharfbuzz) from here on: Indic conjuncts, Arabic joining, right-to-left
        order, flags. Only for a document that needs it: it triples the time of laying out text."""
        self.shaping = True
        try:
            self.set_text_shaping(True)
        except Exception as exc:  # uharfbuzz missing: the letters print, unjoined
            log.warning("PDF text shaping not available (%s): complex scripts print unjoined", exc)

    def _render_styled_text_line(self, *args: Any, **kwargs: Any) -> Any:
        """fpdf2's own, with the line's font always set: fpdf2 2.8.9 loses track of it after a line whose text
        mixes a fallback font and the main one (the next line prints with no font: invisible in most viewers)."""
        self.current_font_is_set_on_page = False
        return super()._render_styled_text_line(*args, **kwargs)

    def _latin1(self, text: str) -> str:
        text = text.translate(TRANSLIT)
        out = []
        for ch in text:
            if ord(ch) < 256:
                out.append(ch)
                continue
            if unicodedata.combining(ch):
                continue
            plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if ord(c) < 256 and not unicodedata.combining(c))
            if not plain:
                self.unprintable.add(ch)
            out.append(plain or "?")
        return "".join(out)

    def output(self, *args: Any, **kwargs: Any) -> Any:
        """The PDF, with a note at its end that names every character printed as "?" because no font had it."""
        if self.unprintable:
            self._unprintable_note(sorted(self.unprintable))
            self.unprintable = set()
        return super().output(*args, **kwargs)

    def _unprintable_note(self, chars: Sequence[str]) -> None:
        named = [f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed character')}" for ch in chars[:MOST_NAMED]]
        more = f" and {len(chars) - MOST_NAMED} more" if len(chars) > MOST_NAMED else ""
        fonts = ("the fonts the report uses (make pdf-fonts; docs/reports.md)" if self.unicode else
                 "DejaVu Sans and the fonts the report uses (make pdf-fonts; docs/reports.md)")
        self.heading("Characters this PDF could not print", size=10.5, keep=15)
        self.para(f"No font on the machine that made this PDF has {', '.join(named)}{more}: each is printed as "
                  f"\"?\". Installing {fonts} prints them.", 8.5, colour=GREY)

    def font(self, size: float, bold: bool = False, colour: tuple[int, int, int] = DARK) -> None:
        self.set_font(self.family_name, "B" if bold else "", size)
        self.set_text_color(*colour)

    # ---------------------------------------------------------------- blocks
    def footer(self) -> None:
        self.set_y(-11)
        self.font(7.5, colour=GREY)
        page = self.clean(f" · page {self.page_no()} of {{nb}}")
        self.cell(0, 5, self.fit(self.clean(self.footer_text), TEXT_W - self.get_string_width(page) - 4) + page,
                  align="C")

    def fit(self, text: str, width_mm: float) -> str:
        """`text` cut to fit on one line `width_mm` wide in the current font, ending in "…" where it was cut."""
        if self.get_string_width(text) <= width_mm:
            return text
        low, high = 0, len(text)  # the longest prefix that fits with its "…"
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if self.get_string_width(text[:mid].rstrip() + "…") <= width_mm else (low, mid - 1)
        return text[:low].rstrip() + "…"

    def room(self, height: float) -> None:
        """Start a new page unless `height` mm still fit on this one (keeps a heading with what follows)."""
        if self.get_y() + height > self.page_break_trigger:
            self.add_page()

    def heading(self, text: str, size: float = 12.5, before: float = 4.0, keep: float = 30.0) -> None:
        self.room(before + keep)
        self.ln(before)
        self.font(size, bold=True)
        self.multi_cell(TEXT_W, size * 0.5, self.clean(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1.2)

    def para(self, text: str, size: float = 9.5, bold: bool = False, colour: tuple[int, int, int] = DARK,
             after: float = 1.5) -> None:
        self.font(size, bold, colour)
        self.multi_cell(TEXT_W, size * 0.48, self.clean(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(after)

    def bullets(self, items: Iterable[str], size: float = 9.0) -> None:
        self.font(size)
        for item in items:
            self.set_x(MARGIN + 2)
            self.cell(4, size * 0.48, self.clean("•"))
            self.multi_cell(TEXT_W - 6, size * 0.48, self.clean(item), align="L", new_x=XPos.LMARGIN,
                            new_y=YPos.NEXT)
            self.ln(0.6)
        self.ln(1)

    def grid(self, header: Sequence[str], rows: Iterable[Sequence[Any]], widths: Sequence[float],
             size: float = 8.0, align: Sequence[str] | None = None) -> None:
        """A table with a shaded heading row (repeated on each page) and light horizontal rules."""
        self.font(size)
        self.set_draw_color(*RULE)
        self.room(4 * size * 0.5)
        with self.table(col_widths=tuple(widths), width=TEXT_W, line_height=size * 0.47, padding=(0.8, 1.2),
                        text_align=tuple(align or ["LEFT"] * len(widths)), headings_style=HEADINGS,
                        borders_layout="HORIZONTAL_LINES", align="LEFT") as table:
            head = table.row()
            for text in header:
                head.cell(self.clean(text))
            for values in rows:
                row = table.row()
                for value in values:
                    row.cell(self.clean(value))
        self.ln(2)


# ---------------------------------------------------------------- charts


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


def _render(draw: Any, width_px: int, height_px: int | None = None) -> bytes | None:
    """One chart as PNG, or None when it cannot be rendered (a missing or failing renderer must not lose the
    rest of the report: the chart's description is printed either way)."""
    try:
        return chart_png(draw(), width_px, height_px)
    except Exception as exc:
        log.warning("PDF chart not rendered: %s", exc)
        return None


def render_later(draw: Any, width_px: int, height_px: int | None = None) -> Callable[[], bytes | None]:
    """`_render` started now: the spec is built here and drawn by report.chart_process's helper process while
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


def _sizes(doc: _Doc, pictures: Sequence[Picture]) -> list[tuple[float, float]]:
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


def row_height(doc: _Doc, pictures: Sequence[Picture]) -> float:
    """How tall `place` will make this row of pictures, in mm."""
    return max(height for _, height in _sizes(doc, pictures))


def place(doc: _Doc, pictures: Sequence[Picture], after_mm: float = 1.0) -> None:
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


def figure(doc: _Doc, title: str, pictures: Sequence[Picture], caption: str | None = None, *,
           size: float = 12.5) -> None:
    """A heading, its row of charts (`place`; kept on one page with the heading and the caption's first lines) and
    the caption (default: the charts' descriptions)."""
    doc.heading(title, size=size, keep=row_height(doc, pictures) + 14)
    place(doc, pictures)
    doc.para(" ".join(d for _, d in pictures) if caption is None else caption, 8, colour=GREY)


# ---------------------------------------------------------------- content


def _value(plan: Any, key: str) -> str:
    figure = plan.figures[key]
    if key == "training.goodput" and not plan.scenario.goodput.enabled:
        return "off"
    text = fmt.by_unit(figure.value, figure.unit)
    if key == "training.memory_per_gpu_gb":
        text += f" of {fmt.gb(plan.hardware.hbm_GB)}"
    return text


def _range(figure: Any) -> str:
    return fmt.span(figure.low, figure.high, figure.unit) if figure.low is not None and figure.high is not None else ""


def _change(figure: Any, before: Any) -> str:
    if figure.unit == "fraction":
        text = fmt.delta(figure.value, before.value, fmt.points, relative=False)
    else:
        text = fmt.delta(figure.value, before.value, lambda x: fmt.by_unit(x, figure.unit))
    return text or "same"


def _markers(figures: Iterable[Any]) -> dict[str, str]:
    """One superscript per distinct basis of the computed figures (today there is one per plan)."""
    bases = list(dict.fromkeys(f.basis for f in figures if f.basis))
    return {basis: SUPERSCRIPTS[i] if i < len(SUPERSCRIPTS) else f"[{i + 1}]" for i, basis in enumerate(bases)}


def _provenance(figure: Any, markers: Mapping[str, str]) -> str:
    return figure.provenance + markers.get(figure.basis, "")


def _key_figures(doc: _Doc, plan: Any, baseline: Any | None) -> None:
    keys = [k for k in KEY_FIGURES if k in plan.figures]
    markers = _markers(plan.figures[k] for k in keys)
    header = ["Figure", "Value", "P10–P90", "Provenance"]
    widths: list[float] = [62, 38, 48, 32]
    if baseline is not None:
        header += ["Baseline", "Change"]
        widths = [44, 27, 37, 24, 24, 24]
    rows = []
    for key in keys:
        figure = plan.figures[key]
        row = [figure.label, _value(plan, key), _range(figure), _provenance(figure, markers)]
        if baseline is not None and key in baseline.figures:
            row += [_value(baseline, key), _change(figure, baseline.figures[key])]
        elif baseline is not None:
            row += ["", ""]
        rows.append(row)
    doc.grid(header, rows, widths, size=8.5)
    for basis, marker in markers.items():
        doc.para(f"{marker} Basis of the computed figures: {basis}.", 8, colour=GREY, after=0.5)
    doc.para(f"{ranges_text.METHOD} A figure without a range is exact given its inputs.", 8, colour=GREY)


def spread_section(doc: _Doc, plan: Any) -> None:
    """What the plan's ranges include: every spread term with its P10-P90 factor and where its size comes from."""
    doc.heading("What the ranges include", size=10.5, before=2, keep=30)
    doc.para(ranges_text.summary(plan), 8.5, after=0.5)
    doc.grid(ranges_text.HEADER, ranges_text.rows(plan), ranges_text.WIDTHS, size=7.5)


def _time(doc: _Doc, plan: Any) -> None:
    t = plan.training
    if not plan.scenario.goodput.enabled:
        doc.para(f"Goodput overheads are off: {fmt.days(t['wall_days'].value)} is the ideal wall time (steps × step "
                 "time), as peak-throughput tables quote it.")
        return
    ideal, wall = t["ideal_wall_days"], t["wall_days"]
    rows = [[ideal.label + " (steps × step time)", fmt.days(ideal.value), _range(ideal)]]
    rows += [[f"+ {t[key].label}", fmt.days(t[key].value), ""] for key in GOODPUT_PARTS]
    rows.append([f"= {wall.label}", fmt.days(wall.value), _range(wall)])
    rows.append([t["goodput"].label + " (ideal ÷ expected)", fmt.pct(t["goodput"].value), ""])
    doc.grid(["Part", "Time", "P10–P90"], rows, [100, 40, 40], size=8.5)
    doc.para(f"{t['failures'].label}: {fmt.plain(t['failures'].value)}; "
             f"{t['checkpoint_interval_min'].label.lower()}: {fmt.plain(t['checkpoint_interval_min'].value)} min.",
             8.5, colour=GREY)


def _warnings(doc: _Doc, plan: Any) -> None:
    if not plan.warnings:
        doc.para("None: the plan fits in memory and breaks no rule of thumb.")
        return
    for warning in plan.warnings:
        text = fmt.in_words(warning.text)
        doc.font(9, bold=True)
        doc.multi_cell(TEXT_W, 4.4, doc.clean(f"[{warning.code}]" + (f" {fmt.in_words(warning.key)}" if warning.key else "")),
                       align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        doc.para(text, 9, after=1)
        if warning.code == "memory" and plan.suggestions:
            doc.para("These nearby plans would fit:", 9, after=0.5)
            doc.bullets(f"{s.label}: {fmt.gb(s.memory_per_gpu_gb)} per GPU" for s in plan.suggestions)
        elif warning.code == "memory":
            doc.para(NO_NEARBY_FIT, 9)


def _breakdown(doc: _Doc, plans: Mapping[str, Any]) -> None:
    frame = charts.step_frame(plans)
    figure(doc, "Where each step's time goes",
           [(_render(lambda: charts.step_chart(frame), FULL_CHART_PX), charts.describe_step(frame))])
    frame = charts.memory_frame(plans, {name: p.hardware.hbm_GB for name, p in plans.items()})
    figure(doc, "Memory per GPU against its capacity",
           [(_render(lambda: charts.memory_chart(frame), FULL_CHART_PX), charts.describe_memory(frame))])


def _scaling(doc: _Doc, sweep: pd.DataFrame, gpus: int, baseline_gpus: int | None) -> None:
    frame = charts.scaling_frame(sweep)
    if frame.empty:
        doc.heading("Expected time and cost against GPU count", keep=12)
        doc.para("No other GPU count splits this global batch; change the batch or the parallelism to compare.")
        return
    figure(doc, "Expected time and cost against GPU count",
           [(_render(functools.partial(charts.scaling_chart, frame, measure, gpus, baseline_gpus), HALF_CHART_PX,
                     HALF_CHART_HEIGHT_PX), charts.describe_scaling(frame, measure, gpus))
            for measure in charts.SCALING_MEASURES])
    table = charts.table_view(frame, charts.SCALING_UNITS)
    doc.grid(list(table.columns), table.itertuples(index=False), [24, 30, 28, 30, 16, 52], size=8,
             align=["RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "LEFT"])
    skipped = sweep.loc[~sweep["valid"], "cluster.gpus"].astype(int).tolist()
    note = f" Left out (the batch or parallelism does not split): {', '.join(map(fmt.count, skipped))}." if skipped else ""
    doc.para(f"Same model, tokens, batch and parallelism; only the data-parallel width changes.{note}", 8,
             colour=GREY)


def input_value(inp: Any, value: Any, plan: Any) -> str:
    """An input's value for the inputs table (its unit has a column of its own)."""
    if value is None:  # absent: the planner chooses (and the plan says what), or a rule derives it, or none
        chosen = plan.figures.get(f"training.{inp.name}")
        if chosen is not None:
            return f"auto ({fmt.by_unit(chosen.value, '')})"
    names = {plan.hardware.id: plan.hardware_label}
    return fmt.input_text(inp, value, lambda v: names.get(v, str(v)), with_unit=False)


def _origin(scenario: Any, key: str) -> str:
    """"given" (in the scenario), "preset" (the preset's shape), "derived" (a rule) or "default"."""
    if key in scenario.given:
        return "given"
    if key in scenario.derived:
        return "planner" if chosen_by_planner(INPUTS[key].derived) else "derived"
    preset = PRESETS.get(scenario.model.preset or "")
    section, _, name = key.partition(".")
    return "preset" if preset is not None and section == "model" and name in preset.model else "default"


TRAINING_FAMILIES = ("training", "goodput", "cost", "quality")  # what the Train page shows and its PDF lists


def family_inputs(names: Iterable[str] | None) -> dict[str, Any]:
    """The inputs of the named families (None: every registered input), by dotted key."""
    if names is None:
        return dict(INPUTS)
    wanted = set(names)
    return {inp.key: inp for family in FAMILIES if family.name in wanted for inp in family.inputs}


def _inputs(doc: _Doc, plan: Any, families: Iterable[str] | None = TRAINING_FAMILIES) -> None:
    s = plan.scenario
    rows = [[inp.label, key, input_value(inp, s.value(key), plan), "" if inp.kind == "choice" else inp.unit,
             _origin(s, key)] for key, inp in family_inputs(families).items()]
    doc.grid(["Input", "Key", "Value", "Unit", "Set by"], rows, [52, 56, 29, 27, 16], size=7.5)
    doc.para("Given: set in the scenario. Preset: the model preset's published shape. Derived: completed from "
             f"other inputs by the rule noted below. Planner: chosen as {choice.FASTEST} in memory, of the values "
             "noted below. Default: the input's default value.", 8, colour=GREY)
    if plan.notes:
        doc.heading("How the inputs were completed", size=10.5, before=2, keep=15)
        doc.bullets((fmt.in_words(n) for n in plan.notes), size=8.5)


def _sources(doc: _Doc, plan: Any, keys: Iterable[str] | None = None) -> None:
    """How each figure is made (`keys`: these figures only, in this order; default every charted figure), and the
    accelerator's sources."""
    shown = ({k: plan.figures[k] for k in keys if k in plan.figures} if keys is not None else
             {k: f for k, f in plan.figures.items() if k not in FIGURES or FIGURES[k].chart})
    markers = _markers(shown.values())
    rows = [[f.label, fmt.by_unit(f.value, f.unit), _provenance(f, markers), fmt.in_words(f.source)] for f in shown.values()]
    doc.grid(["Figure", "Value", "Provenance", "How it is made (formula or source)"], rows, [44, 24, 22, 90],
             size=7.5)
    for basis, marker in markers.items():
        doc.para(f"{marker} {basis}.", 7.5, colour=GREY, after=0.5)
    hw = plan.hardware
    provenance_of = dict(getattr(hw, "provenance_of", {}) or {})
    doc.heading(f"Accelerator: {hw.display_name}", size=10.5, before=3, keep=20)
    doc.para(f"{hw.id}: {hw.provenance}; price of {hw.price_date}; {fmt.gb(hw.hbm_GB)} HBM.", 8.5)
    doc.grid(["Group", "Provenance", "Source"],
             [[group, provenance_of.get(group, hw.provenance), text] for group, text in hw.sources.items()],
             [26, 22, 132], size=7.5)


def _scenario_name(plan: Any) -> str:
    name = shown_name(plan.scenario.name)
    if name:
        return name
    preset = plan.scenario.model.preset
    if preset:
        return str(INPUTS["model.preset"].choice_labels.get(preset, preset))
    return "custom model"


def report_date(created: dt.datetime | None) -> dt.datetime:
    """The date a report prints and stores: `created` (a naive one read as UTC); default the environment's
    SOURCE_DATE_EPOCH (seconds since 1970, the reproducible-builds convention: the same inputs then give the same
    bytes from the page and the command line), else now (UTC)."""
    created = created or _source_date() or dt.datetime.now(dt.UTC)
    return created.replace(tzinfo=dt.UTC) if created.tzinfo is None else created


def _source_date() -> dt.datetime | None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    try:
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch.isdecimal() else None
    except (ValueError, OverflowError, OSError):  # beyond the dates Python knows: ignored
        return None


def shown_name(name: str | None) -> str | None:
    """`name` when it has something to print (not only spaces, control characters or zero-width marks), else
    None: a title of zero-width spaces would print as nothing."""
    if not name:
        return None
    visible = any(not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf", "Cs") for ch in name)
    return name if visible else None


def new_document(title: str, subject: str, created: dt.datetime, footer: str | None = None) -> _Doc:
    """An A4 report with its metadata (title, subject, date, author, version) set and its first page started;
    `footer`: what each page's footer names (default the title)."""
    doc = _Doc(f"Modelfolio {VERSION} · {footer or title}", fonts_found())
    doc.set_creation_date(created)
    doc.set_title(doc.clean(title))
    doc.set_author("Modelfolio")
    doc.set_creator(f"Modelfolio {VERSION}")
    doc.set_subject(doc.clean(subject))
    doc.set_lang("en")
    doc.add_page()
    return doc


def title_block(doc: _Doc, title: str, byline: str) -> None:
    """The first page's title and the grey line under it (date, version, what it is about)."""
    doc.font(17, bold=True)
    doc.multi_cell(TEXT_W, 8, doc.clean(title), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    doc.para(byline, 8.5, colour=GREY, after=3)


def plan_pdf(plan: Any, scaling_sweep: pd.DataFrame | None = None, baseline: Any | None = None, *,
             name: str | None = None, created: dt.datetime | None = None) -> bytes:
    """The plan as an A4 PDF. `scaling_sweep`: a `cluster.gpus` sweep of the plan (simulator.scaling.gpu_sweep)
    for the time and cost charts; `baseline`: a pinned plan to compare with; `name`: what the scenario is called
    (default: the scenario's `name`, else its preset or "custom model"); `created`: the date printed and stored
    (fixed for reproducible bytes; default `report_date`'s)."""
    created = report_date(created)
    name = shown_name(name) or _scenario_name(plan)
    doc = new_document(f"Training plan: {name}", fmt.training_sentence(plan, plan.hardware.hbm_GB), created,
                       footer=name)

    title_block(doc, f"Training plan: {name}", f"{created:%Y-%m-%d %H:%M} UTC · Modelfolio {VERSION} · "
                f"{plan.hardware_label}")
    doc.para(fmt.training_sentence(plan, plan.hardware.hbm_GB), 12, bold=True, after=1.5)
    if baseline is not None:
        doc.para(f"Baseline: {fmt.training_sentence(baseline, baseline.hardware.hbm_GB)}", 9, colour=GREY)

    doc.heading("Key figures", before=2)
    _key_figures(doc, plan, baseline)
    doc.heading("Wall time: ideal and expected", keep=45)
    _time(doc, plan)
    doc.heading("Warnings", keep=20)
    _warnings(doc, plan)

    plans = {"This plan": plan} | ({"Baseline": baseline} if baseline is not None else {})
    _breakdown(doc, plans)
    if scaling_sweep is not None:
        _scaling(doc, scaling_sweep, plan.scenario.cluster.gpus,
                 baseline.scenario.cluster.gpus if baseline is not None else None)

    spread_section(doc, plan)
    doc.heading("Inputs", keep=40)
    _inputs(doc, plan)
    doc.heading("Sources: every figure and how it is made", keep=40)
    _sources(doc, plan)
    return bytes(doc.output())
