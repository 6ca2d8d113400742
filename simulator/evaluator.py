"""evaluate(scenario) -> Plan: the one place a single scenario's numbers are made."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from simulator.catalog import HardwareSpec, get_accelerator
from simulator.columns import scenario_columns
from simulator.plan import QUALITY_FIGURES, TRAINING_FIGURES, Figure, Plan, Provenance, Suggestion
from simulator.quality import compute_optimal, get_law, loss
from simulator.scenario import Scenario, ScenarioError
from simulator.training import training_columns

FORMULA_KEYS = {"flops_total", "flops_total_hw", "iterations"}
PRICE_KEYS = {"cost_usd"}
ENERGY_KEYS = {"energy_mwh", "co2_t"}


def _hardware(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None) -> HardwareSpec:
    if devices and scenario.cluster.accelerator in devices:
        return devices[scenario.cluster.accelerator]
    return get_accelerator(scenario.cluster.accelerator)


def _provenance(key: str, scenario: Scenario, hw: HardwareSpec) -> Provenance:
    if key in FORMULA_KEYS:
        return "published"
    if key in PRICE_KEYS:
        return "datasheet" if scenario.finance.gpu_hour_usd == hw.gpu_hour_usd else "assumed"
    if key in ENERGY_KEYS:
        return "published"
    return "fitted" if hw.provenance in ("fitted", "measured") else "datasheet"


def _row(cols: Mapping[str, np.ndarray], i: int = 0) -> dict[str, float | bool]:
    out: dict[str, float | bool] = {}
    for k in TRAINING_FIGURES:
        v = cols[k][i]
        out[k] = bool(v) if k == "fits_memory" else float(v)
    return out


def _memory_suggestions(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None) -> list[Suggestion]:
    """Evaluate a few nearby plans and say which of them would fit (UX: say what would make it fit)."""
    c, t = scenario.cluster, scenario.training
    candidates: list[tuple[str, dict]] = []
    if t.zero_stage < 3 and c.sync in ("ring", "tree"):
        candidates.append(("ZeRO stage 3 (training.zero_stage = 3)", {"training.zero_stage": 3}))
    if t.recompute != "full":
        candidates.append(("full recomputation (training.recompute = full)", {"training.recompute": "full"}))
    if t.micro_batch_seqs > 1:
        candidates.append(("micro-batch 1 (training.micro_batch_seqs = 1)", {"training.micro_batch_seqs": 1}))
    for factor in (2, 4, 8):
        candidates.append((f"tensor parallel {c.tp * factor} (cluster.tp)", {"cluster.tp": c.tp * factor}))
        candidates.append((f"pipeline parallel {c.pp * factor} (cluster.pp)", {"cluster.pp": c.pp * factor}))
    for factor in (2, 4):
        candidates.append(
            (f"{c.gpus * factor} GPUs with ZeRO stage 3", {"cluster.gpus": c.gpus * factor, "training.zero_stage": 3})
        )
    valid: list[tuple[str, dict, Scenario]] = []
    for label, change in candidates:
        try:
            valid.append((label, change, scenario.replace(**change)))
        except ScenarioError:
            continue
    if not valid:
        return []
    cols = training_columns(scenario_columns([s for _, _, s in valid], devices))
    fits = [
        Suggestion(label, change, float(gb))
        for (label, change, _), gb, ok in zip(valid, cols["memory_per_gpu_gb"], cols["fits_memory"], strict=True)
        if ok
    ]
    return fits[:4]


def _warnings(scenario: Scenario, fig: dict[str, float | bool], hw: HardwareSpec) -> list[str]:
    out: list[str] = []
    c = scenario.cluster
    if not fig["fits_memory"]:
        out.append(
            f"Does not fit: needs {fig['memory_per_gpu_gb']:.0f} GB per GPU, but a {hw.id} has {hw.hbm_GB:.0f} GB."
        )
    if c.tp > c.gpus_per_node:
        out.append(
            f"Tensor parallelism ({c.tp}) spans nodes of {c.gpus_per_node} GPUs: its all-reduces run over the slower "
            "inter-node network. Keep cluster.tp at or below the GPUs per node."
        )
    total = fig["step_time_s"]
    if total > 0 and fig["pp_bubble_s"] / total > 0.25:
        out.append(
            f"The pipeline bubble takes {fig['pp_bubble_s'] / total:.0%} of each step: raise the global batch, "
            "lower cluster.pp, or interleave stages (training.interleave)."
        )
    if total > 0 and fig["dp_exposed_s"] / total > 0.25:
        out.append(
            f"Gradient sync is {fig['dp_exposed_s'] / total:.0%} of each step: the network is the bottleneck; "
            "a larger batch per GPU, more tensor/pipeline parallelism or a faster interconnect would help."
        )
    return out


def evaluate(scenario: Scenario, devices: Mapping[str, HardwareSpec] | None = None) -> Plan:
    """Evaluate one scenario. `devices` adds calibrated accelerators (from profiles) to the catalog."""
    hw = _hardware(scenario, devices)
    cols = training_columns(scenario_columns([scenario], devices))
    fig = _row(cols)
    training = {
        k: Figure(fig[k], unit, _provenance(k, scenario, hw), source, label)
        for k, (label, unit, source) in TRAINING_FIGURES.items()
    }
    law = get_law(scenario.quality.law)
    n, d = scenario.model.params, scenario.training.tokens
    n_opt, d_opt = compute_optimal(fig["flops_total"], law)
    q_values = {
        "loss": float(loss(n, d, law)),
        "compute_optimal_params": float(n_opt),
        "compute_optimal_tokens": float(d_opt),
        "tokens_per_param": d / n,
    }
    quality = {
        k: Figure(q_values[k], unit, "published", f"{source}; constants: {law.source}", label)
        for k, (label, unit, source) in QUALITY_FIGURES.items()
    }
    suggestions: list[Suggestion] = []
    if not fig["fits_memory"]:
        suggestions = _memory_suggestions(scenario, devices)
    return Plan(
        scenario=scenario,
        training=training,
        quality=quality,
        hardware=hw,
        warnings=tuple(_warnings(scenario, fig, hw)),
        notes=scenario.notes,
        suggestions=tuple(suggestions),
    )
