"""The input registry's promises: every input is declared once, and the sweep and `Scenario` agree.

1. A sweep row is valid exactly when `Scenario.from_dict` accepts the same inputs, and then its figures are
   `evaluate`'s (hypothesis over grids of layouts).
2. Every numeric, bool and choice input that is not informational moves at least one output figure.
3. The declarations are consistent (unique links, columns, figure keys, rule texts and codes; bounds,
   defaults, docs/scenario.md, the Scenario's fields, share links).
4. Hostile single values never raise anything but ScenarioError, and the error names the key.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from simulator import Scenario, ScenarioError, evaluate, sweep
from simulator.catalog import UnknownAccelerator
from simulator.families import FAMILIES
from simulator.inputs import ERRORS, FIGURES, INPUTS, SECTIONS, WARNINGS, coerce, section_keys
from simulator.presets import PRESETS
from simulator.resolve import device_catalog, lookup_device
from simulator.scenario import SECTION_TYPES
from simulator.scenario_doc import scenario_reference
from simulator.share import BASELINE_FLAG, BASELINE_PREFIX, from_query, to_query

ROOT = Path(__file__).resolve().parents[1]
CATALOG = device_catalog()
# accelerators that lack a precision exercise the precision rule (A100: no fp8; a CPU profile: no fp16 either)
PARTIAL = sorted(k for k, spec in CATALOG.items() if {"fp8", "fp16", "tf32"} - set(spec.peak_tflops))
ACCELERATORS = ["H100-SXM", "A100-80GB-SXM", *[k for k in PARTIAL if k != "A100-80GB-SXM"][:1]]
NUMERIC = ("int", "float")


def merge(*parts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sections of scenario inputs, later parts overriding earlier ones key by key."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for section, values in part.items():
            out.setdefault(section, {}).update(values)
    return out


def with_value(data: Mapping[str, Mapping[str, Any]], key: str, value: Any) -> dict[str, dict[str, Any]]:
    section, _, name = key.partition(".")
    return merge(data, {section: {name: value}})


def same(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Equal figures: bools exactly, NaN equals NaN, infinities exactly, numbers within `rel`."""
    if isinstance(a, bool | np.bool_) or isinstance(b, bool | np.bool_):
        return bool(a) == bool(b) and isinstance(a, bool | np.bool_) and isinstance(b, bool | np.bool_)
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


def accepts(data: Mapping[str, Any]) -> tuple[Scenario | None, ScenarioError | None]:
    try:
        return Scenario.from_dict(data), None
    except ScenarioError as exc:
        return None, exc


def figure_values(scenario: Scenario) -> dict[str, Any]:
    return {k: f.value for k, f in evaluate(scenario).figures.items()}


# --- 1. sweep validity == Scenario acceptance, row by row --------------------------------------------------

SWEEP_BASES = {
    "small": {"model": {"layers": 24, "hidden": 2048, "heads": 16, "seq_len": 1024},
              "training": {"tokens": 1e10, "global_batch_seqs": 64}, "cluster": {"gpus": 16, "tp": 2}},
    "gqa": {"model": {"layers": 96, "hidden": 12288, "heads": 96, "kv_heads": 8},
            "training": {"tokens": 3e11}, "cluster": {"gpus": 96, "tp": 8, "pp": 4}},
    "ps-uneven": {"model": {"layers": 12, "hidden": 1536, "heads": 12, "mlp": "swiglu", "vocab": 32000},
                  "training": {"tokens": 5e9, "global_batch_seqs": 32, "micro_batch_seqs": 2},
                  "cluster": {"gpus": 24, "pp": 3, "first_stage_layers": 3, "sync": "ps", "ps_servers": 2}},
    "async-a100": {"model": {"layers": 8, "hidden": 1024, "heads": 8, "kv_heads": 2},
                   "training": {"tokens": 1e9, "precision": "fp16", "interleave": 2},
                   "cluster": {"gpus": 8, "pp": 2, "sync": "async", "accelerator": "A100-80GB-SXM"}},
}
SWEEP_POOLS: dict[str, list[Any]] = {
    "model.heads": [8, 12, 16, 32, 96],
    "model.kv_heads": [1, 2, 4, 8, 16],
    "model.hidden": [1024, 1536, 2048, 3000, 12288],
    "model.layers": [2, 8, 12, 24, 96],
    "model.params": [1e9, 2.5e9, 2e11],
    "cluster.tp": [1, 2, 3, 4, 8, 12],
    "cluster.pp": [1, 2, 3, 4, 8],
    "cluster.gpus": [8, 12, 16, 24, 96, 128],
    "training.interleave": [1, 2, 3],
    "training.global_batch_seqs": [1, 4, 7, 64, 1024],
    "training.micro_batch_seqs": [1, 2, 3],
    "cluster.first_stage_layers": [1, 2, 5, 12],
    "cluster.last_stage_layers": [1, 3, 6],
    "cluster.sync": ["ring", "tree", "ps", "async"],
    "training.zero_stage": [0, 1, 2, 3],
    "cluster.ps_servers": [1, 2, 8, 64],
    "training.precision": ["bf16", "fp16", "fp8", "fp32", "tf32"],
    "cluster.accelerator": ACCELERATORS,
    "cluster.gpus_per_node": [1, 4, 8],
    "goodput.enabled": [True, False],
}


