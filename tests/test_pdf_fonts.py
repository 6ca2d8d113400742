"""Names in the scripts users write read back from the PDFs (the fallback fonts of report.pdf, installed by
`make pdf-fonts`), complex scripts are shaped only where a document has them, and a character no installed font
has is named in a note instead of a silent "?"."""

from __future__ import annotations

import datetime as dt
import io
import unicodedata

import pytest
from pypdf import PdfReader
from pypdf.generic import ContentStream
from test_pdf_layout import overlaps

from report.deploy_pdf import deploy_pdf
from report.pdf_doc import new_document, title_block
from report.pdf_fonts import fallback_for, fonts_found
from simulator import Scenario, evaluate
from simulator import deployment as curves

CREATED = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
NAMES = {  # a model name in each script, as a user would type it
    "Chinese": "中文对话模型", "Japanese": "日本語のモデル", "Korean": "한국어 대화 모델", "Hindi": "हिन्दी मॉडल",
    "Bengali": "বাংলা মডেল", "Tamil": "தமிழ் மாதிரி", "Thai": "โมเดลภาษาไทย", "Arabic": "نموذج عربي",
    "Hebrew": "מודל עברי", "Russian": "Русская модель", "Greek": "Ελληνικό μοντέλο", "emoji": "Chat 🙂🚀 bot ✅",
}
PACKAGES = "make pdf-fonts installs fonts-noto-core, fonts-nanum and fonts-noto-color-emoji"
UNPRINTABLE = "\U00010000"  # LINEAR B SYLLABLE B008 A: no font the report uses has it


def text_of(data: bytes) -> str:
    """The PDF's text as a reader copies it. A shaped Indic conjunct can carry a glyph of its own with no text
    behind it (fpdf2 maps a shaped cluster's text to one of its glyphs), which pypdf returns as its raw code, a
    control character: those are dropped, the letters themselves must all be there."""
    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cc")


def shown_without_font(data: bytes) -> int:
    """How many text-showing operators run with no font selected (viewers print them as nothing)."""
    count = 0
    reader = PdfReader(io.BytesIO(data))
    for page in reader.pages:
        font, saved = None, []
        for operands, op in ContentStream(page.get_contents(), reader).operations:
            if op == b"q":
                saved.append(font)
            elif op == b"Q":
                font = saved.pop() if saved else None
            elif op == b"Tf":
                font = operands[0]
            elif op in (b"Tj", b"TJ", b"'", b'"') and font is None:
                count += 1
    return count


def small_pdf(name: str) -> tuple[bytes, bool]:
    """A report's first lines titled `name` (the PDFs' own title, paragraph and metadata path), and whether its
    text was shaped."""
    doc = new_document(name, f"About {name}", CREATED)
    title_block(doc, name, "2026-01-02 · Modelfolio")
    doc.para(f"The scenario {name} in a sentence.", 10)
    return bytes(doc.output()), doc.shaping


def _needs_unicode_fonts() -> None:
    if fonts_found()["regular"] is None:
        pytest.fail(f"DejaVu Sans not found: {PACKAGES} and fonts-dejavu-core")


@pytest.mark.parametrize(("script", "name"), NAMES.items())
def test_a_name_in_each_script_reads_back(script, name):
    _needs_unicode_fonts()
    data, _ = small_pdf(name)
    text = text_of(data)
    assert PdfReader(io.BytesIO(data)).metadata.title == name
    assert text.startswith(name) and f"The scenario {name}" in text, (script, text[:120])
    assert "?" not in text and "could not print" not in text, f"{script}: {PACKAGES}"


def test_every_script_has_a_font_on_this_machine():
    _needs_unicode_fonts()
    lacking = {script: [f"U+{ord(ch):04X}" for ch in name if not ch.isspace() and fallback_for(ch) is None
                        and unicodedata.category(ch) != "Mn"] for script, name in NAMES.items()}
    # characters DejaVu Sans draws itself need no fallback: the PDF reads them back (the test above)
    assert all(fallback_for(ch) is not None for ch in "中한ह🙂ไ"), f"{PACKAGES}; lacking: {lacking}"


def test_only_complex_scripts_switch_on_text_shaping():
    _needs_unicode_fonts()
    assert not small_pdf("Pilot é 中文 한국어 🙂")[1]  # shaping triples the layout time: not for these
    assert small_pdf("हिन्दी मॉडल")[1] and small_pdf("نموذج")[1] and small_pdf("สวัสดี")[1]


def test_a_character_no_font_has_is_named_in_a_note():
    _needs_unicode_fonts()
    data, _ = small_pdf(f"Pilot {UNPRINTABLE}")
    text = text_of(data)
    assert text.startswith("Pilot ?")
    assert "Characters this PDF could not print" in text and "U+10000 LINEAR B SYLLABLE B008 A" in text


def test_a_deploy_pdf_titled_in_every_script():
    _needs_unicode_fonts()
    name = " · ".join(NAMES.values())
    s = Scenario.from_dict({"name": name, "model": {"preset": "llama-3-8b"},
                            "serving": {"accelerator": "h100-sxm", "requests_per_s": 5}})
    plan = evaluate(s)
    data = deploy_pdf(curves.deployment(s, plan), "NVIDIA H100 SXM5 80GB", created=CREATED)
    text = text_of(data)
    assert PdfReader(io.BytesIO(data)).metadata.title == name
    for script, words in NAMES.items():
        assert words in text, script
    assert "could not print" not in text
    assert shown_without_font(data) == 0 and not overlaps(data)  # the footer's name cut to fit its line


def test_every_line_of_a_wrapped_name_that_mixes_fonts_has_its_font():
    _needs_unicode_fonts()
    data, _ = small_pdf("中文 " * 25 + "and a long English tail " * 4)  # a Latin line after a line in two fonts
    assert shown_without_font(data) == 0
    assert "and a long English tail" in text_of(data)
