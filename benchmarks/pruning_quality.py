"""Predicted vs published perplexity ratio of one-shot pruned LLMs: the pruning half of the compression benchmark.

Rows: benchmarks/data/pruning_ppl.csv (Wanda, Sun et al. 2023: Llama-2 7B/13B/70B; magnitude, SparseGPT and Wanda;
50% unstructured, 4:8 and 2:4). The quantization law's constants (fitted on the quantization rows) are kept; only
the pruning methods' offsets in bits are fitted here, once, on all rows (the same robust least squares of the
relative error of δ as the quantization fit), and stored beside the quantization constants in
simulator/compression/fitted.json. Held-out errors: refit with each model size left out.
Used by `python -m benchmarks.compression_quality` (and `--fit`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from benchmarks import ppl_rows
from simulator.compression.constants import PRUNING_METHODS, SPARSITY_PATTERNS
from simulator.compression.penalty import loss_delta
from simulator.quality import LAWS

DATA = Path(__file__).parent / "data" / "pruning_ppl.csv"
METHODS = ("magnitude", "wanda", "sparsegpt")  # the methods with published rows; structured stays assumed
PARAMS = tuple(f"prune_offset_{m}" for m in METHODS)
START, LOWER, UPPER = (0.0, 0.0, 0.0), (-5.0, -5.0, -5.0), (5.0, 5.0, 5.0)
LAW = LAWS["chinchilla"]  # the scenario's default quality.law (its A, α enter the capacity term)


def load_rows(path: Path = DATA) -> pd.DataFrame:
    df = pd.read_csv(path)
    df["published_ratio"] = df["pruned_ppl"] / df["base_ppl"]
    return df


def _columns(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The rows as the quality family's model columns: 16-bit, unquantized, pruned."""
    n = len(df)
    zeros, sixteen, ones = np.zeros(n), np.full(n, 16.0), np.ones(n)
    return {"params": df["params"].to_numpy(float), "tokens": df["train_tokens"].to_numpy(float),
            "hidden": df["hidden"].to_numpy(float), "weight_bits": sixteen, "act_bits": sixteen, "kv_bits": sixteen,
            "group_size": zeros, "quant_method": zeros, "loss_scale": ones, "prune_loss_scale": ones,
            "pruning_method": df["method"].map(PRUNING_METHODS.index).to_numpy(float),
            "sparsity": df["sparsity"].to_numpy(float),
            "sparsity_pattern": df["pattern"].map(SPARSITY_PATTERNS.index).to_numpy(float)}


def law_delta(theta: np.ndarray, df: pd.DataFrame, quant: dict[str, float]) -> np.ndarray:
    """δ of the rows by the family's own formula (penalty.loss_delta), the quantization constants kept."""
    k = quant | dict(zip(PARAMS, map(float, theta), strict=True))
    return loss_delta(_columns(df), LAW.A, LAW.alpha, k)


def fit(df: pd.DataFrame, quant: dict[str, float]) -> np.ndarray:
    """Soft-L1 least squares of the relative error of δ, as the quantization fit (a collapsed row, magnitude 2:4
    at 7B, does not drag the offsets)."""
    published = np.log(df["published_ratio"].to_numpy())
    scale = 0.01 + np.clip(published, 0.0, None)

    def residual(theta: np.ndarray) -> np.ndarray:
        return (law_delta(theta, df, quant) - published) / scale

    return least_squares(residual, START, bounds=(LOWER, UPPER), loss="soft_l1", f_scale=0.3).x


def leave_one_size_out(df: pd.DataFrame, quant: dict[str, float]
                       ) -> tuple[np.ndarray, dict[str, dict[str, float]]]:
    """Held-out predicted δ per row: each model size's rows predicted by offsets fitted on the other sizes."""
    held = np.full(len(df), np.nan)
    fits = {}
    for name in df["model"].unique():
        out = (df["model"] == name).to_numpy()
        theta = fit(df[~out], quant)
        fits[name] = dict(zip(PARAMS, map(float, theta), strict=True))
        held[out] = law_delta(theta, df[out], quant)
    return held, fits


def refit(quant: dict[str, float]) -> tuple[dict[str, float], dict]:
    """The fitted offsets (for fitted.json's constants) and the pruning section (held-out error, how)."""
    df = load_rows()
    offsets = dict(zip(PARAMS, map(float, fit(df, quant)), strict=True))
    held, fits = leave_one_size_out(df, quant)
    section = {
        **ppl_rows.heldout_stats(held, np.log(df["published_ratio"].to_numpy())),
        "leave_one_size_out": fits,
        "how": "pruning offsets in bits (magnitude, wanda, sparsegpt) of penalty.pruning_bits, fitted once on all rows "
               "of benchmarks/data/pruning_ppl.csv by soft-L1 least squares of the relative error of the loss "
               "increase (scipy least_squares, f_scale 0.3), the quantization constants kept; structured stays "
               "assumed (no published rows); held-out errors by leave-one-model-size-out (Llama-2 7B, 13B, 70B); "
               "prune_loss_scale spread = robust sigma (1.4826 MAD) of the held-out relative error of the loss "
               "increase",
        "rows": len(df),
    }
    return offsets, section


def predicted_ratios(df: pd.DataFrame) -> np.ndarray:
    """quality.ppl_ratio of each pruned row through Scenario -> evaluate (the path a user takes)."""
    return ppl_rows.predicted_ratios(df, lambda row: {
        "pruning_method": row.method, "sparsity": float(row.sparsity), "pattern": row.pattern})


def report(quant: dict[str, float]) -> None:
    """Print the pruning rows (published, predicted, error, held-out) and their summary lines."""
    df = load_rows()
    df["predicted_ratio"] = predicted_ratios(df)
    held, _ = leave_one_size_out(df, quant)
    ppl_rows.add_errors(df, held)
    print(f"{'model':<12} {'method':<10} {'pattern':<12} {'published':>9} {'predicted':>9} {'error %':>8} "
          f"{'held-out %':>10}")
    for r in df.itertuples():
        print(f"{r.model:<12} {r.method:<10} {r.pattern:<12} {r.published_ratio:9.4f} {r.predicted_ratio:9.4f} "
              f"{r.err_pct:8.2f} {r.heldout_err_pct:10.2f}")
    print()
    groups = {"pruning rows": df, **{f"{m} rows": df[df["method"] == m] for m in df["method"].unique()},
              **{f"{p} rows": df[df["pattern"] == p] for p in df["pattern"].unique()}}
    ppl_rows.print_summary(groups)
