"""Quality family: the loss a published scaling law predicts for the dense model (a mixture-of-experts by the joint
MoE law of Ludziejewski et al. 2025 joined to it, simulator/quality_moe.py), the loss after compression (quantization
and pruning, simulator/compression/penalty.py), and the compute-optimal split of the budget."""

from __future__ import annotations

import numpy as np

from simulator import architecture
from simulator.compression.constants import load_fitted
from simulator.compression.penalty import loss_delta
from simulator.compression.rows import on_rows
from simulator.compression.small_scale import reference as small_scale_curves
from simulator.families.training_inputs import moe_model
from simulator.quality import LAWS, compute_optimal, loss
from simulator.quality_moe import JOINT_MOE, expansion, outside_fit, ratio_sigma, reducible_ratio
from simulator.registry import Columns, Family, FieldGroup, FigureSpec, Input, Rule, Section

QUALITY_LAWS = tuple(LAWS)
PENALTY_CONSTANTS = load_fitted()["constants"]

INPUTS = (
    Input("quality.law", "choice", "Scaling law", "Published fit that predicts the loss from parameters and tokens.",
          choices=QUALITY_LAWS, choice_labels={"chinchilla": "Chinchilla (Hoffmann et al. 2022)",
                                               "epoch": "Epoch AI refit (Besiroglu et al. 2024)"},
          default="chinchilla", link="law", column="law", provenance="published"),
    Input("quality.moe_gain_scale", "float", "MoE loss-ratio scale", "Multiplies a mixture-of-experts model's "
          "reducible loss relative to the dense model of its active parameters (Ludziejewski et al. 2025); 1 = the "
          "published law. Its spread is the law's held-out error (docs/quality.md). No effect on a dense model.",
          "ratio", 0.0, 10.0, default=1.0, link="mgs", column="moe_gain_scale", step=0.01,
          spread=ratio_sigma(), provenance="published", applies=moe_model),
)

FIGURES = (
    FigureSpec("quality.dense_loss", "Predicted loss, dense 16-bit", "nats/token",
               "L = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2); a mixture-of-experts: E + (A/N_act^α + B/D^β) × "
               "its reducible-loss ratio (Ludziejewski et al. 2025, eq. 6)", "lower", provenance="published",
               ranged=True),
    FigureSpec("quality.moe_loss_ratio", "Reducible loss, MoE ÷ dense of its active size", "ratio",
               "(L(N_act, D, Ê) - c) / (L(N_act, D, 1) - c), Ludziejewski et al. 2025 eq. 6, Table 3, at E = routed "
               "experts ÷ experts per token; 1 for a dense model", "lower", provenance="published", ranged=True),
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


def _moe(c: Columns, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(architecture.col(c, "moe_experts") > 0, shape)


def _moe_ratio(c: Columns, shape: tuple[int, ...]) -> np.ndarray:
    """Each row's reducible-loss ratio (1 on dense rows): the law at the active parameters, its tokens and E."""
    moe = _moe(c, shape)
    out = np.ones(shape)
    if moe.any():
        n_act = np.broadcast_to(c["active_params"], shape)[moe]
        d = np.broadcast_to(c["tokens"], shape)[moe]
        e = expansion(np.broadcast_to(architecture.col(c, "moe_experts"), shape)[moe],
                      np.broadcast_to(architecture.col(c, "moe_top_k"), shape)[moe])
        out[moe] = reducible_ratio(n_act, d, e) * np.broadcast_to(c.get("moe_gain_scale", 1.0), shape)[moe]
    return out


def _dense_loss(c: Columns, shape: tuple[int, ...], rows: np.ndarray, n: np.ndarray, d: np.ndarray, law) -> np.ndarray:
    """The law's loss; an MoE row's at its active parameters with its reducible part times the MoE ratio (the joint
    law's relative gain: its own losses are on FineWeb-Edu with the GPT-2 tokenizer, docs/quality.md)."""
    dense = loss(n, d, law)
    moe = _moe(c, shape)[rows]
    if not moe.any():
        return dense
    n_act = np.broadcast_to(c["active_params"], shape)[rows][moe]
    ratio = _moe_ratio(c, shape)[rows][moe]
    dense[moe] = law.E + (loss(n_act, d[moe], law) - law.E) * ratio
    return dense


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
        out["quality.dense_loss"][rows] = _dense_loss(c, shape, rows, n_r, d_r, LAWS[name]) * np.broadcast_to(
            c.get("model_err_loss", 1.0), shape)[rows]
        out["quality.loss_delta"][rows] = on_rows(
            lambda r, law=LAWS[name]: {"d": loss_delta(r, law.A, law.alpha, PENALTY_CONSTANTS, small)},
            law_rows, _PENALTY_COLUMNS, (int(rows.sum()),), {"d": 0.0})["d"]
        out["quality.compute_optimal_params"][rows] = n_opt
        out["quality.compute_optimal_tokens"][rows] = d_opt
    out["quality.moe_loss_ratio"] = _moe_ratio(c, shape)
    out["quality.loss"] = out["quality.dense_loss"] + out["quality.loss_delta"]
    out["quality.ppl_ratio"] = np.exp(out["quality.loss_delta"])
    out["quality.tokens_per_param"] = np.broadcast_to(d / n, shape).astype(float)
    return out


def _outside_moe_fit(c: Columns) -> np.ndarray:
    experts = architecture.col(c, "moe_experts")
    e = expansion(experts, architecture.col(c, "moe_top_k"))
    n_act = c["active_params"] if "active_params" in c else c["params"]
    return (experts > 0) & outside_fit(n_act, c["tokens"], e)


def _outside_moe_message(r) -> str:
    law = JOINT_MOE
    n_act = r.get("active_params", r["params"])
    e = float(expansion(r["moe_experts"], r["moe_top_k"]))
    return (f"quality.loss: the mixture-of-experts law (Ludziejewski et al. 2025) was fitted on "
            f"{law.active_params_range[0] / 1e6:,.0f}M-{law.active_params_range[1] / 1e9:,.1f}B active parameters, "
            f"{law.tokens_range[0] / 1e9:g}-{law.tokens_range[1] / 1e9:g}B tokens and E = 1-{law.experts_range[1]:g} "
            f"(routed experts ÷ experts per token); this model has {n_act / 1e9:,.2f}B active, "
            f"{r['tokens'] / 1e9:,.0f}B tokens and E = {e:g}, so its loss is extrapolated beyond the fit")


RULES = (
    Rule("model.moe_experts", "MoE loss law extrapolated", _outside_moe_fit, _outside_moe_message, "warning",
         "quality_moe_extrapolated"),
)

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
                rules=RULES,
                doc="Scaling-law loss (Hoffmann et al. 2022; Besiroglu et al. 2024; a mixture-of-experts by Ludziejewski "
                    "et al. 2025) and its increase under compression (Kumar et al. 2024; Frantar et al. 2023)")
