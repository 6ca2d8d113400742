"""Training time model: scenario columns in, result columns out, every row at once (no Python loop).

GPU-hours, cost, energy and CO2 are the cost family's (simulator/families/cost.py), on the expected wall time."""

from collections.abc import Mapping

import numpy as np

import simulator.architecture as arch
from simulator.data_order import COLUMNS as DATA_ORDER_COLUMNS

from .constants import DEFAULT_CONSTANTS, TrainingConstants
from .flops import flops_per_token
from .memory import activation_gb, model_state_gb
from .moe import activation_delta_bytes, flops_delta_per_token, moe_fraction
from .rows import unique_rows
from .step import step_times
from .sync import updates_multiplier

INPUT_KEYS = (
    "layers", "hidden", "heads", "kv_heads", "ffn_hidden", "glu", "vocab", "seq_len", "params",
    "tokens", "global_batch", "micro_batch", "recompute", "zero_stage", "sequence_parallel", "interleave",
    "param_bytes", "act_bytes",
    "gpus", "gpus_per_node", "tp", "pp", "dp", "sync", "ps_servers", "async_kappa", "straggler_cv",
    "sharding", "dp_overlap",
    "peak_tflops", "hbm_GB", "hbm_GBps", "intra_GBps", "intra_latency_s", "inter_GBps", "inter_latency_s",
    "tdp_W",
)
# optional inputs beyond the contract, with the value used when a caller leaves them out
# (None: the TrainingConstants field of the same name)
OPTIONAL_INPUTS = {
    "flash_attention": 0.0,  # 1: fused attention kernel (Dao 2022), no s² scores in HBM or memory
    "gemm_eff_max": None,    # per-row calibrated large-GEMM efficiency (fraction of peak_tflops)
    "gemm_dim_half": None,   # per-row calibrated d½ of the GEMM efficiency curve (efficiency.py)
    "hbm_eff": None,         # per-row calibrated fraction of hbm_GBps reached by elementwise kernels
    # blocks on the first / last pipeline stage (Megatron-LM --decoder-first/last-pipeline-num-layers);
    # NaN: even when pp divides the layers, else balanced by the planner (layout.stage_split)
    "first_stage_layers": np.nan,
    "last_stage_layers": np.nan,
    # the step model's own error (simulator/model_error.py): 1 in a plan, moved by the ranges and the Monte Carlo
    "model_err_train_step": 1.0,
    "model_err_train_moe": 1.0,    # and a mixture-of-experts model's on top of it (1 for a dense model)
    # the shape beyond a dense MHA/GQA model (simulator/architecture.py; these values: today's dense model)
    **arch.SHAPE_DEFAULTS,
    "ep": 1.0, "cp": 1.0,          # expert- and context-parallel GPUs
    "moe_imbalance": 1.0,          # busiest expert-parallel rank's tokens / the mean
    "moe_capacity": 0.0,           # capacity factor; 0 = dropless
    "a2a_eff": None,               # all-to-all busbw / all-reduce busbw (calibrated, else the constant)
    "moe_gemm_eff": None,          # grouped expert GEMM efficiency relative to dense (calibrated, else the constant)
    "attn_peak_tflops": np.nan,    # the attention core's peak (fp8 training: bf16's); NaN: peak_tflops
    "gemm_fp8": 0.0,               # 1 where the GEMMs run in fp8 (their inputs are cast)
    # a calibrated device's measured data-order effect (simulator/data_order.py); NaN: the assumed constant
    **dict.fromkeys(DATA_ORDER_COLUMNS, np.nan),
}

CHUNK_ROWS = 8192
NOT_IN_STEP = ("tokens",)  # how many steps, never a step's time or memory
PER_TOKEN = ("flops_total", "flops_total_hw", "iterations", "wall_days")  # the outputs proportional to the tokens
ALIKE_MIN_ROWS = 64  # fewer rows than this are evaluated as they come (finding the alike ones would cost more)

