"""One mixture-of-experts FFN forward (inference-style, no backward): router GEMM, softmax and top-k, dispatch
(token copies sorted by expert), the experts' SwiGLU GEMMs run grouped, and the weighted combine.

The experts run as `torch._grouped_mm` (one call over every expert's rows, as torchtitan's MoE does) where that
kernel runs for this device and dtype (checked on a tiny call when the point is prepared), else as a loop over the
experts of per-expert GEMMs (Mixtral's and Switch Transformer's reference loop); `extra.expert_gemms` says which.
The row's `flops` are the expert GEMMs' (6·tokens·top_k·hidden·ffn); `bytes` are what the router, the permute, the
SwiGLU activation and the combine move (simulator.profile_models.moe_layer_inventory, with its breakdown in
`extra`). Expert shapes: `tokens`·`top_k`/`experts` rows each, routed by a random router on random tokens, so
the loads are near even (`extra.max_load_ratio`: the busiest expert's rows over the mean).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from calibration.bench.base import Measurement, Prepared, SkipBench, device_of, measure
from calibration.rows import Step
from calibration.timing import TimingConfig, element_bytes, torch_dtype
from simulator.profile_models import moe_expert_flops, moe_layer_inventory

MOE_PARAMS = ("tokens", "experts", "top_k", "hidden", "expert_ffn")


def moe_layer(step: Step, cfg: TimingConfig) -> Measurement:
    return measure(prepare_moe_layer(step), cfg)


def moe_counts(tokens: int, experts: int, top_k: int, hidden: int, expert_ffn: int,
               dtype: str | None) -> tuple[float, dict[str, float]]:
    """(expert GEMM flops, {router/permute/activation/combine bytes}) of one forward, as the row records them."""
    _, moved = moe_layer_inventory(tokens, experts, top_k, hidden, expert_ffn, element_bytes(dtype))
    return float(moe_expert_flops(tokens, top_k, hidden, expert_ffn)), {k: float(v) for k, v in moved.items()}


def _grouped_mm() -> Callable[..., torch.Tensor] | None:
    return getattr(torch, "_grouped_mm", None)


def grouped_mm_works(device: str, dtype: torch.dtype) -> bool:
    """Whether torch._grouped_mm runs here for `dtype` (a private op: CUDA with bf16 on recent GPUs; a CPU build may
    or may not carry a kernel), tried on a tiny problem against the per-expert loop."""
    fn = _grouped_mm()
    if fn is None:
        return False
    try:
        a = torch.randn(16, 16, device=device).to(dtype)
        b = torch.randn(2, 16, 16, device=device).to(dtype)
        offs = torch.tensor([8, 16], device=device, dtype=torch.int32)
        out = fn(a, b, offs=offs)
        ref = torch.cat([a[:8] @ b[0], a[8:] @ b[1]])
        return bool(torch.allclose(out.float(), ref.float(), rtol=5e-2, atol=5e-2))
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        return False


def prepare_moe_layer(step: Step) -> Prepared:
    device = device_of(step)
    if step.dtype == "fp16" and device == "cpu":
        raise SkipBench("fp16 MoE layer is measured on GPU only")
    tokens, experts, top_k, hidden, ffn = (int(step.params[x]) for x in MOE_PARAMS)
    if not 1 <= top_k <= experts:
        raise SkipBench(f"top_k={top_k} needs 1 <= top_k <= experts={experts}")
    dtype = torch_dtype(step.dtype)
    gen = torch.Generator(device="cpu").manual_seed(0)
    scale = hidden ** -0.5

    def rand(*shape: int, s: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * s).to(device=device, dtype=dtype)

    x = rand(tokens, hidden)
    w_router = rand(hidden, experts, s=scale)
    w13 = rand(experts, hidden, 2 * ffn, s=scale)  # gate and up, fused
    w2 = rand(experts, ffn, hidden, s=ffn ** -0.5)
    grouped = grouped_mm_works(device, dtype)
    out = torch.empty(tokens, hidden, device=device, dtype=dtype)

    def experts_loop(xs: torch.Tensor, counts: list[int]) -> torch.Tensor:
        ys = torch.empty(xs.shape[0], hidden, device=device, dtype=dtype)
        start = 0
        for e, n in enumerate(counts):
            if n:
                g, u = (xs[start:start + n] @ w13[e]).chunk(2, dim=-1)
                torch.matmul(torch.nn.functional.silu(g) * u, w2[e], out=ys[start:start + n])
            start += n
        return ys

    def experts_grouped(xs: torch.Tensor, counts_t: torch.Tensor) -> torch.Tensor:
        offs = torch.cumsum(counts_t, 0).to(torch.int32)
        g, u = _grouped_mm()(xs, w13, offs=offs).chunk(2, dim=-1)
        return _grouped_mm()(torch.nn.functional.silu(g) * u, w2, offs=offs)

    def run() -> torch.Tensor:
        logits = x @ w_router  # router GEMM
        probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        weights, ids = torch.topk(probs, top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        flat = ids.reshape(-1)
        order = torch.argsort(flat, stable=True)  # dispatch: the token copies sorted by expert
        token_of = order // top_k
        xs = x.index_select(0, token_of)
        counts_t = torch.bincount(flat, minlength=experts)
        ys = experts_grouped(xs, counts_t) if grouped else experts_loop(xs, counts_t.tolist())
        ys = ys * weights.reshape(-1)[order].unsqueeze(-1).to(dtype)  # combine: weighted scatter-add back
        out.zero_()
        out.index_add_(0, token_of, ys)
        return out

    with torch.inference_mode():
        probe_ids = torch.topk(x @ w_router, top_k, dim=-1).indices.reshape(-1)
        loads = torch.bincount(probe_ids, minlength=experts).float()
    max_load_ratio = float(loads.max() / loads.mean())
    flops, moved = moe_counts(tokens, experts, top_k, hidden, ffn, step.dtype)

    def done(times_s: list[float]) -> Measurement:
        return Measurement(times_s, flops=flops, bytes=sum(moved.values()),
                           extra={**moved, "expert_gemms": "grouped_mm" if grouped else "loop",
                                  "router_flops": 2.0 * tokens * hidden * experts, "max_load_ratio": max_load_ratio,
                                  "pass": "forward"})

    return Prepared(run, device, done, mode=torch.inference_mode)
