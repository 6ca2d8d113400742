"""The profile's `quality` section from the measured points: per-variant statistics and the fitted curves."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from calibration.quality.plan import QualityPlan

CURVE_METRICS = {"digits_mlp": (("accuracy", "one_minus"), ("f1_macro", "one_minus")),
                 "char_lm": (("loss_nats", "identity"),)}
E_CAP = {"one_minus": 1.0, "identity": 20.0}
CURVE_SETS = (("bits", "rtn", False), ("bits", "qat", True), ("sparsity", "l1_unstructured", False),
              ("sparsity", "l1_unstructured", True), ("sparsity", "l2_rows", False), ("sparsity", "l2_rows", True))


def _stats(vals: list[float]) -> dict[str, float]:
    a = np.asarray(vals, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def build_section(points: list[dict[str, Any]], plan: QualityPlan, infos: dict[str, dict[str, Any]],
                  law: dict[str, Any] | None, device: str) -> dict[str, Any]:
    from calibration.quality.fit import fit_curve

    table, curves = [], {}
    for model_name, metric_specs in CURVE_METRICS.items():
        pts = [p for p in points if p.get("model") == model_name]
        if not pts:
            continue
        k = max(p["folds"] for p in pts)
        pts = [p for p in pts if p["folds"] == k]
        groups: dict[tuple, dict[int, dict[str, float]]] = {}
        for p in pts:
            groups.setdefault((p["family"], p["method"], float(p["x"]), bool(p["finetuned"])), {})[p["fold"]] = \
                p["metrics"]
        for (family, method, x, ft), by_fold in sorted(groups.items()):
            names = next(iter(by_fold.values())).keys()
            table.append({"model": model_name, "family": family, "method": method, "x": x, "finetuned": ft,
                          "metrics": {n: _stats([m[n] for m in by_fold.values()]) for n in names}})
        dense = groups.get(("dense", "none", 32.0, False), {})
        for family, method, ft in CURVE_SETS:
            xs = sorted(x for (fa, me, x, f) in groups if (fa, me, f) == (family, method, ft))
            if family == "sparsity" and dense:
                xs = [0.0, *xs]
            for y_name, transform in metric_specs:
                sources = [dense if (family == "sparsity" and x == 0.0) else groups.get((family, method, x, ft), {})
                           for x in xs]
                values = np.array([[src.get(fold, {}).get(y_name, math.nan) for fold in range(k)] for src in sources])
                dense_v = np.array([dense.get(fold, {}).get(y_name, math.nan) for fold in range(k)])
                key = f"{model_name}/{family}/{method}/{'finetuned' if ft else 'oneshot'}/{y_name}"
                if len(xs) == 0 or not np.isfinite(dense_v).any():
                    curves[key] = {"status": "insufficient_data", "reason": "no measured points"}
                    continue
                rec = fit_curve(np.array(xs), values, dense_v, family=family, y_name=y_name, y_transform=transform,
                                e_cap=E_CAP[transform])
                info = infos.get(model_name, {})
                size = {"model_params": info.get("params"),  # the small model's size and what it was trained on
                        "trained": info.get("tokens_trained", info.get("samples_trained")),
                        "trained_unit": "characters" if "tokens_trained" in info else "samples"} if info else {}
                curves[key] = {"model_name": model_name, "method": method, "finetuned": ft, **size, **rec}
    return {"version": 1, "mode": plan.mode, "device": device, "seed": plan.seed,
            "provenance": "measured (points) and fitted (curves) by python -m calibration quality on this machine",
            "plan": asdict(plan), "models": infos, "table": table, "curves": curves, "scaling_law": law,
            "notes": ["quantization: every Linear weight, round-to-nearest on a symmetric per-output-channel grid "
                      "(2 bits: {-1, 0, 1}); 1 bit: sign times the row's mean |w|; biases, embeddings and LayerNorms "
                      "stay fp32. QAT: a short fine-tune through a straight-through fake-quant.",
                      "pruning: every Linear but the output head, layer by layer (torch.nn.utils.prune): L1 "
                      "unstructured, L2-norm rows (structured), 2:4 (two largest of every four inputs); "
                      "fine-tuned variants keep the mask during a short fine-tune.",
                      "curves are fitted on e = 1 - metric (accuracy, macro-F1) or e = loss (nats per character); "
                      "band: the std across per-fold fits"]}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    from calibration.profile_writer import jsonable

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        json.dump(jsonable(data), f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