@st.composite
def sweep_cases(draw, max_keys: int, max_values: int, max_rows: int):
    base = draw(st.sampled_from(sorted(SWEEP_BASES)))
    keys = draw(st.lists(st.sampled_from(sorted(SWEEP_POOLS)), min_size=1, max_size=max_keys, unique=True))
    grid = {}
    for key in keys:
        grid[key] = draw(st.lists(st.sampled_from(SWEEP_POOLS[key]), min_size=1, max_size=max_values, unique=True))
    assume(math.prod(len(v) for v in grid.values()) <= max_rows)
    return base, grid


def check_sweep_agrees(base_name: str, grid: dict[str, list[Any]]) -> None:
    base = Scenario.from_dict(SWEEP_BASES[base_name])
    frame = sweep(base, grid, columns=["all"])  # every figure, to compare with a plan
    assert len(frame) == math.prod(len(v) for v in grid.values())
    inputs = base.inputs()
    for i, values in enumerate(itertools.product(*grid.values())):  # the sweep's rows are the grid's product
        row = frame.iloc[i]
        point = dict(zip(grid, values, strict=True))
        data = inputs
        for key, value in point.items():
            data = with_value(data, key, value)
        one, error = accepts(data)
        where = f"base {base_name}, row {i} {point}"
        for key, value in point.items():  # a row keeps its inputs
            if key != "model.params":
                assert row[key] == value, f"{where}: column {key} shows {row[key]!r}"
        assert bool(row["valid"]) == (one is not None), (
            f"{where}: sweep valid={bool(row['valid'])} (reason {row['reason']!r}) but Scenario "
            f"{'accepts it' if one is not None else 'refuses it: ' + str(error)}")
        if one is None:
            assert row["reason"] != "", where
            assert all(np.isnan(row[k]) for k in FIGURES if k != "training.fits_memory"), where
            assert not row["training.fits_memory"], where
            continue
        assert row["reason"] == "", where
        plan = evaluate(one)
        for key in FIGURES:
            expected = plan.figures[key].value if key in plan.figures else float("nan")
            assert same(row[key], expected), f"{where}: {key} sweep {row[key]!r} != evaluate {expected!r}"


def test_rows_refused_for_model_params_keep_the_value_given():
    base = Scenario.from_dict(SWEEP_BASES["small"])
    frame = sweep(base, {"model.params": [5e9, 2e11]})
    assert not frame["valid"].any()
    assert frame["model.params"].tolist() == [5e9, 2e11]


@pytest.mark.parametrize("params", [1e5, 1e6, 1e7, 3e7])
def test_model_params_alone_is_accepted_across_its_declared_range(params):
    """'Give this alone and the shape is derived': every declared value alone must give a scenario."""
    scenario = Scenario.from_dict({"model": {"params": params}})
    # a tiny model with a 51,200-token vocabulary cannot have that count: the embedding alone is larger; the
    # derived shape is the smallest sensible one and the note says what it counts
    assert scenario.model.params >= params * 0.75
    assert any(n.startswith("model.params = ") and "counted from the shape" in n for n in scenario.notes)


def test_a_numpy_integer_grid_is_a_grid_of_numbers():
    base = Scenario.from_dict(SWEEP_BASES["small"])
    frame = sweep(base, {"cluster.gpus": np.arange(16, 65, 16)})
    assert frame["valid"].all() and frame["cluster.gpus"].tolist() == [16, 32, 48, 64]


