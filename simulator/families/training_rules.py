"""Rules that relate the training inputs, each written once on columns (one row or a million).

`broken(c)` is a boolean array over rows; `message(row)` explains one row and says what to change. The sweep
reports the first broken error rule of each row as its `reason`; a single scenario reports every one.
"""

from __future__ import annotations

import numpy as np

from simulator.registry import Rule
from simulator.training.codes import SYNC_PS
from simulator.training.layout import planner_can_interleave


def _divisors(n: float, limit: int = 8) -> str:
    n = int(n)
    found = [d for d in range(1, min(n, 4096) + 1) if n % d == 0]
    return ", ".join(str(d) for d in found[:limit]) + (" ..." if len(found) > limit else "")


def _i(x: float) -> int:
    return round(float(x))


def _count(x: float) -> str:
    x = float(x)
    return f"{x:,.0f}" if x.is_integer() else f"{x:,.2f}"


def _whole_dp(c) -> np.ndarray:
    return np.fmod(c["gpus"], c["tp"] * c["pp"] * c["cp"]) == 0


def _moe(c) -> np.ndarray:
    return c["moe_experts"] > 0


def _given(c, name: str) -> np.ndarray:
    return np.isfinite(c[name])


def _stages_given(c) -> np.ndarray:
    return _given(c, "first_stage_layers") | _given(c, "last_stage_layers")


def _middle_layers(c) -> np.ndarray:
    first = np.where(_given(c, "first_stage_layers"), c["first_stage_layers"], 0.0)
    last = np.where(_given(c, "last_stage_layers"), c["last_stage_layers"], 0.0)
    return c["layers"] - first - last


def _smallest_stage(c):
    """Fewest layers on any stage of a given split (middle stages share the rest: the smallest gets the floor)."""
    first = np.where(_given(c, "first_stage_layers"), c["first_stage_layers"], np.inf)
    last = np.where(_given(c, "last_stage_layers"), c["last_stage_layers"], np.inf)
    n_given = _given(c, "first_stage_layers").astype(float) + _given(c, "last_stage_layers")
    rest = np.where(c["pp"] - n_given > 0, np.floor(_middle_layers(c) / np.maximum(c["pp"] - n_given, 1.0)), np.inf)
    return np.minimum(np.minimum(first, last), rest)


def _stage_split_broken(c) -> np.ndarray:
    # with pp stages, the given first/last leave at least one layer for each of the pp-2 middle stages;
    # with 2 stages they add up to the layers; one given alone leaves >= 1 layer per remaining stage
    pp, given_both = c["pp"], _given(c, "first_stage_layers") & _given(c, "last_stage_layers")
    n_given = _given(c, "first_stage_layers").astype(float) + _given(c, "last_stage_layers")
    rest_stages = pp - n_given
    middle = _middle_layers(c)
    bad = np.where(given_both & (pp == 2), middle != 0, middle < rest_stages)
    return _stages_given(c) & (pp > 1) & bad


def _stage_split_message(r) -> str:
    pp, layers = _i(r["pp"]), _i(r["layers"])
    given = {k: _i(r[f"{k}_stage_layers"]) for k in ("first", "last") if np.isfinite(r[f"{k}_stage_layers"])}
    shown = ", ".join(f"cluster.{k}_stage_layers = {v}" for k, v in given.items())
    if pp == 2 and len(given) == 2:
        return f"{shown}: with 2 pipeline stages they must add up to model.layers ({layers})"
    rest = pp - len(given)
    return (f"{shown}: model.layers ({layers}) leaves {layers - sum(given.values())} layers for the other {rest} "
            f"stage(s); each needs at least one. Give fewer layers to the first/last stage or use fewer stages")


