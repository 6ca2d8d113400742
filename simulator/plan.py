"""Plan: the result of evaluating one scenario; every figure carries its unit, provenance and source."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from simulator.catalog import HardwareSpec
from simulator.scenario import Scenario

Provenance = Literal["measured", "fitted", "datasheet", "published", "assumed"]
VERSION = "0.1.0"


@dataclass(frozen=True)
class Figure:
    value: float | bool
    unit: str
    provenance: Provenance
    source: str
    label: str
    low: float | None = None  # uncertainty band, where known
    high: float | None = None


@dataclass(frozen=True)
class Suggestion:
    """A nearby plan that would fit in memory: what to change (dotted scenario keys) and what it then needs."""

    label: str
    change: dict[str, Any]
    memory_per_gpu_gb: float

    def __str__(self) -> str:
        return f"{self.label}: {self.memory_per_gpu_gb:.0f} GB"


# key -> (label, unit, formula or source); provenance is decided per plan (datasheet vs fitted hardware)
TRAINING_FIGURES: dict[str, tuple[str, str, str]] = {
    "flops_total": ("Training compute (model FLOPs)", "FLOP", "PaLM App. B / Megatron: FLOPs per token incl. attention × tokens"),
    "flops_total_hw": ("Hardware FLOPs incl. recompute", "FLOP", "Korthikanti et al. 2022: recomputation adds forward passes"),
    "step_time_s": ("Step time", "s", "compute + TP comm + pipeline bubble + p2p + exposed DP sync + straggler wait"),
    "tokens_per_s": ("Throughput", "tokens/s", "global batch × sequence / step time"),
    "tflops_per_gpu": ("Achieved TFLOP/s per GPU (model)", "TFLOP/s", "model FLOPs per step / (step time × GPUs)"),
    "hw_tflops_per_gpu": ("Achieved TFLOP/s per GPU (hardware)", "TFLOP/s", "hardware FLOPs per step / (step time × GPUs)"),
    "mfu": ("Model FLOPs utilisation", "fraction", "PaLM App. B: model TFLOP/s / peak"),
    "hfu": ("Hardware FLOPs utilisation", "fraction", "PaLM App. B: hardware TFLOP/s / peak"),
    "iterations": ("Optimizer steps", "steps", "tokens / (global batch × sequence), × staleness penalty for async SGD"),
    "wall_days": ("Wall-clock time", "days", "steps × step time"),
    "gpu_hours": ("GPU-hours", "GPU·h", "GPUs × wall-clock hours"),
    "cost_usd": ("Compute cost", "USD", "GPU-hours × price per GPU-hour"),
    "energy_mwh": ("Energy", "MWh", "Cottier et al. 2024: GPUs × TDP × server factor × utilisation × PUE × hours"),
    "co2_t": ("CO2", "t", "energy × grid intensity"),
    "memory_per_gpu_gb": ("Memory per GPU", "GB", "ZeRO (Rajbhandari et al. 2020) + activations (Korthikanti et al. 2022, Table 2)"),
    "mem_weights_gb": ("Weights", "GB", "ZeRO §3: 2Ψ bytes, /(tp·pp), /dp under stage 3"),
    "mem_grads_gb": ("Gradients", "GB", "ZeRO §3: 2Ψ bytes, /dp from stage 2"),
    "mem_optimizer_gb": ("Optimizer states", "GB", "ZeRO §3: KΨ with K = 12, /dp from stage 1"),
    "mem_activations_gb": ("Activations", "GB", "Korthikanti et al. 2022, Table 2, × in-flight micro-batches"),
    "fits_memory": ("Fits in memory", "", "memory per GPU ≤ HBM capacity"),
    "compute_s": ("Compute", "s", "hardware FLOPs / (peak × GEMM efficiency of the per-GPU matrix sizes)"),
    "tp_comm_s": ("Tensor-parallel comm", "s", "Megatron: 4 all-reduces per layer per micro-batch (ring)"),
    "pp_bubble_s": ("Pipeline bubble", "s", "Narayanan et al. 2021: (p−1)/(v·m) of the ideal time"),
    "pp_p2p_s": ("Pipeline send/recv", "s", "b·s·h activations per micro-batch between stages"),
    "dp_exposed_s": ("Exposed data-parallel sync", "s", "gradient sync not hidden behind backward"),
    "straggler_s": ("Straggler wait", "s", "expected slowest-of-dp worker (Dutta et al. 2018)"),
    "gemm_efficiency": ("GEMM efficiency", "fraction", "saturating curve in the per-GPU matrix sizes"),
}
QUALITY_FIGURES: dict[str, tuple[str, str, str]] = {
    "loss": ("Predicted loss", "nats/token", "L = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2)"),
    "compute_optimal_params": ("Compute-optimal parameters for this budget", "params", "Hoffmann et al. 2022, eq. 4"),
    "compute_optimal_tokens": ("Compute-optimal tokens for this budget", "tokens", "Hoffmann et al. 2022, eq. 4"),
    "tokens_per_param": ("Tokens per parameter", "tokens/param", "training.tokens / model.params"),
}
STEP_PARTS = ("compute_s", "tp_comm_s", "pp_bubble_s", "pp_p2p_s", "dp_exposed_s", "straggler_s")


@dataclass(frozen=True)
class Plan:
    scenario: Scenario
    training: dict[str, Figure]
    quality: dict[str, Figure]
    hardware: HardwareSpec  # the accelerator the plan used: datasheet, or calibrated from a profile
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    suggestions: tuple[Suggestion, ...] = field(default=())

    @property
    def hardware_label(self) -> str:
        return self.hardware.display_name

    def value(self, dotted: str) -> Any:
        section, _, key = dotted.partition(".")
        return getattr(self, section)[key].value

    def step_breakdown(self) -> dict[str, float]:
        return {self.training[k].label: float(self.training[k].value) for k in STEP_PARTS}

    def to_dict(self) -> dict[str, Any]:
        def plain(v: float | bool) -> float | bool:
            return bool(v) if isinstance(v, bool) else float(v)

        return {
            "version": VERSION,
            "scenario": self.scenario.to_dict(),
            "hardware": {"id": self.hardware.id, "name": self.hardware.display_name, "hbm_GB": self.hardware.hbm_GB,
                         "provenance": self.hardware.provenance, "sources": dict(self.hardware.sources)},
            "training": {k: plain(f.value) for k, f in self.training.items()},
            "quality": {k: plain(f.value) for k, f in self.quality.items()} | {"law": self.scenario.quality.law},
            "provenance": {
                f"{section}.{k}": {"unit": f.unit, "provenance": f.provenance, "source": f.source}
                for section in ("training", "quality")
                for k, f in getattr(self, section).items()
            },
            "warnings": list(self.warnings),
            "suggestions": [
                {"label": x.label, "change": x.change, "memory_per_gpu_gb": x.memory_per_gpu_gb} for x in self.suggestions
            ],
            "notes": list(self.notes),
        }
