"""Compression family: quantization and pruning inputs, the model's bytes and its decode / prefill speed-ups.

The loss of the compressed model is the quality family's (simulator/families/quality.py); both read these
inputs. The model is explained in docs/compression.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from simulator import model_error
from simulator.compression.constants import (
    ACT_BITS,
    FORMATS,
    FP_BITS,
    KV_BITS,
    PRUNING_METHODS,
    QUANT_METHODS,
    SPARSITY_PATTERNS,
    WEIGHT_BITS,
    load_fitted,
)
from simulator.compression.hardware import DEVICE_COLUMNS, SERVING_PREFIX, accelerator
from simulator.compression.rows import on_rows
from simulator.compression.speed import speedups
from simulator.compression.storage import model_bytes
from simulator.registry import Columns, Derived, Family, FieldGroup, FigureSpec, Input, Rule, Section

FITTED = load_fitted()


def _list(values) -> str:
    return ", ".join(str(v) for v in values)


UNQUANTIZED = {16: "16 (not quantized)"}  # how a list of bit widths shows 16


def _auto_method(c: Columns) -> np.ndarray:
    """The method a quantization left unspecified gets: none at 16-bit weights and activations, round-to-nearest
    (the plainest post-training method, the baseline of GPTQ and AWQ) below."""
    lowered = (np.asarray(c["weight_bits"]) < 16) | (np.asarray(c["act_bits"]) < 16)
    return np.where(lowered, float(QUANT_METHODS.index("rtn")), float(QUANT_METHODS.index("none")))


INPUTS = (
    Input("compression.weight_bits", "int", "Weight bits", f"Bits per stored weight: {_list(WEIGHT_BITS)} "
          "(16 = not quantized).", "bits", 1, 16, default=16, link="wb", column="weight_bits", offered=WEIGHT_BITS,
          choice_labels=UNQUANTIZED),
    Input("compression.act_bits", "int", "Activation bits", f"Bits of the activations fed to the matrix multiplies: "
          f"{_list(ACT_BITS)}.", "bits", 4, 16, default=16, link="ab", column="act_bits", offered=ACT_BITS,
          choice_labels=UNQUANTIZED),
    Input("compression.kv_bits", "int", "KV-cache bits", f"Bits per cached key/value: {_list(KV_BITS)}.", "bits",
          4, 16, default=16, link="kvb", column="kv_bits", offered=KV_BITS, choice_labels=UNQUANTIZED),
    Input("compression.format", "choice", "Number format", "Integer (int) or floating point (fp: FP8, FP6, FP4 of "
          "the OCP MX formats).", choices=FORMATS, choice_labels={"int": "integer", "fp": "floating point"},
          default="int", link="qf", column="quant_format"),
    Input("compression.group_size", "int", "Quantization group", "Weights sharing one scale: 0 = one per output "
          "channel (row), else a power of two such as 128.", "weights", 0, 65_536, default=0, link="gs",
          column="group_size"),
    Input("compression.quant_method", "choice", "Quantization method", "Round-to-nearest, GPTQ (Frantar et al. "
          "2023), AWQ (Lin et al. 2024), SmoothQuant (Xiao et al. 2023) after training, or quantization-aware "
          "training; none = 16-bit weights. Left empty (auto): none at 16-bit weights and activations, "
          "round-to-nearest below.", choices=QUANT_METHODS,
          derived=Derived("none at 16-bit weights and activations, round-to-nearest (rtn) below them", _auto_method,
                          needs=("compression.weight_bits", "compression.act_bits")), link="qm",
          column="quant_method",
          choice_labels={"none": "none", "rtn": "round-to-nearest", "gptq": "GPTQ", "awq": "AWQ",
                         "smoothquant": "SmoothQuant", "qat": "quantization-aware training"}),
    Input("compression.pruning_method", "choice", "Pruning method", "Magnitude, Wanda (Sun et al. 2024), SparseGPT "
          "(Frantar & Alistarh 2023), one-shot; structured removes whole rows.", choices=PRUNING_METHODS,
          default="none", link="pm", column="pruning_method"),
    Input("compression.sparsity", "float", "Sparsity", "Share of weights removed.", "fraction", 0.0, 0.99,
          default=0.0, link="spr", column="sparsity", step=0.05),
    Input("compression.pattern", "choice", "Sparsity pattern", "Unstructured, 2 of every 4 (2:4) or 4 of 8 kept, or "
          "whole rows.", choices=SPARSITY_PATTERNS, default="unstructured", link="spp", column="sparsity_pattern"),
    Input("compression.loss_scale", "float", "Loss-penalty scale", "Multiplies the predicted loss increase of "
          "quantization; 1 = the fitted law. Its spread is the law's leave-one-family-out error on published rows "
          "(simulator/data/model_error.json, docs/ranges.md).", "ratio",
          0.0, 100.0, default=1.0, link="ls", column="loss_scale", step=0.05,
          spread=model_error.input_sigma("compression", float(FITTED["heldout_delta_rel_sigma"])),
          provenance="fitted"),
    Input("compression.prune_loss_scale", "float", "Pruning-penalty scale", "Multiplies the predicted loss increase "
          "of pruning; 1 = the fitted method offsets. Its spread is their leave-one-size-out error on published "
          "pruning rows (simulator/data/model_error.json, docs/ranges.md).", "ratio", 0.0, 100.0, default=1.0, link="pls", column="prune_loss_scale",
          step=0.05, spread=model_error.input_sigma("pruning", float(FITTED["pruning"]["heldout_delta_rel_sigma"])),
          provenance="fitted"),
    Input("compression.dequant_overhead", "float", "Dequantization overhead", "Extra matrix-multiply time of "
          "weight-only formats that unpack weights to 16 bits (QServe, Lin et al. 2024: 20-90%).", "fraction",
          0.0, 5.0, default=0.3, link="dq", column="dequant_overhead", step=0.05, spread=0.5),
)


def _code(values: tuple, name: str) -> float:
    return float(values.index(name))


def _pruned(c: Columns) -> np.ndarray:
    return np.asarray(c["pruning_method"]) != _code(PRUNING_METHODS, "none")


def _in(column: np.ndarray, allowed: tuple) -> np.ndarray:
    return np.isin(np.asarray(column), np.asarray(allowed, dtype=float))


def _name(values: tuple, code: float) -> str:
    return str(values[int(code)])


def _method(r: Mapping[str, float]) -> str:
    return _name(QUANT_METHODS, r["quant_method"])


def _not_fp(r: Mapping[str, float]) -> str:
    """The widths of a floating-point plan that no floating-point format has: "compression.weight_bits = 3"."""
    widths = {"weight_bits": r["weight_bits"], "act_bits": r["act_bits"], "kv_bits": r["kv_bits"]}
    return " and ".join(f"compression.{k} = {v:g}" for k, v in widths.items() if v not in FP_BITS)


def _n_of_m(c: Columns) -> np.ndarray:
    return np.isin(np.asarray(c["sparsity_pattern"]), [_code(SPARSITY_PATTERNS, "2:4"), _code(SPARSITY_PATTERNS, "4:8")])


RULES = (
    Rule("compression.weight_bits", "weight bits not offered", lambda c: ~_in(c["weight_bits"], WEIGHT_BITS),
         lambda r: f"compression.weight_bits = {r['weight_bits']:g}: allowed values are {_list(WEIGHT_BITS)}"),
    Rule("compression.act_bits", "activation bits not offered", lambda c: ~_in(c["act_bits"], ACT_BITS),
         lambda r: f"compression.act_bits = {r['act_bits']:g}: allowed values are {_list(ACT_BITS)}"),
    Rule("compression.kv_bits", "KV bits not offered", lambda c: ~_in(c["kv_bits"], KV_BITS),
         lambda r: f"compression.kv_bits = {r['kv_bits']:g}: allowed values are {_list(KV_BITS)}"),
    Rule("compression.group_size", "group size not a power of two",
         lambda c: (c["group_size"] != 0) & ((c["group_size"] < 2) | (np.mod(np.log2(np.maximum(c["group_size"], 1)), 1) != 0)),
         lambda r: f"compression.group_size = {r['group_size']:g}: use 0 (one scale per channel) or a power of two "
                   "from 2 to 65536, such as 64 or 128"),
    Rule("compression.format", "no such floating-point width",
         lambda c: (c["quant_format"] == _code(FORMATS, "fp")) & ~(_in(c["weight_bits"], FP_BITS)
                                                                  & _in(c["act_bits"], FP_BITS)
                                                                  & _in(c["kv_bits"], FP_BITS)),
         lambda r: f"compression.format = fp with {_not_fp(r)}: floating-point numbers exist at {_list(FP_BITS)} "
                   "bits (OCP MX); choose one of those widths or compression.format = int"),
    Rule("compression.quant_method", "bits below 16 without a method",
         lambda c: (c["quant_method"] == _code(QUANT_METHODS, "none")) & ((c["weight_bits"] < 16) | (c["act_bits"] < 16)),
         lambda r: f"compression.quant_method = none with compression.weight_bits = {r['weight_bits']:g} and "
                   f"compression.act_bits = {r['act_bits']:g}: choose how to quantize ({_list(QUANT_METHODS[1:])}), "
                   "leave compression.quant_method out (round-to-nearest below 16 bits), or set both to 16"),
    Rule("compression.sparsity", "pruning method without sparsity or sparsity without method",
         lambda c: ~_pruned(c) & (c["sparsity"] > 0),
         lambda r: f"compression.sparsity = {r['sparsity']:g} with compression.pruning_method = none: choose a "
                   f"pruning method ({_list(PRUNING_METHODS[1:])}) or set compression.sparsity = 0"),
    Rule("compression.pattern", "N:M pattern needs sparsity 0.5",
         lambda c: _pruned(c) & _n_of_m(c) & (c["sparsity"] != 0.5),
         lambda r: f"compression.pattern = {_name(SPARSITY_PATTERNS, r['sparsity_pattern'])} keeps half of every "
                   f"group, so it needs compression.sparsity = 0.5 (got compression.sparsity = {r['sparsity']:g}); "
                   "set compression.sparsity = 0.5 or compression.pattern = unstructured"),
    Rule("compression.pattern", "structured pruning removes rows",
         lambda c: (c["pruning_method"] == _code(PRUNING_METHODS, "structured"))
         & (c["sparsity_pattern"] != _code(SPARSITY_PATTERNS, "rows")),
         lambda r: f"compression.pruning_method = structured with compression.pattern = "
                   f"{_name(SPARSITY_PATTERNS, r['sparsity_pattern'])}: structured pruning removes whole rows; set "
                   "compression.pattern = rows (magnitude, wanda and sparsegpt may also score rows)"),
    # warnings: legal, but probably not what was meant
    Rule("compression.quant_method", "method with nothing to quantize",
         lambda c: (c["quant_method"] != _code(QUANT_METHODS, "none")) & (c["weight_bits"] >= 16) & (c["act_bits"] >= 16),
         lambda r: f"compression.quant_method = {_method(r)} with 16-bit weights and activations quantizes nothing; "
                   "lower compression.weight_bits or compression.act_bits", "warning", "compression_noop"),
    Rule("compression.weight_bits", "post-training quantization at 2 bits or fewer",
         lambda c: (c["weight_bits"] <= 2) & (c["quant_method"] != _code(QUANT_METHODS, "qat"))
         & (c["quant_method"] != _code(QUANT_METHODS, "none")),
         lambda r: f"compression.weight_bits = {r['weight_bits']:g} after training (compression.quant_method = "
                   f"{_method(r)}): published post-training methods collapse below 3 bits; the prediction is an "
                   "extrapolation (compression.quant_method = qat is the usual route)", "warning",
         "compression_extrapolated"),
    Rule("compression.quant_method", "SmoothQuant without activation quantization",
         lambda c: (c["quant_method"] == _code(QUANT_METHODS, "smoothquant")) & (c["act_bits"] >= 16),
         lambda r: "compression.quant_method = smoothquant smooths activations for their quantization, but "
                   "compression.act_bits = 16; it then acts as round-to-nearest on the weights", "warning",
         "compression_smooth"),
    Rule("compression.pruning_method", "pruning method with sparsity 0",
         lambda c: _pruned(c) & (c["sparsity"] <= 0),
         lambda r: f"compression.pruning_method = {_name(PRUNING_METHODS, r['pruning_method'])} with "
                   "compression.sparsity = 0 prunes nothing; set a sparsity", "warning", "compression_noop_prune"),
)

FIGURES = (
    FigureSpec("compression.model_bytes", "Compressed model size", "bytes",
               "N × (bits + group-scale bits) / 8, pruned values dropped plus sparse metadata (2 bits per kept "
               "value for 2:4, NVIDIA A100 whitepaper 2020)", "lower"),
    FigureSpec("compression.size_ratio", "Size ÷ 16-bit dense", "ratio", "model bytes / (2 bytes × N)", "lower"),
    FigureSpec("compression.decode_speedup", "Decode speed-up", "×",
               "roofline (LLM-Viewer, Yuan et al. 2024): dense / compressed step time, one sequence at 2,048 "
               "tokens of context; weight and KV bytes, dequantization overhead", "higher", ranged=True),
    FigureSpec("compression.prefill_speedup", "Prefill speed-up", "×",
               "roofline: dense / compressed time of one 2,048-token prompt; int8/fp8/fp4 peaks only where the "
               "chip has them and weights, activations and KV all fit (LLM-Viewer); 2:4 only on sparse tensor "
               "cores", "higher", ranged=True),
)


_COLUMNS = ("params", "layers", "hidden", "heads", "kv_heads", "weight_bits", "act_bits", "kv_bits", "quant_format",
            "group_size", "quant_method", "pruning_method", "sparsity", "sparsity_pattern", "dequant_overhead",
            "hbm_GBps", "hbm_eff", "gemm_eff_max", *DEVICE_COLUMNS)


def _compressed(c: Columns) -> dict[str, np.ndarray]:
    size = model_bytes(c["params"], c["weight_bits"], c["quant_format"], c["group_size"], c["hidden"],
                       c["sparsity"] * _pruned(c), c["sparsity_pattern"])
    decode, prefill = speedups(c, accelerator(c))
    return {"compression.size_ratio": size / (2.0 * c["params"]), "compression.decode_speedup": decode,
            "compression.prefill_speedup": prefill}


def run(c: Columns) -> dict[str, np.ndarray]:
    shape = np.shape(c["params"])
    hardware = ("hbm_GBps", "hbm_eff", "gemm_eff_max", *DEVICE_COLUMNS)
    serving = tuple(f"{SERVING_PREFIX}{k.removeprefix('hw_')}" for k in hardware)
    keys = _COLUMNS + tuple(k for k in serving if k in c)  # the serving accelerator's, where declared
    out = on_rows(_compressed, c, keys, shape, {"compression.size_ratio": 1.0, "compression.decode_speedup": 1.0,
                                                    "compression.prefill_speedup": 1.0})
    out["compression.model_bytes"] = out["compression.size_ratio"] * 2.0 * np.asarray(c["params"], dtype=float)
    return out


FIELDS = (
    FieldGroup("compress", "Precision", ("compression.weight_bits", "compression.act_bits", "compression.kv_bits",
                                         "compression.format", "compression.quant_method"), main=True, order=2),
    FieldGroup("compress", "Pruning and quantization group", ("compression.pruning_method", "compression.sparsity",
                                                              "compression.pattern", "compression.group_size"),
               order=10),
    FieldGroup("compress", "Uncertain constants", ("compression.loss_scale", "compression.prune_loss_scale",
                                                   "compression.dequant_overhead"), order=11),
    FieldGroup("deploy", "Model", ("compression.weight_bits",), main=True, order=2),
    FieldGroup("deploy", "Serving", ("compression.act_bits", "compression.kv_bits", "compression.format",
                                     "compression.quant_method"), order=11),
)
SECTIONS = (
    Section(("compress",), "Size and speed", ("compression.model_bytes", "compression.size_ratio",
                                              "compression.decode_speedup", "compression.prefill_speedup"),
            headline=True, order=1),
    Section(("deploy",), "Weights", ("compression.model_bytes",),
            text="The model's bytes at its weight precision: what each replica holds besides its KV cache."),
)

FAMILY = Family("compression", INPUTS, FIGURES, run, RULES, fields=FIELDS, sections=SECTIONS,
                doc="Quantization and pruning: model bytes, decode and prefill speed-ups")