ERRORS: tuple[Rule, ...] = (
    Rule("cluster.gpus", "cluster.gpus: tp×cp×pp does not divide the GPU count",
         lambda c: ~_whole_dp(c),
         lambda r: (f"cluster.gpus = {_i(r['gpus'])}: tp×cp×pp×dp must equal the GPU count, and tp×cp×pp = "
                    f"{_i(r['tp'])}×{_i(r['cp'])}×{_i(r['pp'])} = {_i(r['tp'] * r['cp'] * r['pp'])} does not divide "
                    f"{_i(r['gpus'])}; use a multiple of {_i(r['tp'] * r['cp'] * r['pp'])} GPUs or change cluster.tp, "
                    "cluster.cp or cluster.pp")),
    Rule("cluster.cp", "cluster.cp: the sequence must split into 2×cp chunks",
         lambda c: (c["cp"] > 1) & (np.fmod(c["seq_len"], 2.0 * c["cp"]) != 0),
         lambda r: (f"cluster.cp = {_i(r['cp'])}: context parallelism gives each GPU two chunks of the sequence "
                    f"(Megatron-Core's causal load balancing), so model.seq_len ({_i(r['seq_len'])}) must be a "
                    f"multiple of 2×cp = {_i(2 * r['cp'])}")),
    Rule("cluster.ep", "cluster.ep: expert parallelism needs experts",
         lambda c: (c["ep"] > 1) & ~_moe(c),
         lambda r: (f"cluster.ep = {_i(r['ep'])}: expert parallelism splits a mixture-of-experts model's experts; "
                    "this model is dense (model.moe_experts = 0): set cluster.ep = 1 or give model.moe_experts")),
    Rule("cluster.ep", "cluster.ep: must divide the experts",
         lambda c: _moe(c) & (np.fmod(c["moe_experts"], c["ep"]) != 0),
         lambda r: (f"cluster.ep = {_i(r['ep'])}: each expert-parallel GPU holds the same number of whole experts, "
                    f"so it must divide model.moe_experts ({_i(r['moe_experts'])}); try "
                    f"{_divisors(r['moe_experts'])}")),
    Rule("cluster.ep", "cluster.ep: must divide the data-parallel width",
         lambda c: _whole_dp(c) & (c["ep"] > 1) & (np.fmod(c["dp"], c["ep"]) != 0),
         lambda r: (f"cluster.ep = {_i(r['ep'])}: Megatron-Core draws the expert-parallel GPUs from the data-parallel "
                    f"ones, so it must divide the data-parallel width ({_i(r['dp'])} = GPUs / (tp×cp×pp)); try "
                    f"{_divisors(r['dp'])}")),
    Rule("model.moe_top_k", "model.moe_top_k: more experts per token than experts",
         lambda c: _moe(c) & (c["moe_top_k"] > c["moe_experts"]),
         lambda r: (f"model.moe_top_k = {_i(r['moe_top_k'])}: a token goes to at most the "
                    f"{_i(r['moe_experts'])} routed experts (model.moe_experts)")),
    Rule("model.moe_dense_layers", "model.moe_dense_layers: no layer is left for the experts",
         lambda c: _moe(c) & (np.floor(np.maximum(c["layers"] - c["moe_dense_layers"], 0.0) / c["moe_layer_step"])
                              < 1),
         lambda r: (f"model.moe_dense_layers = {_i(r['moe_dense_layers'])}, model.moe_layer_step = "
                    f"{_i(r['moe_layer_step'])}: of model.layers ({_i(r['layers'])}) none is a mixture-of-experts "
                    "layer; lower them, or set model.moe_experts = 0 for a dense model")),
    Rule("model.attention", "model.attention: multi-head attention has as many KV heads as heads",
         lambda c: (c["attention"] == 0) & (c["kv_heads"] != c["heads"]),
         lambda r: (f"model.attention = 'mha' with model.kv_heads = {_i(r['kv_heads'])} of {_i(r['heads'])} heads: "
                    "fewer key/value heads is grouped-query attention; set model.attention = 'gqa' or leave it empty")),
    Rule("cluster.tp", "cluster.tp: must divide model.heads",
         lambda c: np.fmod(c["heads"], c["tp"]) != 0,
         lambda r: (f"cluster.tp = {_i(r['tp'])}: the tensor-parallel degree must divide model.heads "
                    f"({_i(r['heads'])}); try {_divisors(r['heads'])}")),
    Rule("cluster.tp", "cluster.tp: must divide model.kv_heads or be a multiple of it",
         lambda c: (np.fmod(c["kv_heads"], c["tp"]) != 0) & (np.fmod(c["tp"], c["kv_heads"]) != 0),
         lambda r: (f"cluster.tp = {_i(r['tp'])}: must divide model.kv_heads ({_i(r['kv_heads'])}) or be a "
                    f"multiple of it (each tensor-parallel rank holds whole KV heads); try "
                    f"{_divisors(r['kv_heads'])} or a multiple of {_i(r['kv_heads'])}")),
    Rule("model.hidden", "model.hidden: must be divisible by model.heads",
         lambda c: np.fmod(c["head_dim"], 1.0) != 0,  # head_dim derived as hidden / heads (a given one is whole)
         lambda r: f"model.hidden = {_i(r['hidden'])}: must be divisible by model.heads = {_i(r['heads'])}"),
    Rule("model.kv_heads", "model.kv_heads: must divide model.heads",
         lambda c: np.fmod(c["heads"], c["kv_heads"]) != 0,
         lambda r: (f"model.kv_heads = {_i(r['kv_heads'])}: must divide model.heads = {_i(r['heads'])}; try "
                    f"{_divisors(r['heads'])}")),
    Rule("model.params", "model.params: more than 25% from the count of the shape given",
         lambda c: (c["shape_given"] > 0) & np.isfinite(c["params_given"])
         & (np.abs(c["params"] / c["params_given"] - 1.0) > 0.25),
         lambda r: (f"model.params = {r['params_given']:.3g}: the shape given (layers={_i(r['layers'])}, "
                    f"hidden={_i(r['hidden'])}) has {r['params']:.3g} parameters, more than 25% apart; drop "
                    "model.params or fix the shape")),
    Rule("cluster.pp", "cluster.pp: more pipeline stages than layers",
         lambda c: c["pp"] > c["layers"],
         lambda r: (f"cluster.pp = {_i(r['pp'])}: each pipeline stage needs at least one layer and model.layers = "
                    f"{_i(r['layers'])}; use at most {_i(r['layers'])} stages")),
    Rule("cluster.first_stage_layers", "cluster.first/last_stage_layers: do not leave a layer for every stage",
         _stage_split_broken, _stage_split_message),
    Rule("cluster.pp", "cluster.pp: interleaving needs whole virtual stages on every pipeline stage",
         lambda c: (c["interleave"] > 1) & ~_stages_given(c) & (c["pp"] > 1)
         & ~planner_can_interleave(c["layers"], c["pp"], c["interleave"]),
         lambda r: (f"cluster.pp = {_i(r['pp'])}: with training.interleave = {_i(r['interleave'])}, every pipeline "
                    f"stage must hold a multiple of {_i(r['interleave'])} layers (Megatron-LM's virtual stages), so "
                    f"model.layers ({_i(r['layers'])}) must be a multiple of {_i(r['interleave'])} and at least "
                    "pp×interleave = "
                    f"{_i(r['pp'])}×{_i(r['interleave'])}; try training.interleave in {_divisors(r['layers'])}, "
                    "fewer stages, or give the first/last stage layers")),
    Rule("training.interleave", "training.interleave: needs cluster.pp > 1",
         lambda c: (c["interleave"] > 1) & (c["pp"] == 1),
         lambda r: (f"training.interleave = {_i(r['interleave'])}: interleaving needs pipeline parallelism "
                    "(cluster.pp > 1)")),
    Rule("training.interleave", "training.interleave: a stage holds fewer layers than its virtual stages",
         lambda c: (c["interleave"] > 1) & _stages_given(c) & (_smallest_stage(c) < c["interleave"]),
         lambda r: (f"training.interleave = {_i(r['interleave'])}: every stage needs at least one layer per virtual "
                    f"stage, and the smallest stage of this split holds {_i(_smallest_stage(r))}; give it more "
                    "layers or interleave less")),
    Rule("training.global_batch_seqs", "training.global_batch_seqs: fewer sequences than data-parallel ranks",
         lambda c: _whole_dp(c) & (c["global_batch"] < c["dp"]),
         lambda r: (f"training.global_batch_seqs = {_i(r['global_batch'])}: each of the {_i(r['dp'])} data-parallel "
                    f"ranks needs at least one sequence per step; use a global batch of at least {_i(r['dp'])} or "
                    "fewer GPUs")),
    Rule("training.precision", "training.precision: the accelerator has no unit for this precision",
         lambda c: np.isnan(c["peak_tflops"]),
         lambda r: (f"training.precision = {r['training.precision']!r}: {r['cluster.accelerator']} has no unit for "
                    f"this precision; it supports {r['hw_precisions']}")),
    Rule("training.zero_stage", "training.zero_stage: use 0 with a parameter server or async SGD",
         lambda c: (c["zero_stage"] > 0) & (c["sync"] >= SYNC_PS),
         lambda r: (f"training.zero_stage = {_i(r['zero_stage'])}: ZeRO shards states over all-reduce groups; use "
                    "training.zero_stage = 0 with a parameter server or asynchronous SGD")),
    Rule("cluster.ps_servers", "cluster.ps_servers: at most one per worker",
         lambda c: (c["sync"] == SYNC_PS) & (c["ps_servers"] > np.maximum(np.floor(c["dp"]), 1)),
         lambda r: (f"cluster.ps_servers = {_i(r['ps_servers'])}: at most one server shard per data-parallel "
                    f"worker ({_i(r['dp'])})")),
    Rule("training.tokens", "training.tokens: fewer tokens than one optimizer step",
         lambda c: c["tokens"] < c["global_batch"] * c["seq_len"],
         lambda r: (f"training.tokens = {_count(r['tokens'])}: fewer tokens than one optimizer step (global batch × "
                    f"sequence = {_count(r['global_batch'] * r['seq_len'])} tokens); train at least "
                    f"{_count(r['global_batch'] * r['seq_len'])} tokens or shrink the batch")),
)
