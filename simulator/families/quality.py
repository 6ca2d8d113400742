"""Quality family: the loss a published scaling law predicts, and the compute-optimal split of the budget."""

from __future__ import annotations

import numpy as np

from simulator.quality import LAWS, compute_optimal, loss
from simulator.registry import Columns, Family, FigureSpec, Input

QUALITY_LAWS = tuple(LAWS)

INPUTS = (
    Input("quality.law", "choice", "Scaling law", "Published fit that predicts the loss from parameters and tokens.",
          choices=QUALITY_LAWS, choice_labels={"chinchilla": "Chinchilla (Hoffmann et al. 2022)",
                                               "epoch": "Epoch AI refit (Besiroglu et al. 2024)"},
          default="chinchilla", link="law", column="law", provenance="published"),
)

FIGURES = (
    FigureSpec("quality.loss", "Predicted loss", "nats/token", "L = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2)",
               "lower", provenance="published"),
    FigureSpec("quality.compute_optimal_params", "Compute-optimal parameters for this budget", "params",
               "Hoffmann et al. 2022, eq. 4", provenance="published"),
    FigureSpec("quality.compute_optimal_tokens", "Compute-optimal tokens for this budget", "tokens",
               "Hoffmann et al. 2022, eq. 4", provenance="published"),
    FigureSpec("quality.tokens_per_param", "Tokens per parameter", "tokens/param", "training.tokens / model.params"),
)


def run(c: Columns) -> dict[str, np.ndarray]:
    n, d, law = c["params"], c["tokens"], np.asarray(c["law"])
    shape = np.broadcast_shapes(np.shape(n), np.shape(d), np.shape(law), np.shape(c["training.flops_total"]))
    out = {f.key: np.full(shape, np.nan) for f in FIGURES}
    for code, name in enumerate(QUALITY_LAWS):  # a loop over the laws, not over rows
        rows = np.broadcast_to(law == code, shape)
        if not rows.any():
            continue
        n_r, d_r = np.broadcast_to(n, shape)[rows], np.broadcast_to(d, shape)[rows]
        n_opt, d_opt = compute_optimal(np.broadcast_to(c["training.flops_total"], shape)[rows], LAWS[name])
        out["quality.loss"][rows] = loss(n_r, d_r, LAWS[name])
        out["quality.compute_optimal_params"][rows] = n_opt
        out["quality.compute_optimal_tokens"][rows] = d_opt
    out["quality.tokens_per_param"] = np.broadcast_to(d / n, shape).astype(float)
    return out


FAMILY = Family("quality", INPUTS, FIGURES, run, needs=("training",),
                doc="Scaling-law loss (Hoffmann et al. 2022; Besiroglu et al. 2024)")
