"""What the compression benchmarks share: a published row's perplexity ratio predicted through the public path,
and the summary lines of a table of rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd


def predicted_ratios(df: pd.DataFrame, compression: Callable[[Any], dict[str, Any]]) -> np.ndarray:
    """quality.ppl_ratio of each row through Scenario -> evaluate (the path a user takes): the row's model size and
    pretraining tokens, and the `compression` section it maps to."""
    from simulator import Scenario, evaluate

    out = []
    for row in df.itertuples():
        scenario = Scenario.from_dict({"model": {"params": float(row.params)},
                                       "training": {"tokens": float(row.train_tokens)},
                                       "compression": compression(row)})
        out.append(evaluate(scenario).figures["quality.ppl_ratio"].value)
    return np.array(out)


def add_errors(df: pd.DataFrame, held_log_ratio: np.ndarray) -> None:
    """The err_pct and heldout_err_pct columns that print_summary reads: the predicted_ratio column's and the
    held-out log ratios' relative error against the published ratio, in percent."""
    df["err_pct"] = (df["predicted_ratio"] / df["published_ratio"] - 1.0) * 100
    df["heldout_err_pct"] = (np.exp(held_log_ratio) / df["published_ratio"] - 1.0) * 100


def print_summary(groups: Mapping[str, pd.DataFrame]) -> dict[str, tuple[float, float]]:
    """One line per group (median and worst |error|, fitted and held-out, from its err_pct and heldout_err_pct
    columns); returns each group's fitted (median, worst)."""
    out = {}
    for label, g in groups.items():
        med, worst = g["err_pct"].abs().median(), g["err_pct"].abs().max()
        hmed, hworst = g["heldout_err_pct"].abs().median(), g["heldout_err_pct"].abs().max()
        print(f"{label:<18} n={len(g):>2}  fitted: median {med:5.2f}%  worst {worst:6.2f}%   "
              f"held-out: median {hmed:5.2f}%  worst {hworst:6.2f}%")
        out[label] = (float(med), float(worst))
    return out


def heldout_stats(held: np.ndarray, published: np.ndarray, rel_where: np.ndarray | None = None) -> dict[str, float]:
    """Held-out predicted δ against published δ (ln ppl ratios): the robust σ (1.4826 MAD) of δ's relative error
    (over `rel_where`, where δ is not ~0) that sets a spread, and the median and worst |error| of the ratio."""
    mask = np.ones(len(held), dtype=bool) if rel_where is None else rel_where
    rel = held[mask] / published[mask] - 1.0
    err = np.exp(held - published) - 1.0
    return {"heldout_delta_rel_sigma": round(float(1.4826 * np.median(np.abs(rel - np.median(rel)))), 4),
            "heldout_ratio_abs_err_median_pct": round(float(np.median(np.abs(err)) * 100), 3),
            "heldout_ratio_abs_err_max_pct": round(float(np.max(np.abs(err)) * 100), 3)}