def test_the_issues_layout_is_invalid_in_both():
    """96 heads, 8 KV heads, tp 12, pp 4 on 96 GPUs: tp divides neither 8 nor is it a multiple of 8."""
    data = {"model": {"layers": 96, "hidden": 12288, "heads": 96, "kv_heads": 8},
            "cluster": {"gpus": 96, "tp": 12, "pp": 4}}
    with pytest.raises(ScenarioError, match=r"cluster\.tp"):
        Scenario.from_dict(data)
    base = Scenario.from_dict(SWEEP_BASES["gqa"])
    frame = sweep(base, {"model.kv_heads": [8], "cluster.tp": [8, 12], "cluster.pp": [4], "cluster.gpus": [96]})
    assert frame["valid"].tolist() == [True, False]
    assert frame["reason"].iloc[1].startswith("cluster.tp")
    check_sweep_agrees("gqa", {"model.kv_heads": [8], "cluster.tp": [8, 12], "cluster.pp": [4], "cluster.gpus": [96]})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(sweep_cases(max_keys=4, max_values=3, max_rows=24))
def test_sweep_validity_equals_scenario_acceptance(case):
    check_sweep_agrees(*case)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(sweep_cases(max_keys=5, max_values=3, max_rows=81))
def test_sweep_validity_equals_scenario_acceptance_heavy(case):
    check_sweep_agrees(*case)


# --- 2. every input moves an output -------------------------------------------------------------------------

SHAPE = {"model": {"layers": 24, "hidden": 2048, "heads": 16, "kv_heads": 8, "seq_len": 2048},
         "training": {"tokens": 2e10, "global_batch_seqs": 256}, "cluster": {"gpus": 64, "tp": 2, "pp": 2}}
# the contexts an input must move something in (at least one of): sync method × accelerator, goodput on
CONTEXTS = [{"cluster": {"sync": sync, "accelerator": acc}, "goodput": {"enabled": True}}
            for sync in ("ring", "ps", "async") for acc in ("H100-SXM", "A100-80GB-SXM")]
# the scenario an input needs to matter at all: given explicitly where it is derived or optional, the layout
# or the sync method it applies to
NEEDS: dict[str, dict[str, dict[str, Any]]] = {
    "finance.purchase_usd_per_gpu": {"finance": {"purchase_usd_per_gpu": 30_000.0}},
    "model.params": {"model": {"params": 1.3e9}},  # a shape given beside it wins; alone it sets the shape
    "cluster.first_stage_layers": {"cluster": {"pp": 4, "gpus": 64, "first_stage_layers": 5}},
    "cluster.last_stage_layers": {"cluster": {"pp": 4, "gpus": 64, "last_stage_layers": 5}},
    "training.interleave": {"cluster": {"pp": 2}},
    "cluster.gpus_per_node": {"cluster": {"gpus_per_node": 8, "gpus": 64}},
    "cluster.ps_servers": {"cluster": {"sync": "ps", "ps_servers": 4}},
    "cluster.async_kappa": {"cluster": {"sync": "async"}},
    "training.sharding": {"cluster": {"sync": "async"}},
    "finance.gpu_hour_usd": {"finance": {"gpu_hour_usd": 2.5}},
    "decision.quality_target_loss": {"decision": {"quality_target_loss": 2.5}},
    "training.sequence_parallel": {"cluster": {"tp": 4}},
    "model.ffn_hidden": {"model": {"ffn_hidden": 8192}},
    "training.zero_stage": {"cluster": {"sync": "ring"}},
    # mixture-of-experts and MLA inputs act on a model that has experts or latent attention
    **{f"model.{k}": {"model": {"attention": "mla"}} for k in ("mla_q_lora_rank", "mla_kv_lora_rank", "mla_rope_dim")},
    **{k: {"model": {"moe_experts": 8}} for k in ("model.moe_top_k", "model.moe_shared_experts", "model.moe_granularity",
                                                   "model.moe_ffn_hidden", "model.moe_dense_layers",
                                                   "model.moe_layer_step", "training.moe_capacity_factor")},
    "cluster.ep": {"model": {"moe_experts": 8}},
    "training.moe_imbalance": {"model": {"moe_experts": 8}},
    "model.head_dim": {"model": {"head_dim": 64}},
    "model.attention": {"model": {"kv_heads": 16}},
    # the mixture-of-experts law's scale acts only on a mixture-of-experts model
    "quality.moe_gain_scale": {"model": {"moe_experts": 8, "moe_top_k": 2}},
    # compression inputs act only once something is quantized or pruned
    "compression.weight_bits": {"compression": {"quant_method": "rtn", "weight_bits": 4}},
    "compression.act_bits": {"compression": {"quant_method": "smoothquant", "act_bits": 8}},
    "compression.group_size": {"compression": {"quant_method": "rtn", "weight_bits": 4, "group_size": 128}},
    "compression.format": {"compression": {"quant_method": "rtn", "weight_bits": 8}},
    "compression.quant_method": {"compression": {"quant_method": "rtn", "weight_bits": 4, "act_bits": 8}},
    "compression.loss_scale": {"compression": {"quant_method": "rtn", "weight_bits": 4}},
    "compression.prune_loss_scale": {"compression": {"pruning_method": "wanda", "sparsity": 0.5}},
    "compression.dequant_overhead": {"compression": {"quant_method": "rtn", "weight_bits": 4}},
    "compression.sparsity": {"compression": {"pruning_method": "magnitude", "sparsity": 0.5}},
    "compression.pattern": {"compression": {"pruning_method": "magnitude", "sparsity": 0.5}},
    "compression.pruning_method": {"compression": {"pruning_method": "magnitude", "sparsity": 0.5, "pattern": "rows"}},
    # the serving layout of a mixture-of-experts model: expert parallelism, its imbalance, data-parallel attention
    "serving.ep": {"model": {"moe_experts": 8}, "serving": {"gpus_per_replica": 8, "ep": 2, "attention_dp": True}},
    "serving.moe_imbalance": {"model": {"moe_experts": 8},
                              "serving": {"gpus_per_replica": 8, "ep": 8, "moe_imbalance": 1.2}},
    "serving.attention_dp": {"model": {"moe_experts": 8}, "serving": {"gpus_per_replica": 4}},
}
NO_SHAPE = {"model.params"}


