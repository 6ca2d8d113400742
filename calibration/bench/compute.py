"""Compute: a GEMM sweep and forward+backward of a transformer block."""

from __future__ import annotations

import weakref

import torch
from torch import nn

from calibration.bench.base import Measurement, Prepared, SkipBench, device_of, measure
from calibration.rows import Step
from calibration.timing import TimingConfig, element_bytes, torch_dtype

_WEIGHTS: weakref.WeakValueDictionary[tuple, torch.Tensor] = weakref.WeakValueDictionary()


def _shared_weight(k: int, n: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """B[k, n], shared by the points that are prepared together (interleaved): the weight-streaming GEMMs
    of a run differ only in m, and three 1 GiB copies of the same weights would only cost memory."""
    key = (k, n, device, dtype)
    b = _WEIGHTS.get(key)
    if b is None:
        b = _operand(k, n, device, dtype)
        _WEIGHTS[key] = b
    return b


def _operand(rows: int, cols: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """Random values in [0, 1): a random tile repeated (dense GEMM time does not depend on the values,
    and drawing a gigabyte of random numbers costs seconds)."""
    tile = torch.rand(min(rows, 512), min(cols, 512), device=device, dtype=dtype)
    reps = (-(-rows // tile.shape[0]), -(-cols // tile.shape[1]))
    return tile.repeat(*reps)[:rows, :cols].contiguous()


def gemm(step: Step, cfg: TimingConfig) -> Measurement:
    return measure(prepare_gemm(step), cfg)


def block_fwd_bwd(step: Step, cfg: TimingConfig) -> Measurement:
    return measure(prepare_block_fwd_bwd(step), cfg)


def prepare_gemm(step: Step) -> Prepared:
    """C[m,n] = A[m,k] @ B[k,n]; flops = 2mnk, bytes = the three operands once."""
    device = device_of(step)
    if step.dtype == "fp16" and device == "cpu":
        raise SkipBench("fp16 GEMM is measured on GPU only")
    m, n, k = (int(step.params[x]) for x in ("m", "n", "k"))
    dtype = torch_dtype(step.dtype)
    a = _operand(m, k, device, dtype)
    b = _shared_weight(k, n, device, dtype)
    c = torch.empty(m, n, device=device, dtype=dtype)
    operand_bytes = (m * k + k * n + m * n) * element_bytes(step.dtype)

    def done(times_s: list[float]) -> Measurement:
        return Measurement(times_s, flops=2.0 * m * n * k, bytes=float(operand_bytes),
                           extra={"weight_bytes": k * n * element_bytes(step.dtype),
                                  "threads": torch.get_num_threads() if device == "cpu" else None})

    return Prepared(lambda: torch.matmul(a, b, out=c), device, done)


def block_flops(batch: int, seq: int, hidden: int) -> float:
    # forward: 24·h² per token for QKV, output and a 4h FFN (Kaplan 2020 / PaLM App. B) plus
    # 4·s·h per token for QKᵀ and AV; backward = 2× forward (Chinchilla App. F), so 3× in all
    tokens = batch * seq
    return 3.0 * (24.0 * tokens * hidden**2 + 4.0 * batch * seq**2 * hidden)


def prepare_block_fwd_bwd(step: Step) -> Prepared:
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

    params_count = sum(p.numel() for p in layer.parameters())

    def done(times_s: list[float]) -> Measurement:
        return Measurement(times_s, flops=block_flops(batch, seq, hidden),
                           bytes=float(params_count * element_bytes(step.dtype)),
                           extra={"heads": heads, "tokens": batch * seq, "params_count": params_count})

    return Prepared(run, device, done)
