"""`python -m calibration validate PROFILE [--nproc N] [--out FILE]`: re-measure the held-out points of
every fit in a profile and compare them with what the profile predicts.

The held-out points are the largest of each fit, never seen by it, so this is an extrapolation test on
fresh timings (re-measured as a run measures them: the same threads, local points interleaved, collectives
under torchrun). Prints a table (fit, point, predicted, measured, error %, the profile's own measurement
of the point and the re-measurement's difference from it) and, per fit and overall (pooled over all
points), the MAPE, the repeatability (the noise floor: re-measured vs the profile's measurement) and the
predictions' MAPE against the profile's measurements; writes it as CSV (--out *.csv) or markdown (any
other name). Fits listed in NOT_COUNTED are re-measured and shown in their own section, with the reason,
but left out of the overall. Conditional models (DDP: step time given its compute and all-reduce times)
are scored on the conditions re-measured with the point. Exit status 0, or 2 with a message when the
profile is unusable or the re-measuring half is unavailable.

The profile may come from anyone, so it does not decide how much this machine does: without --nproc a point is
re-measured on at most as many ranks as this machine has CPUs (cpu points) or visible GPUs (cuda points); a point
that asks for more is reported as skipped, and validate says so. --nproc N lifts the cap to N ranks.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from calibration.rows import Step, make_row, step_key
from simulator.profile import ProfileError, load_profile, predict_s

TARGET_MAPE_PCT = 10.0
# fit-path prefix -> why its held-out points are shown but left out of the overall MAPE (docs/calibration.md)
# fit-path prefix -> why its held-out points are re-measured and shown but left out of the overall MAPE.
# Empty: every fit counts. (World-size-1 all_gather / reduce_scatter were a candidate -- a local copy whose
# rate changes past the L2 between the training and the held-out sizes -- but scored 9-17% on the
# development machine, no worse than the rest, so they count.)
NOT_COUNTED: dict[str, str] = {}
Remeasure = Callable[..., list[dict[str, Any]]]


def _load_remeasure() -> Remeasure:
    from calibration.bench.registry import remeasure  # imports torch; tests replace this loader

    return remeasure


def _available_cpus() -> int:
    """CPUs this process may run on (affinity), as calibration.timing counts them (without importing torch)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _visible_gpus() -> int:
    """GPUs this process sees (torch honours CUDA_VISIBLE_DEVICES); 0 without torch or CUDA."""
    try:
        import torch
    except ImportError:
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # a broken driver: no GPU ranks
        return 0


def rank_caps() -> dict[str, int]:
    """The most ranks validate starts per device without --nproc: this machine's CPUs, its visible GPUs."""
    return {"cpu": _available_cpus(), "cuda": _visible_gpus()}


def capped(remeasure: Remeasure, caps: dict[str, int], say: Callable[[str], None] | None = None) -> Remeasure:
    """`remeasure`, except that a row asking for more ranks than its device has here (`caps`; another device
    counts as a CPU) is not launched: it comes back "skipped", with the reason, and `say` is told once."""
    def run(rows: list[dict[str, Any]], nproc: int | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any] | None] = [None] * len(rows)
        keep, over = [], []
        for i, row in enumerate(rows):
            device = str(row.get("device"))
            cap = caps.get(device, caps.get("cpu", 1))
            world = row.get("world_size", 1)
            if isinstance(world, int) and world > cap:
                unit = "visible GPUs" if device == "cuda" else "CPUs"
                out[i] = make_row(Step.from_dict(row), run_id="validate-capped", status="skipped",
                                  error=f"world_size {world} > the {cap} {unit} here (pass --nproc to run it)")
                over.append(world)
            else:
                keep.append(i)
        if over and say is not None:
            say(f"validate: {len(over)} points ask for up to {max(over):,} ranks, more than this machine has "
                f"({caps.get('cpu', 0)} CPUs, {caps.get('cuda', 0)} visible GPUs): they are skipped, not launched. "
                "Pass --nproc N to run up to N ranks per device anyway.")
        fresh = remeasure([rows[i] for i in keep], nproc=nproc) if keep else []
        if len(fresh) == len(keep):
            for i, r in zip(keep, fresh, strict=True):
                out[i] = r
            return [r for r in out if r is not None]
        return [r for r in out if r is not None] + list(fresh)  # matched by step key, as compare does

    return run