def base_data(key: str, context: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    shape = SHAPE
    if key in NO_SHAPE:
        shape = {s: {k: v for k, v in vals.items() if s != "model" or k == "seq_len"} for s, vals in SHAPE.items()}
    return merge(shape, context, NEEDS.get(key, {}))


def candidates(inp, value: Any) -> list[Any]:
    if inp.kind == "bool":
        return [not value]
    if inp.kind == "choice":
        return [c for c in inp.choices if c != value]
    if inp.kind == "device":
        return [k for k in CATALOG if k != value]
    if value in inp.words:  # a named value ("max"): try numbers across the range
        return [round(inp.low), 2 * round(inp.low), 16]
    raw = [value * 0.5, value * 2, inp.low, inp.high, value + 1, value - 1, value * 1.1, value * 0.9]
    out = []
    for x in raw:
        x = min(max(x, inp.low), inp.high)
        x = round(x) if inp.kind == "int" else float(x)
        if x != value and x not in out:
            out.append(x)
    return out


def movers(key: str, every_value: bool) -> tuple[list[str], list[tuple[Any, list[str]]], int]:
    """(problems with the bases, [(value, figures it moved)], valid perturbations tried); stops at the first
    value that moves something, or with `every_value` at the first context each value moves something in."""
    inp = INPUTS[key]
    problems, moved, tried = [], [], 0
    for context in CONTEXTS:
        base, error = accepts(base_data(key, context))
        if base is None:
            problems.append(f"{context}: {error}")
            continue
        before = figure_values(base)
        for value in candidates(inp, base.value(key)):
            if any(v == value for v, _ in moved):
                continue
            after, _ = accepts(with_value(base.inputs(), key, value))
            if after is None:
                continue
            tried += 1
            now = figure_values(after)
            changed = [k for k in before.keys() | now.keys()
                       if k not in before or k not in now or not same(before[k], now[k], 0.0)]
            if changed:
                moved.append((value, changed))
                if not every_value:
                    return problems, moved, tried
    return problems, moved, tried


# choice values the model treats exactly as another one, and why; the test checks that the reason still holds
# (model.attention: multi-head attention is grouped-query attention with one KV head per head, the base here; a rule
# refuses mha beside fewer KV heads, tests/test_moe.py)
SAME_AS = {("training.precision", "fp16"): "bf16", ("model.attention", "gqa"): "mha"}
# "none" is the dense reference: a rule refuses it beside the bits or sparsity the other methods need in order
# to act, so it never moves a base in which they do; tests/test_compression.py checks that none is the dense model
ONLY_AS_REFERENCE = {("compression.quant_method", "none"), ("compression.pruning_method", "none")}


def _fp16_is_bf16() -> bool:
    """Every datasheet lists the same fp16 and bf16 peak, and both store 2-byte weights and activations."""
    from simulator.hardware_table import PARAM_BYTES
    from simulator.scenario import PRECISIONS

    peaks = [spec.peak_tflops for spec in CATALOG.values() if "fp16" in spec.peak_tflops]
    same_peak = all(p["fp16"] == p["bf16"] for p in peaks)
    return same_peak and PARAM_BYTES[PRECISIONS.index("fp16")] == PARAM_BYTES[PRECISIONS.index("bf16")]


MOVING = [k for k, inp in INPUTS.items()
          if not inp.informational and (inp.kind in ("bool", "choice", "device") or (inp.kind in NUMERIC and inp.column))]


@pytest.mark.parametrize("key", [k for k in MOVING if INPUTS[k].kind in NUMERIC])
def test_every_numeric_input_moves_an_output(key):
    problems, moved, tried = movers(key, every_value=False)
    assert len(problems) < len(CONTEXTS), f"{key}: no valid base scenario: {problems}"
    assert tried, f"{key}: no valid perturbation of it found within its bounds"
    assert moved, f"{key}: moves no output figure in any context (sync ring/ps/async × H100/A100, goodput on)"


@pytest.mark.parametrize("key", [k for k in MOVING if INPUTS[k].kind not in NUMERIC])
def test_every_alternative_of_a_bool_or_choice_moves_an_output(key):
    """Each value other than the base's changes at least one figure in at least one context."""
    inp = INPUTS[key]
    problems, moved, _ = movers(key, every_value=inp.kind != "bool")
    assert len(problems) < len(CONTEXTS), f"{key}: no valid base scenario: {problems}"
    if inp.kind == "bool":
        assert moved, f"{key}: switching it moves no output figure in any context"
        return
    base_values = {Scenario.from_dict(base_data(key, c)).value(key) for c in CONTEXTS if accepts(base_data(key, c))[0]}
    moving_values = {v for v, _ in moved} | (base_values if moved else set())
    values = inp.choices if inp.kind == "choice" else tuple(CATALOG)
    still = [v for v in values if v not in moving_values]
    explained = [v for v in still if (key, v) in SAME_AS]
    if explained:
        assert key != "training.precision" or _fp16_is_bf16(), ("a device now tells fp16 from bf16: drop SAME_AS, "
                                                                "fp16 must move something")
        for v in explained:  # the same plan as the value it equals, in every context
            for context in CONTEXTS:
                a, _ = accepts(with_value(base_data(key, context), key, v))
                b, _ = accepts(with_value(base_data(key, context), key, SAME_AS[key, v]))
                assert (a is None) == (b is None)
                if a is not None:
                    fa, fb = figure_values(a), figure_values(b)
                    assert all(same(fa[k], fb[k], 0.0) for k in fa), f"{key} = {v} moves something after all"
    still = [v for v in still if v not in explained and (key, v) not in ONLY_AS_REFERENCE]
    assert not still, f"{key}: choosing {still} moves no output figure in any context"


def test_the_preset_moves_an_output():
    """model.preset is not a model column (it sets the shape): each preset still gives a different plan."""
    plans = {name: figure_values(Scenario.from_dict({"model": {"preset": name}, "cluster": {"gpus": 64}}))
             for name in PRESETS}
    names = list(plans)
    for a, b in itertools.pairwise(names):
        assert any(not same(plans[a][k], plans[b][k], 0.0) for k in plans[a]), f"presets {a} and {b} give one plan"


# --- 3. declarations are consistent -----------------------------------------------------------------------


def test_inputs_are_declared_once_with_what_every_consumer_needs():
    all_inputs = [inp for family in FAMILIES for inp in family.inputs]
    keys = [inp.key for inp in all_inputs]
    assert len(keys) == len(set(keys)), f"duplicate keys: {sorted({k for k in keys if keys.count(k) > 1})}"
    links = [inp.link for inp in all_inputs]
    assert all(links), f"inputs without a link: {[i.key for i in all_inputs if not i.link]}"
    assert len(links) == len(set(links)), f"duplicate links: {sorted({x for x in links if links.count(x) > 1})}"
    for link in links:
        assert link != BASELINE_FLAG and not link.startswith(BASELINE_PREFIX), link
        assert link not in INPUTS or INPUTS[link].link == link, f"link {link} is another input's dotted key"
    columns = [inp.column for inp in all_inputs if inp.column is not None]
    assert len(columns) == len(set(columns)), f"duplicate columns: {sorted({c for c in columns if columns.count(c) > 1})}"
    for inp in all_inputs:
        assert inp.section in SECTIONS and inp.name and "." not in inp.name, inp.key
        assert inp.label.strip() and inp.help.strip(), f"{inp.key}: needs a label and help"
        if inp.kind in NUMERIC:
            assert inp.low is not None and inp.high is not None and inp.low < inp.high, f"{inp.key}: bounds"
            assert math.isfinite(inp.low) and math.isfinite(inp.high), inp.key
        if inp.kind == "choice":
            assert inp.choices, f"{inp.key}: no choices"
            assert len(set(inp.choices)) == len(inp.choices), f"{inp.key}: duplicate choices"
            assert set(inp.choice_labels) <= set(inp.choices), f"{inp.key}: labels of values it does not allow"
        assert inp.default is None or inp.derived is None, f"{inp.key}: both a constant default and a derived rule"
        if inp.default is not None and inp.default not in inp.words:
            kind_ok = {
                "int": isinstance(inp.default, int) and not isinstance(inp.default, bool),
                "float": isinstance(inp.default, int | float) and not isinstance(inp.default, bool),
                "bool": isinstance(inp.default, bool),
                "choice": inp.default in inp.choices,
                "device": isinstance(inp.default, str) and inp.default in CATALOG,
            }[inp.kind]
            assert kind_ok, f"{inp.key}: default {inp.default!r} is not a {inp.kind}"
            value, problem = coerce(inp, inp.default)
            assert problem is None and value == inp.default, f"{inp.key}: default {inp.default!r}: {problem}"
            if inp.kind in NUMERIC:
                assert inp.low <= inp.default <= inp.high, f"{inp.key}: default {inp.default} outside its bounds"
        if inp.derived is not None:
            for need in inp.derived.needs:
                assert need in INPUTS, f"{inp.key}: derived from unknown input {need}"
        assert inp.spread >= 0 and (inp.step is None or inp.step > 0), inp.key


def test_figures_and_rules_are_declared_once():
    figures = [fig for family in FAMILIES for fig in family.figures]
    keys = [fig.key for fig in figures]
    assert len(keys) == len(set(keys)), f"duplicate figures: {sorted({k for k in keys if keys.count(k) > 1})}"
    assert set(keys) == set(FIGURES)
    for fig in figures:
        assert fig.key.count(".") == 1 and fig.section and fig.name, fig.key
        assert isinstance(fig.unit, str) and (fig.unit or fig.key == "training.fits_memory"), f"{fig.key}: no unit"
        assert fig.how.strip() and fig.label.strip(), f"{fig.key}: needs a label and how"
        assert fig.key not in INPUTS, f"{fig.key}: a figure named like an input"
    rules = [rule for family in FAMILIES for rule in family.rules]
    shorts = [rule.short for rule in rules]
    assert len(shorts) == len(set(shorts)), f"duplicate rule texts: {sorted({s for s in shorts if shorts.count(s) > 1})}"
    codes = [rule.code for rule in WARNINGS]
    assert all(codes), f"warnings without a code: {[r.short for r in WARNINGS if not r.code]}"
    assert len(codes) == len(set(codes)), f"duplicate warning codes: {sorted({c for c in codes if codes.count(c) > 1})}"
    for rule in rules:
        assert rule.key in INPUTS or rule.key in FIGURES, f"rule {rule.short!r} is about unknown key {rule.key}"
        assert rule.severity in ("error", "warning")
    assert set(ERRORS) | set(WARNINGS) == set(rules)


def test_docs_scenario_md_is_generated_from_the_registry():
    text = (ROOT / "docs" / "scenario.md").read_text(encoding="utf-8")
    assert text == scenario_reference(), "docs/scenario.md is stale: run python -m simulator.scenario_doc > docs/scenario.md"


def test_scenario_sections_have_exactly_the_registry_keys():
    assert tuple(SECTION_TYPES) == SECTIONS
    scenario_fields = [f.name for f in dataclasses.fields(Scenario)]
    assert [f for f in scenario_fields if f in SECTIONS] == list(SECTIONS)
    assert set(scenario_fields) - set(SECTIONS) == {"name", "notes", "derived", "given", "idle"}
    for section, cls in SECTION_TYPES.items():
        assert [f.name for f in dataclasses.fields(cls)] == section_keys(section), section
    resolved = Scenario.from_dict(SWEEP_BASES["small"]).to_dict()
    assert {s: set(v) for s, v in resolved.items()} == {s: set(section_keys(s)) for s in SECTIONS}
    for key, inp in INPUTS.items():  # the dataclass defaults are the registry's constants
        field = next(f for f in dataclasses.fields(SECTION_TYPES[inp.section]) if f.name == inp.name)
        assert field.default == (inp.default if inp.derived is None else None), key


@st.composite
def valid_inputs(draw):
    """Inputs of a scenario from_dict accepts: a valid layout, then random values of the other inputs."""
    layers, hidden, heads = draw(st.sampled_from([(2, 256, 4), (12, 768, 12), (24, 2048, 16), (32, 4096, 32)]))
    kv = draw(st.sampled_from([d for d in (1, 2, 4, heads) if heads % d == 0]))
    tp = draw(st.sampled_from([t for t in (1, 2, 4) if heads % t == 0 and (kv % t == 0 or t % kv == 0)]))
    pp = draw(st.sampled_from([p for p in (1, 2) if layers % p == 0]))
    dp = draw(st.integers(1, 8))
    sync = draw(st.sampled_from(["ring", "tree", "ps", "async"]))
    accelerator = draw(st.sampled_from(sorted(CATALOG)))
    precision = draw(st.sampled_from(sorted(CATALOG[accelerator].peak_tflops.keys() & {"bf16", "fp16", "fp8", "fp32", "tf32"})))
    data: dict[str, dict[str, Any]] = {
        "model": {"layers": layers, "hidden": hidden, "heads": heads, "kv_heads": kv},
        "training": {"global_batch_seqs": dp * draw(st.integers(1, 64)), "precision": precision},
        "cluster": {"gpus": tp * pp * dp, "tp": tp, "pp": pp, "sync": sync, "accelerator": accelerator},
    }
    if sync == "ps":
        data["cluster"]["ps_servers"] = draw(st.integers(1, dp))
    if sync in ("ring", "tree") and draw(st.booleans()):
        data["training"]["zero_stage"] = draw(st.integers(0, 3))
    if draw(st.booleans()):
        data = {s: {k: v for k, v in vals.items() if s != "model"} for s, vals in data.items()}
        data["model"] = {"params": draw(st.floats(1e5, 1e12))}
        data["cluster"].update(tp=1, pp=1, gpus=dp)
        data["training"]["global_batch_seqs"] = dp
    free = [k for k, inp in INPUTS.items() if inp.section in ("finance", "goodput", "quality")
            or k in ("model.mlp", "model.vocab", "model.seq_len", "training.tokens", "training.recompute",
                     "training.sequence_parallel", "training.flash_attention", "training.sharding",
                     "training.micro_batch_seqs", "cluster.gpus_per_node", "cluster.async_kappa",
                     "cluster.straggler_cv", "cluster.dp_overlap")]
    for key in draw(st.lists(st.sampled_from(free), unique=True, max_size=8)):
        inp = INPUTS[key]
        if inp.kind == "int":
            value = draw(st.integers(int(inp.low), int(min(inp.high, 1 << 20))))
        elif inp.kind == "float":
            value = draw(st.floats(inp.low, inp.high, allow_nan=False))
        elif inp.kind == "bool":
            value = draw(st.booleans())
        else:
            value = draw(st.sampled_from(inp.choices))
        data = with_value(data, key, value)
    return data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(valid_inputs(), st.sampled_from(["none", "small"]))
def test_share_link_round_trips_a_valid_scenario(data, defaults_name):
    scenario, _ = accepts(data)
    assume(scenario is not None)
    defaults = {} if defaults_name == "none" else Scenario.from_dict(SWEEP_BASES["small"]).inputs()
    query = to_query(scenario.inputs(), defaults)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in query.items())
    shared = from_query(query, defaults)
    assert shared.problems == () and shared.baseline is None
    again = Scenario.from_dict(shared.inputs)
    assert again == scenario
    assert dict(again.given) == dict(scenario.given)
    pinned = from_query(to_query(scenario.inputs(), defaults, baseline=scenario.inputs()), defaults)
    assert pinned.problems == () and Scenario.from_dict(pinned.baseline) == scenario


