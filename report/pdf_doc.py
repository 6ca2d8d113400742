"""The PDF reports' document: A4 with the report's fonts, headings, paragraphs and tables (`Doc`), a new document
with its metadata, the title block, and the date a report prints.

Text goes through one font choice (report.pdf_fonts): DejaVu Sans with fallbacks for the scripts it lacks, each
loaded only when a text needs it, and the text shaping of complex scripts switched on only for a document that has
them. A character no installed font has prints as "?" and the document ends with a note that names it. Without
DejaVu the PDF uses the built-in Helvetica with every non-Latin-1 character transliterated or replaced. Nothing here
raises on odd text."""

from __future__ import annotations

import datetime as dt
import logging
import os
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from report.pdf_fonts import CORE_FAMILY, FAMILY, SHAPED, TRANSLIT, font_cmap, fonts_found, needs_shaping
from simulator.plan import VERSION

PAGE_W, MARGIN = 210.0, 15.0
TEXT_W = PAGE_W - 2 * MARGIN
GREY, DARK, RULE = (90, 90, 90), (20, 20, 20), (200, 200, 200)
HEADINGS = FontFace(emphasis="BOLD", fill_color=(236, 236, 236))

MOST_NAMED = 12  # characters the note on unprintable ones names (the rest are counted)
log = logging.getLogger(__name__)
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)  # it warns of every hinting table it drops


class Doc(FPDF):
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
        if not self.shaping and any(map(needs_shaping, text)):
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
            if i in self.fallbacks_loaded or not wanted & font_cmap(path):
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


def new_document(title: str, subject: str, created: dt.datetime, footer: str | None = None) -> Doc:
    """An A4 report with its metadata (title, subject, date, author, version) set and its first page started;
    `footer`: what each page's footer names (default the title)."""
    doc = Doc(f"Modelfolio {VERSION} · {footer or title}", fonts_found())
    doc.set_creation_date(created)
    doc.set_title(doc.clean(title))
    doc.set_author("Modelfolio")
    doc.set_creator(f"Modelfolio {VERSION}")
    doc.set_subject(doc.clean(subject))
    doc.set_lang("en")
    doc.add_page()
    return doc


def title_block(doc: Doc, title: str, byline: str) -> None:
    """The first page's title and the grey line under it (date, version, what it is about)."""
    doc.font(17, bold=True)
    doc.multi_cell(TEXT_W, 8, doc.clean(title), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    doc.para(byline, 8.5, colour=GREY, after=3)


