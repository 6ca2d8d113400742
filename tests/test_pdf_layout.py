"""The layout of every PDF: read back with pdfplumber, no text line crosses a chart, no two charts overlap, no
table rule or shading runs under a chart, no two lines of text sit on each other and every chart and character
stays inside its page, for each page type (Train, Decide, Compress, Deploy, Calibrate) with a long Chinese scenario name and
long tables (many warnings, many alternatives, many inputs)."""

from __future__ import annotations

import copy
import datetime as dt
import io
import itertools
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pdfplumber
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from report.calibration_pdf import calibration_pdf  # noqa: E402
from report.compress_pdf import compress_pdf  # noqa: E402
from report.decision_pdf import decision_pdf  # noqa: E402
from report.deploy_pdf import deploy_pdf  # noqa: E402
from report.pdf import plan_pdf  # noqa: E402
from simulator import Scenario, evaluate  # noqa: E402
from simulator import compression_curves as predicted  # noqa: E402
from simulator import deployment as curves  # noqa: E402
from simulator.decision import decide  # noqa: E402
from simulator.device_profile import device_from_profile  # noqa: E402
from simulator.devices import shipped_profiles  # noqa: E402
from simulator.quality_curves import quality_from_profile  # noqa: E402
from simulator.scaling import gpu_sweep  # noqa: E402

CREATED = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
LONG_NAME = ("面向客服与企业知识库的中文对话大模型：三年预算两千万美元的训练、量化剪枝与推理部署方案，"
             "含租用、购买与托管接口的成本比较")
TOLERANCE_PT = 0.5  # boxes that touch by less than this do not count as overlapping
Box = tuple[float, float, float, float]  # x0, top, x1, bottom in PDF points

TRAIN = {"name": LONG_NAME, "model": {"preset": "llama-3-70b"},  # 4 warnings (memory with 4 plans that fit, TP across
         # nodes, pipeline bubble, uneven batch)
         "cluster": {"gpus": 1120, "tp": 16, "pp": 7, "gpus_per_node": 8},
         "training": {"zero_stage": 0, "global_batch_seqs": 1001, "micro_batch_seqs": 12, "recompute": "none"}}
DECIDE = {"name": LONG_NAME, "model": {"params": 7e9}, "cluster": {"accelerator": "H100-SXM"},
          "serving": {"requests_per_s": 5, "prompt_tokens": 1024, "output_tokens": 256},
          "decision": {"budget_usd": 20_000_000, "horizon_months": 36, "samples": 400, "seed": 0}}
DECIDE_SPACE = {"model.params": [3e8, 1e9, 3e9, 7e9, 1.3e10, 3e10, 7e10], "training.tokens": [2e10, 6e10, 2e11, 6e11,
                                                                                             2e12, 6e12],
                "cluster.gpus": [8, 64, 256, 512, 1024], "cluster.tp": [1, 2, 8], "cluster.pp": [1, 4]}
COMPRESS = {"name": LONG_NAME, "model": {"preset": "llama2-70b"}, "serving": {"accelerator": "H100-SXM"},
            "compression": {"weight_bits": 4, "quant_method": "awq", "group_size": 128,
                            "pruning_method": "sparsegpt", "sparsity": 0.5, "pattern": "2:4"}}
DEPLOY = {"name": LONG_NAME, "model": {"preset": "llama-3-70b"},
          "serving": {"accelerator": "H100-SXM", "requests_per_s": 20},
          "finance": {"revenue_per_million_output_tokens_usd": 12.0}}


# ---------------------------------------------------------------- the check


def _box(obj: dict) -> Box:
    return float(obj["x0"]), float(obj["top"]), float(obj["x1"]), float(obj["bottom"])


