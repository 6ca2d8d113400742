"""`python -m calibration validate PROFILE [--nproc N] [--out FILE]`: re-measure the held-out points of
every fit in a profile and compare them with what the profile predicts.

The held-out points are the largest of each fit, never seen by it, so this is an extrapolation test on
fresh timings. Prints a table (fit, point, predicted, measured, error %) and MAPE per fit and overall
(pooled over all points); writes it as CSV (--out *.csv) or markdown (any other name). Exit status 0,
or 2 with a message when the profile is unusable or the re-measuring half is unavailable.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from calibration.rows import step_key
from simulator.profile import ProfileError, load_profile, predict_s

TARGET_MAPE_PCT = 10.0
Remeasure = Callable[..., list[dict[str, Any]]]


def _load_remeasure() -> Remeasure:
    from calibration.bench.registry import remeasure  # imports torch; tests replace this loader

    return remeasure


def heldout_targets(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per held-out point of every fitted record: its fit path, the fit and the point."""
    out = []
    for path, fit in _walk(profile["fits"], "fits"):
        for pt in fit.get("points", {}).get("heldout", []):
            rows = pt.get("rows")
            if isinstance(rows, list) and rows and all(isinstance(i, int) for i in rows):
                out.append({"fit": path, "record": fit, "point": pt, "rows": rows})
    return out


