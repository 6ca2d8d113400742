"""Quality family: the loss a published scaling law predicts for the dense model, the loss after compression
(quantization and pruning, simulator/compression/penalty.py), and the compute-optimal split of the budget."""

from __future__ import annotations

import numpy as np

from simulator.compression.constants import load_fitted
from simulator.compression.penalty import loss_delta
from simulator.compression.rows import on_rows
from simulator.compression.small_scale import reference as small_scale_curves
from simulator.quality import LAWS, compute_optimal, loss
from simulator.registry import Columns, Family, FieldGroup, FigureSpec, Input, Section

QUALITY_LAWS = tuple(LAWS)
PENALTY_CONSTANTS = load_fitted()["constants"]

INPUTS = (
    Input("quality.law", "choice", "Scaling law", "Published fit that predicts the loss from parameters and tokens.",
          choices=QUALITY_LAWS, choice_labels={"chinchilla": "Chinchilla (Hoffmann et al. 2022)",
                                               "epoch": "Epoch AI refit (Besiroglu et al. 2024)"},
          default="chinchilla", link="law", column="law", provenance="published"),
)

FIGURES = (
    FigureSpec("quality.dense_loss", "Predicted loss, dense 16-bit", "nats/token",
               "L = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2)", "lower", provenance="published",
               ranged=True),
    FigureSpec("quality.loss", "Predicted loss, compressed", "nats/token",
               "dense loss + loss increase of the compression (docs/compression.md)", "lower", ranged=True),
    FigureSpec("quality.loss_delta", "Loss increase from compression", "nats/token",
               "Kumar et al. 2024 eq. 2 (post-training quantization; pruning by its noise-equivalent bits) with "
               "fitted constants, eq. 4 (quantization-aware training), Frantar et al. 2023 eq. 1 (sparsity); "
               "below 125M parameters blended towards the calibrated small LM's measured curves (docs/compression.md)",
               "lower", provenance="fitted", ranged=True),
    FigureSpec("quality.ppl_ratio", "Perplexity, compressed ÷ dense", "ratio", "exp(loss increase)", "lower",
               provenance="fitted", ranged=True),
    FigureSpec("quality.compute_optimal_params", "Compute-optimal parameters for this budget", "params",
               "Hoffmann et al. 2022, eq. 4", provenance="published"),
    FigureSpec("quality.compute_optimal_tokens", "Compute-optimal tokens for this budget", "tokens",
               "Hoffmann et al. 2022, eq. 4", provenance="published"),
    FigureSpec("quality.tokens_per_param", "Tokens per parameter", "tokens/param", "training.tokens / model.params"),
)


_PENALTY_COLUMNS = ("params", "tokens", "hidden", "weight_bits", "act_bits", "kv_bits", "group_size", "quant_method",
                    "pruning_method", "sparsity", "sparsity_pattern", "loss_scale", "prune_loss_scale")


def run(c: Columns) -> dict[str, np.ndarray]:
    n, d, law = c["params"], c["tokens"], np.asarray(c["law"])
    shape = np.broadcast_shapes(np.shape(n), np.shape(d), np.shape(law), np.shape(c["training.flops_total"]))
    out = {f.key: np.full(shape, np.nan) for f in FIGURES}
    small = small_scale_curves()
    for code, name in enumerate(QUALITY_LAWS):  # a loop over the laws, not over rows
        rows = np.broadcast_to(law == code, shape)
        if not rows.any():
            continue
        n_r, d_r = np.broadcast_to(n, shape)[rows], np.broadcast_to(d, shape)[rows]
        n_opt, d_opt = compute_optimal(np.broadcast_to(c["training.flops_total"], shape)[rows], LAWS[name])
        law_rows = {k: np.broadcast_to(c[k], shape)[rows] for k in _PENALTY_COLUMNS}
        # × the law's own error (simulator/model_error.py), 1 in a plan
        out["quality.dense_loss"][rows] = loss(n_r, d_r, LAWS[name]) * np.broadcast_to(
            c.get("model_err_loss", 1.0), shape)[rows]
        out["quality.loss_delta"][rows] = on_rows(
            lambda r, law=LAWS[name]: {"d": loss_delta(r, law.A, law.alpha, PENALTY_CONSTANTS, small)},
            law_rows, _PENALTY_COLUMNS, (int(rows.sum()),), {"d": 0.0})["d"]
        out["quality.compute_optimal_params"][rows] = n_opt
        out["quality.compute_optimal_tokens"][rows] = d_opt
    out["quality.loss"] = out["quality.dense_loss"] + out["quality.loss_delta"]
    out["quality.ppl_ratio"] = np.exp(out["quality.loss_delta"])
    out["quality.tokens_per_param"] = np.broadcast_to(d / n, shape).astype(float)
    return out


FIELDS = (
    FieldGroup("train", "Quality (scaling law)", ("quality.law",), radio=("quality.law",), order=15),
    FieldGroup("decide", "Limits, prices and sampling", ("quality.law",), order=12),
)
SECTIONS = (
    Section(("train",), "Loss", ("quality.loss",), headline=True, order=5),
    Section(("compress",), "Quality", ("quality.dense_loss", "quality.loss", "quality.loss_delta", "quality.ppl_ratio"),
            headline=True, order=2),
    Section(("decide",), "Loss", ("quality.loss",), headline=True, order=4),
)

FAMILY = Family("quality", INPUTS, FIGURES, run, needs=("training",), fields=FIELDS, sections=SECTIONS,
                doc="Scaling-law loss (Hoffmann et al. 2022; Besiroglu et al. 2024) and its increase under "
                    "compression (Kumar et al. 2024; Frantar et al. 2023)")
