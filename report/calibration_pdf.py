"""The PDF of a calibration profile: `calibration_pdf(profile, spec=None, ...) -> bytes`.

The Calibrate page's summary for people who will not open the app: the device and run date as the title, the
page's headline sentence and key figures (report.calibration_summary, never recomputed here), the environment with
emulated dtypes and the probe's figures, every fit with its formula, parameters (those the data do not determine
marked, with the page's sentence), training and held-out error, the page's own Altair charts rendered offline
(report.pdf_charts.render_later: drawn in a helper process while the text is laid out), the quality-calibration curves
when the profile has a `quality` section, the validation back-test when one is given or stored, and the
profile's provenance and the app version. Fonts and odd text are handled by report.pdf_doc's `Doc`. docs/reports.md
maps each part to its source.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from report import calibration_charts as charts
from report import calibration_summary as summary
from report import formatting as fmt
from report import quality_charts as qcharts
from report import scaling_law_charts as laws
from report.pdf_charts import (
    FULL_CHART_PX,
    HALF_CHART_HEIGHT_PX,
    HALF_CHART_PX,
    Picture,
    figure,
    place,
    render_later,
)
from report.pdf_doc import GREY, Doc, new_document, report_date, title_block
from simulator.plan import VERSION
from simulator.quality_curves import QualitySection, QualitySectionError, quality_from_profile

__all__ = ["calibration_pdf", "key_fits", "title_of"]

SECTIONS = {"compute": "Compute", "collectives": "Collectives", "parameter_server": "Parameter server",
            "ddp": "DDP", "inference": "Inference"}  # the page's tabs, in its order
ENV_FIELDS = (  # the environment first shown: what ran the measurements (the full table follows in provenance)
    ("cpu_model", "CPU"), ("physical_cores", "Physical cores"), ("logical_cpus", "Logical CPUs"),
    ("torch_threads", "Torch threads"), ("omp_num_threads", "OMP_NUM_THREADS"), ("gpu_names", "GPUs"),
    ("gpu_count", "GPU count"), ("cuda_version", "CUDA"), ("torch_version", "torch"), ("backend", "Collective backend"),
    ("python_version", "Python"), ("l3_cache_bytes", "L3 cache (bytes)"),
)

Png = Callable[[], bytes | None]  # a chart being drawn (report.pdf_charts.render_later): call it for its PNG
Panel = tuple[str, Png, str]  # (heading, PNG, description)


def device_name(profile: Mapping[str, Any]) -> str:
    """The measured device as the environment names it: the first GPU, else the CPU model."""
    env = profile.get("environment", {})
    gpus = env.get("gpu_names") or []
    if gpus:
        return f"{len(gpus)} × {gpus[0]}" if len(gpus) > 1 else str(gpus[0])
    return str(env.get("cpu_model") or profile.get("name") or "unknown device")


def title_of(profile: Mapping[str, Any]) -> str:
    """"Calibration: <device>, <run date>" (the PDF's title and the first line)."""
    return f"Calibration: {device_name(profile)}, {str(profile.get('created_utc', ''))[:10] or 'undated'}"


def key_fits(profile: Mapping[str, Any]) -> dict[str, summary.FitEntry]:
    """The fit each section's chart shows: on Compute the headline GEMM fit (calibration_summary.gemm_throughput's
    first, the page's figure); elsewhere the first fitted one on the main device, a model that moves nothing
    (`constant`, a world of one) last -- the fit each tab of the page opens with."""
    out: dict[str, summary.FitEntry] = {}
    main = summary.main_device(profile)
    gemms = summary.gemm_throughput(profile)
    for section in SECTIONS:
        entries = [e for e in summary.iter_fits(profile["fits"].get(section, {})) if e[1]["status"] == "ok"]
        if section == "compute" and gemms:
            head = tuple(gemms[0]["path"].split(".")[2:4])
            entries = [e for e in entries if e[0] == head] + entries
        else:
            entries.sort(key=lambda e: (e[1].get("model") == "constant", f"{main}/" not in summary.fit_label(e[0])))
        if entries:
            out[section] = entries[0]
    return out


# ---------------------------------------------------------------- parts


def _first_page(doc: Doc, profile: Mapping[str, Any], spec: Any | None, created: dt.datetime, source: str) -> None:
    title_block(doc, title_of(profile), f"Profile {profile['name']} · measured {profile.get('created_utc', '')} · "
                f"{source} · report made {created:%Y-%m-%d %H:%M} UTC · Modelfolio {VERSION}")
    doc.para(summary.headline(profile, spec), 12, bold=True, after=1.5)
    for sentence in summary.emulated(profile):
        doc.para(sentence, 9.5)


def _key_figures(doc: Doc, profile: Mapping[str, Any], spec: Any | None) -> None:
    """The page's metric row, one line per figure with where it comes from."""
    rows = []
    for g in summary.gemm_throughput(profile):
        peak = summary.datasheet_peak(profile, spec, g["dtype"])
        share = f"{fmt.pct(g['tflops'] / peak[0])} of {fmt.plain(peak[0])} ({peak[1]})" if peak else ""
        rows.append([f"GEMM {g['device']}/{g['dtype']}", f"{summary.tflops_text(g['tflops'])} TFLOP/s", share,
                     summary.describe_rate(g)])
    for b in summary.busbw(profile):
        rows.append([f"{b['op']}, {b['world']} ranks", f"{fmt.plain(b['GBps'])} GB/s", "",
                     f"Fitted: bus bandwidth (nccl-tests convention), {b['model']} ({b['path']})."])
    mape = summary.heldout_median(profile)
    rows.append(["Held-out error", "n/a" if mape is None else f"{fmt.plain(mape)}%", "",
                 "Median over all fits of the mean absolute % error on points each fit never saw (the largest "
                 "quarter by size). Lower is better."])
    counts = summary.row_counts(profile)
    noisy = len(profile.get("summary", {}).get("noisy_rows") or [])
    rows.append(["Rows ok / failed", f"{counts['ok']} / {counts['failed']}", "",
                 f"{counts['skipped']} skipped; {noisy} noisy (spread over 50% of the median)."])
    doc.grid(["Figure", "Value", "Of the peak", "Where it comes from"], rows, [34, 26, 34, 86], size=8,
             align=["LEFT", "RIGHT", "LEFT", "LEFT"])


def _environment(doc: Doc, profile: Mapping[str, Any]) -> None:
    env = profile.get("environment", {})
    rows = []
    for key, label in ENV_FIELDS:
        value = env.get(key)
        if value not in (None, "", []):
            rows.append([label, ", ".join(map(str, value)) if isinstance(value, list) else str(value), key])
    doc.grid(["What", "Value", "environment."], rows, [40, 100, 40], size=8)
    emulated = env.get("emulated")
    probe = env.get("probe") if isinstance(env.get("probe"), dict) else {}
    if emulated:
        doc.para("Emulated dtypes (the probe measured them below 1/8 of fp32's throughput): "
                 + ", ".join(map(str, emulated)) + ".", 9)
    elif probe:
        doc.para("No dtype was emulated: the probe found every measured dtype at least 1/8 as fast as fp32.", 9)
    else:
        doc.para("This profile has no probe figures (environment.probe): it was measured without the probe, so no "
                 "dtype is marked emulated.", 9, colour=GREY)
    if probe:
        doc.grid(["Probe figure", "Value"], [[k, fmt.plain(v) if isinstance(v, int | float) else str(v)]
                                             for k, v in probe.items()], [90, 90], size=7.5)
    flags = env.get("cpu_flags")
    if flags:
        doc.para("CPU flags: " + ", ".join(map(str, flags)), 7.5, colour=GREY)


def _fits_table(doc: Doc, profile: Mapping[str, Any]) -> None:
    rows = []
    for section, title in SECTIONS.items():
        for path, fit, _ in summary.iter_fits(profile["fits"].get(section, {})):
            loose = summary.undetermined(fit) if fit["status"] == "ok" else []
            note = (fit.get("reason", "") if fit["status"] != "ok"
                    else ("not determined: " + ", ".join(loose)) if loose else "")
            rows.append([title, summary.fit_label(path), fit.get("model", fit["status"].replace("_", " ")),
                         f"{fit.get('n_train', '')} / {fit.get('n_heldout', '')}",
                         fmt.plain(fit.get("mape_train_pct")), fmt.plain(fit.get("mape_heldout_pct")), note])
    if not rows:
        doc.para("This profile holds no fit.", 9)
        return
    doc.grid(["Section", "Fit", "Model", "Points fit / held", "Train MAPE %", "Held-out MAPE %", "Note"], rows,
             [21, 40, 28, 17, 15, 17, 42], size=7, align=["LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "LEFT"])
    doc.para("MAPE: mean absolute percentage error. Held out: the largest points of each fit (by size), never seen by "
             "it, so the held-out error is an extrapolation test; n/a where the fit had too few points to hold any "
             "out.", 8, colour=GREY)


def _half(draw: Any) -> Png:
    return render_later(draw, HALF_CHART_PX, HALF_CHART_HEIGHT_PX)


def _pictures(pending: Sequence[tuple[Png, str]]) -> list[Picture]:
    """The charts being drawn, waited for: (PNG or None, description) each."""
    return [(png(), description) for png, description in pending]


def _start_charts(profile: Mapping[str, Any]) -> tuple[Panel | None, list[Panel]]:
    """The charts of the Charts part, being drawn: GEMM throughput (full width; None when not measured), and the
    key fit of each section with the headline fit's error per point (half width, in pairs)."""
    throughput = None
    if summary.gemm_throughput(profile):
        frame = charts.throughput_frame({profile["name"]: profile})
        throughput = ("GEMM throughput against size", render_later(lambda: charts.throughput_chart(frame),
                                                                   FULL_CHART_PX), charts.describe_throughput(frame))
    panels = []
    for n, (section, (path, fit, _)) in enumerate(key_fits(profile).items()):
        label = summary.fit_label(path)
        points, curve = charts.points_frame(fit), charts.curve_frame(fit)
        panels.append((f"{SECTIONS[section]}: {label}", _half(functools.partial(charts.fit_chart, fit, points, curve)),
                       charts.describe_fit(label, fit, points, curve)))
        if n == 0:  # the headline fit also shows its error per point, as on the page
            panels.append((f"{label}: error per point", _half(functools.partial(charts.residual_chart, fit, points)),
                           f"Prediction error of each measured point of {label}, in percent (0 is exact)."))
    return throughput, panels


def _charts(doc: Doc, throughput: Panel | None, panels: list[Panel]) -> None:
    if throughput is not None:
        title, pending, description = throughput
        figure(doc, title, _pictures([(pending, description)]))
    for i in range(0, len(panels), 2):
        pair = panels[i:i + 2]
        figure(doc, " | ".join(title for title, _, _ in pair), _pictures([panel[1:] for panel in pair]), size=10.5)


def _formulas(doc: Doc, profile: Mapping[str, Any]) -> None:
    for section, title in SECTIONS.items():
        entries = list(summary.iter_fits(profile["fits"].get(section, {})))
        if not entries:
            continue
        doc.heading(title, size=11, before=2, keep=30)
        for path, fit, parent in entries:
            dotted = ".".join(("fits", section, *path))
            label = summary.fit_label(path)
            if fit["status"] != "ok":
                doc.para(f"{label} ({dotted}): not fitted ({fit['status'].replace('_', ' ')}): "
                         f"{fit.get('reason', '')}.", 8.5, colour=GREY)
                continue
            doc.room(30)
            doc.para(f"{label} · model {fit['model']} · {dotted}", 9, bold=True, after=0.5)
            if fit.get("formula"):
                doc.para(fit["formula"], 8, after=0.8)
            params = summary.params_frame(fit)
            if not params.empty:
                doc.grid(list(params.columns), params.itertuples(index=False), [38, 22, 22, 18, 20, 60], size=7.5,
                         align=["LEFT", "RIGHT", "RIGHT", "RIGHT", "LEFT", "LEFT"])
            note = summary.undetermined_note(fit)
            if note:
                doc.para(note, 8, colour=GREY, after=0.8)
            held = fit.get("mape_heldout_pct")
            doc.para(f"Error (MAPE): {fmt.plain(fit.get('mape_train_pct'))}% on {fit.get('n_train')} fitted points, "
                     f"{'n/a' if held is None else fmt.plain(held) + '%'} on {fit.get('n_heldout')} held-out points. "
                     f"Held out: {fit.get('heldout_rule', 'not stated')}.", 8, after=0.6)
            measured = parent.get("overlap_fraction_measured")
            if isinstance(measured, dict):
                doc.para(f"Measured overlap fraction: median {fmt.plain(measured.get('median'))} "
                         f"(p25 {fmt.plain(measured.get('p25'))}, p75 {fmt.plain(measured.get('p75'))}).", 8,
                         after=0.6)
            doc.ln(1.5)


def _start_quality(profile: Mapping[str, Any]) -> tuple[QualitySection | str | None, list[tuple[Png, str]]]:
    """The profile's quality section (None: it has none; a string: why it is not usable) and its panels' charts,
    being drawn."""
    try:
        section = quality_from_profile(dict(profile))
    except QualitySectionError as exc:  # the loader checks it; a hand-built dict may not have been loaded
        return str(exc), []
    if section is None:
        return None, []
    pending = []
    for curves in qcharts.panels(section).values():
        frame = qcharts.quality_frame(curves)
        pending.append((_half(functools.partial(qcharts.quality_chart, frame, curves)),
                        qcharts.describe_quality(frame, curves)))
    return section, pending


def _quality(doc: Doc, profile: Mapping[str, Any], section: QualitySection | str | None,
             pending: list[tuple[Png, str]]) -> None:
    raw = profile.get("quality")
    if isinstance(section, str):
        doc.heading("Quality calibration", keep=15)
        doc.para(f"The profile's quality section is not usable: {section}.", 9)
        return
    if section is None:
        return
    doc.heading("Quality calibration: small models under quantization and pruning", keep=60)
    duration = "" if section.duration_s is None else f" in {section.duration_s:.0f} s"
    doc.para(f"{len(section.curves)} curves fitted ({section.mode} mode{duration}) on "
             f"{', '.join(section.models) or 'no model'}. {raw.get('provenance', '')}.", 9)
    for i in range(0, len(pending), 2):
        pictures = _pictures(pending[i:i + 2])
        place(doc, pictures)
        doc.para(" ".join(description for _, description in pictures), 8, colour=GREY)
    table = qcharts.curves_table(section)
    doc.grid(list(table.columns), ([r[0], r[1], r[2], r[3], fmt.plain(r[4]), fmt.plain(r[5])]
                                   for r in table.itertuples(index=False)), [52, 24, 62, 12, 15, 15], size=7,
             align=["LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"])
    not_fitted = [f"{key}: {c.get('reason', c.get('status'))}" for key, c in (raw.get("curves") or {}).items()
                  if isinstance(c, dict) and c.get("status") != "ok"]
    if not_fitted:
        doc.para("Not fitted: " + "; ".join(not_fitted), 8, colour=GREY)
    law = section.scaling_law
    if law is not None:
        doc.heading("Scaling law L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, eq. 2)", size=10.5,
                    keep=30)
        table = laws.law_table(law)  # the measured law beside Chinchilla's and Epoch's (the Compress page's table)
        doc.grid(list(table.columns), table.astype(str).itertuples(index=False), laws.TABLE_WIDTHS_MM,
                 size=6.5)
        doc.para(f"{len(law.points)} measured points; leave-one-out MAPE {fmt.plain(law.loo_mape_pct)}%; "
                 f"{law.provenance}.", 8, colour=GREY)
    for note in raw.get("notes") or []:
        doc.para(str(note), 7.5, colour=GREY, after=0.6)


def _validation(doc: Doc, validation: Mapping[str, Any] | None) -> None:
    """The back-test of `python -m calibration validate` (calibration.validate_summary.summarize's dict)."""
    if not validation:
        doc.para("No back-test is stored with this profile. `python -m calibration validate PROFILE` re-measures "
                 "every fit's held-out points and reports the MAPE of the predictions against fresh timings "
                 "(docs/calibration.md, \"Validate\").", 9, colour=GREY)
        return
    overall = validation.get("mape_pct_overall")
    repeat = validation.get("repeatability_pct_overall")
    doc.para(f"Re-measured held-out points: {validation.get('n_points', 'n/a')}; MAPE of the predictions "
             f"{fmt.plain(overall)}% against a repeatability (noise floor) of {fmt.plain(repeat)}%; "
             f"{validation.get('n_unmeasured', 0)} points could not be re-measured. Measured "
             f"{validation.get('date_utc', 'on an unstated date')}.", 9)
    rows = [[name, str(v.get("n", "")), fmt.plain(v.get("mape_pct")), fmt.plain(v.get("repeatability_pct")),
             fmt.plain(v.get("mape_vs_original_pct")), "" if v.get("counted", True) else str(v.get("reason") or "no")]
            for name, v in (validation.get("by_fit") or {}).items() if isinstance(v, Mapping)]
    if rows:
        doc.grid(["Fit", "Points", "MAPE %", "Repeatability %", "MAPE vs original %", "Not counted: why"], rows,
                 [62, 14, 18, 24, 26, 36], size=7.5, align=["LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "LEFT"])


def _provenance(doc: Doc, profile: Mapping[str, Any], source: str, files: Sequence[str]) -> None:
    run = profile.get("run") or {}
    facts = [
        f"Schema version {profile.get('schema_version')} ({profile.get('kind', 'kind not stated')}); created "
        f"{profile.get('created_utc')}; {len(profile.get('measurements', []))} measurement rows.",
        f"Run id: {run.get('run_id', 'not recorded in the profile')}; mode: {run.get('mode', 'not recorded')}.",
        f"Source: {source}.",
        *(f"File: {f}" for f in files),
        f"Report made by Modelfolio {VERSION}. Figures are fitted to this machine's measurements "
        "(docs/profile-schema.md); nothing in this report is a datasheet value unless it says so.",
    ]
    doc.bullets(facts, size=8.5)
    s = profile.get("summary", {})
    for key in ("fits_not_done", "rows_dropped_by_writer", "non_finite_replaced"):
        items = s.get(key) or []
        if items:
            doc.para(f"{key.replace('_', ' ')}: " + "; ".join(map(str, items)), 8, colour=GREY)
    if s.get("noisy_rows"):
        doc.para(f"Noisy rows ({len(s['noisy_rows'])}): {s.get('noisy_note', '')}.", 8, colour=GREY)
    env = summary.environment_frame(profile)
    doc.heading("The full environment", size=10.5, before=2, keep=30)
    doc.grid(["Field", "Value"], ([r.Field, r.Value] for r in env.itertuples(index=False)), [50, 130], size=7)


# ---------------------------------------------------------------- the document


def calibration_pdf(profile: Mapping[str, Any], spec: Any | None = None, *, source: str = "",
                    files: Sequence[str] = (), validation: Mapping[str, Any] | None = None,
                    created: dt.datetime | None = None) -> bytes:
    """The profile (strictly loaded, simulator.profile.load_profile) as an A4 PDF.

    `spec`: the accelerator the page built from it (state.register; None: no datasheet share in the headline, as
    on the page); `source`: where it came from (the page's text: shipped reference, run folder, upload); `files`:
    the files it was read from; `validation`: a back-test (calibration.validate_summary.summarize's dict), default the
    profile's own `validation` object when it holds one; `created`: the printed date (default now, UTC)."""
    created = report_date(created)
    stored = profile.get("validation")
    validation = validation if validation is not None else (stored if isinstance(stored, Mapping) else None)
    title = title_of(profile)
    doc = new_document(title, summary.headline(profile, spec), created)
    throughput, panels = _start_charts(profile)  # drawn in a helper process while the text before them is laid out
    quality, quality_panels = _start_quality(profile)

    _first_page(doc, profile, spec, created, source or "source not given")
    doc.heading("Key figures", before=2)
    _key_figures(doc, profile, spec)
    doc.heading("Environment: what was measured", keep=40)
    _environment(doc, profile)
    doc.heading("Every fit: model, points, training and held-out error", keep=40)
    _fits_table(doc, profile)
    _charts(doc, throughput, panels)
    doc.heading("Formulas and parameters of every fit", keep=40)
    _formulas(doc, profile)
    _quality(doc, profile, quality, quality_panels)
    doc.heading("Back-test: predictions against fresh timings", keep=30)
    _validation(doc, validation)
    doc.heading("Provenance", keep=40)
    _provenance(doc, profile, source or "not given", files)
    return bytes(doc.output())

