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