OUTPUT_KEYS = (
    "flops_per_token_model", "flops_total", "flops_total_hw", "step_time_s", "compute_s", "tp_comm_s",
    "pp_bubble_s", "pp_p2p_s", "dp_exposed_s", "straggler_s", "iterations", "tokens_per_s",
    "tokens_per_s_per_gpu",
    "tflops_per_gpu", "hw_tflops_per_gpu", "mfu", "hfu", "wall_days", "mem_weights_gb", "mem_grads_gb", "mem_optimizer_gb", "mem_activations_gb",
    "memory_per_gpu_gb", "fits_memory", "gemm_efficiency",
    "first_stage_layers", "last_stage_layers", "microbatches", "batch_idle_fraction", "a2a_s", "cp_comm_s",
)


def _columns(c: Mapping[str, np.ndarray], k: TrainingConstants = DEFAULT_CONSTANTS,
             one_token: bool = False) -> dict[str, np.ndarray]:
    """The model's input columns, broadcast to one length; `one_token`: every row at one training token (the
    NOT_IN_STEP columns are not read)."""
    missing = [key for key in INPUT_KEYS if key not in c and not (one_token and key in NOT_IN_STEP)]
    if missing:
        raise KeyError(f"training_columns: missing input columns {missing}")
    defaults = {key: getattr(k, key) if v is None else v for key, v in OPTIONAL_INPUTS.items()}
    keys = INPUT_KEYS + tuple(OPTIONAL_INPUTS)
    arrays = [np.float64(1.0) if one_token and key in NOT_IN_STEP else
              np.asarray(c.get(key, defaults.get(key)), dtype=np.float64) for key in keys]
    out = dict(zip(keys, (a.ravel() for a in np.broadcast_arrays(*np.atleast_1d(*arrays))), strict=True))
    out["attn_peak_tflops"] = np.where(np.isnan(out["attn_peak_tflops"]), out["peak_tflops"], out["attn_peak_tflops"])
    return out


def training_columns(c: Mapping[str, np.ndarray],
                     k: TrainingConstants = DEFAULT_CONSTANTS) -> dict[str, np.ndarray]:
    """Evaluate the training cost model on N scenarios given as broadcastable numpy columns.

    Long inputs are evaluated in blocks of CHUNK_ROWS rows so that temporaries stay in cache; every
    block is itself one vectorised pass (no Python loop over rows).
    """
    c = _columns(c, k)
    n = c["layers"].size
    if n <= CHUNK_ROWS:
        return _evaluate(c, k)
    out = None
    for start in range(0, n, CHUNK_ROWS):
        part = _evaluate({key: v[start:start + CHUNK_ROWS] for key, v in c.items()}, k)
        if out is None:
            out = {key: np.empty(n, dtype=v.dtype) for key, v in part.items()}
        for key, v in part.items():
            out[key][start:start + CHUNK_ROWS] = v
    return out


