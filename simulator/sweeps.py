"""Vectorised sweeps: a base scenario × a grid of values, evaluated with numpy broadcasting (no row loop).

The grid's full product is walked in blocks of rows so that every temporary stays in cache; inside a
block, building the columns, the validity rules, the training model and the quality law are each one
vectorised pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from simulator.scenario import MLP_KINDS, PRECISIONS, QUALITY_LAWS, Scenario, ScenarioError
from simulator.shape import derive_shape
from simulator.training import params_from_shape, training_columns
from simulator.training.model import CHUNK_ROWS
from simulator.validation import RULES, coerce_value

SHAPE_KEYS = ("model.layers", "model.hidden", "model.heads", "model.kv_heads", "model.ffn_hidden")
COLUMN_OF = {key: col for col, key in NUMERIC.items()}
BOOL_COLUMNS = {"training.sequence_parallel": "sequence_parallel", "training.flash_attention": "flash_attention"}
BLOCK_ROWS = CHUNK_ROWS  # the model's own block size: one model pass per block
RULE_MESSAGES = (
    "cluster.gpus: tp×pp does not divide the GPU count",
    "cluster.tp: must divide model.heads",
    "model.hidden: must be divisible by model.heads",
    "cluster.pp: model.layers must split evenly over pp×interleave",
    "training.interleave: needs cluster.pp > 1",
    "training.global_batch_seqs: must be a multiple of micro_batch_seqs×dp",
    "training.precision: the accelerator has no unit for this precision",
    "training.zero_stage: use 0 with a parameter server or async SGD",
    "cluster.ps_servers: at most one per worker",
)


@dataclass(frozen=True)
class _Grid:
    values: dict[str, list[Any]]  # checked values per dotted key, in grid order
    shape: tuple[int, ...]

    @property
    def n(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    def index(self, key: str) -> np.ndarray:
        """Each row's position in `values[key]`: the row-major product as repeat/tile, no unravel per row."""
        i = list(self.values).index(key)
        inner = int(np.prod(self.shape[i + 1:]))
        outer = int(np.prod(self.shape[:i]))
        return np.tile(np.repeat(np.arange(self.shape[i], dtype=np.int32), inner), outer)

    def codes(self, key: str, names: Sequence[str]) -> np.ndarray:
        return np.array([list(names).index(v) for v in self.values[key]])


def _check_grid(grid: Mapping[str, Sequence[Any]]) -> _Grid:
    problems: list[str] = []
    clean: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if key not in RULES:
            problems.append(f"sweep: unknown key {key!r}; use dotted scenario keys such as cluster.gpus or model.params")
            continue
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | np.ndarray) or len(values) == 0:
            problems.append(f"sweep {key}: give a non-empty list of values")
            continue
        coerced = [coerce_value(key, v, problems) for v in values]
        if key == "cluster.accelerator":
            try:
                coerced = [get_accelerator(v).id for v in coerced if v is not None]
            except UnknownAccelerator as exc:
                problems.append(str(exc))
        clean[key] = coerced
    if problems:
        raise ScenarioError(problems)
    return _Grid(clean, tuple(len(v) for v in clean.values()))


def _validity_codes(c: dict[str, np.ndarray]) -> np.ndarray:
    """0 where a row is valid, else 1 + the index of the first rule in RULE_MESSAGES it breaks."""
    tp, pp, gpus, dp = c["tp"], c["pp"], c["gpus"], c["dp"]
    with np.errstate(divide="ignore", invalid="ignore"):
        broken = (
            np.fmod(gpus, tp * pp) != 0,
            np.fmod(c["heads"], tp) != 0,
            np.fmod(c["hidden"], c["heads"]) != 0,
            np.fmod(c["layers"], pp * c["interleave"]) != 0,
            (c["interleave"] > 1) & (pp == 1),
            np.fmod(c["global_batch"], c["micro_batch"] * np.maximum(np.floor(dp), 1)) != 0,
            np.isnan(c["peak_tflops"]),
            (c["zero_stage"] > 0) & (c["sync"] >= 2),
            (c["sync"] == 2) & (c["ps_servers"] > np.maximum(dp, 1)),
        )
    code = np.zeros(len(gpus), dtype=np.int8)
    for i in range(len(broken), 0, -1):  # the first rule listed wins
        code[broken[i - 1]] = i
    return code


