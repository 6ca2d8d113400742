"""Training family: FLOPs, memory, step time and ideal wall time of a training run (simulator.training)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.families.training_inputs import INPUTS
from simulator.families.training_rules import ERRORS
from simulator.registry import Columns, Family, FieldGroup, FigureSpec, Remedy, Rule, Section, Steps
from simulator.training.model import PER_TOKEN, per_run, training_per_token
from simulator.words import does_not_fit

F = FigureSpec
MODEL_FIGURES = (
    F("model.total_params", "Parameters (total)", "parameters", "counted from the shape, every expert included: what "
      "memory and checkpoints hold (simulator/architecture.py)"),
    F("model.active_params", "Parameters per token (active)", "parameters", "counted from the shape with the top-k "
      "routed and the shared experts of each MoE layer: what a token's compute multiplies; = total for a dense model"),
)
FIGURES = (
    F("training.flops_total", "Training compute (model FLOPs)", "FLOP",
      "PaLM App. B / Megatron: FLOPs per token incl. attention × tokens"),
    F("training.flops_total_hw", "Hardware FLOPs incl. recompute", "FLOP",
      "Korthikanti et al. 2022: recomputation adds forward passes"),
    F("training.step_time_s", "Step time", "s",
      "compute + TP comm + pipeline bubble + p2p + exposed DP sync + straggler wait", "lower", ranged=True),
    F("training.tokens_per_s", "Throughput", "tokens/s", "global batch × sequence / step time", "higher",
      ranged=True),
    F("training.tokens_per_s_per_gpu", "Throughput per GPU", "tokens/s", "throughput ÷ GPUs (how training "
      "benchmarks such as Megatron-Bridge's publish it)", "higher", ranged=True),
    F("training.tflops_per_gpu", "Achieved TFLOP/s per GPU (model)", "TFLOP/s",
      "model FLOPs per step / (step time × GPUs)", "higher", ranged=True),
    F("training.hw_tflops_per_gpu", "Achieved TFLOP/s per GPU (hardware)", "TFLOP/s",
      "hardware FLOPs per step / (step time × GPUs)", "higher", ranged=True),
    F("training.mfu", "Model FLOPs utilisation", "fraction", "PaLM App. B: model TFLOP/s / peak", "higher",
      ranged=True),
    F("training.hfu", "Hardware FLOPs utilisation", "fraction", "PaLM App. B: hardware TFLOP/s / peak", "higher"),
    F("training.iterations", "Optimizer steps", "steps",
      "tokens / (global batch × sequence), × staleness penalty for async SGD"),
    F("training.ideal_wall_days", "Wall-clock time if nothing fails", "days", "steps × step time", "lower",
      ranged=True),
    F("training.memory_per_gpu_gb", "Memory per GPU", "GB",
      "ZeRO (Rajbhandari et al. 2020) + activations (Korthikanti et al. 2022, Table 2)", "lower"),
    F("training.mem_weights_gb", "Weights", "GB", "ZeRO §3: 2Ψ bytes, /(tp·pp), /dp under stage 3", "lower"),
    F("training.mem_grads_gb", "Gradients", "GB", "ZeRO §3: 2Ψ bytes, /dp from stage 2", "lower"),
    F("training.mem_optimizer_gb", "Optimizer states", "GB", "ZeRO §3: KΨ with K = 12, /dp from stage 1", "lower"),
    F("training.mem_activations_gb", "Activations", "GB",
      "Korthikanti et al. 2022, Table 2, × in-flight micro-batches on the worst stage", "lower"),
    F("training.fits_memory", "Fits in memory", "", "memory per GPU ≤ HBM capacity", yes_no=True),
    F("training.compute_s", "Compute", "s",
      "hardware FLOPs / (peak × GEMM efficiency of the per-GPU matrix sizes)", "lower"),
    F("training.tp_comm_s", "Tensor-parallel comm", "s", "Megatron: 4 all-reduces per layer per micro-batch (ring)",
      "lower"),
    F("training.pp_bubble_s", "Pipeline bubble", "s", "Narayanan et al. 2021 §2.2: (p−1)/(v·m) of the ideal time",
      "lower"),
    F("training.pp_p2p_s", "Pipeline send/recv", "s", "b·s·h activations per micro-batch between stages", "lower"),
    F("training.dp_exposed_s", "Exposed data-parallel sync", "s", "gradient sync not hidden behind backward",
      "lower"),
    F("training.straggler_s", "Straggler wait", "s", "expected slowest-of-dp worker (Dutta et al. 2018)", "lower"),
    F("training.gemm_efficiency", "GEMM efficiency", "fraction", "saturating curve in the per-GPU matrix sizes",
      "higher"),
    F("training.a2a_s", "Expert all-to-all", "s", "GShard (Lepikhin et al. 2021) §2.2: dispatch and combine per MoE "
      "layer and pass, T·k·h bytes each over the expert-parallel GPUs (Thakur et al. 2005 pairwise exchange)",
      "lower"),
    F("training.cp_comm_s", "Context-parallel ring", "s", "Ring Attention (Liu et al. 2023): key/value blocks passed "
      "cp − 1 times per layer, the part not hidden behind attention", "lower"),
    F("training.a2a_share", "All-to-all share of the step", "fraction", "expert all-to-all / step time", "lower"),
)
STEP_PARTS = ("compute_s", "tp_comm_s", "pp_bubble_s", "pp_p2p_s", "a2a_s", "cp_comm_s", "dp_exposed_s",
              "straggler_s")
_RENAMED = {"wall_days": "ideal_wall_days"}
_OPTIONAL_OUT = ("first_stage_layers", "last_stage_layers", "microbatches", "batch_idle_fraction")
OPTIONAL_FIGURES = (
    F("training.first_stage_layers", "Layers on the first stage", "layers", "given, or balanced so the slowest "
      "stage (embedding on the first, logits and loss on the last) is as fast as it can be"),
    F("training.last_stage_layers", "Layers on the last stage", "layers", "given, or balanced (see the first stage)"),
    F("training.microbatches", "Micro-batches per step", "micro-batches",
      "⌈⌈B/dp⌉/b⌉ on the busiest data-parallel rank (Narayanan et al. 2021 §2.2)"),
    F("training.batch_idle_fraction", "Idle micro-batch slots", "fraction",
      "1 − B/(dp·m·b): the last micro-batch is smaller when B is not a multiple of b·dp", "lower"),
)


PER_TOKEN_HELPER = "training.per_token."  # helper columns: a PER_TOKEN output at one token, before × the tokens


def _per_step(c: Columns) -> dict[str, np.ndarray]:
    """Every figure of a step (time, memory, utilisation), and the PER_TOKEN outputs per token: reads no tokens."""
    out = training_per_token(c)
    keys = [f.name for f in FIGURES] + [k for k in _OPTIONAL_OUT if k in out]
    inverse = {v: k for k, v in _RENAMED.items()}
    figures = {f"training.{k}": out[inverse.get(k, k)] for k in keys
               if inverse.get(k, k) not in PER_TOKEN and k != "a2a_share"}
    figures["training.a2a_share"] = out["a2a_s"] / out["step_time_s"]
    model = {"model.total_params": np.asarray(c["params"], dtype=float),
             "model.active_params": np.asarray(c["active_params"], dtype=float)}
    return figures | model | {f"{PER_TOKEN_HELPER}{k}": out[k] for k in PER_TOKEN}


def _per_run(c: Columns) -> dict[str, np.ndarray]:
    """The figures proportional to the training tokens: each per-token helper × the tokens."""
    scaled = per_run({k: c[f"{PER_TOKEN_HELPER}{k}"] for k in PER_TOKEN}, c["tokens"])
    out = {f"training.{_RENAMED.get(k, k)}": v for k, v in scaled.items()}
    return out | {"training.wall_s": out["training.ideal_wall_days"] * 86400.0}


run = Steps(_per_step, _per_run)


def _frac(c: Columns, part: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return c[f"training.{part}"] / c["training.step_time_s"]


def _stage_imbalance(c: Columns) -> np.ndarray:
    """How much longer the fullest stage is than an even share: max layers per stage × pp / layers − 1."""
    first, last, pp = c["training.first_stage_layers"], c["training.last_stage_layers"], c["pp"]
    middle = np.ceil(np.maximum(c["layers"] - first - last, 0.0) / np.maximum(pp - 2.0, 1.0))
    fullest = np.maximum(np.maximum(first, last), np.where(pp > 2, middle, 0.0))
    return np.where(pp > 1, fullest * pp / c["layers"] - 1.0, 0.0)


def _even_out(r: Mapping[str, Any]) -> str:
    """What evens the stages: the planner's split when the ends were given, else fewer virtual stages or layers that
    divide (the planner keeps whole virtual stages on every stage)."""
    if r.get("cluster.first_stage_layers") is not None or r.get("cluster.last_stage_layers") is not None:
        return "Leave the first/last stage layers empty to let the planner balance them."
    return ("The planner keeps every stage a whole number of virtual stages: a smaller training.interleave or a "
            "cluster.pp that divides the layers evens them.")


W = Rule
WARNINGS = (
    W("training.memory_per_gpu_gb", "does not fit in memory", lambda c: ~c["training.fits_memory"].astype(bool),
      lambda r: does_not_fit(r["training.memory_per_gpu_gb"], r["hbm_GB"], r.get("hw_name", r["cluster.accelerator"])),
      "warning", "memory"),
    W("cluster.tp", "tensor parallelism spans nodes", lambda c: c["tp"] > c["gpus_per_node"],
      lambda r: (f"Tensor parallelism ({r['tp']:.0f}) spans nodes of {r['gpus_per_node']:.0f} GPUs: its all-reduces "
                 "run over the slower inter-node network. Keep cluster.tp at or below the GPUs per node."),
      "warning", "tp_spans_nodes"),
    W("cluster.pp", "pipeline bubble over 25%", lambda c: _frac(c, "pp_bubble_s") > 0.25,
      lambda r: (f"The pipeline bubble takes {r['training.pp_bubble_s'] / r['training.step_time_s']:.0%} of each "
                 "step: raise the global batch, lower cluster.pp, or interleave stages (training.interleave)."),
      "warning", "pipeline_bubble"),
    W("cluster.sync", "gradient sync over 25%", lambda c: _frac(c, "dp_exposed_s") > 0.25,
      lambda r: (f"Gradient sync is {r['training.dp_exposed_s'] / r['training.step_time_s']:.0%} of each step: the "
                 "network is the bottleneck; a larger batch per GPU, more tensor/pipeline parallelism or a faster "
                 "interconnect would help."), "warning", "sync_bound"),
    W("training.global_batch_seqs", "uneven global batch",
      lambda c: c.get("training.batch_idle_fraction", np.zeros(np.shape(c["gpus"]))) > 1e-12,
      lambda r: (f"The global batch ({r['global_batch']:.0f} sequences) is not a multiple of micro-batch × "
                 f"data-parallel width ({r['micro_batch']:.0f} × {r['dp']:.0f}): ranks get "
                 f"{r['global_batch'] // r['dp']:.0f} or {-(-r['global_batch'] // r['dp']):.0f} sequences, the busiest "
                 f"runs {r['training.microbatches']:.0f} micro-batches (the step waits for it), and "
                 f"{r['training.batch_idle_fraction']:.1%} of micro-batch slots idle. A batch of "
                 f"{max(1, round(r['global_batch'] / (r['micro_batch'] * r['dp']))) * r['micro_batch'] * r['dp']:.0f} "
                 "would use every slot."), "warning", "uneven_batch"),
    W("cluster.first_stage_layers", "pipeline stages more than 10% uneven", lambda c: _stage_imbalance(c) > 0.10,
      lambda r: (f"The pipeline stages are uneven ({r['training.first_stage_layers']:.0f} layers on the first, "
                 f"{r['training.last_stage_layers']:.0f} on the last, of {r['layers']:.0f} over {r['pp']:.0f} stages): "
                 f"the fullest stage has {_stage_imbalance(r):.0%} more layers than an even share, and the others wait "
                 f"for it every micro-batch. {_even_out(r)}"), "warning", "uneven_stages"),
)

# where its inputs and figures appear on the pages and in their PDFs (simulator.presentation)
FIELDS = (
    FieldGroup("train", "Run", ("training.tokens", "cluster.gpus", "cluster.accelerator"), main=True, order=0),
    FieldGroup("train", "Model size", ("model.params",), main=True, order=1),
    FieldGroup("train", "Model shape", ("model.layers", "model.hidden", "model.heads", "model.kv_heads",
                                        "model.ffn_hidden"), main=True, order=2),
    FieldGroup("train", "Model details", ("model.mlp", "model.vocab", "model.seq_len", "model.tie_embeddings"),
               main=True, radio=("model.mlp",), order=3),
    FieldGroup("train", "Mixture of experts", ("model.moe_experts", "model.moe_top_k", "model.moe_shared_experts",
                                               "model.moe_ffn_hidden", "model.moe_dense_layers", "model.moe_layer_step",
                                               "cluster.ep", "training.moe_imbalance",
                                               "training.moe_capacity_factor"), order=9),
    FieldGroup("train", "Attention", ("model.attention", "model.head_dim", "model.mla_q_lora_rank",
                                      "model.mla_kv_lora_rank", "model.mla_rope_dim"), radio=("model.attention",),
               order=9),
    FieldGroup("train", "Parallelism and batch", ("cluster.tp", "cluster.pp", "cluster.first_stage_layers",
                                                  "cluster.last_stage_layers", "training.interleave",
                                                  "training.global_batch_seqs", "training.micro_batch_seqs",
                                                  "cluster.gpus_per_node", "training.sequence_parallel", "cluster.cp"),
               order=10),
    FieldGroup("train", "Precision and memory", ("training.precision", "training.recompute", "training.zero_stage",
                                                 "training.flash_attention"), radio=("training.recompute",), order=11),
    FieldGroup("train", "Gradient sync", ("cluster.sync", "cluster.ps_servers", "cluster.async_kappa",
                                          "training.sharding", "cluster.dp_overlap", "cluster.straggler_cv"),
               radio=("training.sharding",), order=12),
    FieldGroup("deploy", "Model", ("model.preset", "model.params"), main=True, order=0),
    FieldGroup("compress", "Model", ("model.preset", "model.params", "training.tokens"), main=True, order=0),
    FieldGroup("decide", "Hardware and traffic", ("cluster.accelerator",), main=True, order=1),
)
SECTIONS = (
    Section(("train", "deploy", "decide"), "Model", ("model.total_params", "model.active_params"), headline=True,
            order=3),
    Section(("train",), "Efficiency and memory", ("training.mfu", "training.memory_per_gpu_gb"), headline=True,
            order=4),
    Section(("train",), "The step", ("training.step_time_s", "training.tokens_per_s", "training.flops_total",
                                     "training.a2a_share"), headline=True, order=6),
    Section(("decide",), "Efficiency", ("training.mfu", "training.a2a_share"), headline=True, order=7),
)

def _fit_changes(scenario: Any) -> list[tuple[str, dict[str, Any]]]:
    """Nearby plans that may fit in memory, the likeliest first (UX: say what would make it fit): the label is the
    reader's ("tensor parallel 16"), the change the dotted keys (the plan JSON's `change`)."""
    c, t = scenario.cluster, scenario.training
    changes: list[tuple[str, dict[str, Any]]] = []
    if t.zero_stage < 3 and c.sync in ("ring", "tree"):
        changes.append(("ZeRO stage 3", {"training.zero_stage": 3}))
    if t.recompute != "full":
        changes.append(("full recomputation", {"training.recompute": "full"}))
    if t.micro_batch_seqs > 1:
        changes.append(("micro-batch 1", {"training.micro_batch_seqs": 1}))
    if scenario.model.moe_experts > 0:  # routed experts split over more of the data-parallel GPUs
        changes += [(f"expert parallel {c.ep * f}", {"cluster.ep": c.ep * f}) for f in (2, 4, 8)
                    if scenario.model.moe_experts % (c.ep * f) == 0]
    for factor in (2, 4, 8):
        changes.append((f"tensor parallel {c.tp * factor}", {"cluster.tp": c.tp * factor}))
        changes.append((f"pipeline parallel {c.pp * factor}", {"cluster.pp": c.pp * factor}))
    for factor in (2, 4):
        changes.append((f"{c.gpus * factor:,} GPUs with ZeRO stage 3",
                        {"cluster.gpus": c.gpus * factor, "training.zero_stage": 3}))
    return changes


REMEDIES = (Remedy("training.fits_memory", "training.memory_per_gpu_gb", _fit_changes),)
FAMILY = Family("training", INPUTS, MODEL_FIGURES + FIGURES + OPTIONAL_FIGURES, run, rules=ERRORS + WARNINGS, fields=FIELDS,
                sections=SECTIONS, remedies=REMEDIES,
                doc="FLOPs, memory, step time and ideal wall time (docs/training-model.md)")