# --- 4. hostile single values --------------------------------------------------------------------------------

JUNK = st.one_of(
    st.sampled_from([10**400, -(10**400), 2**128, 2**127, 2**64, float("nan"), float("inf"), float("-inf"), 1e308,
                     -1e308, 5e-324, -0.0, True, False, None, "", " ", "abc", "1e3", "8", "nan", "inf", "true", "ring",
                     "H100-SXM", " h100-sxm ", "x" * 1000, "\x00", [], [8], {}, {"a": 1}, (), (8,), 0, -1, 0.5, 1,
                     3, 7, 8, 1e15, 1e16, 1e-9, b"8", complex(1, 2), np.float64("nan"), np.float64(8.0),
                     np.float32(8.0), np.int64(8), np.bool_(True), set(), object()]),
    st.integers(), st.floats(), st.text(max_size=20), st.booleans(),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
HOSTILE_BASE = SWEEP_BASES["small"]


def known_device(name: Any) -> bool:
    try:
        lookup_device(name.strip())
    except (UnknownAccelerator, AttributeError):
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(INPUTS)), JUNK)
def test_hostile_values_raise_scenario_errors_that_name_the_key(key, junk):
    inp = INPUTS[key]
    data = with_value(HOSTILE_BASE, key, junk)
    try:
        _, problem = coerce(inp, junk)
    except Exception as exc:
        pytest.fail(f"coerce({key}, {junk!r}) raised {type(exc).__name__}: {exc}")
    try:
        Scenario.from_dict(data)
        accepted = True
    except ScenarioError as exc:
        accepted = False
        message = str(exc)
        if problem is not None or (inp.kind == "device" and not known_device(junk)):
            assert key in message, f"{key} = {junk!r}: the error does not name the key: {message}"
        assert any(k in message for k in INPUTS) or "model:" in message, f"{key} = {junk!r}: {message}"
    except Exception as exc:
        pytest.fail(f"Scenario.from_dict with {key} = {junk!r} raised {type(exc).__name__}: {exc}")
    assert not (accepted and problem), f"{key} = {junk!r}: coerce refuses it ({problem}) but Scenario accepts it"

    base = Scenario.from_dict(HOSTILE_BASE)
    container_ok = isinstance(junk, list | tuple) and len(junk) > 0  # junk as the list of values itself
    grids = [({key: [junk]}, True), ({key: junk}, not container_ok),
             ({key: [8, junk]} if inp.kind in NUMERIC else {key: [junk, junk]}, True)]
    for i, (grid, judged) in enumerate(grids):
        try:
            frame = sweep(base, grid)
        except ScenarioError:
            continue
        except Exception as exc:
            pytest.fail(f"sweep({grid!r}) raised {type(exc).__name__}: {exc}")
        if not judged:
            continue
        assert problem is None and junk is not None, f"sweep accepted {grid!r}, which coerce refuses ({problem})"
        if i == 0:
            assert bool(frame["valid"].iloc[0]) == accepted, (
                f"{key} = {junk!r}: sweep valid={bool(frame['valid'].iloc[0])}, Scenario accepted={accepted}")

    text = str(junk)[:300]  # the same junk in a share link: reading a link never raises
    try:
        shared = from_query({inp.link: text}, {})
    except Exception as exc:
        pytest.fail(f"from_query({inp.link}={text!r}) raised {type(exc).__name__}: {exc}")
    assert all(inp.label in p and f"{inp.link}=" in p for p in shared.problems), shared.problems  # the user's words


