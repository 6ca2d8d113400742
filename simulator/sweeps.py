"""Vectorised sweeps: a base scenario × a grid of values, evaluated with numpy broadcasting (no row loop)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from simulator.catalog import HardwareSpec, UnknownAccelerator, all_devices, get_accelerator
from simulator.columns import (
    ACT_BYTES,
    CODES,
    NUMERIC,
    PARAM_BYTES,
    hardware_columns,
    hardware_table,
    scenario_columns,
)
from simulator.plan import TRAINING_FIGURES
from simulator.quality import LAWS, loss
from simulator.scenario import PRECISIONS, Scenario, ScenarioError
from simulator.shape import derive_shape
from simulator.training import params_from_shape, training_columns
from simulator.validation import RULES, _coerce

SHAPE_KEYS = ("model.layers", "model.hidden", "model.heads", "model.kv_heads", "model.ffn_hidden")
COLUMN_OF = {key: col for col, key in NUMERIC.items()}


def _check_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    problems: list[str] = []
    clean: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if key not in RULES:
            problems.append(f"sweep: unknown key {key!r}; use dotted scenario keys such as cluster.gpus or model.params")
            continue
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray) or len(values) == 0:
            problems.append(f"sweep {key}: give a non-empty list of values")
            continue
        coerced = [_coerce(key, v, problems) for v in values]
        if key == "cluster.accelerator":
            try:
                coerced = [get_accelerator(v).id for v in coerced if v is not None]
            except UnknownAccelerator as exc:
                problems.append(str(exc))
        clean[key] = coerced
    if problems:
        raise ScenarioError(problems)
    return clean


def _small_array(values: list[Any]) -> np.ndarray:
    if isinstance(values[0], str):
        return np.asarray(values, dtype=object)
    return np.asarray(values)  # ints stay ints, so a CSV shows 256 rather than 256.0


def _lookup(values: list[Any], at: np.ndarray, fn) -> np.ndarray:
    """Map the few grid values through `fn` once, then index: no per-row Python work."""
    return np.array([float(fn(v)) for v in values])[at]


def _first_failure(n: int, rules: list[tuple[np.ndarray, str]]) -> pd.Categorical:
    """The first rule each row breaks, as a categorical ("" where none): codes, not per-row strings."""
    code = np.zeros(n, dtype=np.int8)
    for i, (bad, _) in reversed(list(enumerate(rules, start=1))):  # the first rule listed wins
        code[np.broadcast_to(bad, (n,))] = i
    return pd.Categorical.from_codes(code, categories=["", *(message for _, message in rules)])


def _validity(c: dict[str, np.ndarray], n: int) -> np.ndarray:
    tp, pp, gpus = c["tp"], c["pp"], c["gpus"]
    dp = c["dp"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rules = [
            (np.mod(gpus, tp * pp) != 0, "cluster.gpus: tp×pp does not divide the GPU count"),
            (np.mod(c["heads"], tp) != 0, "cluster.tp: must divide model.heads"),
            (np.mod(c["hidden"], c["heads"]) != 0, "model.hidden: must be divisible by model.heads"),
            (np.mod(c["layers"], pp * c["interleave"]) != 0, "cluster.pp: model.layers must split evenly over pp×interleave"),
            ((c["interleave"] > 1) & (pp == 1), "training.interleave: needs cluster.pp > 1"),
            (np.mod(c["global_batch"], c["micro_batch"] * np.maximum(np.floor(dp), 1)) != 0,
             "training.global_batch_seqs: must be a multiple of micro_batch_seqs×dp"),
            (np.isnan(c["peak_tflops"]), "training.precision: the accelerator has no unit for this precision"),
            ((c["zero_stage"] > 0) & (c["sync"] >= 2), "training.zero_stage: use 0 with a parameter server or async SGD"),
            ((c["sync"] == 2) & (c["ps_servers"] > np.maximum(dp, 1)), "cluster.ps_servers: at most one per worker"),
        ]
    return _first_failure(n, rules)


def sweep_columns(
    base: Scenario, grid: Mapping[str, Sequence[Any]], devices: Mapping[str, HardwareSpec] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Return (input columns, grid value columns) for the full product of `grid` over `base`."""
    clean = _check_grid(grid)
    keys = list(clean)
    shape = tuple(len(clean[k]) for k in keys)
    n = int(np.prod(shape)) if shape else 1
    index = np.unravel_index(np.arange(n), shape) if shape else ()
    at = dict(zip(keys, index, strict=True))
    picked = {k: _small_array(clean[k])[at[k]] for k in keys}
    cols = {k: np.broadcast_to(v, (n,)) for k, v in scenario_columns([base], devices).items()}  # read-only views
    for key, values in picked.items():
        if key in COLUMN_OF:
            cols[COLUMN_OF[key]] = values.astype(float)
        elif key in CODES:
            cols[key.split(".")[1]] = _lookup(clean[key], at[key], lambda v, allowed=CODES[key]: allowed.index(v))
        elif key == "model.mlp":
            cols["glu"] = _lookup(clean[key], at[key], lambda v: v == "swiglu")
        elif key in ("training.sequence_parallel", "training.flash_attention"):
            cols[key.split(".")[1]] = values.astype(float)
    _resolve_shape(cols, picked, base)
    _resolve_hardware(cols, picked, clean, at, base, devices, n)
    cols["dp"] = cols["gpus"] / (cols["tp"] * cols["pp"])
    return cols, picked


