"""Weight quantization (round-to-nearest, per output channel, symmetric; binary; a straight-through fake-quant for
quantization-aware fine-tuning) and magnitude pruning (torch.nn.utils.prune: L1 unstructured, L2 structured by
rows, and 2:4)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from calibration.quality.models import linears, prunable

PRUNE_METHODS = ("l1_unstructured", "l2_rows", "2:4")


def quant_step(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-row step of the symmetric b-bit grid: max|w| / (2^(b-1) - 1/2), shape (rows, 1)."""
    return w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / (2 ** (bits - 1) - 0.5)


def quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Round-to-nearest onto a symmetric uniform per-channel grid of all 2^b levels, (q + 1/2)·step for
    q in [-2^(b-1), 2^(b-1) - 1] (the mid-rise uniform quantizer, Gersho & Gray 1992 §5.2; its outer levels are
    ±max|w| of the row, so no weight is clipped and every error is at most half a step); 1 bit: sign · mean|w| per
    row (XNOR-Net, Rastegari et al. 2016, eq. 2: alpha = ||W||_1 / n)."""
    if bits < 1:
        raise ValueError(f"bits = {bits}: choose 1 (binary) or more")
    if bits == 1:
        alpha = w.abs().mean(dim=1, keepdim=True)
        return torch.where(w >= 0, alpha, -alpha)
    half = 2 ** (bits - 1)
    w64 = w.double()  # 16 bits need more than fp32's 24-bit mantissa for w / step
    step = quant_step(w64, bits)
    return ((torch.clamp(torch.floor(w64 / step), -half, half - 1) + 0.5) * step).to(w.dtype)


@torch.no_grad()
def quantize_model(model: nn.Module, bits: int) -> nn.Module:
    """Every Linear's weight replaced by its quantized value (biases stay in full precision), in place."""
    for layer in linears(model):
        layer.weight.copy_(quantize(layer.weight, bits))
    return model


class FakeQuant(nn.Module):
    """Forward: the quantized weight; backward: identity (the straight-through estimator, Bengio et al. 2013)."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + (quantize(w, self.bits) - w).detach()


def add_fake_quant(model: nn.Module, bits: int) -> nn.Module:
    for layer in linears(model):
        parametrize.register_parametrization(layer, "weight", FakeQuant(bits))
    return model


def bake_fake_quant(model: nn.Module) -> nn.Module:
    """Replace each parametrized weight by its quantized value (what would be deployed)."""
    for layer in linears(model):
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return model


def two_four_mask(w: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    """Keep the n largest |w| of every m consecutive inputs of a row (NVIDIA's 2:4 pattern for n, m = 2, 4)."""
    rows, cols = w.shape
    if cols % m:
        raise ValueError(f"{n}:{m} pruning needs the input width ({cols}) to be a multiple of {m}")
    groups = w.abs().reshape(rows, cols // m, m)
    keep = torch.zeros_like(groups, dtype=torch.bool)
    keep.scatter_(2, groups.topk(n, dim=2).indices, True)
    return keep.reshape(rows, cols).to(w.dtype)


def prune_model(model: nn.Module, method: str, sparsity: float) -> nn.Module:
    """Prune every Linear but the head, layer by layer, to `sparsity` (2:4: always 0.5), keeping the masks attached
    (a fine-tune keeps pruned weights at zero)."""
    if method not in PRUNE_METHODS:
        raise ValueError(f"pruning method {method!r}: choose one of {', '.join(PRUNE_METHODS)}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity {sparsity}: choose a fraction in [0, 1)")
    for layer in prunable(model):
        if method == "l1_unstructured":
            prune.l1_unstructured(layer, "weight", amount=sparsity)
        elif method == "l2_rows":
            prune.ln_structured(layer, "weight", amount=sparsity, n=2, dim=0)
        else:
            prune.custom_from_mask(layer, "weight", two_four_mask(layer.weight.detach()))
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    for layer in prunable(model):
        if prune.is_pruned(layer):
            prune.remove(layer, "weight")
    return model


def sparsity_of(model: nn.Module) -> float:
    """Fraction of zero weights over the prunable layers."""
    ws = [layer.weight.detach() for layer in prunable(model)]
    return float(sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws))