def _walk(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("status") == "ok" and isinstance(node.get("points"), dict):
            yield path, node
            return
        for key, child in node.items():
            yield from _walk(child, f"{path}.{key}")


def _median(row: dict[str, Any] | None) -> float | None:
    if not row or row.get("status") != "ok":
        return None
    v = row.get("median_s")
    return float(v) if isinstance(v, int | float) and v > 0 else None


def _predicted(record: dict[str, Any], pt: dict[str, Any]) -> float:
    """From the fit's parameters where the simulator can predict this model, else the stored value."""
    try:
        return float(predict_s(record, flops=pt["x"], ws_bytes=pt.get("ws_bytes"), message_bytes=pt["x"],
                               world_size=pt.get("world_size"), servers=pt.get("servers"),
                               workers=pt.get("workers")))
    except (ValueError, KeyError, TypeError):
        return float(pt["predicted"])


def compare(profile: dict[str, Any], remeasure: Remeasure, nproc: int | None = None) -> list[dict[str, Any]]:
    """Re-measure every held-out row once, then score each held-out point."""
    targets = heldout_targets(profile)
    wanted = sorted({i for t in targets for i in t["rows"]})
    originals = [profile["measurements"][i] for i in wanted]
    fresh_rows = remeasure(originals, nproc=nproc) if originals else []
    by_key = {step_key(r): r for r in fresh_rows if isinstance(r, dict) and "bench" in r}
    fresh: dict[int, dict[str, Any] | None] = {}
    for pos, i in enumerate(wanted):
        match = by_key.get(step_key(profile["measurements"][i]))
        if match is None and len(fresh_rows) == len(wanted):
            match = fresh_rows[pos]
        fresh[i] = match
    results = []
    for t in targets:
        meds = [_median(fresh[i]) for i in t["rows"]]
        pt, kind = t["point"], t["record"].get("y_kind", "time_s")
        measured = None
        if all(m is not None for m in meds):
            measured = meds[0] / meds[1] if kind == "ratio_of_medians" and len(meds) == 2 else meds[0]
        predicted = _predicted(t["record"], pt)
        err = (predicted - measured) / measured * 100 if measured else None
        note = _threads_note(profile["measurements"], fresh, t["rows"]) if measured else _why(fresh, t["rows"])
        results.append({"fit": t["fit"], "point": _label(pt, t["record"]), "predicted": predicted,
                        "measured": measured, "error_pct": err, "note": note})
    return results


def _label(pt: dict[str, Any], record: dict[str, Any]) -> str:
    extras = ", ".join(f"{k}={pt[k]:g}" for k in ("world_size", "servers", "workers", "batch")
                       if isinstance(pt.get(k), int | float))
    return f"{record.get('x_name', 'x')}={pt['x']:.4g}" + (f" ({extras})" if extras else "")


def _threads_note(original: list[dict[str, Any]], fresh: dict[int, dict[str, Any] | None],
                  rows: list[int]) -> str:
    """A re-measure on a different CPU thread count is not the same experiment: say so."""
    for i in rows:
        before = (original[i].get("extra") or {}).get("threads")
        after = ((fresh.get(i) or {}).get("extra") or {}).get("threads")
        if before is not None and after is not None and before != after:
            return f"threads {before} in the profile, {after} now"
    return ""


def _why(fresh: dict[int, dict[str, Any] | None], rows: list[int]) -> str:
    for i in rows:
        r = fresh.get(i)
        if r is None:
            return "not re-measured"
        if r.get("status") != "ok":
            return f"re-measure {r.get('status')}: {str(r.get('error') or '')[:80]}"
    return "no positive median"


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def summarize(results: list[dict[str, Any]], load_before: float | None = None) -> dict[str, Any]:
    per_fit: dict[str, list[float]] = {}
    for r in results:
        if r["error_pct"] is not None:
            per_fit.setdefault(r["fit"], []).append(abs(r["error_pct"]))
    every = [e for errs in per_fit.values() for e in errs]
    overall = float(np.mean(every)) if every else None
    return {"mape_pct_by_fit": {k: float(np.mean(v)) for k, v in per_fit.items()},
            "mape_pct_overall": overall, "n_points": len(every),
            "n_unmeasured": sum(1 for r in results if r["error_pct"] is None),
            "target_met": overall is not None and overall <= TARGET_MAPE_PCT,
            "loadavg_1min": {"before": load_before, "after": _loadavg()}, "cpus": os.cpu_count()}


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def render_markdown(results: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = ["| fit | point | predicted | measured | error % | note |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['fit']} | {r['point']} | {_fmt(r['predicted'], '.4g')} | {_fmt(r['measured'], '.4g')} "
              f"| {_fmt(r['error_pct'], '+.1f')} | {r['note']} |" for r in results]
    lines += ["", "| fit | MAPE % |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in summary["mape_pct_by_fit"].items()]
    verdict = "met" if summary["target_met"] else "NOT met"
    lines += ["", f"Overall MAPE (pooled over {summary['n_points']} held-out points): "
              f"{_fmt(summary['mape_pct_overall'], '.1f')}% (target <= {TARGET_MAPE_PCT:g}%: {verdict}); "
              f"{summary['n_unmeasured']} points could not be re-measured.",
              f"Load average (1 min) before/after re-measuring: {summary['loadavg_1min']['before']} / "
              f"{summary['loadavg_1min']['after']} on {summary['cpus']} CPUs (a busy machine inflates errors)."]
    return "\n".join(lines) + "\n"


def render_csv(results: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["fit", "point", "predicted", "measured", "error_pct", "note"])
    writer.writeheader()
    writer.writerows(results)
    return buf.getvalue()


def main(argv: list[str]) -> int:
    argv = list(argv)[1:] if list(argv)[:1] == ["validate"] else list(argv)
    ap = argparse.ArgumentParser(prog="python -m calibration validate", description=__doc__.split("\n")[0])
    ap.add_argument("profile", type=Path, help="profile.json written by a calibration run")
    ap.add_argument("--nproc", type=int, default=None, help="ranks for re-measuring distributed points")
    ap.add_argument("--out", type=Path, default=None, help="write the table: *.csv as CSV, else markdown")
    args = ap.parse_args(argv)
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        print(f"error: {args.profile} is not a usable profile: {exc}", file=sys.stderr)
        return 2
    try:
        remeasure = _load_remeasure()
    except ImportError as exc:
        print(f"error: cannot re-measure (calibration.bench.registry.remeasure unavailable: {exc})",
              file=sys.stderr)
        return 2
    load_before = _loadavg()
    results = compare(profile, remeasure, args.nproc)
    summary = summarize(results, load_before)
    text = render_markdown(results, summary)
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_csv(results) if args.out.suffix.lower() == ".csv" else text)
        print(f"wrote {args.out}")
    return 0
