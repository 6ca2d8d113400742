"""The held-out points of a profile's fits, re-measured in their run's context and scored against the predictions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from calibration.rows import step_key
from calibration.validate_scope import HEADLINE, classify
from simulator.profile import predict_s

Remeasure = Callable[..., list[dict[str, Any]]]


def _measurable(row: Any) -> bool:
    """A row validate can re-measure: it names its bench and device (an ok row always does)."""
    return isinstance(row, dict) and isinstance(row.get("bench"), str) and isinstance(row.get("device"), str)


def heldout_targets(profile: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per held-out point of every fitted record: its fit path, its keys under profile["fits"], the fit
    and the point."""
    out = []
    for keys, fit in _walk(profile["fits"], ()):
        for pt in fit.get("points", {}).get("heldout", []):
            rows = pt.get("rows")
            if isinstance(rows, list) and rows and all(isinstance(i, int) for i in rows):
                out.append({"fit": ".".join(("fits", *keys)), "keys": keys, "record": fit, "point": pt, "rows": rows})
    return out


def _walk(node: Any, keys: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("status") == "ok" and isinstance(node.get("points"), dict):
            yield keys, node
            return
        for key, child in node.items():
            yield from _walk(child, (*keys, str(key)))


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


CONTEXTS = ("run", "heldout")
CONTEXT_TEXT = {"run": "every point of the run, in its order, so each held-out point is timed in its run's mix",
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


def compare(profile: dict[str, Any], remeasure: Remeasure, nproc: int | None = None, context: str = "run",
            sections: dict[str, tuple[str, str | None]] | None = None) -> list[dict[str, Any]]:
    """Re-measure the held-out rows (with the run's other points around them, see `context_rows`), then
    score each held-out point: the prediction against the re-measurement (error), and the re-measurement
    against the profile's own measurement (repeatability). Each point says which section of the summary it
    belongs to (`sections`, else calibration/validate_scope.classify's: the headline, an emulated dtype, or a fit
    that feeds no simulator figure) and why it is not in the headline."""
    targets = heldout_targets(profile)
    if sections is None:
        sections, _ = classify(profile, targets)
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
                        "error_vs_original_pct": vs_original, "counted": sections[t["fit"]][0] == HEADLINE,
                        "section": sections[t["fit"]][0], "why": sections[t["fit"]][1], "note": note})
    return results


def _label(pt: dict[str, Any], record: dict[str, Any]) -> str:
    extras = ", ".join(f"{k}={pt[k]:g}" for k in ("world_size", "servers", "workers", "batch", "hidden", "context",
                                                  "experts", "top_k", "expert_ffn")
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