def _crossing(a: Box, b: Box) -> bool:
    """True when `a` reaches more than TOLERANCE_PT into `b` in both directions (a rule of no thickness too)."""
    return (a[2] > b[0] + TOLERANCE_PT and a[0] < b[2] - TOLERANCE_PT
            and a[3] > b[1] + TOLERANCE_PT and a[1] < b[3] - TOLERANCE_PT)


def _glyphs(page: pdfplumber.page.Page) -> list[tuple[str, Box]]:
    """The page's printed characters with their boxes, combining marks left out (they sit on their base letter
    by design: Devanagari and Thai vowel signs, accents)."""
    return [(c["text"], _box(c)) for c in page.chars
            if c["text"].strip() and not unicodedata.category(c["text"][:1]).startswith("M")]


def _overprinted(a: Box, b: Box) -> bool:
    """True when two characters print over each other: boxes crossing, and on one line by more than half the
    narrower (kerning, as in "To", and shaped Indic conjuncts draw neighbours a little into each other)."""
    if not _crossing(a, b):
        return False
    if abs(a[1] - b[1]) > 1 or abs(a[3] - b[3]) > 1:  # not on one line
        return True
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.5 * min(a[2] - a[0], b[2] - b[0])


def _text_on_text(glyphs: list[tuple[str, Box]]) -> list[tuple[str, str]]:
    """Pairs of characters printed over each other (a sweep along x: each character meets only its neighbours)."""
    pairs, active = [], []
    for text, box in sorted(glyphs, key=lambda g: g[1][0]):
        active = [(t, b) for t, b in active if b[2] > box[0] + TOLERANCE_PT]
        pairs += [(t, text) for t, b in active if _overprinted(box, b)]
        active.append((text, box))
    return pairs


def _shown(box: Box) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in box) + ")"


def overlaps(data: bytes) -> list[str]:
    """Every overlap in the PDF, one line each ("page 2: text 'Best alternatives' crosses image (...)")."""
    found: list[str] = []
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for number, page in enumerate(pdf.pages, 1):
            images = [_box(i) for i in page.images]
            words = [(word["text"], _box(word)) for word in page.extract_words()]
            drawn = [_box(r) for r in (*page.rects, *page.lines)]  # table shading and rules
            for image in images:
                if image[0] < -TOLERANCE_PT or image[2] > page.width + TOLERANCE_PT or image[1] < -TOLERANCE_PT \
                        or image[3] > page.height + TOLERANCE_PT:
                    found.append(f"page {number}: image {_shown(image)} runs off the page")
            for a, b in itertools.combinations(images, 2):
                if _crossing(a, b):
                    found.append(f"page {number}: image {_shown(a)} overlaps image {_shown(b)}")
            for image in images:
                crossing = [text for text, box in words if _crossing(box, image)]
                if crossing:
                    found.append(f"page {number}: {len(crossing)} words cross image {_shown(image)}: "
                                 f"{' '.join(crossing)[:80]!r}")
                rules = [rule for rule in drawn if _crossing(rule, image)]
                if rules:
                    found.append(f"page {number}: {len(rules)} table rules or shadings run under image "
                                 f"{_shown(image)}")
            glyphs = _glyphs(page)
            outside = [text for text, box in glyphs if box[0] < -TOLERANCE_PT or box[2] > page.width + TOLERANCE_PT]
            if outside:
                found.append(f"page {number}: {len(outside)} characters run off the page: {''.join(outside)[:40]!r}")
            pairs = _text_on_text(glyphs)
            if pairs:
                found.append(f"page {number}: {len(pairs)} characters print over others: "
                             + ", ".join(f"{a!r} on {b!r}" for a, b in pairs[:8]))
    return found


def image_total(data: bytes) -> int:
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return sum(len(page.images) for page in pdf.pages)


# ---------------------------------------------------------------- the PDFs


def train() -> bytes:
    plan = evaluate(Scenario.from_dict(TRAIN))
    baseline = evaluate(plan.scenario.replace(None, **{"cluster.gpus": 560}))
    return plan_pdf(plan, gpu_sweep(plan.scenario), baseline, name=LONG_NAME, created=CREATED)