class _Blocks:
    """Builds the model's input columns for any block of rows of the grid."""

    def __init__(self, base: Scenario, grid: _Grid, devices: Mapping[str, HardwareSpec] | None):
        self.base, self.grid = base, grid
        self.base_cols = scenario_columns([base], devices)
        self.at = {key: grid.index(key) for key in grid.values}
        self.ids, self.table = hardware_table({**all_devices(), **(devices or {})})
        v = grid.values
        # per-key lookups over the few grid values, indexed per row later
        self.small: dict[str, np.ndarray] = {}
        for key in v:
            if key in COLUMN_OF or key in BOOL_COLUMNS:
                self.small[key] = np.asarray(v[key], dtype=float)
            elif key in CODES:
                self.small[key] = grid.codes(key, CODES[key]).astype(float)
        self.accel = grid.codes("cluster.accelerator", self.ids) if "cluster.accelerator" in v else None
        self.precision = grid.codes("training.precision", PRECISIONS) if "training.precision" in v else None
        self.glu = grid.codes("model.mlp", MLP_KINDS).astype(float) if "model.mlp" in v else None
        self.law = grid.codes("quality.law", QUALITY_LAWS) if "quality.law" in v else None

    def columns(self, start: int, stop: int) -> dict[str, np.ndarray]:
        m = stop - start
        at = {key: idx[start:stop] for key, idx in self.at.items()}
        cols = {k: np.broadcast_to(v, (m,)) for k, v in self.base_cols.items()}
        for key, small in self.small.items():
            name = COLUMN_OF.get(key) or BOOL_COLUMNS.get(key) or key.split(".")[1]
            cols[name] = small[at[key]]
        if self.glu is not None:
            cols["glu"] = self.glu[at["model.mlp"]]
        self._shape(cols)
        self._hardware(cols, at, m)
        cols["dp"] = cols["gpus"] / (cols["tp"] * cols["pp"])
        return cols

    def _shape(self, cols: dict[str, np.ndarray]) -> None:
        keys = self.grid.values
        shape_given = any(k in keys for k in SHAPE_KEYS)
        if "model.params" in keys and not shape_given:
            layers, hidden, heads, ffn = derive_shape(cols["params"], cols["vocab"], cols["glu"] > 0)
            cols.update(layers=layers.astype(float), hidden=hidden.astype(float), heads=heads.astype(float),
                        ffn_hidden=ffn.astype(float), kv_heads=heads.astype(float))
        elif "model.hidden" in keys and "model.ffn_hidden" not in keys:
            cols["ffn_hidden"] = np.where(cols["glu"] > 0, np.ceil(8 * cols["hidden"] / 3 / 256) * 256, 4 * cols["hidden"])
        if "model.heads" in keys and "model.kv_heads" not in keys:
            cols["kv_heads"] = cols["heads"]
        cols["params"] = params_from_shape(cols["layers"], cols["hidden"], cols["heads"], cols["kv_heads"],
                                           cols["ffn_hidden"], cols["glu"], cols["vocab"])

    def _hardware(self, cols: dict[str, np.ndarray], at: dict[str, np.ndarray], m: int) -> None:
        """Hardware columns per row, and the inputs derived from the accelerator when the user left them out."""
        base, derived, keys = self.base, self.base.derived, self.grid.values
        accel = self.accel[at["cluster.accelerator"]] if self.accel is not None else np.full(m, self.ids.index(base.cluster.accelerator))
        if self.accel is not None or self.precision is not None:
            prec = (self.precision[at["training.precision"]] if self.precision is not None
                    else np.full(m, PRECISIONS.index(base.training.precision)))
            cols.update(hardware_columns(accel, prec, self.table))
            cols["param_bytes"] = np.array([PARAM_BYTES[p] for p in PRECISIONS])[prec]
            cols["act_bytes"] = np.array([ACT_BYTES[p] for p in PRECISIONS])[prec]
        if "finance.gpu_hour_usd" not in keys and "finance.gpu_hour_usd" in derived:
            cols["gpu_hour_usd"] = self.table["gpu_hour_usd"][accel]
        if "cluster.gpus_per_node" not in keys and "cluster.gpus_per_node" in derived:
            cols["gpus_per_node"] = np.minimum(self.table["gpus_per_node"][accel], cols["gpus"])
        if "training.tokens" not in keys and "training.tokens" in derived:
            cols["tokens"] = 20.0 * cols["params"]  # Hoffmann et al. 2022: ~20 tokens per parameter

    def loss(self, cols: dict[str, np.ndarray], start: int, stop: int) -> np.ndarray:
        if self.law is None:
            return loss(cols["params"], cols["tokens"], LAWS[self.base.quality.law])
        law = self.law[self.at["quality.law"][start:stop]]
        out = np.empty(stop - start)
        for code, name in enumerate(QUALITY_LAWS):  # a loop over the two laws, not over rows
            mask = law == code
            out[mask] = loss(cols["params"][mask], cols["tokens"][mask], LAWS[name])
        return out


