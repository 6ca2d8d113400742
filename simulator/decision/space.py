"""The candidates a decision searches: model size, training tokens, training cluster, and (where those families
are registered) compression and serving deployment, as a sweep grid over the user's scenario."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simulator.compression.constants import WEIGHT_BITS
from simulator.families.training_inputs import SHAPE_KEYS
from simulator.inputs import INPUTS
from simulator.keys import nested, split_key
from simulator.scenario import Scenario

# What the search chooses; everything else (accelerator, precision, prices, traffic, ...) stays as the user set it.
SEARCHED = ("model.params", "model.moe_experts", "training.tokens", "cluster.gpus", "cluster.tp", "cluster.pp",
            "compression.weight_bits", "compression.quant_method", "serving.gpus_per_replica")
# The mixture-of-experts candidate beside each dense one: 64 fine-grained experts, 8 per token, each an eighth of the
# dense FFN (granularity 8), so it computes per token what the dense model of its size computes (plus the router) and
# holds about 8× its FFN weights: the fine-grained design of DeepSeekMoE (Dai et al. 2024) and Qwen3 (128 experts,
# top-8), at the granularity Krajewski et al. 2024 (Fig. 1, §6) find compute-optimal from about 1e21 FLOPs on.
MOE_EXPERTS = 64
MOE_DESIGN = {"model.moe_top_k": 8, "model.moe_granularity": 8}
FREED = ("model.preset", *SHAPE_KEYS, "model.kv_heads", "model.ffn_hidden", "model.head_dim", "training.zero_stage",
         "cluster.ep", "serving.ep",  # expert parallelism follows each candidate's experts and layout
         "cluster.first_stage_layers", "cluster.last_stage_layers")
# The model, its tokens and its training cluster are what a decision is about: always searched (a scenario must give
# a size; it is only the search's start). The rest is searched only where the scenario leaves it open: a searched
# key is closed by any of these given keys, and then every candidate keeps the user's values. The quantization keys
# close together because the rules relate them (bits below 16 need a method; fp formats need fp widths).
QUANTIZATION = ("compression.weight_bits", "compression.act_bits", "compression.quant_method", "compression.format")
CLOSED_BY: dict[str, tuple[str, ...]] = {
    "compression.weight_bits": QUANTIZATION,
    "compression.quant_method": QUANTIZATION,
    "serving.gpus_per_replica": ("serving.gpus_per_replica",),
    # a user's experts fix the architecture; their top-k or granularity alone shape the MoE candidates (MOE_DESIGN
    # fills only what they leave open)
    "model.moe_experts": ("model.moe_experts",),
}

MIN_SEARCHED_BITS = 4  # the fewest weight bits the decision tries


def closed(scenario: Scenario) -> frozenset[str]:
    """The searched keys this scenario's own choices close (CLOSED_BY): its candidates keep the user's values."""
    return frozenset(key for key, by in CLOSED_BY.items() if any(k in scenario.given for k in by))


def _round_sig(values: np.ndarray, digits: int = 2) -> list[float]:
    """Values rounded to `digits` significant figures (a plan says 7.5e9 parameters, not 7498942093)."""
    out = []
    for v in values:
        scale = 10.0 ** (np.floor(np.log10(v)) - digits + 1)
        out.append(float(np.round(v / scale) * scale))
    return out


def default_space(per_decade: int = 4) -> dict[str, list[Any]]:
    """About two million candidates: sizes 100M-1T (for an MoE, its active size) and tokens 10B-30T at `per_decade`
    points a decade, dense or mixture-of-experts (MOE_DESIGN), clusters of 8 to 16,384 GPUs with every power-of-two
    tensor and pipeline split up to 8 and 16, and where registered, 16/8/4-bit weights (GPTQ) and 1-8 GPUs per
    serving replica."""
    space: dict[str, list[Any]] = {
        "model.params": _round_sig(np.logspace(8, 12, 4 * per_decade + 1)),
        "model.moe_experts": [0, MOE_EXPERTS],  # dense, or the MoE_DESIGN of the same active size
        "training.tokens": _round_sig(np.logspace(10, 13.5, round(3.5 * per_decade) + 1)),
        "cluster.gpus": [2**k for k in range(3, 15)],
        "cluster.tp": [1, 2, 4, 8],
        "cluster.pp": [1, 2, 4, 8, 16],
    }
    if "compression.weight_bits" in INPUTS:  # post-training GPTQ (Frantar et al. 2023); at 16 bits it does nothing
        # the offered widths a serving kernel packs whole (powers of two) down to 4 bits, below which GPTQ's loss
        # grows steeply (Frantar et al. 2023, Table 3): 16, 8, 4
        space["compression.weight_bits"] = [b for b in WEIGHT_BITS if b >= MIN_SEARCHED_BITS and b & (b - 1) == 0]
        space["compression.quant_method"] = ["gptq"]
    if "serving.gpus_per_replica" in INPUTS:
        space["serving.gpus_per_replica"] = [1, 2, 4, 8]
    return space


def base_inputs(scenario: Scenario, question: bool = True,
                searched: Sequence[str] = SEARCHED) -> dict[str, dict[str, Any]]:
    """The user's inputs with the searched keys they leave open (`closed`) and what those fix (a preset, a shape, a
    ZeRO stage) taken out, so each candidate's shape and derived settings follow its own size and layout.
    `question=False` also leaves out what the candidates' figures do not depend on: the decision section but its
    horizon. `searched`: the keys the grid searches (a key it does not search keeps the user's value)."""
    data = scenario.inputs()
    data.pop("name", None)
    if not question:
        horizon = data.pop("decision", {}).get("horizon_months")
        if horizon is not None:
            data["decision"] = {"horizon_months": horizon}
    for key in (*(k for k in searched if k not in closed(scenario)), *FREED):
        section, name = split_key(key)
        data.get(section, {}).pop(name, None)
    if "model.moe_experts" in searched and "model.moe_experts" not in closed(scenario):
        for key, value in MOE_DESIGN.items():  # what an MoE candidate is, where the user left it open
            section, name = split_key(key)
            data.setdefault(section, {}).setdefault(name, value)
    if "model.params" in scenario.given or "model.preset" in scenario.given or any(
            k in scenario.given for k in SHAPE_KEYS):  # a valid base for the sweep: the size given, else counted
        params = INPUTS["model.params"]  # (a shape's count may lie a little past the bounds of a given size)
        size = scenario.given.get("model.params", float(scenario.model.params))
        data.setdefault("model", {})["params"] = float(min(max(size, params.low), params.high))
    return data


def candidate_inputs(base: Mapping[str, Mapping[str, Any]], choice: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A candidate's scenario inputs: the base with the searched values of one row."""
    return nested(choice, into={section: dict(values) for section, values in base.items()}, skip_none=False)


def only_registered(space: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    return {k: list(v) for k, v in space.items() if k in INPUTS}


def open_space(scenario: Scenario, space: Mapping[str, Sequence[Any]] | None = None) -> dict[str, list[Any]]:
    """`space` (default: `default_space()`) over what this scenario leaves open: registered keys, less the ones its
    own choices close (`closed`)."""
    shut = closed(scenario)
    grid = only_registered(space if space is not None else default_space())
    return {k: v for k, v in grid.items() if k not in shut}
