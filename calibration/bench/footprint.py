"""The bytes a prepared local point holds while it is resident, estimated from its step's shapes (before
anything is allocated), so a run can keep its interleaved group within a memory budget (`resident.Resident`).

An estimate is a map {part: bytes}: points that share a part (the weights of the GEMMs that differ only in m,
a model shared by the prefill and decode points of one shape) name the same key, so a part counts once however
many resident points hold it. Transient memory of a call (activations, outputs) is not counted: it is freed
when the call returns.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from calibration.bench.decoder import layer_params
from calibration.rows import Step
from calibration.timing import element_bytes

Footprint = dict[Hashable, int]


def gemm(step: Step) -> Footprint:
    """A[m,k] and C[m,n] of this point; B[k,n] shared by the points of the same (k, n, dtype, device)."""
    m, n, k = (int(step.params[x]) for x in ("m", "n", "k"))
    e = element_bytes(step.dtype)
    return {("gemm.a", step.key()): m * k * e, ("gemm.c", step.key()): m * n * e,
            ("gemm.b", k, n, step.dtype, step.device): k * n * e}


def block_fwd_bwd(step: Step) -> Footprint:
    """One encoder layer (QKV, output, 4h FFN: ~12h² weights) and its gradients, and the input and its gradient."""
    hidden, seq, batch = (int(step.params[x]) for x in ("hidden", "seq", "batch"))
    e = element_bytes(step.dtype)
    return {("block", step.key()): 2 * (12 * hidden * hidden + 13 * hidden) * e + 2 * batch * seq * hidden * e}


def moe_layer(step: Step) -> Footprint:
    """The router and the experts' weights (h·E, and E·3·h·f for gate, up and down), the tokens and the output."""
    tokens, experts, hidden, ffn = (int(step.params[x]) for x in ("tokens", "experts", "hidden", "expert_ffn"))
    e = element_bytes(step.dtype)
    return {("moe", step.key()): (hidden * experts + experts * 3 * hidden * ffn + 2 * tokens * hidden) * e}


def infer_linear(step: Step) -> Footprint:
    """The fp32 reference stack and its converted copy (shared by the batches of one shape and path), an input."""
    batch, hidden, layers = (int(step.params[x]) for x in ("batch", "hidden", "layers"))
    path, dtype = str(step.params.get("path") or ""), step.dtype or "fp32"
    weights = layers * (hidden * hidden + hidden)
    copy = 0 if dtype == "fp32" else weights * element_bytes(dtype)
    return {("infer_linear", step.device, path, dtype, hidden, layers): weights * 4 + copy,
            ("infer_linear.x", step.key()): 2 * batch * hidden * 4}


def _decoder(step: Step, cache_positions: int) -> Footprint:
    p = step.params
    layers, hidden, heads, vocab = int(p["layers"]), int(p["hidden"]), int(p["heads"]), int(p["vocab"])
    e = element_bytes(step.dtype)
    batch = int(p["batch"])
    model_key = ("decoder", step.device, step.dtype, layers, hidden, heads, vocab)
    return {model_key: (layer_params(layers, hidden) + 2 * vocab * hidden) * e,
            ("decoder.cache", step.key()): 2 * layers * batch * cache_positions * hidden * e}


def prefill(step: Step) -> Footprint:
    """The decoder (shared by its prefill and decode points) and a KV cache for the prompt."""
    return _decoder(step, int(step.params["prompt"]))


def decode(step: Step) -> Footprint:
    """The decoder (shared) and a KV cache of context + 1 positions."""
    return _decoder(step, int(step.params["context"]) + 1)


def prune_latency(step: Step) -> Footprint:
    """The layer's weight (shrunk: the rows kept), with a hook also its original and its mask, and an input."""
    hidden, batch = int(step.params["hidden"]), int(step.params["batch"])
    if step.params.get("method") == "l2_structured_shrunk":
        rows = max(1, round(hidden * (1.0 - float(step.params["sparsity"]))))
        return {("prune", step.key()): rows * hidden * 4 + batch * hidden * 4}
    copies = 3 if step.params.get("hook") else 1
    return {("prune", step.key()): copies * hidden * hidden * 4 + batch * hidden * 4}


_ESTIMATES: dict[str, Callable[[Step], Footprint]] = {
    "gemm": gemm, "block_fwd_bwd": block_fwd_bwd, "moe_layer": moe_layer, "infer_linear": infer_linear, "prefill": prefill,
    "decode": decode, "prune_latency": prune_latency,
}


def footprint(step: Step) -> Footprint:
    """{part: bytes} for a local point; a bench without an estimate counts as one part of 0 bytes (small)."""
    estimate = _ESTIMATES.get(step.bench)
    return estimate(step) if estimate is not None else {("other", step.key()): 0}
