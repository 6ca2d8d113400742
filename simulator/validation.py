"""Turn parsed scenario sections into a valid, fully resolved `Scenario`, or say exactly what is wrong."""

from __future__ import annotations

import math
from typing import Any

from simulator.catalog import UnknownAccelerator, get_accelerator
from simulator.scenario import (
    MLP_KINDS,
    PRECISIONS,
    QUALITY_LAWS,
    RECOMPUTE,
    SECTIONS,
    SHARDING,
    SYNC_METHODS,
    ClusterSpec,
    FinanceSpec,
    ModelSpec,
    QualitySpec,
    Scenario,
    ScenarioError,
    TrainingSpec,
)
from simulator.shape import derive_shape
from simulator.training import params_from_shape

# dotted key -> (kind, lower bound, upper bound or allowed values); lower bounds are inclusive
RULES: dict[str, tuple[str, Any, Any]] = {
    "model.params": ("float", 1e5, 1e15),
    "model.layers": ("int", 1, 10_000),
    "model.hidden": ("int", 8, 1_000_000),
    "model.heads": ("int", 1, 10_000),
    "model.kv_heads": ("int", 1, 10_000),
    "model.ffn_hidden": ("int", 8, 10_000_000),
    "model.mlp": ("choice", None, MLP_KINDS),
    "model.vocab": ("int", 1, 10_000_000),
    "model.seq_len": ("int", 1, 10_000_000),
    "training.tokens": ("float", 1e3, 1e16),
    "training.global_batch_seqs": ("int", 1, 100_000_000),
    "training.micro_batch_seqs": ("int", 1, 1_000_000),
    "training.precision": ("choice", None, PRECISIONS),
    "training.recompute": ("choice", None, RECOMPUTE),
    "training.zero_stage": ("int", 0, 3),
    "training.sequence_parallel": ("bool", None, None),
    "training.interleave": ("int", 1, 1024),
    "training.flash_attention": ("bool", None, None),
    "training.sharding": ("choice", None, SHARDING),
    "cluster.accelerator": ("str", None, None),
    "cluster.gpus": ("int", 1, 10_000_000),
    "cluster.gpus_per_node": ("int", 1, 1024),
    "cluster.tp": ("int", 1, 1024),
    "cluster.pp": ("int", 1, 100_000),
    "cluster.sync": ("choice", None, SYNC_METHODS),
    "cluster.ps_servers": ("int", 1, 1_000_000),
    "cluster.async_kappa": ("float", 0.0, 10.0),
    "cluster.straggler_cv": ("float", 0.0, 2.0),
    "cluster.dp_overlap": ("float", 0.0, 1.0),
    "finance.gpu_hour_usd": ("float", 0.0, 10_000.0),
    "finance.server_power_factor": ("float", 1.0, 10.0),
    "finance.power_utilization": ("float", 0.0, 1.0),
    "finance.pue": ("float", 1.0, 5.0),
    "finance.co2_kg_per_kwh": ("float", 0.0, 5.0),
    "finance.electricity_usd_per_kwh": ("float", 0.0, 10.0),
    "quality.law": ("choice", None, QUALITY_LAWS),
}


def coerce_value(key: str, value: Any, problems: list[str]) -> Any:
    """Check one value's type and range; return it in canonical type, or None after recording a problem."""
    kind, low, high = RULES[key]
    if value is None:
        return None
    if kind == "choice":
        text = str(value).lower() if isinstance(value, str) else None
        if text not in high:
            problems.append(f"{key} = {value!r}: allowed values are {', '.join(high)}")
            return None
        return text
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key} = {value!r}: expected a non-empty name")
            return None
        return value.strip()
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        problems.append(f"{key} = {value!r}: expected true or false")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"{key} = {value!r}: expected a number, got {type(value).__name__}")
        return None
    if not math.isfinite(value):
        problems.append(f"{key} = {value!r}: must be a finite number")
        return None
    if kind == "int":
        if float(value) != int(value):
            problems.append(f"{key} = {value!r}: must be a whole number")
            return None
        value = int(value)
    else:
        value = float(value)
    if value < low or value > high:
        problems.append(f"{key} = {value:g}: must be between {low:g} and {high:g}")
        return None
    return value


