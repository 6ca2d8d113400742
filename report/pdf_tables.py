"""The tables every PDF report shares, built from a plan: key figures with P10-P90 and provenance, what the ranges
include, the inputs (given, preset, derived, default), every figure's source and the accelerator's, and the
families' own figure sections (simulator.presentation)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from report import formatting as fmt
from report import messages, ranges_text, sections_text
from report.pdf_doc import GREY, Doc
from simulator import presentation
from simulator.inputs import FIGURES, INPUTS
from simulator.presets import PRESETS
from simulator.registry import Page
from simulator.training import choice
from simulator.training.choice import chosen_by_planner

SUPERSCRIPTS = "¹²³⁴⁵⁶⁷⁸⁹"


def figure_value(plan: Any, key: str) -> str:
    """A figure's value as a table prints it: goodput "off" when the overheads are off, memory "of" the HBM."""
    figure = plan.figures[key]
    if key == "training.goodput" and not plan.scenario.goodput.enabled:
        return "off"
    text = fmt.by_unit(figure.value, figure.unit)
    if key == "training.memory_per_gpu_gb":
        text += f" of {fmt.gb(plan.hardware.hbm_GB)}"
    return text


def _change(figure: Any, before: Any) -> str:
    if figure.unit == "fraction":
        text = fmt.delta(figure.value, before.value, fmt.points, relative=False)
    else:
        text = fmt.delta(figure.value, before.value, lambda x: fmt.by_unit(x, figure.unit))
    return text or "same"


def markers_of(figures: Iterable[Any]) -> dict[str, str]:
    """One superscript per distinct basis of the computed figures (today there is one per plan)."""
    bases = list(dict.fromkeys(f.basis for f in figures if f.basis))
    return {basis: SUPERSCRIPTS[i] if i < len(SUPERSCRIPTS) else f"[{i + 1}]" for i, basis in enumerate(bases)}


def provenance_text(figure: Any, markers: Mapping[str, str]) -> str:
    return figure.provenance + markers.get(figure.basis, "")


def key_figures_table(doc: Doc, plan: Any, page: Page, baseline: Any | None = None,
                      value: Callable[[Any, str], str] = figure_value) -> None:
    """The page's key figures (simulator.presentation.key_figures): value, P10-P90 and provenance, with the
    computed figures' basis as a footnote; with a `baseline`, its value and the change too."""
    keys = [k for k in presentation.key_figures(page) if k in plan.figures]
    markers = markers_of(plan.figures[k] for k in keys)
    header = ["Figure", "Value", "P10–P90", "Provenance"]
    widths: list[float] = [62, 38, 48, 32]
    if baseline is not None:
        header += ["Baseline", "Change"]
        widths = [44, 27, 37, 24, 24, 24]
    rows = []
    for key in keys:
        figure = plan.figures[key]
        row = [figure.label, value(plan, key), sections_text.band(figure), provenance_text(figure, markers)]
        if baseline is not None and key in baseline.figures:
            row += [value(baseline, key), _change(figure, baseline.figures[key])]
        elif baseline is not None:
            row += ["", ""]
        rows.append(row)
    doc.grid(header, rows, widths, size=8.5, align=["LEFT", "RIGHT", "RIGHT", "LEFT", "RIGHT", "RIGHT"][:len(header)])
    for basis, marker in markers.items():
        doc.para(f"{marker} Basis of the computed figures: {basis}.", 8, colour=GREY, after=0.5)
    doc.para(f"{ranges_text.METHOD} A figure without a range is exact given its inputs.", 8, colour=GREY)


def spread_section(doc: Doc, plan: Any) -> None:
    """What the plan's ranges include: every spread term with its P10-P90 factor and where its size comes from."""
    doc.heading("What the ranges include", size=10.5, before=2, keep=30)
    doc.para(ranges_text.summary(plan), 8.5, after=0.5)
    doc.grid(ranges_text.HEADER, ranges_text.rows(plan), ranges_text.WIDTHS, size=7.5)



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



def inputs_table(doc: Doc, plan: Any, page: Page) -> None:
    """The inputs the page's PDF lists (simulator.presentation.listed_inputs): value, unit and what set it."""
    s = plan.scenario
    listed = [k for k in presentation.listed_inputs(page) if k not in s.idle or k in s.given]  # what acts here
    rows = [[inp.label, key, input_value(inp, s.value(key), plan), "" if inp.kind == "choice" else inp.unit,
             _origin(s, key)] for key, inp in ((k, INPUTS[k]) for k in listed)]
    doc.grid(["Input", "Key", "Value", "Unit", "Set by"], rows, [52, 56, 29, 27, 16], size=7.5)
    doc.para("Given: set in the scenario. Preset: the model preset's published shape. Derived: completed from "
             f"other inputs by the rule noted below. Planner: chosen as {choice.FASTEST} in memory, of the values "
             "noted below. Default: the input's default value.", 8, colour=GREY)
    if plan.notes:
        doc.heading("How the inputs were completed", size=10.5, before=2, keep=15)
        doc.bullets((messages.in_words(n) for n in plan.notes), size=8.5)


def sources_table(doc: Doc, plan: Any, keys: Iterable[str] | None = None, hardware: bool = True,
                  value: Callable[[float, str], str] = fmt.by_unit) -> None:
    """How each figure is made (`keys`: these figures only, in this order; default every charted figure), and
    (`hardware`) the accelerator's sources."""
    shown = ({k: plan.figures[k] for k in keys if k in plan.figures} if keys is not None else
             {k: f for k, f in plan.figures.items() if k not in FIGURES or FIGURES[k].chart})
    markers = markers_of(shown.values())
    rows = [[f.label, value(f.value, f.unit), provenance_text(f, markers), messages.in_words(f.source)]
            for f in shown.values()]
    doc.grid(["Figure", "Value", "Provenance", "How it is made (formula or source)"], rows, [44, 24, 22, 90],
             size=7.5)
    for basis, marker in markers.items():
        doc.para(f"{marker} {basis}.", 7.5, colour=GREY, after=0.5)
    if not hardware:
        return
    hw = plan.hardware
    provenance_of = dict(getattr(hw, "provenance_of", {}) or {})
    doc.heading(f"Accelerator: {hw.display_name}", size=10.5, before=3, keep=20)
    doc.para(f"{hw.id}: {hw.provenance}; price of {hw.price_date}; {fmt.gb(hw.hbm_GB)} HBM.", 8.5)
    doc.grid(["Group", "Provenance", "Source"],
             [[group, provenance_of.get(group, hw.provenance), text] for group, text in hw.sources.items()],
             [26, 22, 132], size=7.5)


def sections_pdf(doc: Doc, plan: Any, page: Page) -> None:
    """The families' own figure sections on the page (simulator.presentation.sections): each a heading, its text
    and its figures with value, P10-P90 and provenance."""
    for section, shown in sections_text.shown(plan, page):
        doc.heading(section.title, size=10.5, keep=12 + 5 * len(shown))
        if section.text:
            doc.para(section.text, 8.5, after=0.5)
        markers = markers_of(shown)
        doc.grid(["Figure", "Value", "P10–P90", "Provenance"],
                 [[*sections_text.row(f), provenance_text(f, markers)] for f in shown],
                 [70, 36, 46, 28], size=8.5, align=["LEFT", "RIGHT", "RIGHT", "LEFT"])
