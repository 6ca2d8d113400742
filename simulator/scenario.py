"""Scenario: every input a user can set, as frozen dataclasses with a JSON round trip.

`Scenario.from_dict` fills documented defaults, derives a model shape when only `model.params` is given,
and validates; every error names the field, the value and what is allowed (see `simulator.validation`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from typing import Any

MLP_KINDS = ("gelu", "swiglu")
PRECISIONS = ("bf16", "fp16", "fp8", "fp32", "tf32")
RECOMPUTE = ("none", "selective", "full")
SYNC_METHODS = ("ring", "tree", "ps", "async")
SHARDING = ("random", "sequential")
QUALITY_LAWS = ("chinchilla", "epoch")


class ScenarioError(ValueError):
    """Invalid scenario input; `problems` lists one message per field."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ModelSpec:
    params: float | None = None  # total parameters incl. embeddings; derived from the shape when absent
    layers: int | None = None  # transformer blocks
    hidden: int | None = None  # model width d_model
    heads: int | None = None  # attention heads
    kv_heads: int | None = None  # grouped-query attention; defaults to heads
    ffn_hidden: int | None = None  # defaults to 4·hidden (gelu) or 8/3·hidden rounded to 256 (swiglu)
    mlp: str = "gelu"  # gelu: 2 FFN matrices; swiglu: 3 (LLaMA)
    vocab: int = 51200  # vocabulary size (tied input/output embedding)
    seq_len: int = 2048  # tokens per training sequence


@dataclass(frozen=True)
class TrainingSpec:
    tokens: float | None = None  # defaults to 20 tokens per parameter (Hoffmann et al. 2022)
    global_batch_seqs: int = 1024  # sequences per optimizer step
    micro_batch_seqs: int = 1  # sequences per GPU per forward/backward pass
    precision: str = "bf16"  # compute dtype of the matrix multiplies (mixed precision, fp32 master weights)
    recompute: str = "selective"  # activation recomputation (Korthikanti et al. 2022)
    zero_stage: int = 1  # ZeRO sharding of optimizer states / gradients / weights (Rajbhandari et al. 2020)
    sequence_parallel: bool = True  # shard LayerNorm/dropout activations over TP ranks (Korthikanti et al. 2022)
    interleave: int = 1  # virtual pipeline stages per rank; 1 = plain 1F1B
    flash_attention: bool = True  # fused attention kernel (Dao et al. 2022): no s² scores in memory
    sharding: str = "random"  # how data is split over workers; sequential shards slow asynchronous SGD


@dataclass(frozen=True)
class ClusterSpec:
    accelerator: str = "H100-SXM"  # catalog id or a calibrated device "profile:..."
    gpus: int = 8  # total accelerators = tp × pp × dp
    gpus_per_node: int | None = None  # defaults to the accelerator's usual server
    tp: int = 1  # tensor-parallel degree (keep within a node)
    pp: int = 1  # pipeline-parallel stages
    sync: str = "ring"  # gradient sync: ring or tree all-reduce, parameter server (ps), asynchronous SGD
    ps_servers: int = 1  # parameter-server shards when sync = ps
    async_kappa: float = 0.02  # extra updates per unit of staleness, U = U0·(1 + κ·s)
    straggler_cv: float = 0.01  # per-worker step-time coefficient of variation (assumed: ~1% jitter on dedicated clusters)
    dp_overlap: float = 0.8  # fraction of data-parallel sync hidden behind backward


@dataclass(frozen=True)
class FinanceSpec:
    gpu_hour_usd: float | None = None  # defaults to the catalog's dated price
    server_power_factor: float = 1.82  # Epoch AI (Cottier et al. 2024): server W per GPU / chip TDP
    power_utilization: float = 0.75  # Epoch AI: average draw / server TDP
    pue: float = 1.25  # Epoch AI: 1.10 hyperscaler, 1.25 otherwise
    co2_kg_per_kwh: float = 0.37  # assumed grid intensity; adjustable
    electricity_usd_per_kwh: float = 0.0826  # Epoch AI: US industrial, 2025


@dataclass(frozen=True)
class QualitySpec:
    law: str = "chinchilla"  # Hoffmann et al. 2022 Approach 3, or the Epoch AI refit (Besiroglu et al. 2024)


SECTIONS: dict[str, type] = {
    "model": ModelSpec,
    "training": TrainingSpec,
    "cluster": ClusterSpec,
    "finance": FinanceSpec,
    "quality": QualitySpec,
}


@dataclass(frozen=True)
class Scenario:
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    finance: FinanceSpec = field(default_factory=FinanceSpec)
    quality: QualitySpec = field(default_factory=QualitySpec)
    notes: tuple[str, ...] = field(default=(), compare=False)  # how defaults and the shape were derived
    derived: frozenset[str] = field(default=frozenset(), compare=False)  # dotted keys filled from other inputs

    @property
    def dp(self) -> int:
        return self.cluster.gpus // (self.cluster.tp * self.cluster.pp)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every value, resolved (what the plan used)."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def inputs(self) -> dict[str, dict[str, Any]]:
        """The values the user chose: keys derived from other inputs (shape from params, catalog price, ...)
        are left out, so that changing e.g. the accelerator re-derives its price."""
        full = self.to_dict()
        return {s: {k: v for k, v in values.items() if f"{s}.{k}" not in self.derived} for s, values in full.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> Scenario:
        from simulator.validation import resolve  # here: validation imports this module

        return resolve(parse_sections(data))

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError([f"scenario: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"]) from exc
        return cls.from_dict(data)

    def replace(self, **dotted: Any) -> Scenario:
        """Copy with dotted keys changed, re-validated: `s.replace(**{"cluster.gpus": 64})`."""
        data = self.inputs()
        for key, value in dotted.items():
            section, _, name = key.partition(".")
            data.setdefault(section, {})[name] = value
        return Scenario.from_dict(data)


def _field_names(section_cls: type) -> list[str]:
    return [f.name for f in fields(section_cls)]


def parse_sections(data: Any) -> dict[str, dict[str, Any]]:
    """Check the JSON structure (sections and key names) before any value is looked at."""
    if not isinstance(data, dict):
        raise ScenarioError([f"scenario: expected a JSON object with sections {', '.join(SECTIONS)}, got {type(data).__name__}"])
    problems: list[str] = []
    out: dict[str, dict[str, Any]] = {}
    for section, values in data.items():
        if section not in SECTIONS:
            hint = difflib.get_close_matches(str(section), SECTIONS, n=1)
            tip = f'; did you mean "{hint[0]}"?' if hint else ""
            problems.append(f'{section}: unknown section; allowed: {", ".join(SECTIONS)}{tip}')
            continue
        if not isinstance(values, dict):
            problems.append(f"{section}: expected an object of keys, got {type(values).__name__}")
            continue
        known = _field_names(SECTIONS[section])
        for key in values:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                tip = f'; did you mean "{section}.{hint[0]}"?' if hint else ""
                problems.append(f"{section}.{key}: unknown key; allowed: {', '.join(known)}{tip}")
        out[section] = dict(values)
    if problems:
        raise ScenarioError(problems)
    return out