def _measurable(row: Any) -> bool:
    """A row validate can re-measure: it names its bench and device (an ok row always does)."""
    return isinstance(row, dict) and isinstance(row.get("bench"), str) and isinstance(row.get("device"), str)


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


def _combine(meds: list[float | None], kind: str) -> float | None:
    if not meds or any(m is None for m in meds):
        return None
    return meds[0] / meds[1] if kind == "ratio_of_medians" and len(meds) == 2 else meds[0]


_NOT_FEATURES = ("x", "measured", "predicted", "rows")


def point_features(record: dict[str, Any], pt: dict[str, Any],
                   fresh: list[dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """What `predict_s` needs for a point: the numbers stored with it, x under its own name and as flops /
    message_bytes, and for a conditional model (DDP: step time given compute and all-reduce times) the
    conditions as re-measured with it, so the check is of the model and not of the old conditions."""
    feats: dict[str, Any] = {k: v for k, v in pt.items() if k not in _NOT_FEATURES
                             and isinstance(v, int | float) and not isinstance(v, bool)}
    feats.setdefault("flops", pt["x"])
    feats.setdefault("message_bytes", pt["x"])
    if record.get("model") in CONDITIONAL_MODELS and fresh and fresh[0]:
        extra = fresh[0].get("extra") or {}
        for key in CONDITIONAL_MODELS[record["model"]]:
            if isinstance(extra.get(key), int | float) and extra[key] > 0:
                feats[key] = float(extra[key])
    return feats


# conditional models: features measured together with y (re-measured with it by validate)
CONDITIONAL_MODELS: dict[str, tuple[str, ...]] = {"ddp_overlap": ("compute_s", "allreduce_s")}


def _predicted(record: dict[str, Any], pt: dict[str, Any],
               fresh: list[dict[str, Any] | None] | None = None) -> float | None:
    """From the fit's parameters where the simulator can predict this model, else the stored value (None: none)."""
    try:
        value = float(predict_s(record, **point_features(record, pt, fresh)))
    except (ValueError, KeyError, TypeError):
        value = pt.get("predicted")
    return float(value) if isinstance(value, int | float) and np.isfinite(value) else None


def not_counted_reason(fit_path: str) -> str | None:
    for prefix, why in NOT_COUNTED.items():
        if fit_path.startswith(prefix):
            return why
    return None


CONTEXTS = ("run", "heldout")
_CONTEXT_TEXT = {"run": "every point of the run, in its order, so each held-out point is timed in its run's mix",
                 "heldout": "the held-out points only, timed among themselves (a sustained-load check)"}


def context_rows(profile: dict[str, Any], wanted: list[int], context: str) -> list[int]:
    """Which of the profile's rows to re-measure so that the held-out ones (`wanted`) repeat their experiment.

    "run": every point the run measured ok, in the run's order (held-out rows included): a point's timing
    depends on what its samples are interleaved with (on the development machine, held-out points timed
    only among themselves -- back-to-back heavy kernels -- ran 15-38% slower than the same points timed in
    the run's mix, and within +-10% when the whole mix was re-measured; docs/calibration.md), so the
    re-measurement repeats the run. "heldout": only the held-out rows (faster; a sustained-load check)."""
    if context not in CONTEXTS:
        raise ValueError(f"context {context!r} is not one of {CONTEXTS}")
    if context == "heldout":
        return list(wanted)
    keep = set(wanted)
    seen: set[str] = set()
    out = []
    for i, row in enumerate(profile["measurements"]):
        if i in keep or (row.get("status") == "ok" and not row.get("oversubscribed")):
            key = step_key(row)
            if key not in seen or i in keep:
                seen.add(key)
                out.append(i)
    return out


def compare(profile: dict[str, Any], remeasure: Remeasure, nproc: int | None = None,
            context: str = "run") -> list[dict[str, Any]]:
    """Re-measure the held-out rows (with the run's other points around them, see `context_rows`), then
    score each held-out point: the prediction against the re-measurement (error), and the re-measurement
    against the profile's own measurement (repeatability)."""
    targets = heldout_targets(profile)
    wanted = sorted({i for t in targets for i in t["rows"] if _measurable(profile["measurements"][i])})
    measured_rows = context_rows(profile, wanted, context) if wanted else []
    originals = [profile["measurements"][i] for i in measured_rows]
    fresh_rows = remeasure(originals, nproc=nproc) if originals else []
    by_key = {step_key(r): r for r in fresh_rows if isinstance(r, dict) and "bench" in r}
    fresh: dict[int, dict[str, Any] | None] = {}
    for i in wanted:
        match = by_key.get(step_key(profile["measurements"][i]))
        if match is None and len(fresh_rows) == len(measured_rows):
            match = fresh_rows[measured_rows.index(i)]
        fresh[i] = match
    results = []
    for t in targets:
        pt, kind = t["point"], t["record"].get("y_kind", "time_s")
        measured = _combine([_median(fresh.get(i)) for i in t["rows"]], kind)
        original = _combine([_median(profile["measurements"][i]) for i in t["rows"]], kind)
        if original is None and isinstance(pt.get("measured"), int | float):
            original = float(pt["measured"])
        predicted = _predicted(t["record"], pt, [fresh.get(i) for i in t["rows"]])
        err = (predicted - measured) / measured * 100 if measured and predicted is not None else None
        repeat = (measured - original) / original * 100 if measured and original else None
        vs_original = (predicted - original) / original * 100 if original and predicted is not None else None
        note = _threads_note(profile["measurements"], fresh, t["rows"]) if measured else _why(fresh, t["rows"])
        results.append({"fit": t["fit"], "point": _label(pt, t["record"]), "predicted": predicted,
                        "measured": measured, "error_pct": err, "original": original, "repeat_pct": repeat,
                        "error_vs_original_pct": vs_original, "counted": not_counted_reason(t["fit"]) is None,
                        "note": note})
    return results


def _label(pt: dict[str, Any], record: dict[str, Any]) -> str:
    extras = ", ".join(f"{k}={pt[k]:g}" for k in ("world_size", "servers", "workers", "batch", "hidden", "context")
                       if isinstance(pt.get(k), int | float) and not isinstance(pt.get(k), bool))
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
            "loadavg_1min": {"before": load_before, "after": _loadavg()}, "cpus": os.cpu_count(), "context": context,
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
        lines.append(f"Re-measured: {_CONTEXT_TEXT.get(summary['context'], summary['context'])}.")
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


def main(argv: list[str]) -> int:
    argv = list(argv)[1:] if list(argv)[:1] == ["validate"] else list(argv)
    ap = argparse.ArgumentParser(prog="python -m calibration validate", description=__doc__.split("\n")[0])
    ap.add_argument("profile", type=Path, help="profile.json written by a calibration run")
    ap.add_argument("--nproc", type=int, default=None,
                    help="most ranks for re-measuring distributed points (default: this machine's CPUs for cpu "
                         "points, its visible GPUs for cuda points; a point asking for more is skipped)")
    ap.add_argument("--out", type=Path, default=None, help="write the table: *.csv as CSV, else markdown")
    ap.add_argument("--context", choices=CONTEXTS, default="run",
                    help="run (default): re-measure every point of the run so each held-out point is timed in "
                         "the mix it was measured in; heldout: only the held-out points (faster)")
    args = ap.parse_args(argv)
    if args.nproc is not None and args.nproc < 1:
        print(f"error: --nproc {args.nproc}: must be at least 1", file=sys.stderr)
        return 2
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
    if args.nproc is None:  # the profile asks; this machine decides how many ranks it starts
        remeasure = capped(remeasure, rank_caps(), lambda text: print(text, file=sys.stderr))
    load_before = _loadavg()
    results = compare(profile, remeasure, args.nproc, args.context)
    summary = summarize(results, load_before, args.context)
    text = render_markdown(results, summary)
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_csv(results) if args.out.suffix.lower() == ".csv" else text)
        print(f"wrote {args.out}")
    return 0
