"""The PDF reports' fonts: DejaVu Sans from the system with fallback fonts for the scripts it lacks (Chinese and
Japanese, Korean, the Indic scripts, Thai and more, emoji in colour; FALLBACKS), each found once per process."""

from __future__ import annotations

import functools
import importlib.util
import logging
import unicodedata
from pathlib import Path
from typing import Any

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
SHAPED = {0x200C, 0x200D}  # zero-width (non-)joiners: they steer how Indic and emoji sequences join
FAMILY, CORE_FAMILY = "dejavu", "helvetica"
TRANSLIT = str.maketrans({  # for the built-in font: typographic characters it lacks, as the nearest it has
    "—": "-", "–": "-", "‑": "-", "−": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "...", "→": "->",
    "←": "<-", "≤": "<=", "≥": ">=", "≈": "~", "κ": "k", "α": "a", "β": "b", "λ": "l", "τ": "t",
    "δ": "d", "Ψ": "Psi", "σ": "s", "⌈": "ceil(", "⌉": ")", "√": "sqrt", "•": "-", "\u00a0": " ",
})

log = logging.getLogger(__name__)


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
def font_cmap(path: Path) -> frozenset[int]:
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
    return next((p for p in fonts_found()["fallbacks"] if ord(ch) in font_cmap(p)), None)


def needs_shaping(ch: str) -> bool:
    """True for a character that is drawn right only with text shaping: right-to-left letters, combining marks
    (Indic and Thai vowel signs, viramas), joiners, and the regional indicators that pair into flags."""
    return (unicodedata.bidirectional(ch) in ("R", "AL") or unicodedata.category(ch) in ("Mn", "Mc")
            or ord(ch) in SHAPED or 0x1F1E6 <= ord(ch) <= 0x1F1FF)

