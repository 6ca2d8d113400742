"""Rules relating the serving inputs and figures, each written once on columns: the layout's errors (tensor and
expert parallelism) and the warnings of a replica that does not fit, misses its targets or lacks an FP4 unit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from simulator.compression.constants import FORMATS
from simulator.families.serving_inputs import INPUTS
from simulator.registry import Columns, Rule
from simulator.serving.bits import precision_bits


def fp4_wanted(c: Columns, w_bits: np.ndarray, a_bits: np.ndarray) -> np.ndarray:
    """4-bit floating-point weights and activations (NVFP4, MXFP4 W4A4): GEMMs for an FP4 tensor core (B200)."""
    fp = np.asarray(c.get("quant_format", np.nan)) == float(FORMATS.index("fp"))
    return fp & (w_bits <= 4.0) & (a_bits <= 4.0)


def has_fp4(c: Columns) -> np.ndarray:
    return np.isfinite(np.asarray(c["serving_hw_peak_fp4_tflops"], dtype=float))


def _no_fit(c: Columns) -> np.ndarray:
    return np.asarray(c["serving.max_batch"]) < 1


def _batch_too_big(c: Columns) -> np.ndarray:
    given, fits = np.asarray(c["serving_batch"]), np.asarray(c["serving.max_batch"])
    return (given > 0) & (fits >= 1) & (given > fits)


def _batch_message(r: Mapping[str, Any]) -> str:
    batch, replica = _INPUT["serving.batch"], _INPUT["serving.gpus_per_replica"]
    fits, gpus = int(r["serving.max_batch"]), int(r["gpus_per_replica"])
    context = int(r["prompt_tokens"] + r["output_tokens"])
    return (f"{batch.label} of {int(r['serving_batch']):,} {batch.unit} does not fit in memory: at most {fits:,} fit "
            f"({gpus:,} GPU{'s' if gpus > 1 else ''} of {r['serving_hw_hbm_GB']:g} GB per replica, {context:,} tokens "
            f'a request). Give a {batch.label.lower()} of at most {fits:,} or "max", or raise {replica.label}')


_INPUT = {inp.key: inp for inp in INPUTS}
def _divisors(n: float) -> str:
    """The divisors of n, for a message ("1, 2, 4 or 8")."""
    ds = [d for d in range(1, int(n) + 1) if int(n) % d == 0]
    return ", ".join(str(d) for d in ds[:-1]) + f" or {ds[-1]}" if len(ds) > 1 else str(ds[0])


def _common_divisors(a: float, b: float) -> str:
    g = int(np.gcd(int(a), int(b)))
    return _divisors(g)


def _no_fp4(c: Columns) -> np.ndarray:
    w_bits, a_bits, _ = precision_bits(c)
    return fp4_wanted(c, w_bits, a_bits) & ~has_fp4(c)


RULES = (
    Rule("serving.gpus_per_replica", "serving.gpus_per_replica must divide the attention heads",
         lambda c: (np.asarray(c["attention_dp"]) == 0) & (np.mod(c["heads"], c["gpus_per_replica"]) != 0),
         lambda r: (f"serving.gpus_per_replica = {r['serving.gpus_per_replica']:g}: tensor parallelism splits the "
                    f"{r['heads']:g} attention heads evenly; use a divisor of the heads, or set "
                    "serving.attention_dp = true (each GPU then holds the whole attention)")),
    Rule("serving.ep", "serving.ep must divide serving.gpus_per_replica",
         lambda c: np.mod(c["gpus_per_replica"], c["serving_ep"]) != 0,
         lambda r: (f"serving.ep = {r['serving.ep']:g}: expert parallelism splits the replica's "
                    f"{r['gpus_per_replica']:g} GPUs (serving.gpus_per_replica) into equal groups; use a divisor of "
                    f"{r['gpus_per_replica']:g} ({_divisors(r['gpus_per_replica'])}), or change "
                    "serving.gpus_per_replica")),
    Rule("serving.ep", "serving.ep needs a mixture-of-experts model",
         lambda c: (np.asarray(c["moe_experts"]) == 0) & (np.asarray(c["serving_ep"]) > 1),
         lambda r: (f"serving.ep = {r['serving.ep']:g}, but the model has no routed experts (model.moe_experts = 0): "
                    "expert parallelism needs a mixture-of-experts model; set serving.ep = 1 or give "
                    "model.moe_experts")),
    Rule("serving.ep", "serving.ep must divide the routed experts",
         lambda c: (np.asarray(c["moe_experts"]) > 0) & (np.mod(c["moe_experts"], c["serving_ep"]) != 0),
         lambda r: (f"serving.ep = {r['serving.ep']:g}: the {r['moe_experts']:g} routed experts "
                    "(model.moe_experts) must split evenly over the expert-parallel GPUs; use a divisor of both "
                    f"{r['moe_experts']:g} and serving.gpus_per_replica = {r['gpus_per_replica']:g} "
                    f"({_common_divisors(r['moe_experts'], r['gpus_per_replica'])})")),
    Rule("serving.gpus_per_replica", "the weights and one request's KV cache do not fit in a replica", _no_fit,
         lambda r: (f"serving: {r['serving.weights_gb']:.3g} GB of weights per GPU and one request's KV cache do "
                    f"not fit in {r['gpus_per_replica']:g} × {r['serving_hw_hbm_GB']:g} GB: raise "
                    "serving.gpus_per_replica, shorten the requests, or use fewer weight bits (compression)"),
         "warning", "serving_no_fit"),
    Rule("compression.act_bits", "no FP4 unit: 4-bit GEMMs timed at the FP8 peak", _no_fp4,
         lambda r: (f"serving: 4-bit floating-point weights and activations need an FP4 tensor core, which "
                    f"serving.accelerator = {r['serving.accelerator']} does not have (no fp4 peak in the catalog): "
                    "the matrix multiplies are timed at its FP8 peak and the weights stay 4-bit in memory. Choose "
                    "an accelerator with FP4 (B200), or set compression.act_bits = 8 to say what runs"),
         "warning", "serving_no_fp4"),
    Rule("serving.tpot_target_s", "no batch meets the latency targets",
         lambda c: ~_no_fit(c) & (np.asarray(c["serving_meets_targets"]) < 1),
         lambda r: ("serving: no batch meets the targets (TTFT ≤ "
                    f"{r['serving.ttft_target_s']:g} s, time per token ≤ {r['serving.tpot_target_s']:g} s"
                    + (f" at batch {r['serving.batch']}" if r["serving_batch"] > 0 else "")
                    + "): relax a target, give a smaller batch, add GPUs per replica, or choose a faster accelerator"),
         "warning", "serving_targets"),
    Rule("serving.batch", "the batch does not fit in memory", _batch_too_big, _batch_message, "warning",
         "serving_batch_no_fit"),
)