def _divisors(n: int, limit: int = 8) -> str:
    found = [d for d in range(1, min(n, 4096) + 1) if n % d == 0]
    return ", ".join(str(d) for d in found[:limit]) + (" ..." if len(found) > limit else "")


def _resolve_model(m: dict[str, Any], notes: list[str], derived: set[str], problems: list[str]) -> ModelSpec | None:
    mlp = m.get("mlp") or "gelu"
    if m.get("ffn_hidden") is None:
        derived.add("model.ffn_hidden")
    vocab = m.get("vocab") or 51200
    seq_len = m.get("seq_len") or 2048
    shape_keys = ("layers", "hidden", "heads")
    given = [k for k in shape_keys if m.get(k) is not None]
    layers, hidden, heads = (m.get(k) for k in shape_keys)
    if not given:
        if m.get("params") is None:
            problems.append("model: give model.params, or the shape model.layers, model.hidden and model.heads")
            return None
        arr = derive_shape(m["params"], vocab, mlp == "swiglu")
        layers, hidden, heads, ffn = (int(x) for x in arr)
        notes.append(
            f"model shape derived from model.params = {m['params']:.3g}: layers={layers}, hidden={hidden}, "
            f"heads={heads}, ffn_hidden={ffn}, from N ≈ 12·L·h² with hidden ≈ 128·layers (GPT-3 aspect ratio)"
        )
        derived.update(("model.layers", "model.hidden", "model.heads"))
        m = {**m, "ffn_hidden": m.get("ffn_hidden") or ffn}
    elif len(given) < 3:
        missing = [f"model.{k}" for k in shape_keys if k not in given]
        problems.append(f"model: a shape needs layers, hidden and heads; missing {', '.join(missing)}")
        return None
    if hidden % heads:
        problems.append(f"model.hidden = {hidden}: must be divisible by model.heads = {heads}")
        return None
    kv_heads = m.get("kv_heads") or heads
    if m.get("kv_heads") is None:
        derived.add("model.kv_heads")
    if heads % kv_heads:
        problems.append(f"model.kv_heads = {kv_heads}: must divide model.heads = {heads}; try {_divisors(heads)}")
    ffn = m.get("ffn_hidden")
    if ffn is None:
        ffn = 4 * hidden if mlp == "gelu" else int(math.ceil(8 * hidden / 3 / 256) * 256)
        notes.append(f"model.ffn_hidden defaulted to {ffn} ({'4·hidden' if mlp == 'gelu' else '8/3·hidden, rounded to 256'})")
    shape_params = float(params_from_shape(layers, hidden, heads, kv_heads, ffn, 1.0 if mlp == "swiglu" else 0.0, vocab))
    params = m.get("params")
    if params is None or given:
        derived.add("model.params")  # the shape decides the count
    if params is not None and given and abs(shape_params / params - 1) > 0.25:
        problems.append(
            f"model.params = {params:.3g}: the shape given (layers={layers}, hidden={hidden}) has {shape_params:.3g} "
            "parameters, more than 25% apart; drop model.params or fix the shape"
        )
    return ModelSpec(shape_params, layers, hidden, heads, kv_heads, ffn, mlp, vocab, seq_len)


