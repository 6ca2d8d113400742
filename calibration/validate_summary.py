"""The back-test's summary (MAPE per fit, the headline of the fits the plans use against the repeatability floor, and
the sections shown apart) and its table (markdown, CSV)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from typing import Any

import numpy as np

from calibration.validate_points import CONTEXT_TEXT
from calibration.validate_scope import EMULATED, HEADLINE, SECTION_TITLES, UNUSED

TARGET_MAPE_PCT = 10.0


def loadavg_1min() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _mean_abs(values: list[float]) -> float | None:
    return float(np.mean(np.abs(values))) if values else None


def repeatability_pct(original: list[float], remeasured: list[float]) -> float | None:
    """MAPE of the re-measurement against the profile's measurement of the same points: the noise floor
    a model cannot beat (a prediction equal to the old measurement scores exactly this)."""
    pairs = [(o, m) for o, m in zip(original, remeasured, strict=True) if o and m]
    return _mean_abs([(m - o) / o * 100 for o, m in pairs])


def _pooled(per_fit: dict[str, dict[str, Any]], section: str | None) -> dict[str, Any]:
    """MAPE, repeatability and MAPE vs the profile's measurements pooled over the points of the fits of `section`
    (None: every fit), with how many points and fits."""
    fits = [v for v in per_fit.values() if section is None or v["section"] == section]
    errors = [e for v in fits for e in v["errors"]]
    return {"mape_pct": _mean_abs(errors), "n_points": len(errors),
            "repeatability_pct": _mean_abs([e for v in fits for e in v["repeat"]]),
            "mape_vs_original_pct": _mean_abs([e for v in fits for e in v["vs_original"]]),
            "n_fits": sum(1 for v in fits if v["errors"])}


def summarize(results: list[dict[str, Any]], load_before: float | None = None,
              context: str | None = None, scope: str | None = None) -> dict[str, Any]:
    """Per fit and per section (validate_scope: the headline, an emulated dtype, feeds no simulator figure) the
    MAPE, repeatability and MAPE vs the profile's measurements; the headline's are the overall figures. `scope`:
    how the fits the simulator uses were found (validate_scope.used_fits), said with the headline."""
    per_fit: dict[str, dict[str, Any]] = {}
    for r in results:
        section = r.get("section", HEADLINE if r.get("counted", True) else UNUSED)
        f = per_fit.setdefault(r["fit"], {"errors": [], "repeat": [], "vs_original": [], "section": section,
                                          "reason": r.get("why"), "n_unmeasured": 0})
        if r["error_pct"] is None:
            f["n_unmeasured"] += 1
            continue
        f["errors"].append(r["error_pct"])
        if r.get("repeat_pct") is not None:
            f["repeat"].append(r["repeat_pct"])
        if r.get("error_vs_original_pct") is not None:
            f["vs_original"].append(r["error_vs_original_pct"])
    by_fit = {k: {"mape_pct": _mean_abs(v["errors"]), "repeatability_pct": _mean_abs(v["repeat"]),
                  "mape_vs_original_pct": _mean_abs(v["vs_original"]), "n": len(v["errors"]),
                  "counted": v["section"] == HEADLINE, "section": v["section"], "reason": v["reason"]}
              for k, v in per_fit.items()}
    sections = {name: _pooled(per_fit, name) for name in SECTION_TITLES}
    head, every = sections[HEADLINE], _pooled(per_fit, None)
    return {"mape_pct_by_fit": {k: v["mape_pct"] for k, v in by_fit.items() if v["counted"] and v["n"]},
            "by_fit": by_fit, "mape_pct_overall": head["mape_pct"], "n_points": head["n_points"],
            "repeatability_pct_overall": head["repeatability_pct"],
            "mape_vs_original_pct_overall": head["mape_vs_original_pct"], "sections": sections,
            "mape_pct_all": every["mape_pct"], "n_points_all": every["n_points"], "scope": scope,
            "n_unmeasured": sum(1 for r in results if r["error_pct"] is None),
            "target_met": head["mape_pct"] is not None and head["mape_pct"] <= TARGET_MAPE_PCT,
            "loadavg_1min": {"before": load_before, "after": loadavg_1min()}, "cpus": os.cpu_count(), "context": context,
            "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


_TAG = {HEADLINE: "", EMULATED: " (emulated dtype: not in the headline)", UNUSED: " (feeds no figure: not in the headline)"}


def render_markdown(results: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = ["| fit | point | predicted | measured | error % | original | repeat % | note |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['fit']} | {r['point']} | {_fmt(r['predicted'], '.4g')} | {_fmt(r['measured'], '.4g')} "
              f"| {_fmt(r['error_pct'], '+.1f')} | {_fmt(r.get('original'), '.4g')} "
              f"| {_fmt(r.get('repeat_pct'), '+.1f')} | {r['note']}{_TAG.get(r.get('section', HEADLINE), '')} |"
              for r in results]
    lines += ["", "| fit | points | MAPE % | repeatability % | MAPE vs original % |", "|---|---|---|---|---|"]
    by_fit = summary.get("by_fit", {})
    lines += [f"| {k} | {v['n']} | {_fmt(v['mape_pct'], '.1f')} | {_fmt(v['repeatability_pct'], '.1f')} "
              f"| {_fmt(v['mape_vs_original_pct'], '.1f')} |" for k, v in by_fit.items() if v["counted"]]
    verdict = "met" if summary["target_met"] else "NOT met"
    head = summary["sections"][HEADLINE]
    lines += ["", f"Headline MAPE (what the plans use: {summary['n_points']} held-out points of {head['n_fits']} fits "
              f"the simulator reads): {_fmt(summary['mape_pct_overall'], '.1f')}% (target <= {TARGET_MAPE_PCT:g}%: "
              f"{verdict}), beside a repeatability floor of {_fmt(summary.get('repeatability_pct_overall'), '.1f')}%; "
              f"{summary['n_unmeasured']} points could not be re-measured.",
              f"Repeatability (noise floor): the re-measured held-out points differ from the profile's own "
              f"measurements of them by {_fmt(summary.get('repeatability_pct_overall'), '.1f')}% (MAPE); the "
              f"predictions differ from those original measurements by "
              f"{_fmt(summary.get('mape_vs_original_pct_overall'), '.1f')}%. An error near the floor is noise, "
              f"well above it is the model."]
    for name in (EMULATED, UNUSED):
        sec = summary["sections"][name]
        lines.append(f"Shown apart, not in the headline -- {SECTION_TITLES[name]}: {sec['n_points']} points of "
                     f"{sec['n_fits']} fits, MAPE {_fmt(sec['mape_pct'], '.1f')}%, repeatability "
                     f"{_fmt(sec['repeatability_pct'], '.1f')}%, predictions vs the original measurements "
                     f"{_fmt(sec['mape_vs_original_pct'], '.1f')}%.")
    lines.append(f"All {summary['n_points_all']} points pooled, every section: MAPE {_fmt(summary['mape_pct_all'], '.1f')}%.")
    if summary.get("scope"):
        lines.append(f"Which fits count: {summary['scope']}.")
    lines.append(f"Load average (1 min) before/after re-measuring: {summary['loadavg_1min']['before']} / "
                 f"{summary['loadavg_1min']['after']} on {summary['cpus']} CPUs (a busy machine inflates errors); "
                 f"{summary.get('date_utc', '')}.")
    if summary.get("context"):
        lines.append(f"Re-measured: {CONTEXT_TEXT.get(summary['context'], summary['context'])}.")
    for name in (EMULATED, UNUSED):
        apart = {k: v for k, v in by_fit.items() if v["section"] == name}
        if apart:
            lines += ["", f"Not in the headline, {SECTION_TITLES[name]} (re-measured and shown, with the reason):", "",
                      "| fit | points | MAPE % | repeatability % | why not in the headline |", "|---|---|---|---|---|"]
            lines += [f"| {k} | {v['n']} | {_fmt(v['mape_pct'], '.1f')} | {_fmt(v['repeatability_pct'], '.1f')} "
                      f"| {v['reason']} |" for k, v in apart.items()]
    return "\n".join(lines) + "\n"


def render_csv(results: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["fit", "point", "predicted", "measured", "error_pct", "original",
                                             "repeat_pct", "error_vs_original_pct", "counted", "section", "why",
                                             "note"])
    writer.writeheader()
    writer.writerows(results)
    return buf.getvalue()
