"""The Compress page's words, shared by the page and its PDF: what the compression is, and the answer in one
sentence ("4-bit AWQ makes Llama 2 70B 3.9× smaller and decode 3.8× faster on an H100 …, for a predicted
perplexity 1% higher (P10–P90 0.61–1.4%)")."""

from __future__ import annotations

from typing import Any

from report import formatting as fmt
from report import messages
from simulator.inputs import INPUTS
from simulator.keys import split_key

NO_CHANGE = 5e-4  # a perplexity ratio within this of 1 is "no change" in words (the figures keep every digit)
SECTIONS = ("compression", "quality")  # the families whose figures and warnings Compress shows


def _choice(key: str, value: str) -> str:
    return str(dict(INPUTS[key].choice_labels).get(value, value))


def model_name(scenario: Any) -> str:
    preset = scenario.model.preset
    if preset:
        return _choice("model.preset", preset)
    return f"a {fmt.short(scenario.model.params)}-parameter model"


def compressed(scenario: Any) -> bool:
    c = scenario.compression
    return (c.weight_bits < 16 or c.act_bits < 16 or c.kv_bits < 16
            or (c.pruning_method != "none" and c.sparsity > 0))


def compression_phrase(scenario: Any) -> str:
    """The compression in a few words: "4-bit AWQ", "W8A8 SmoothQuant + 8-bit KV cache", "50% 2:4 sparsegpt"."""
    c = scenario.compression
    parts = []
    if c.weight_bits < 16 or c.act_bits < 16:
        bits = f"W{c.weight_bits}A{c.act_bits}" if c.act_bits < 16 else f"{c.weight_bits}-bit"
        kind = " FP" if c.format == "fp" else ""
        group = f" g{c.group_size}" if c.group_size else ""
        parts.append(f"{bits}{kind}{group} {_choice('compression.quant_method', c.quant_method)}")
    if c.kv_bits < 16:
        parts.append(f"{c.kv_bits}-bit KV cache")
    if c.pruning_method != "none" and c.sparsity > 0:
        pattern = "" if c.pattern == "unstructured" else f" {c.pattern}"
        parts.append(f"{fmt.pct(c.sparsity)}{pattern} {_choice('compression.pruning_method', c.pruning_method)} "
                     "pruning")
    return " + ".join(parts) if parts else "16-bit dense"


def auto_method_note(scenario: Any, where: str = "") -> str | None:
    """Said beside an answer when the quantization method was left on auto and the bits chose one (Deploy, whose
    method sits under More settings): "Quantization method on auto: fewer than 16 bits are quantized by
    round-to-nearest; choose GPTQ, AWQ, ..."."""
    c = scenario.compression
    if "compression.quant_method" not in scenario.derived or c.quant_method == "none":
        return None
    others = ", ".join(str(label) for code, label in INPUTS["compression.quant_method"].choice_labels.items()
                       if code not in ("none", c.quant_method))
    return (f"Quantization method on auto: fewer than 16 bits are quantized by "
            f"{_choice('compression.quant_method', c.quant_method)}; choose {others} instead{where}.")


def _times(x: float, faster: str, slower: str) -> str:
    if x >= 1.005:
        return f"{fmt.plain(x)}× {faster}"
    if x <= 0.995:
        return f"{fmt.plain(x)}× as {slower}"
    return f"no {faster}"


def ppl_words(figure: Any) -> str:
    """A perplexity ratio in words with its P10–P90: "1% higher (P10–P90 0.61–1.4%)"."""
    r, low, high = figure.value, figure.low, figure.high
    band = low is not None and high is not None
    if abs(r - 1.0) < NO_CHANGE:
        return "no predicted change in perplexity"
    if r < 2:
        text = f"a predicted perplexity {fmt.pct(r - 1.0)} higher"
        return text + (f" (P10–P90 {fmt.plain(100 * (low - 1))}–{fmt.plain(100 * (high - 1))}%)" if band else "")
    text = f"a predicted perplexity {fmt.plain(r)}× the dense model's"
    return text + (f" (P10–P90 {fmt.plain(low)}–{fmt.plain(high)}×)" if band else "")


def answer_sentence(plan: Any, device_name: str) -> str:
    s = plan.scenario
    name = model_name(s)
    if not compressed(s):
        return (f"Uncompressed, {name} takes {fmt.gb(plan.value('compression.model_bytes') / 1e9)} in 16 bits; "
                "choose fewer weight bits or a pruning method to see what compression saves and costs.")
    ratio = plan.value("compression.size_ratio")
    size = f"{fmt.plain(1.0 / ratio)}× smaller" if ratio < 0.995 else "no smaller"
    decode = _times(plan.value("compression.decode_speedup"), "faster", "fast")
    return (f"{compression_phrase(s)} makes {name} {size} and decode {decode} on {fmt.article(device_name)} "
            f"{device_name}, for {ppl_words(plan.figures['quality.ppl_ratio'])}.")


def figure_text(value: float, unit: str) -> str:
    """A compression or quality figure with the digits it needs: 3.79×, 1.010, 0.01 nats/token, 36 GB."""
    return fmt.by_unit(value, unit)


def span_text(figure: Any) -> str:
    """The figure's P10–P90 ("0.0061–0.0140 nats/token"), or "" when it has none or it is a single point."""
    if figure.low is None or figure.high is None or figure.low == figure.high:
        return ""
    low, high = figure_text(figure.low, figure.unit), figure_text(figure.high, figure.unit)
    if figure.unit == "nats/token":
        low = low.removesuffix(" nats/token")
    return f"{low}–{high}"


RANGED = ("compression.decode_speedup", "compression.prefill_speedup", "quality.loss_delta", "quality.ppl_ratio")


def ranges_text(plan: Any) -> str:
    shown = [f"{plan.figures[key].label.lower()} {span}" for key in RANGED if (span := span_text(plan.figures[key]))]
    if not shown:
        return ""
    return ("P10–P90 with the model's own error (the leave-one-family-out errors of the quantization law and of the "
            "pruning offsets on published results, and of the scaling law's loss), the dequantization overhead and "
            f"the device's efficiencies: {'; '.join(shown)}.")


def warning_texts(plan: Any) -> list[str]:
    """The plan's compression and quality warnings in the user's words, for the page and its PDF."""
    return [messages.in_words(w.text) for w in plan.warnings
            if split_key(w.key)[0] in SECTIONS or w.code.startswith("compression")]