def _check_parallelism(model: ModelSpec, t: TrainingSpec, c: ClusterSpec, problems: list[str]) -> None:
    tp, pp, gpus = c.tp, c.pp, c.gpus
    if model.heads % tp:
        problems.append(f"cluster.tp = {tp}: the tensor-parallel degree must divide model.heads ({model.heads}); try {_divisors(model.heads)}")
    if model.kv_heads and model.kv_heads % tp and tp % model.kv_heads:
        problems.append(f"cluster.tp = {tp}: must divide model.kv_heads ({model.kv_heads}) or be a multiple of it")
    if gpus % (tp * pp):
        problems.append(
            f"cluster.gpus = {gpus}: tp×pp×dp must equal the GPU count, and tp×pp = {tp}×{pp} = {tp * pp} does not "
            f"divide {gpus}; use a multiple of {tp * pp} GPUs or change tp/pp"
        )
        return
    dp = gpus // (tp * pp)
    if model.layers % (pp * t.interleave):
        what = f"pp×interleave = {pp}×{t.interleave}" if t.interleave > 1 else f"pp = {pp}"
        problems.append(
            f"cluster.pp = {pp}: model.layers ({model.layers}) must split evenly over {what}; "
            f"try pp in {_divisors(model.layers)}"
        )
    if t.interleave > 1 and pp == 1:
        problems.append(f"training.interleave = {t.interleave}: interleaving needs pipeline parallelism (cluster.pp > 1)")
    per_step = t.micro_batch_seqs * dp
    if t.global_batch_seqs % per_step:
        problems.append(
            f"training.global_batch_seqs = {t.global_batch_seqs}: must be a multiple of micro_batch_seqs×dp = "
            f"{t.micro_batch_seqs}×{dp} = {per_step}; try {max(per_step, round(t.global_batch_seqs / per_step) * per_step)}"
        )
    if c.sync == "ps" and c.ps_servers > max(dp, 1):
        problems.append(f"cluster.ps_servers = {c.ps_servers}: at most one server shard per data-parallel worker ({dp})")
    if t.zero_stage > 0 and c.sync in ("ps", "async"):
        problems.append(f"training.zero_stage = {t.zero_stage}: ZeRO shards states over all-reduce groups; use zero_stage 0 with sync = {c.sync}")


def resolve(sections: dict[str, dict[str, Any]]) -> Scenario:
    problems: list[str] = []
    clean: dict[str, dict[str, Any]] = {}
    for section in SECTIONS:
        values = sections.get(section, {})
        clean[section] = {k: coerce_value(f"{section}.{k}", v, problems) for k, v in values.items()}
        clean[section] = {k: v for k, v in clean[section].items() if v is not None}
    if problems:
        raise ScenarioError(problems)
    notes: list[str] = []
    derived: set[str] = set()
    model = _resolve_model(clean["model"], notes, derived, problems)
    c = clean["cluster"]
    try:
        hw = get_accelerator(c.get("accelerator", ClusterSpec.accelerator))
    except UnknownAccelerator as exc:
        problems.append(str(exc))
        hw = None
    if model is None or hw is None:
        raise ScenarioError(problems)
    c["accelerator"] = hw.id
    if "gpus_per_node" not in c:
        c["gpus_per_node"] = min(hw.gpus_per_node, c.get("gpus", ClusterSpec.gpus))
        derived.add("cluster.gpus_per_node")
    cluster = ClusterSpec(**c)
    tr = clean["training"]
    if "tokens" not in tr:
        tr["tokens"] = 20.0 * model.params
        derived.add("training.tokens")
        notes.append(f"training.tokens defaulted to 20 per parameter: {tr['tokens']:.3g} (Hoffmann et al. 2022)")
    training = TrainingSpec(**tr)
    try:
        hw.peak_for(training.precision)
    except ValueError as exc:
        problems.append(f"training.precision = {training.precision!r}: {exc}")
    fin = clean["finance"]
    if "gpu_hour_usd" not in fin:
        fin["gpu_hour_usd"] = hw.gpu_hour_usd
        derived.add("finance.gpu_hour_usd")
        notes.append(f"finance.gpu_hour_usd defaulted to ${hw.gpu_hour_usd:.2f} for {hw.id} (price of {hw.price_date})")
    _check_parallelism(model, training, cluster, problems)
    if problems:
        raise ScenarioError(problems)
    return Scenario(model, training, cluster, FinanceSpec(**fin), QualitySpec(**clean["quality"]), tuple(notes), frozenset(derived))