def _grid_column(grid: _Grid, key: str, at: np.ndarray) -> np.ndarray | pd.Categorical:
    """One grid key's values for every row: names as a categorical (codes, no per-row strings)."""
    values = grid.values[key]
    if isinstance(values[0], str):
        categories = list(dict.fromkeys(values))
        return pd.Categorical.from_codes(np.array([categories.index(v) for v in values])[at], categories=categories)
    return np.asarray(values)[at]  # ints stay ints, so a CSV shows 256 rather than 256.0


def sweep_arrays(base: Scenario, grid: Mapping[str, Sequence[Any]], devices: Mapping[str, HardwareSpec] | None = None) -> dict[str, Any]:
    """`sweep` as a dict of columns (numpy arrays and categoricals), before any DataFrame is built."""
    g = _check_grid(grid)
    blocks = _Blocks(base, g, devices)
    n = g.n
    out = {f"training.{key}": np.empty(n) for key in TRAINING_FIGURES}
    out["training.fits_memory"] = np.empty(n, dtype=bool)
    params, q_loss, code = np.empty(n), np.empty(n), np.empty(n, dtype=np.int8)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start in range(0, n, BLOCK_ROWS):  # blocks of rows, each one vectorised pass
            stop = min(n, start + BLOCK_ROWS)
            cols = blocks.columns(start, stop)
            code[start:stop] = _validity_codes(cols)
            result = training_columns(cols)
            for key in TRAINING_FIGURES:
                out[f"training.{key}"][start:stop] = result[key]
            params[start:stop] = cols["params"]
            q_loss[start:stop] = blocks.loss(cols, start, stop)
    valid = code == 0
    invalid = ~valid
    for key in TRAINING_FIGURES:
        if key != "fits_memory":
            out[f"training.{key}"][invalid] = np.nan
    out["training.fits_memory"] &= valid
    q_loss[invalid] = np.nan
    frame: dict[str, Any] = {key: _grid_column(g, key, blocks.at[key]) for key in g.values}
    frame["model.params"] = params
    frame.update(out)
    frame["quality.loss"] = q_loss
    frame["valid"] = valid
    frame["reason"] = pd.Categorical.from_codes(code, categories=["", *RULE_MESSAGES])
    return frame


def sweep(base: Scenario, grid: Mapping[str, Sequence[Any]], devices: Mapping[str, HardwareSpec] | None = None) -> pd.DataFrame:
    """Evaluate every combination of `grid` (dotted keys -> values) over `base`; one row per combination.

    Rows that break a rule keep their inputs, get `valid = False`, a `reason`, and NaN outputs.
    """
    return pd.DataFrame(sweep_arrays(base, grid, devices), copy=False)
