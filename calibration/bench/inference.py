"""Inference latency: a linear stack in fp32 / bf16 / int8, and prefill / decode of a tiny decoder."""

from __future__ import annotations

import copy
import warnings
import weakref

import torch
from torch import nn

from calibration.bench.base import Measurement, Prepared, SkipBench, device_of, measure
from calibration.bench.decoder import TinyDecoder, decode_bytes, decode_flops, prefill_flops
from calibration.rows import Step
from calibration.timing import TimingConfig, element_bytes, torch_dtype


def linear_path(device: str, dtype: str) -> str:
    """Which implementation an (device, dtype) point runs; recorded as params["path"]."""
    if dtype == "int8":
        # eager dynamic int8 (quantized::linear_dynamic) is CPU-only (torch.ao.quantization dynamic quantization)
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
    return measure(prepare_infer_linear(step), cfg)


def prefill(step: Step, cfg: TimingConfig) -> Measurement:
    return measure(prepare_prefill(step), cfg)


def decode(step: Step, cfg: TimingConfig) -> Measurement:
    return measure(prepare_decode(step), cfg)


class _Held:
    """A model shared by the points prepared together (weak-keyed cache: gone when their closures are)."""

    def __init__(self, ref: nn.Module, model: nn.Module) -> None:
        self.ref, self.model = ref, model


_MODELS: weakref.WeakValueDictionary[tuple, _Held] = weakref.WeakValueDictionary()


def _stack_for(device: str, path: str, dtype_name: str, hidden: int, layers: int) -> _Held:
    key = (device, path, dtype_name, hidden, layers)
    held = _MODELS.get(key)
    if held is not None:
        return held
    torch.manual_seed(0)
    ref = linear_stack(hidden, layers).to(device).eval()
    with torch.inference_mode():
        if path == "ao_dynamic_int8":
            if device != "cpu":
                raise SkipBench("torch.ao dynamic int8 runs on CPU only")
            model = _quantize_cpu_int8(ref)
        elif path == "torchao_int8_weight_only":
            model = _quantize_torchao_int8(copy.deepcopy(ref).to(torch.bfloat16))
        else:
            dtype = torch_dtype(dtype_name)
            if dtype == torch.float16 and device == "cpu":
                raise SkipBench("fp16 inference is measured on GPU only")
            model = ref if dtype == torch.float32 else copy.deepcopy(ref).to(dtype)
    held = _MODELS[key] = _Held(ref, model)
    return held


def _input_dtype(path: str, dtype_name: str) -> torch.dtype:
    if path == "ao_dynamic_int8":
        return torch.float32
    if path == "torchao_int8_weight_only":
        return torch.bfloat16
    return torch_dtype(dtype_name)


def prepare_infer_linear(step: Step) -> Prepared:
    device = device_of(step)
    batch, hidden, layers = (int(step.params[x]) for x in ("batch", "hidden", "layers"))
    path = str(step.params.get("path") or linear_path(device, step.dtype or "fp32"))
    held = _stack_for(device, path, step.dtype or "fp32", hidden, layers)
    torch.manual_seed(1)
    x32 = torch.randn(batch, hidden, device=device)
    x = x32.to(_input_dtype(path, step.dtype or "fp32"))
    with torch.inference_mode():
        y_ref = held.ref(x32).float()
        rel_error = float((held.model(x).float() - y_ref).norm() / y_ref.norm().clamp_min(1e-12))
    weight_bytes = layers * hidden * hidden * element_bytes(step.dtype)

    def done(times_s: list[float]) -> Measurement:
        return Measurement(times_s, flops=2.0 * batch * hidden * hidden * layers, bytes=float(weight_bytes),
                           extra={"path_ran": path, "rel_error_vs_fp32": rel_error,
                                  "threads": torch.get_num_threads() if device == "cpu" else None})

    return Prepared(lambda: held.model(x), device, done, mode=torch.inference_mode)


def _decoder(step: Step, device: str) -> tuple[TinyDecoder, int, int, int, int]:
    if step.dtype == "fp16" and device == "cpu":
        raise SkipBench("fp16 decoder is measured on GPU only")
    p = step.params
    layers, hidden, heads, vocab = int(p["layers"]), int(p["hidden"]), int(p["heads"]), int(p["vocab"])
    key = ("decoder", device, step.dtype, layers, hidden, heads, vocab)
    held = _MODELS.get(key)
    if held is None:  # one model per shape and dtype, shared by its prefill and decode points
        torch.manual_seed(0)
        model = TinyDecoder(layers, hidden, heads, vocab).to(device=device, dtype=torch_dtype(step.dtype)).eval()
        held = _MODELS[key] = _Held(model, model)
    return held, layers, hidden, heads, vocab


def prepare_prefill(step: Step) -> Prepared:
    device = device_of(step)
    held, layers, hidden, _, vocab = _decoder(step, device)
    batch, prompt = int(step.params["batch"]), int(step.params["prompt"])
    cache = held.model.new_cache(batch, prompt)
    tokens = torch.randint(0, vocab, (batch, prompt), device=device)
    elt = element_bytes(step.dtype)

    def done(times_s: list[float]) -> Measurement:
        return Measurement(times_s, flops=prefill_flops(layers, hidden, vocab, batch, prompt),
                           bytes=decode_bytes(layers, hidden, vocab, batch, prompt, elt),
                           extra={"tokens": batch * prompt})

    return Prepared(lambda: held.model(tokens, cache, 0), device, done, mode=torch.inference_mode)


def prepare_decode(step: Step) -> Prepared:
    """One new token per sequence at `context` cached positions (cache pre-filled with noise)."""
    device = device_of(step)
    held, layers, hidden, _, vocab = _decoder(step, device)
    batch, context = int(step.params["batch"]), int(step.params["context"])
    cache = held.model.new_cache(batch, context + 1)
    for k, v in cache:  # noise in the cache (uniform: several times cheaper to draw than normal)
        k.uniform_(-1.0, 1.0)
        v.uniform_(-1.0, 1.0)
    tokens = torch.randint(0, vocab, (batch, 1), device=device)
    elt = element_bytes(step.dtype)
    kv_bytes = 2 * layers * batch * context * hidden * elt

    def done(times_s: list[float]) -> Measurement:
        return Measurement(times_s, flops=decode_flops(layers, hidden, vocab, batch, context),
                           bytes=decode_bytes(layers, hidden, vocab, batch, context, elt),
                           extra={"kv_cache_bytes": kv_bytes})

    return Prepared(lambda: held.model(tokens, cache, context), device, done, mode=torch.inference_mode)
