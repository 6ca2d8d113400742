"""The Compress page's predicted curves, computed once for the page and its PDF (report.compression_charts draws
them): perplexity ratio against weight bits for each quantization method, and loss increase against sparsity for
each pruning method, both with their P10–P90 band and the plan's point marked.

They are sweeps through the public path (simulator.sweeps.sweep over the plan's scenario), with the uncertain
scale of the chart's own penalty at its P10 and P90 (its registered spread): `compression.loss_scale`
(quantization) for the bits chart, `compression.prune_loss_scale` (pruning) for the sparsity chart. These are the
only uncertain inputs the quality figures depend on, so a quantized-only plan's band on the bits chart, and a
pruned-only plan's on the sparsity chart, is the P10–P90 the page's figures carry; the plan's own point is its
evaluated figure with its range (both spreads, root-sum-square).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from simulator.compression.constants import PRUNING_METHODS, QUANT_METHODS, WEIGHT_BITS
from simulator.evaluator import Z_P90, evaluate
from simulator.inputs import INPUTS
from simulator.sweeps import sweep

SPARSITIES = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 5% to 95%
CHOSEN = "this plan"


def _labels(key: str) -> dict[str, str]:
    return dict(INPUTS[key].choice_labels)


QUANT_SCALE, PRUNE_SCALE = "compression.loss_scale", "compression.prune_loss_scale"


def _loss_scales(key: str = QUANT_SCALE) -> list[float]:
    spread = INPUTS[key].spread
    return [max(0.0, 1.0 - Z_P90 * spread), 1.0, 1.0 + Z_P90 * spread]


def _banded(frame: pd.DataFrame, keys: list[str], value: str, scale_key: str = QUANT_SCALE) -> pd.DataFrame:
    """Valid sweep rows, the P10/plan/P90 penalty scales side by side: keys + Value, Low, High."""
    valid = frame[frame["valid"]]
    scale = valid[scale_key].to_numpy()
    scales = _loss_scales(scale_key)
    parts = [valid[np.isclose(scale, s)].set_index(keys)[value] for s in scales]
    out = pd.concat(parts, axis=1, keys=["Low", "Value", "High"]).dropna().reset_index()
    return out


def quant_frame(scenario: Any, devices: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Perplexity ratio (with P10–P90) against weight bits for each quantization method, the plan's other inputs
    kept; combinations the registry refuses are left out."""
    methods = [m for m in QUANT_METHODS if m != "none"]
    grid = {"compression.weight_bits": list(WEIGHT_BITS), "compression.quant_method": methods,
            "compression.loss_scale": _loss_scales()}
    frame = sweep(scenario, grid, devices)
    keys = ["compression.quant_method", "compression.weight_bits"]
    out = _banded(frame, keys, "quality.ppl_ratio")
    labels = _labels("compression.quant_method")
    c = scenario.compression
    out = pd.DataFrame({
        "Method": [labels.get(str(m), str(m)) for m in out["compression.quant_method"]],
        "Weight bits": out["compression.weight_bits"].astype(int),
        "Perplexity ratio": out["Value"], "P10": out["Low"], "P90": out["High"],
        "This plan": [str(m) == c.quant_method and int(b) == c.weight_bits
                      for m, b in zip(out["compression.quant_method"], out["compression.weight_bits"], strict=True)],
    })
    return out.sort_values(["Method", "Weight bits"], ignore_index=True)


def prune_frame(scenario: Any, devices: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Loss increase (with P10–P90) against sparsity for each pruning method, the plan's quantization kept;
    structured pruning removes rows, the others score weights one by one (or rows, when the plan does)."""
    c = scenario.compression
    pattern = c.pattern if c.pattern in ("unstructured", "rows") else "unstructured"
    methods = [m for m in PRUNING_METHODS if m != "none"]
    grid = {"compression.pruning_method": methods, "compression.pattern": sorted({pattern, "rows"}),
            "compression.sparsity": list(SPARSITIES), PRUNE_SCALE: _loss_scales(PRUNE_SCALE)}
    frame = sweep(scenario, grid, devices)
    keep = np.where(frame["compression.pruning_method"].astype(str) == "structured", "rows", pattern)
    frame = frame[frame["compression.pattern"].astype(str) == keep]
    keys = ["compression.pruning_method", "compression.pattern", "compression.sparsity"]
    out = _banded(frame, keys, "quality.loss_delta", PRUNE_SCALE)
    labels = _labels("compression.pruning_method")
    names = [labels.get(str(m), str(m)) + ("" if str(p) == "unstructured" else f" ({p})")
             for m, p in zip(out["compression.pruning_method"], out["compression.pattern"], strict=True)]
    table = pd.DataFrame({"Method": names, "Sparsity": out["compression.sparsity"].astype(float),
                          "Loss increase": out["Value"], "P10": out["Low"], "P90": out["High"],
                          "This plan": False})
    if c.pruning_method != "none" and c.sparsity > 0:  # the plan's own point (also a 2:4 or 4:8 one)
        table = pd.concat([table, prune_point(scenario, devices)], ignore_index=True)
    return table.sort_values(["Method", "Sparsity"], ignore_index=True)


def prune_point(scenario: Any, devices: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The plan's own point: its evaluated loss increase with its P10–P90 (every uncertain input)."""
    c = scenario.compression
    d = evaluate(scenario, devices).figures["quality.loss_delta"]
    name = dict(_labels("compression.pruning_method")).get(c.pruning_method, c.pruning_method)
    return pd.DataFrame({"Method": [f"{CHOSEN}: {name}, {c.pattern}"], "Sparsity": [float(c.sparsity)],
                         "Loss increase": [d.value], "P10": [d.low], "P90": [d.high], "This plan": [True]})