def step_columns(c: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The columns a step's time and memory depend on that vary between rows (all but NOT_IN_STEP)."""
    return [v for key, v in c.items() if key not in NOT_IN_STEP and v.size and not np.all(v == v[0])] or [c["layers"]]


def training_per_token(c: Mapping[str, np.ndarray],
                       k: TrainingConstants = DEFAULT_CONSTANTS) -> dict[str, np.ndarray]:
    """`training_columns` of every row at one training token, reading no NOT_IN_STEP column: a step's time and memory
    as they are, the outputs proportional to the tokens (PER_TOKEN) per token. Rows alike (a sweep over the
    tokens) are evaluated once."""
    c = _columns(c, k, one_token=True)
    n = c["layers"].size
    if n < ALIKE_MIN_ROWS:
        return training_columns(c, k)
    first, inverse = unique_rows(step_columns(c))
    if first.size > n // 2:
        return training_columns(c, k)
    out = training_columns({key: v[first] for key, v in c.items()}, k)
    return {key: v[inverse] for key, v in out.items()}


def per_run(per_token: Mapping[str, np.ndarray], tokens: np.ndarray) -> dict[str, np.ndarray]:
    """The outputs proportional to the tokens (PER_TOKEN) of a run of `tokens`, from their values per token."""
    tokens = np.asarray(tokens, dtype=np.float64)
    return {key: per_token[key] * tokens for key in PER_TOKEN}


def _evaluate(c: dict[str, np.ndarray], k: TrainingConstants) -> dict[str, np.ndarray]:
    shape = (c["layers"], c["hidden"], c["heads"], c["kv_heads"], c["ffn_hidden"], c["glu"], c["vocab"],
             c["seq_len"])
    moe = bool(np.any(c["moe_experts"] > 0))
    # every row MHA/GQA of width hidden/heads: the dense formulas apply as written (step.py, layer.py read this too)
    c["_all_standard"] = bool(np.all(arch.standard_attention(c)))
    delta_fwd = flops_delta_per_token(c) if moe or not c["_all_standard"] else 0.0
    fpt_model, fpt_hw = flops_per_token(*shape, c["recompute"], c["flash_attention"], delta_fwd)
    st = step_times(c, k)
    step_s = st.step_time_s * c["model_err_train_step"]
    if moe:  # a dense row's step is the dense step's error alone (bit for bit)
        step_s = step_s * np.where(c["moe_experts"] > 0, c["model_err_train_moe"], 1.0)

    tokens_per_step = c["global_batch"] * c["seq_len"]
    extra_updates = updates_multiplier(c["sync"], c["dp"], c["async_kappa"], c["sharding"], k,
                                       measured={n: c[n] for n in DATA_ORDER_COLUMNS})
    iterations = c["tokens"] / tokens_per_step * extra_updates
    wall_s = iterations * step_s
    tokens_per_s = tokens_per_step / step_s
    gpus, peak = c["gpus"], c["peak_tflops"]
    tflops = tokens_per_s * fpt_model / gpus / 1e12
    hw_tflops = tokens_per_s * fpt_hw / gpus / 1e12

    m = st.microbatches
    # routed experts split over tp·ep·pp, their states sharded over the dp/ep expert-data-parallel GPUs
    routed = arch.routed_expert_params(c) if moe else 0.0
    w_gb, g_gb, o_gb = model_state_gb(c["params"] - routed, c["tp"], c["pp"], c["dp"], c["zero_stage"],
                                      c["param_bytes"])
    if moe:
        ew, eg, eo = model_state_gb(routed, c["tp"] * c["ep"], c["pp"], c["dp"] / c["ep"], c["zero_stage"],
                                    c["param_bytes"])
        w_gb, g_gb, o_gb = w_gb + ew, g_gb + eg, o_gb + eo
    a_gb = activation_gb(c["layers"], c["seq_len"], c["micro_batch"], c["hidden"], c["heads"], c["kv_heads"],
                         c["ffn_hidden"], c["glu"], c["vocab"], c["tp"], c["pp"], c["interleave"], m,
                         c["sequence_parallel"], c["recompute"], c["act_bytes"], c["flash_attention"], k,
                         st.first_stage_layers, st.last_stage_layers, cp=c["cp"],
                         extra_layer_bytes=(moe_fraction(c) * activation_delta_bytes(c, c["micro_batch"], c["act_bytes"])
                                            if moe else None))
    mem_gb = w_gb + g_gb + o_gb + a_gb

    return {
        "flops_per_token_model": fpt_model,
        "flops_total": fpt_model * c["tokens"],
        "flops_total_hw": fpt_hw * c["tokens"] * extra_updates,
        "step_time_s": step_s,
        "compute_s": st.compute_s,
        "tp_comm_s": st.tp_comm_s,
        "pp_bubble_s": st.pp_bubble_s,
        "pp_p2p_s": st.pp_p2p_s,
        "dp_exposed_s": st.dp_exposed_s,
        "straggler_s": st.straggler_s,
        "iterations": iterations,
        "tokens_per_s": tokens_per_s,
        "tokens_per_s_per_gpu": tokens_per_s / gpus,
        "tflops_per_gpu": tflops,
        "hw_tflops_per_gpu": hw_tflops,
        "mfu": tflops / peak,
        "hfu": hw_tflops / peak,
        "wall_days": wall_s / 86400.0,
        "mem_weights_gb": w_gb,
        "mem_grads_gb": g_gb,
        "mem_optimizer_gb": o_gb,
        "mem_activations_gb": a_gb,
        "memory_per_gpu_gb": mem_gb,
        "fits_memory": mem_gb <= c["hbm_GB"],
        "gemm_efficiency": st.gemm_efficiency,
        "first_stage_layers": st.first_stage_layers,
        "last_stage_layers": st.last_stage_layers,
        "microbatches": m,
        "batch_idle_fraction": st.batch_idle_fraction,
        "a2a_s": st.a2a_s + np.zeros_like(step_s),
        "cp_comm_s": st.cp_comm_s + np.zeros_like(step_s),
    }