def decision() -> bytes:
    return decision_pdf(decide(Scenario.from_dict(DECIDE), space=DECIDE_SPACE), created=CREATED)


def _found() -> tuple[dict, object, str]:
    profile = shipped_profiles()["cpu-reference"]
    return profile, quality_from_profile(profile), "the shipped reference profile cpu-reference.json"


def compression() -> bytes:
    s = Scenario.from_dict(COMPRESS)
    return compress_pdf(evaluate(s), "H100 SXM5 80GB", predicted.quant_frame(s), predicted.prune_frame(s),
                        _found(), created=CREATED)


def deployment() -> bytes:
    s = Scenario.from_dict(DEPLOY)
    plan = evaluate(s)
    return deploy_pdf(curves.deployment(s, plan), "NVIDIA H100 SXM5 80GB", created=CREATED)


def calibration(stem: str) -> Callable[[], bytes]:
    def build() -> bytes:
        profile = copy.deepcopy(shipped_profiles()[stem])
        profile["name"] = LONG_NAME
        return calibration_pdf(profile, device_from_profile(shipped_profiles()[stem]),
                               source=f"shipped reference ({stem}.json)", files=[f"{LONG_NAME}/{stem}.json"],
                               created=CREATED)
    return build


BUILDERS: dict[str, Callable[[], bytes]] = {
    "train": train, "decide": decision, "compress": compression, "deploy": deployment,
    **{f"calibrate-{stem}": calibration(stem) for stem in sorted(shipped_profiles())},
}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def built(request) -> tuple[str, bytes]:
    return request.param, BUILDERS[request.param]()


def test_no_text_table_or_chart_overlaps_another(built):
    kind, data = built
    assert image_total(data) > 0, f"{kind}: no chart drawn"
    problems = overlaps(data)
    assert not problems, f"{kind} PDF: {len(problems)} overlaps:\n" + "\n".join(problems[:30])


# ---------------------------------------------------------------- the check itself


def _pdf(draw: Callable[[object], None]) -> bytes:
    from fpdf import FPDF

    doc = FPDF(unit="mm", format="A4")
    doc.add_page()
    doc.set_font("helvetica", size=10)
    draw(doc)
    return bytes(doc.output())


def _png() -> bytes:
    import struct
    import zlib

    raw = b"".join(b"\x00" + b"\x80" * 3 * 4 for _ in range(4))
    chunk = lambda kind, body: (struct.pack(">I", len(body)) + kind + body  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + body)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("case", "expected"), [
    ("text under the chart", 0), ("text over the chart", 1), ("two charts on each other", 1),
    ("two lines on each other", 1), ("a rule under the chart", 1), ("two words on each other", 1)])
def test_the_check_sees_each_kind_of_overlap(case, expected):
    png = _png()

    def draw(doc) -> None:
        doc.image(io.BytesIO(png), x=20, y=20, w=80, h=40)
        if case == "text under the chart":
            doc.set_xy(20, 62)
            doc.cell(0, 5, "A caption below the chart")
        elif case == "text over the chart":
            doc.set_xy(20, 40)
            doc.cell(0, 5, "Best alternatives")
        elif case == "two charts on each other":
            doc.image(io.BytesIO(png), x=60, y=50, w=80, h=40)
        elif case == "two lines on each other":
            doc.set_xy(20, 100)
            doc.cell(0, 5, "First line of text")
            doc.set_xy(22, 101)
            doc.cell(0, 5, "Second line of text")
        elif case == "two words on each other":
            doc.set_xy(20, 120)
            doc.cell(0, 5, "Total cost")
            doc.set_xy(21, 120)
            doc.cell(0, 5, "Loss")
        elif case == "a rule under the chart":
            doc.line(10, 45, 150, 45)

    assert len(overlaps(_pdf(draw))) == expected

