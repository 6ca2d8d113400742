"""Inference latency: a linear stack in fp32 / bf16 / int8, and prefill / decode of a tiny decoder."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from calibration.bench.base import Measurement, SkipBench, device_of
from calibration.bench.decoder import TinyDecoder, decode_bytes, decode_flops, prefill_flops
from calibration.rows import Step
from calibration.timing import TimingConfig, element_bytes, time_fn, torch_dtype


def linear_path(device: str, dtype: str) -> str:
    """Which implementation an (device, dtype) point runs; recorded as params["path"]."""
    if dtype == "int8":
        # eager dynamic int8 (quantized::linear_dynamic) is CPU-only (formulas.md §7 pitfall 2)
        return "torchao_int8_weight_only" if device == "cuda" else "ao_dynamic_int8"
    return f"eager_{dtype}"


def linear_stack(hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(hidden, hidden), nn.ReLU()]
    return nn.Sequential(*mods)


def _quantize_cpu_int8(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():  # pytorch#184982: torch.ao.quantization deprecation notices
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*quantize_per_tensor.*")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def _quantize_torchao_int8(model: nn.Module) -> nn.Module:
    try:
        from torchao.quantization import quantize_
    except Exception as e:  # ImportError, or a torchao built for another torch
        raise SkipBench(f"torchao not importable ({type(e).__name__}: {e}); int8 weight-only skipped") from e
    try:
        from torchao.quantization import Int8WeightOnlyConfig

        config = Int8WeightOnlyConfig()
    except ImportError:
        from torchao.quantization import int8_weight_only  # torchao < 0.10

        config = int8_weight_only()
    quantize_(model, config)
    return model


def infer_linear(step: Step, cfg: TimingConfig) -> Measurement:
    device = device_of(step)
    batch, hidden, layers = (int(step.params[x]) for x in ("batch", "hidden", "layers"))
    path = str(step.params.get("path") or linear_path(device, step.dtype or "fp32"))
    torch.manual_seed(0)
    ref = linear_stack(hidden, layers).to(device).eval()
    x32 = torch.randn(batch, hidden, device=device)
    with torch.inference_mode():
        y_ref = ref(x32).float()
        if path == "ao_dynamic_int8":
            if device != "cpu":
                raise SkipBench("torch.ao dynamic int8 runs on CPU only")
            model, x = _quantize_cpu_int8(ref), x32
        elif path == "torchao_int8_weight_only":
            model, x = _quantize_torchao_int8(ref.to(torch.bfloat16)), x32.to(torch.bfloat16)
        else:
            dtype = torch_dtype(step.dtype)
            if dtype == torch.float16 and device == "cpu":
                raise SkipBench("fp16 inference is measured on GPU only")
            model, x = ref.to(dtype), x32.to(dtype)
        rel_error = float((model(x).float() - y_ref).norm() / y_ref.norm().clamp_min(1e-12))
        times_s = time_fn(lambda: model(x), device, cfg)
    weight_bytes = layers * hidden * hidden * element_bytes(step.dtype)
    return Measurement(times_s, flops=2.0 * batch * hidden * hidden * layers, bytes=float(weight_bytes),
                       extra={"path_ran": path, "rel_error_vs_fp32": rel_error,
                              "threads": torch.get_num_threads() if device == "cpu" else None})


def _decoder(step: Step, device: str) -> tuple[TinyDecoder, int, int, int, int]:
    if step.dtype == "fp16" and device == "cpu":
        raise SkipBench("fp16 decoder is measured on GPU only")
    p = step.params
    layers, hidden, heads, vocab = int(p["layers"]), int(p["hidden"]), int(p["heads"]), int(p["vocab"])
    torch.manual_seed(0)
    model = TinyDecoder(layers, hidden, heads, vocab).to(device=device, dtype=torch_dtype(step.dtype)).eval()
    return model, layers, hidden, heads, vocab


def prefill(step: Step, cfg: TimingConfig) -> Measurement:
    device = device_of(step)
    model, layers, hidden, _, vocab = _decoder(step, device)
    batch, prompt = int(step.params["batch"]), int(step.params["prompt"])
    cache = model.new_cache(batch, prompt)
    tokens = torch.randint(0, vocab, (batch, prompt), device=device)
    with torch.inference_mode():
        times_s = time_fn(lambda: model(tokens, cache, 0), device, cfg)
    elt = element_bytes(step.dtype)
    return Measurement(times_s, flops=prefill_flops(layers, hidden, vocab, batch, prompt),
                       bytes=decode_bytes(layers, hidden, vocab, batch, prompt, elt),
                       extra={"tokens": batch * prompt})


def decode(step: Step, cfg: TimingConfig) -> Measurement:
    """One new token per sequence at `context` cached positions (cache pre-filled with noise)."""
    device = device_of(step)
    model, layers, hidden, _, vocab = _decoder(step, device)
    batch, context = int(step.params["batch"]), int(step.params["context"])
    cache = model.new_cache(batch, context + 1)
    for k, v in cache:
        k.normal_()
        v.normal_()
    tokens = torch.randint(0, vocab, (batch, 1), device=device)
    with torch.inference_mode():
        times_s = time_fn(lambda: model(tokens, cache, context), device, cfg)
    elt = element_bytes(step.dtype)
    kv_bytes = 2 * layers * batch * context * hidden * elt
    return Measurement(times_s, flops=decode_flops(layers, hidden, vocab, batch, context),
                       bytes=decode_bytes(layers, hidden, vocab, batch, context, elt),
                       extra={"kv_cache_bytes": kv_bytes})
