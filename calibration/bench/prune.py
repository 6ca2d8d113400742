"""Pruning latency of one nn.Linear(hidden, hidden).

torch.nn.utils.prune only multiplies by a mask in a forward pre-hook,
so dense-with-zeros latency should show no gain; removing rows (a smaller nn.Linear) should.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.nn.utils import prune

from calibration.bench.base import Measurement, Prepared, device_of, measure
from calibration.rows import Step
from calibration.timing import TimingConfig

METHODS = ("l1_unstructured", "l2_structured", "l2_structured_shrunk")
_MASKS: weakref.WeakValueDictionary[tuple, torch.Tensor] = weakref.WeakValueDictionary()


def shrunk_linear(layer: nn.Linear, sparsity: float) -> nn.Linear:
    """Keep the output rows of largest L2 norm, as a physically smaller layer."""
    out_features = layer.out_features
    keep = max(1, round(out_features * (1.0 - sparsity)))
    rows = layer.weight.detach().norm(p=2, dim=1).topk(keep).indices.sort().values
    small = nn.Linear(layer.in_features, keep, device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        small.weight.copy_(layer.weight[rows])
        small.bias.copy_(layer.bias[rows])
    return small


def prune_latency(step: Step, cfg: TimingConfig) -> Measurement:
    return measure(prepare_prune_latency(step), cfg)


def prepare_prune_latency(step: Step) -> Prepared:
    device = device_of(step)
    p = step.params
    method, sparsity = str(p["method"]), float(p["sparsity"])
    hidden, batch, hook = int(p["hidden"]), int(p["batch"]), bool(p["hook"])
    if method not in METHODS:
        raise ValueError(f"prune method {method!r} is not one of {METHODS}")
    torch.manual_seed(0)
    layer = nn.Linear(hidden, hidden, device=device)
    key = (method, sparsity, hidden, device)
    mask = _MASKS.get(key)
    if method == "l2_structured_shrunk":
        layer = shrunk_linear(layer, sparsity)
    elif mask is not None:  # the same seeded layer and sparsity: the hook and no-hook points share the mask
        prune.custom_from_mask(layer, "weight", mask)
    else:
        if method == "l1_unstructured":
            prune.l1_unstructured(layer, "weight", amount=sparsity)
        else:
            prune.ln_structured(layer, "weight", amount=sparsity, n=2, dim=0)
        _MASKS[key] = layer.weight_mask
    if method != "l2_structured_shrunk" and not hook:
        prune.remove(layer, "weight")
    x = torch.randn(batch, hidden, device=device)
    with torch.inference_mode():
        layer(x)  # with the hook attached, this computes layer.weight
        weight = layer.weight
        nonzero_fraction = float((weight != 0).float().mean())
        weight_bytes = float(weight.numel() * weight.element_size())
    out_features = layer.out_features
    hook_attached = bool(prune.is_pruned(layer))

    def done(times_s: list[float]) -> Measurement:  # holds no tensor: the layer goes when the point is dropped
        return Measurement(times_s, flops=2.0 * batch * hidden * out_features, bytes=weight_bytes,
                           extra={"out_features": out_features, "nonzero_fraction": nonzero_fraction,
                                  "hook_attached": hook_attached})

    return Prepared(lambda: layer(x), device, done, mode=torch.inference_mode)