def _resolve_shape(cols: dict[str, np.ndarray], picked: dict[str, np.ndarray], base: Scenario) -> None:
    shape_given = any(k in picked for k in SHAPE_KEYS)
    if "model.params" in picked and not shape_given:
        layers, hidden, heads, ffn = derive_shape(cols["params"], cols["vocab"], cols["glu"] > 0)
        cols.update(layers=layers.astype(float), hidden=hidden.astype(float), heads=heads.astype(float), ffn_hidden=ffn.astype(float))
        cols["kv_heads"] = cols["heads"].copy()
    elif shape_given and "model.ffn_hidden" not in picked and "model.hidden" in picked:
        cols["ffn_hidden"] = np.where(cols["glu"] > 0, np.ceil(8 * cols["hidden"] / 3 / 256) * 256, 4 * cols["hidden"])
    if shape_given and "model.kv_heads" not in picked and "model.heads" in picked:
        cols["kv_heads"] = cols["heads"].copy()
    cols["params"] = params_from_shape(cols["layers"], cols["hidden"], cols["heads"], cols["kv_heads"], cols["ffn_hidden"], cols["glu"], cols["vocab"])


def _index_of(clean: dict[str, list[Any]], at: dict[str, np.ndarray], key: str, default: str, names: Sequence[str], n: int) -> np.ndarray:
    if key not in clean:
        return np.broadcast_to(np.array(list(names).index(default)), (n,))
    return _lookup(clean[key], at[key], list(names).index).astype(int)


def _resolve_hardware(cols, picked, clean, at, base: Scenario, devices, n: int) -> None:
    """Hardware columns per row, and the inputs derived from the accelerator when the user left them out."""
    catalog = {**all_devices(), **(devices or {})}
    ids, table = hardware_table(catalog)
    accel_index = _index_of(clean, at, "cluster.accelerator", base.cluster.accelerator, ids, n)
    prec_index = _index_of(clean, at, "training.precision", base.training.precision, PRECISIONS, n)
    if "cluster.accelerator" in picked or "training.precision" in picked:
        cols.update(hardware_columns(accel_index, prec_index, table))
        cols["param_bytes"] = np.array([PARAM_BYTES[p] for p in PRECISIONS])[prec_index]
        cols["act_bytes"] = np.array([ACT_BYTES[p] for p in PRECISIONS])[prec_index]
    if "finance.gpu_hour_usd" not in picked and "finance.gpu_hour_usd" in base.derived:
        cols["gpu_hour_usd"] = table["gpu_hour_usd"][accel_index]
    if "cluster.gpus_per_node" not in picked and "cluster.gpus_per_node" in base.derived:
        cols["gpus_per_node"] = np.minimum(table["gpus_per_node"][accel_index], cols["gpus"])
    if "training.tokens" not in picked and "training.tokens" in base.derived:
        cols["tokens"] = 20.0 * cols["params"]  # Hoffmann et al. 2022: ~20 tokens per parameter


def sweep(base: Scenario, grid: Mapping[str, Sequence[Any]], devices: Mapping[str, HardwareSpec] | None = None) -> pd.DataFrame:
    """Evaluate every combination of `grid` (dotted keys -> values) over `base`; one row per combination.

    Rows that break a rule keep their inputs, get `valid = False`, a `reason`, and NaN outputs.
    """
    cols, picked = sweep_columns(base, grid, devices)
    n = len(cols["gpus"])
    reason = _validity(cols, n)
    valid = reason.codes == 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = training_columns(cols)
        if "quality.law" in picked:
            q_loss = np.full(n, np.nan)
            for name, law in LAWS.items():  # a loop over the two laws, not over rows
                mask = picked["quality.law"] == name
                q_loss[mask] = loss(cols["params"][mask], cols["tokens"][mask], law)
        else:
            q_loss = loss(cols["params"], cols["tokens"], LAWS[base.quality.law])
    frame: dict[str, Any] = {k: pd.Categorical(v) if v.dtype == object else v for k, v in picked.items()}
    frame["model.params"] = cols["params"]
    for key in TRAINING_FIGURES:
        values = np.asarray(out[key], dtype=float)
        frame[f"training.{key}"] = np.where(valid, values, np.nan)
    frame["training.fits_memory"] = valid & np.asarray(out["fits_memory"], dtype=bool)
    frame["quality.loss"] = np.where(valid, q_loss, np.nan)
    frame["valid"] = valid
    frame["reason"] = reason
    return pd.DataFrame(frame)
