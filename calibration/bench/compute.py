"""Compute: a GEMM sweep and forward+backward of a transformer block."""

from __future__ import annotations

import torch
from torch import nn

from calibration.bench.base import Measurement, SkipBench, device_of
from calibration.rows import Step
from calibration.timing import TimingConfig, element_bytes, time_fn, torch_dtype


def gemm(step: Step, cfg: TimingConfig) -> Measurement:
    """C[m,n] = A[m,k] @ B[k,n]; flops = 2mnk, bytes = the three operands once."""
    device = device_of(step)
    if step.dtype == "fp16" and device == "cpu":
        raise SkipBench("fp16 GEMM is measured on GPU only")
    m, n, k = (int(step.params[x]) for x in ("m", "n", "k"))
    dtype = torch_dtype(step.dtype)
    a = torch.rand(m, k, device=device, dtype=dtype)
    b = torch.rand(k, n, device=device, dtype=dtype)
    c = torch.empty(m, n, device=device, dtype=dtype)
    times_s = time_fn(lambda: torch.matmul(a, b, out=c), device, cfg)
    operand_bytes = (m * k + k * n + m * n) * element_bytes(step.dtype)
    return Measurement(times_s, flops=2.0 * m * n * k, bytes=float(operand_bytes),
                       extra={"weight_bytes": k * n * element_bytes(step.dtype),
                              "threads": torch.get_num_threads() if device == "cpu" else None})


def block_flops(batch: int, seq: int, hidden: int) -> float:
    # forward: 24·h² per token for QKV, output and a 4h FFN (Kaplan 2020 / PaLM App. B) plus
    # 4·s·h per token for QKᵀ and AV; backward = 2× forward (Chinchilla App. F), so 3× in all
    tokens = batch * seq
    return 3.0 * (24.0 * tokens * hidden**2 + 4.0 * batch * seq**2 * hidden)


def block_fwd_bwd(step: Step, cfg: TimingConfig) -> Measurement:
    """One nn.TransformerEncoderLayer (heads of 64, FFN 4h, no dropout): forward + backward."""
    device = device_of(step)
    if step.dtype == "fp16" and device == "cpu":
        raise SkipBench("fp16 transformer block is measured on GPU only")
    hidden, seq, batch = (int(step.params[x]) for x in ("hidden", "seq", "batch"))
    heads = max(1, hidden // 64)
    dtype = torch_dtype(step.dtype)
    layer = nn.TransformerEncoderLayer(d_model=hidden, nhead=heads, dim_feedforward=4 * hidden,
                                       dropout=0.0, batch_first=True, device=device, dtype=dtype)
    layer.train()
    x = torch.randn(batch, seq, hidden, device=device, dtype=dtype, requires_grad=True)

    def run() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).float().square().mean().backward()

    times_s = time_fn(run, device, cfg)
    params_count = sum(p.numel() for p in layer.parameters())
    return Measurement(times_s, flops=block_flops(batch, seq, hidden),
                       bytes=float(params_count * element_bytes(step.dtype)),
                       extra={"heads": heads, "tokens": batch * seq, "params_count": params_count})