@pytest.mark.parametrize("data", [None, 1, "x", [], {"model": None}, {"model": []}, {"nomodel": {}},
                                  {"model": {"params": 1e9}, "cluster": {"gpuz": 8}}, {1: {}}, {"model": {1: 2}}])
def test_hostile_structures_raise_scenario_errors(data):
    with pytest.raises(ScenarioError):
        Scenario.from_dict(data)


@pytest.mark.parametrize("grid", [None, [], "cluster.gpus", {"cluster.gpus": None}, {"cluster.gpus": "8"},
                                  {"cluster.gpus": {}}, {"model.preset": ["gpt3-175b"]}, {1: [8]}, {"cluster.gpus": []}])
def test_hostile_grids_raise_scenario_errors(grid):
    with pytest.raises(ScenarioError):
        sweep(Scenario.from_dict(HOSTILE_BASE), grid)


def test_a_remedy_names_its_familys_own_yes_no_figure():
    from simulator.families.training import FAMILY as TRAINING
    from simulator.registry import Remedy

    with pytest.raises(ValueError, match="remedy"):
        dataclasses.replace(TRAINING, remedies=(Remedy("training.step_time_s", "training.memory_per_gpu_gb",
                                                       lambda s: []),))


def test_a_plan_that_does_not_fit_gets_the_training_remedys_plans_that_fit():
    from simulator import evaluate
    from simulator.families.training import REMEDIES

    plan = evaluate(Scenario.from_dict({"model": {"params": 70e9}, "cluster": {"gpus": 8, "tp": 1},
                                        "training": {"zero_stage": 0, "recompute": "none"}}))
    assert not plan.value("training.fits_memory") and 0 < len(plan.suggestions) <= REMEDIES[0].most
    labels = [label for label, _ in REMEDIES[0].changes(plan.scenario)]
    assert [s.label for s in plan.suggestions] == [x for x in labels if x in {s.label for s in plan.suggestions}]
    for s in plan.suggestions:  # each is a plan that fits, with the memory it then needs
        fixed = evaluate(plan.scenario.replace(**s.change))
        assert fixed.value("training.fits_memory")
        assert s.memory_per_gpu_gb == pytest.approx(fixed.value("training.memory_per_gpu_gb"), rel=1e-9)
