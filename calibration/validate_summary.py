"""The back-test's summary (MAPE per fit and overall, against the repeatability floor) and its table (markdown, CSV)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from typing import Any

import numpy as np

from calibration.validate_points import CONTEXT_TEXT, not_counted_reason

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


def summarize(results: list[dict[str, Any]], load_before: float | None = None,
              context: str | None = None) -> dict[str, Any]:
    per_fit: dict[str, dict[str, Any]] = {}
    for r in results:
        f = per_fit.setdefault(r["fit"], {"errors": [], "repeat": [], "vs_original": [], "counted": r["counted"],
                                          "n_unmeasured": 0})
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
                  "counted": v["counted"], "reason": not_counted_reason(k)} for k, v in per_fit.items()}

    def pooled(key: str, counted: bool) -> tuple[float | None, int]:
        vals = [e for v in per_fit.values() if v["counted"] == counted for e in v[key]]
        return _mean_abs(vals), len(vals)

    overall, n_points = pooled("errors", True)
    repeat, _ = pooled("repeat", True)
    vs_original, _ = pooled("vs_original", True)
    other, n_other = pooled("errors", False)
    return {"mape_pct_by_fit": {k: v["mape_pct"] for k, v in by_fit.items() if v["counted"] and v["n"]},
            "by_fit": by_fit, "mape_pct_overall": overall, "n_points": n_points,
            "repeatability_pct_overall": repeat, "mape_vs_original_pct_overall": vs_original,
            "mape_pct_not_counted": other, "n_points_not_counted": n_other,
            "n_unmeasured": sum(1 for r in results if r["error_pct"] is None),
            "target_met": overall is not None and overall <= TARGET_MAPE_PCT,
            "loadavg_1min": {"before": load_before, "after": loadavg_1min()}, "cpus": os.cpu_count(), "context": context,
            "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def render_markdown(results: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = ["| fit | point | predicted | measured | error % | original | repeat % | note |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['fit']} | {r['point']} | {_fmt(r['predicted'], '.4g')} | {_fmt(r['measured'], '.4g')} "
              f"| {_fmt(r['error_pct'], '+.1f')} | {_fmt(r.get('original'), '.4g')} "
              f"| {_fmt(r.get('repeat_pct'), '+.1f')} | {r['note']}{'' if r.get('counted', True) else ' (not counted)'} |"
              for r in results]
    lines += ["", "| fit | points | MAPE % | repeatability % | MAPE vs original % |", "|---|---|---|---|---|"]
    by_fit = summary.get("by_fit", {})
    lines += [f"| {k} | {v['n']} | {_fmt(v['mape_pct'], '.1f')} | {_fmt(v['repeatability_pct'], '.1f')} "
              f"| {_fmt(v['mape_vs_original_pct'], '.1f')} |" for k, v in by_fit.items() if v["counted"]]
    verdict = "met" if summary["target_met"] else "NOT met"
    lines += ["", f"Overall MAPE (pooled over {summary['n_points']} held-out points): "
              f"{_fmt(summary['mape_pct_overall'], '.1f')}% (target <= {TARGET_MAPE_PCT:g}%: {verdict}); "
              f"{summary['n_unmeasured']} points could not be re-measured.",
              f"Repeatability (noise floor): the re-measured held-out points differ from the profile's own "
              f"measurements of them by {_fmt(summary.get('repeatability_pct_overall'), '.1f')}% (MAPE); the "
              f"predictions differ from those original measurements by "
              f"{_fmt(summary.get('mape_vs_original_pct_overall'), '.1f')}%. An error near the floor is noise, "
              f"well above it is the model.",
              f"Load average (1 min) before/after re-measuring: {summary['loadavg_1min']['before']} / "
              f"{summary['loadavg_1min']['after']} on {summary['cpus']} CPUs (a busy machine inflates errors); "
              f"{summary.get('date_utc', '')}."]
    if summary.get("context"):
        lines.append(f"Re-measured: {CONTEXT_TEXT.get(summary['context'], summary['context'])}.")
    skipped = {k: v for k, v in by_fit.items() if not v["counted"]}
    if skipped:
        lines += ["", "Not counted in the overall MAPE (re-measured and shown, with the reason):", "",
                  "| fit | points | MAPE % | repeatability % | why not counted |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['n']} | {_fmt(v['mape_pct'], '.1f')} | {_fmt(v['repeatability_pct'], '.1f')} "
                  f"| {v['reason']} |" for k, v in skipped.items()]
    return "\n".join(lines) + "\n"


def render_csv(results: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["fit", "point", "predicted", "measured", "error_pct", "original",
                                             "repeat_pct", "error_vs_original_pct", "counted", "note"])
    writer.writeheader()
    writer.writerows(results)
    return buf.getvalue()
