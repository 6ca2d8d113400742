"""Goodput: the expected wall time of a training run on top of its ideal, as-if-nothing-fails wall time.

The training family gives `training.ideal_wall_days` = steps × step time. A real run also writes
checkpoints, loses work and time to failures and restarts, evaluates, and starts up once. This family
adds those, first order (Young 1974; Daly 2006), with every term in days:

    W        = ideal + eval                       work the job must do (training + evaluation)
    δ        = params · bytes/param / (GPUs · write bandwidth per GPU)     blocking write of one checkpoint
    λ        = failures per GPU-day · GPUs        failures per day of the whole job; MTBF M = 1/λ
    τ*       = sqrt(2·δ·M)                         Young/Daly optimum interval (used when the input is 0)
    τ        = min(τ* or the given interval, W)    an interval longer than the run = one final checkpoint;
                                                   at least 1 s, so that W/τ stays finite
    checkpoint = (W/τ)·δ
    failure    = λ·W·(τ/2 + restart)              each failure loses half an interval and a restart
    wall       = W + checkpoint + failure + warm-up,      goodput = ideal / wall

`τ*` minimises `wall` exactly under this model (d/dτ of W·(δ/τ + λτ/2) = 0). Failures are counted over
the work W only; failures during checkpoint writes, restarts and warm-up are second order and left out.
The formula is linear in λ, so it stays finite for any valid input; where the MTBF is shorter than a
checkpoint write plus a restart (λ·(δ + restart) > 1) the first-order model is optimistic (the true
expected time grows exponentially, Daly 2006's full model) and the warning rule `goodput_first_order`
says so. `goodput.enabled = false` returns the ideal wall time exactly (peak-throughput comparisons).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from simulator.registry import Columns, Family, FieldGroup, FigureSpec, Input, Rule, Section

MIN_PER_DAY = 1440.0
S_PER_DAY = 86400.0
GB = 1e9
MIN_INTERVAL_DAYS = 1.0 / S_PER_DAY  # checkpoints at most once a second: keeps W/τ finite for a 0+ interval

# Llama 3 (Dubey et al. 2024 §3.3.4): 419 unexpected interruptions in a 54-day snapshot on 16,384 H100s
LLAMA3_FAILURES_PER_1K_GPU_DAYS = 419.0 / (54.0 * 16384.0) * 1000.0  # = 0.4736
# Llama 3 (Dubey et al. 2024 §3.3.1): Tectonic sustains 2 TB/s of writes, shared by the 16,384 GPUs
LLAMA3_WRITE_GBPS_PER_GPU = 2000.0 / 16384.0  # = 0.1221

INPUTS: tuple[Input, ...] = (
    Input(
        key="goodput.enabled", kind="bool", label="Model goodput overheads",
        help="Add checkpoints, failures and restarts, evaluation and warm-up to the ideal wall time; "
             "switch off to compare with peak-throughput tables (wall time = steps × step time).",
        default=True, link="gon", column="goodput_enabled", provenance="assumed",
    ),
    Input(
        key="goodput.failures_per_1k_gpu_days", kind="float", label="Failures per 1,000 GPU-days",
        help="Job-interrupting failures per 1,000 GPU-days; the job's MTBF is 1/(rate × GPUs). Default "
             "0.474: 419 unexpected interruptions in 54 days on 16,384 H100s (Llama 3, Dubey et al. 2024 "
             "§3.3.4), i.e. one every 3.1 hours.",
        unit="per 1,000 GPU-days", low=0.0, high=100.0, default=round(LLAMA3_FAILURES_PER_1K_GPU_DAYS, 3),
        link="gfail", column="goodput_failures_per_1k_gpu_days", step=0.05, provenance="published", spread=0.5,
    ),
    Input(
        key="goodput.restart_min", kind="float", label="Restart time after a failure",
        help="Minutes from a failure to training again: detect the hang or error, drain and replace the "
             "node, reschedule, reload the last checkpoint. Assumed 15 min for an automated restart; "
             "a manual one takes hours.",
        unit="min", low=0.0, high=1440.0, default=15.0, link="grst",
        column="goodput_restart_min", step=1.0, provenance="assumed",
    ),
    Input(
        key="goodput.checkpoint_GBps_per_gpu", kind="float", label="Checkpoint write bandwidth per GPU",
        help="Storage write bandwidth each GPU gets while training waits for a checkpoint (the checkpoint "
             "is sharded over all GPUs). Default 0.122 GB/s: Llama 3's storage sustains 2 TB/s for "
             "16,384 GPUs (Dubey et al. 2024 §3.3.1); asynchronous checkpointing blocks only for the "
             "copy to host memory, ~10 GB/s.",
        unit="GB/s per GPU", low=0.001, high=100.0, default=round(LLAMA3_WRITE_GBPS_PER_GPU, 3),
        link="gbw", column="goodput_checkpoint_GBps_per_gpu", step=0.01, provenance="published",
    ),
    Input(
        key="goodput.checkpoint_bytes_per_param", kind="float", label="Checkpoint bytes per parameter",
        help="Bytes saved per model parameter. Default 14: 2-byte bf16 weights plus K = 12 bytes of fp32 "
             "master weights, Adam momentum and variance (ZeRO, Rajbhandari et al. 2020 §3); gradients "
             "are not saved. Weights only: 2.",
        unit="bytes/parameter", low=0.5, high=32.0, default=14.0, link="gckb",
        column="goodput_checkpoint_bytes_per_param", step=1.0, provenance="published",
    ),
    Input(
        key="goodput.checkpoint_interval_min", kind="float", label="Checkpoint interval",
        help="Minutes of training between checkpoints; 0 uses the Young/Daly optimum sqrt(2 × write time "
             "× MTBF) (Young 1974; Daly 2006). Longer than the run: one final checkpoint; below 1 s counts as 1 s.",
        unit="min", low=0.0, high=10080.0, default=0.0, link="gint",
        column="goodput_checkpoint_interval_min", step=5.0, provenance="assumed",
    ),
    Input(
        key="goodput.eval_share", kind="float", label="Evaluation time share",
        help="Time spent on evaluation, as a fraction of the ideal training time. Assumed 0.01 "
             "(a few minutes of held-out evaluation every few hours).",
        unit="fraction", low=0.0, high=0.5, default=0.01, link="geval",
        column="goodput_eval_share", step=0.005, provenance="assumed",
    ),
    Input(
        key="goodput.warmup_h", kind="float", label="Job start-up",
        help="Hours spent once at the start: scheduling, container and NCCL start, compilation, first "
             "checkpoint load, data-loader warm-up. Assumed 0.5 h; restarts after failures are in the "
             "restart time.",
        unit="h", low=0.0, high=168.0, default=0.5, link="gwarm",
        column="goodput_warmup_h", step=0.25, provenance="assumed",
    ),
)

_HOW_TERMS = "W = ideal·(1 + eval share), δ = params·bytes/(GPUs·bandwidth), λ = rate·GPUs"

FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        key="training.wall_days", label="Expected wall time", unit="days",
        how="W + (W/τ)·δ + λ·W·(τ/2 + restart) + warm-up, first order (Young 1974; Daly 2006); "
            f"{_HOW_TERMS}; the ideal wall time when goodput is off",
        better="lower", ranged=True,
    ),
    FigureSpec(
        key="training.goodput", label="Goodput", unit="fraction",
        how="ideal wall time / expected wall time (1 when goodput is off)",
        better="higher",
    ),
    FigureSpec(
        key="training.checkpoint_days", label="Checkpoint writes", unit="days",
        how=f"(W/τ)·δ: W/τ checkpoints of δ each (Young 1974); {_HOW_TERMS}",
        better="lower",
    ),
    FigureSpec(
        key="training.failure_days", label="Failures: lost work and restarts", unit="days",
        how="λ·W·(τ/2 + restart): λ·W failures, each losing half an interval and a restart (Young 1974; "
            "Daly 2006 first-order model)",
        better="lower",
    ),
    FigureSpec(
        key="training.eval_days", label="Evaluation", unit="days",
        how="eval share × ideal wall time", better="lower",
    ),
    FigureSpec(
        key="training.warmup_days", label="Job start-up", unit="days",
        how="start-up hours / 24, once per run", better="lower",
    ),
    FigureSpec(
        key="training.checkpoint_interval_min", label="Checkpoint interval", unit="min",
        how="the given interval, or τ* = sqrt(2·δ·M) with M = 1/λ (Young 1974; Daly 2006), at most the run "
            "W and at least 1 s; 0 when goodput is off",
        better=None,
    ),
    FigureSpec(
        key="training.failures", label="Expected failures", unit="failures",
        how="λ·W = failures per GPU-day × GPUs × work days (Dubey et al. 2024 §3.3.4 for the rate)",
        better="lower",
    ),
    FigureSpec(
        key="training.checkpoint_write_s", label="Checkpoint write time", unit="s",
        how="δ = params × bytes/param / (GPUs × write GB/s per GPU × 1e9)",
        better="lower", chart=False,
    ),
)


def _f(cols: Columns, key: str) -> np.ndarray:
    return np.asarray(cols[key], dtype=np.float64)


def run(cols: Columns) -> dict[str, np.ndarray]:
    """Expected wall time and its breakdown for N rows at once (scalars give 0-d arrays)."""
    ideal, gpus, params, on, rate_k, restart_min, bw, bpp, interval_min, eval_share, warmup_h = (
        np.broadcast_arrays(*(_f(cols, k) for k in (
            "training.ideal_wall_days", "gpus", "params", "goodput_enabled",
            "goodput_failures_per_1k_gpu_days", "goodput_restart_min", "goodput_checkpoint_GBps_per_gpu",
            "goodput_checkpoint_bytes_per_param", "goodput_checkpoint_interval_min", "goodput_eval_share",
            "goodput_warmup_h"))))
    enabled = on != 0.0
    # job failure rate λ = per-GPU rate × GPUs: independent failures in series (Young 1974, MTBF M = 1/λ)
    lam = rate_k / 1000.0 * gpus
    # blocking write δ of the sharded model state: weights + Adam state, K = 12 (Rajbhandari et al. 2020 §3)
    delta_s = params * bpp / (np.maximum(gpus, 1.0) * bw * GB)
    delta = delta_s / S_PER_DAY
    restart = restart_min / MIN_PER_DAY
    eval_days = eval_share * ideal  # evaluation as a share of the ideal time (definition, no paper)
    work = ideal + eval_days  # Young 1974's T_s, the failure-free solve time: training plus evaluation
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # λ → 0: τ* → inf, then capped at W
        # Young 1974: optimum interval T_c = sqrt(2·T_s·T_f); Daly 2006 first-order model: τ* = sqrt(2δM)
        tau_opt = np.where(lam > 0.0, np.sqrt(2.0 * delta / np.where(lam > 0.0, lam, 1.0)), np.inf)
    tau = np.where(interval_min > 0.0, interval_min / MIN_PER_DAY, tau_opt)
    # at most the run (the last checkpoint ends it), at least one second (finite checkpoint count)
    tau = np.maximum(np.minimum(tau, work), MIN_INTERVAL_DAYS)
    # Young 1974: checkpoint overhead = (work/τ) checkpoints × δ each
    ckpt_days = work / tau * delta
    failures = lam * work
    # Young 1974 / Daly 2006 first order: each failure loses τ/2 of work (uniform failure time) plus restart R
    failure_days = failures * (0.5 * tau + restart)
    warmup_days = warmup_h / 24.0  # one-off job start-up (definition; restarts are in R)
    # Daly 2006 first-order total: T_w = T_s + checkpoints + failures × (τ/2 + R), plus one-off start-up
    expected = work + ckpt_days + failure_days + warmup_days
    # the goodput model's own error (simulator/model_error.py) scales expected ÷ ideal; 1 in a plan. Its low side
    # stops at the ideal time: a run takes at least its steps (goodput ≤ 1, Dubey et al. 2024 §3.3.4)
    err = np.asarray(cols.get("model_err_goodput", 1.0), dtype=np.float64)
    wall = np.where(enabled, np.maximum(ideal, expected * err), ideal)
    zero = np.zeros_like(ideal)
    # goodput = ideal / expected, Dubey et al. 2024 §3.3.4's "effective training time"; 1 where both are 0
    with np.errstate(divide="ignore", invalid="ignore"):
        goodput = np.where(wall > 0.0, ideal / np.where(wall > 0.0, wall, 1.0), 1.0)
    return {
        "training.wall_days": wall,
        "training.goodput": np.where(enabled, goodput, 1.0),
        "training.checkpoint_days": np.where(enabled, ckpt_days, zero),
        "training.failure_days": np.where(enabled, failure_days, zero),
        "training.eval_days": np.where(enabled, eval_days, zero),
        "training.warmup_days": np.where(enabled, warmup_days, zero),
        "training.checkpoint_interval_min": np.where(enabled, tau * MIN_PER_DAY, zero),
        "training.failures": np.where(enabled, failures, zero),
        "training.checkpoint_write_s": np.where(enabled, delta_s, zero),
    }


def _first_order_broken(cols: Columns) -> np.ndarray:
    """MTBF shorter than one checkpoint write plus one restart: λ·(δ + R) > 1."""
    gpus = _f(cols, "gpus")
    lam = _f(cols, "goodput_failures_per_1k_gpu_days") / 1000.0 * gpus
    delta = (_f(cols, "params") * _f(cols, "goodput_checkpoint_bytes_per_param")
             / (np.maximum(gpus, 1.0) * _f(cols, "goodput_checkpoint_GBps_per_gpu") * GB) / S_PER_DAY)
    restart = _f(cols, "goodput_restart_min") / MIN_PER_DAY
    return (_f(cols, "goodput_enabled") != 0.0) & (lam * (delta + restart) > 1.0)


def _first_order_message(row: Mapping[str, float]) -> str:
    gpus = float(row["gpus"])
    lam = float(row["goodput_failures_per_1k_gpu_days"]) / 1000.0 * gpus
    mtbf_min = MIN_PER_DAY / lam if lam > 0 else float("inf")
    delta_min = (float(row["params"]) * float(row["goodput_checkpoint_bytes_per_param"])
                 / (max(gpus, 1.0) * float(row["goodput_checkpoint_GBps_per_gpu"]) * GB) / 60.0)
    return (f"The job fails every {mtbf_min:.3g} min on average, less than one checkpoint write plus a restart "
            f"({delta_min:.3g} + {float(row['goodput_restart_min']):.3g} min): the first-order goodput model "
            "is optimistic here. Lower the failure rate or the restart time, write checkpoints faster, or "
            "use fewer GPUs.")


RULES: tuple[Rule, ...] = (
    Rule(
        key="goodput.failures_per_1k_gpu_days",
        short="MTBF below checkpoint write + restart: goodput estimate optimistic",
        broken=_first_order_broken,
        message=_first_order_message,
        severity="warning",
        code="goodput_first_order",
    ),
)

SECTIONS = (
    Section(("train",), "Wall time", ("training.wall_days",), headline=True, order=1),
    Section(("decide",), "Wall time", ("training.wall_days",), headline=True, order=5),
    Section(("train",), "Goodput", ("training.goodput",), headline=True, order=3),
)

FAMILY = Family(
    name="goodput",
    fields=(FieldGroup("train", "Goodput", tuple(inp.key for inp in INPUTS), order=13),),
    sections=SECTIONS,
    inputs=INPUTS,
    figures=FIGURES,
    run=run,
    rules=RULES,
    needs=("training",),
    doc=(
        "Expected wall time on top of the ideal step time: checkpoint writes at the Young/Daly optimum "
        "interval, failures (lost half-interval plus restart), evaluation and job start-up, first order "
        "(Young 1974; Daly 2006), with failure rate and storage bandwidth from Llama 3 (Dubey et al. 2024). "
        "`goodput.enabled = false` gives the as-if-nothing-fails wall time."
    ),
)
