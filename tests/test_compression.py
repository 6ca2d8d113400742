"""The compression family: bytes by hand, speed-up invariants, the loss increase's monotonicity, CLI and rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import Scenario, evaluate, model_error, sweep
from simulator.cli import main
from simulator.compression.constants import PRUNING_METHODS, QUANT_METHODS, SPARSITY_PATTERNS, load_fitted
from simulator.compression.patterns import nm_removed_energy
from simulator.compression.penalty import loss_delta, unstructured_removed_energy
from simulator.compression.storage import model_bytes
from simulator.errors import ScenarioError
from simulator.evaluator import Z_P90
from simulator.quality import LAWS

K = load_fitted()["constants"]
CHIN = LAWS["chinchilla"]


def plan(compression: dict, accelerator: str = "H100-SXM", params: float = 7e9):
    return evaluate(Scenario.from_dict({"model": {"params": params}, "cluster": {"accelerator": accelerator},
                                        "compression": compression})).figures


# --- bytes, by hand ------------------------------------------------------------------------------------------

def test_int4_g128_bytes_by_hand():
    # 1e9 weights × 4 bits = 5e8 bytes; per 128 weights an fp16 scale + a 4-bit zero: 20 bits = 2.5 bytes
    assert model_bytes(1e9, 4, 0, 128, 4096, 0.0, 0) == pytest.approx(5e8 + 1e9 / 128 * 2.5, rel=1e-12)


def test_fp8_per_channel_bytes_by_hand():
    # fp format: a 16-bit scale per row of 4096, no zero point
    assert model_bytes(1e9, 8, 1, 0, 4096, 0.0, 0) == pytest.approx(1e9 + 1e9 / 4096 * 2, rel=1e-12)


def test_sparse_bytes_by_hand():
    p = SPARSITY_PATTERNS.index
    # 2:4 at 16 bits: half the values + a 2-bit index per kept value = 8 + 1 bits per weight
    assert model_bytes(1e9, 16, 0, 0, 4096, 0.5, p("2:4")) == pytest.approx(1e9 * 9 / 8)
    # 4:8: a 3-bit index per kept value
    assert model_bytes(1e9, 16, 0, 0, 4096, 0.5, p("4:8")) == pytest.approx(1e9 * 9.5 / 8)
    # rows: the matrix shrinks, no metadata
    assert model_bytes(1e9, 16, 0, 0, 4096, 0.25, p("rows")) == pytest.approx(1e9 * 12 / 8)
    # unstructured 90%: 1.6 value bits + a 1-bit mask; at 5% the mask costs more than it saves: stays dense
    assert model_bytes(1e9, 16, 0, 0, 4096, 0.9, p("unstructured")) == pytest.approx(1e9 * 2.6 / 8)
    assert model_bytes(1e9, 16, 0, 0, 4096, 0.05, p("unstructured")) == pytest.approx(2e9)


def test_plan_bytes_and_ratio():
    f = plan({"weight_bits": 4, "group_size": 128, "quant_method": "awq"})
    params = Scenario.from_dict({"model": {"params": 7e9}}).model.params  # counted from the derived shape
    assert f["compression.size_ratio"].value == pytest.approx((4 + 20 / 128) / 16, rel=1e-12)
    assert f["compression.model_bytes"].value == pytest.approx(params * (4 + 20 / 128) / 8, rel=1e-12)


def test_removed_energy_by_hand():
    # Gaussian: smallest half of |w| holds S − 2tφ(t) with t = 0.6745 → 0.0713 of the energy
    assert unstructured_removed_energy(0.5) == pytest.approx(0.5 - 2 * 0.674490 * 0.317777, abs=1e-5)
    # 1 of 2 kept: E[min(|a|,|b|)^2]/2 = (1 − 2/π)/2 for standard normals
    assert nm_removed_energy(1, 2) == pytest.approx((1 - 2 / np.pi) / 2, abs=1e-6)
    # the N:M constraint removes more energy than free (global) choice at the same sparsity; 2:4 most
    assert unstructured_removed_energy(0.5) < nm_removed_energy(4, 8) < nm_removed_energy(2, 4)


# --- speed-up invariants -------------------------------------------------------------------------------------

def test_dense_16_bit_is_one():
    f = plan({})
    for key in ("compression.size_ratio", "compression.decode_speedup", "compression.prefill_speedup",
                "quality.ppl_ratio"):
        assert f[key].value == pytest.approx(1.0, abs=1e-12), key
    assert f["quality.loss_delta"].value == 0.0
    assert f["quality.loss"].value == f["quality.dense_loss"].value


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_unstructured_sparsity_gives_no_speedup_on_dense_kernels(method, sparsity):
    f = plan({"pruning_method": method, "sparsity": sparsity})
    assert f["compression.decode_speedup"].value == pytest.approx(1.0)
    assert f["compression.prefill_speedup"].value == pytest.approx(1.0)


def test_two_four_speeds_up_only_where_the_hardware_has_sparse_cores():
    from simulator.compression.hardware import device_row
    from simulator.devices import get_accelerator

    assert device_row(get_accelerator("H100-SXM"))["hw_sparse_2_4"] == 1.0
    f = plan({"pruning_method": "sparsegpt", "sparsity": 0.5, "pattern": "2:4"})
    assert f["compression.prefill_speedup"].value > 1.8  # compute-bound: ~2x on sparse tensor cores
    four_eight = plan({"pruning_method": "sparsegpt", "sparsity": 0.5, "pattern": "4:8"})
    assert four_eight["compression.prefill_speedup"].value == pytest.approx(1.0)  # no 4:8 hardware


def test_int8_peak_only_when_weights_activations_and_kv_fit():
    w8a8 = plan({"weight_bits": 8, "act_bits": 8, "kv_bits": 8, "quant_method": "smoothquant"})
    w8a8_kv16 = plan({"weight_bits": 8, "act_bits": 8, "quant_method": "smoothquant"})
    assert w8a8["compression.prefill_speedup"].value == pytest.approx(2.0, rel=0.02)  # 1979 / 989 TFLOP/s
    assert w8a8_kv16["compression.prefill_speedup"].value == pytest.approx(1.0, rel=0.02)  # LLM-Viewer's rule
    # A100 has no fp8 unit: fp8 stays at the 16-bit peak there
    fp8 = plan({"weight_bits": 8, "act_bits": 8, "kv_bits": 8, "format": "fp", "quant_method": "smoothquant"},
               "A100-80GB-SXM")
    assert fp8["compression.prefill_speedup"].value == pytest.approx(1.0, rel=0.02)


def test_weight_only_decode_gains_from_bytes_and_prefill_pays_dequantization():
    f = plan({"weight_bits": 4, "group_size": 128, "quant_method": "awq"})
    assert 2.5 < f["compression.decode_speedup"].value < 16 / (4 + 20 / 128)
    assert f["compression.prefill_speedup"].value < 1.0
    low, high = f["compression.prefill_speedup"].low, f["compression.prefill_speedup"].high
    assert low < f["compression.prefill_speedup"].value < high


# --- quality: monotone in bits and sparsity, ranged ---------------------------------------------------------

def _delta(**over) -> float:
    cols = {"params": 7e9, "tokens": 1.4e11, "hidden": 4096.0, "weight_bits": 16.0, "act_bits": 16.0,
            "kv_bits": 16.0, "group_size": 0.0, "quant_method": 0.0, "pruning_method": 0.0, "sparsity": 0.0,
            "sparsity_pattern": 0.0, "loss_scale": 1.0, "prune_loss_scale": 1.0} | over
    return float(loss_delta({k: np.asarray(v, dtype=float) for k, v in cols.items()}, CHIN.A, CHIN.alpha, K))


BITS = [16, 8, 6, 5, 4, 3, 2, 1]


@settings(max_examples=60, deadline=None)
@given(method=st.sampled_from(QUANT_METHODS[1:]), group=st.sampled_from([0, 32, 64, 128, 1024]),
       params=st.floats(1e8, 1e12), tokens=st.floats(1e9, 1e13), i=st.integers(0, len(BITS) - 2))
def test_fewer_weight_bits_never_improve_quality(method, group, params, tokens, i):
    code = float(QUANT_METHODS.index(method))
    more = _delta(params=params, tokens=tokens, weight_bits=BITS[i], quant_method=code, group_size=group)
    fewer = _delta(params=params, tokens=tokens, weight_bits=BITS[i + 1], quant_method=code, group_size=group)
    assert fewer >= more >= 0.0


@settings(max_examples=60, deadline=None)
@given(method=st.sampled_from(QUANT_METHODS[1:]), which=st.sampled_from(["act_bits", "kv_bits"]),
       params=st.floats(1e8, 1e12))
def test_fewer_activation_or_kv_bits_never_improve_quality(method, which, params):
    code = float(QUANT_METHODS.index(method))
    values = [_delta(params=params, quant_method=code, weight_bits=8, **{which: b}) for b in (16, 8, 4)]
    assert values[0] <= values[1] <= values[2]


@settings(max_examples=60, deadline=None)
@given(method=st.sampled_from(PRUNING_METHODS[1:]), pattern=st.sampled_from(["unstructured", "rows"]),
       params=st.floats(1e8, 1e12), s=st.floats(0.0, 0.98), ds=st.floats(0.001, 0.01))
def test_more_sparsity_never_improves_quality(method, pattern, params, s, ds):
    kw = {"params": params, "pruning_method": float(PRUNING_METHODS.index(method)),
          "sparsity_pattern": float(SPARSITY_PATTERNS.index(pattern))}
    assert _delta(sparsity=s + ds, **kw) >= _delta(sparsity=s, **kw) >= 0.0


def test_published_behaviour_of_pruning_methods():
    mag = _delta(pruning_method=1.0, sparsity=0.5)
    wanda = _delta(pruning_method=2.0, sparsity=0.5)
    two_four = _delta(pruning_method=2.0, sparsity=0.5, sparsity_pattern=1.0)
    assert wanda < mag  # activation-aware scores beat magnitude one-shot (Sun et al. 2024)
    assert wanda < two_four  # 2:4 is worse than unstructured at the same sparsity
    assert np.exp(wanda) < 1.5  # ~50% one-shot with a small loss at 7B


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt"])
@pytest.mark.parametrize("params", [1e9, 7e9, 7e10])
def test_n_of_m_constraints_cost_more_than_free_choice(method, params):
    """With the fitted offsets: at 50%, 2:4 is worse than 4:8, which is worse than unstructured (Sun et al. 2023)."""
    code = float(PRUNING_METHODS.index(method))
    by_pattern = {p: _delta(params=params, pruning_method=code, sparsity=0.5,
                            sparsity_pattern=float(SPARSITY_PATTERNS.index(p))) for p in ("unstructured", "4:8", "2:4")}
    assert 0.0 < by_pattern["unstructured"] < by_pattern["4:8"] < by_pattern["2:4"]


def test_fitted_pruning_offsets_load():
    """fitted.json carries the pruning offsets (fitted on published rows) and their held-out error, which is the
    prune_loss_scale input's spread; structured pruning stays assumed."""
    from simulator.compression.constants import PRUNE_OFFSET_ASSUMED_BITS
    from simulator.inputs import INPUTS

    fitted = load_fitted()
    for method in ("magnitude", "wanda", "sparsegpt"):
        assert np.isfinite(fitted["constants"][f"prune_offset_{method}"]), method
    assert "prune_offset_structured" not in fitted["constants"] and "structured" in PRUNE_OFFSET_ASSUMED_BITS
    pruning = fitted["pruning"]
    assert pruning["rows"] > 0 and 0.0 < pruning["heldout_delta_rel_sigma"] < 5.0
    # the spreads are the model-error terms measured leave-one-group-out on published rows (model_error.json)
    assert INPUTS["compression.prune_loss_scale"].spread == pytest.approx(
        model_error.input_sigma("pruning", pruning["heldout_delta_rel_sigma"]))
    assert INPUTS["compression.loss_scale"].spread == pytest.approx(
        model_error.input_sigma("compression", fitted["heldout_delta_rel_sigma"]))
    assert model_error.TERMS["pruning"].sigma > 0 and model_error.TERMS["compression"].sigma > 0


def test_pruning_band_is_the_pruning_fits_spread():
    """A pruned-only plan's range comes from prune_loss_scale (the pruning rows' leave-one-group-out error): the
    loss increase's P90 is (1 + 1.2816·σ_prune) times the plan's."""
    f = plan({"pruning_method": "wanda", "sparsity": 0.5})["quality.loss_delta"]
    sigma = model_error.TERMS["pruning"].sigma
    assert f.high == pytest.approx(f.value * (1.0 + Z_P90 * sigma), rel=1e-9)


def test_quality_figures_are_ranged_and_consistent():
    f = plan({"weight_bits": 3, "group_size": 128, "quant_method": "gptq"})
    delta = f["quality.loss_delta"]
    assert delta.low < delta.value < delta.high
    assert f["quality.ppl_ratio"].value == pytest.approx(np.exp(delta.value))
    assert f["quality.loss"].value == pytest.approx(f["quality.dense_loss"].value + delta.value)
    assert f["quality.ppl_ratio"].provenance == "fitted"


def test_gptq_beats_rtn_and_groups_help():
    rtn = plan({"weight_bits": 4, "quant_method": "rtn"})["quality.ppl_ratio"].value
    gptq = plan({"weight_bits": 4, "quant_method": "gptq"})["quality.ppl_ratio"].value
    grouped = plan({"weight_bits": 4, "quant_method": "gptq", "group_size": 128})["quality.ppl_ratio"].value
    assert 1.0 < grouped < gptq < rtn


# --- CLI and rules -------------------------------------------------------------------------------------------

def test_cli_scenario_with_only_params_and_compression(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": {"params": 7e9}, "compression": {
        "weight_bits": 4, "act_bits": 16, "kv_bits": 8, "format": "int", "group_size": 128, "quant_method": "awq",
        "pruning_method": "none", "sparsity": 0, "pattern": "unstructured"}}))
    assert main(["evaluate", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("compression.model_bytes", "compression.size_ratio", "compression.decode_speedup",
                "compression.prefill_speedup", "quality.loss", "quality.loss_delta", "quality.ppl_ratio"):
        section, name = key.split(".")
        assert np.isfinite(out[section][name]), key
        assert out["provenance"][key]["source"], key
    assert 3.5 < 1 / out["compression"]["size_ratio"] < 4.0
    low, high = out["ranges"]["quality.ppl_ratio"]["low"], out["ranges"]["quality.ppl_ratio"]["high"]
    # the compression term's measured error is near 100% of the predicted increase: its P10 may be no loss at all
    assert 1.0 <= low < out["quality"]["ppl_ratio"] < high


@pytest.mark.parametrize(("compression", "needle"), [
    ({"weight_bits": 7, "quant_method": "rtn"}, "allowed values are 16, 8, 6, 5, 4, 3, 2, 1"),
    ({"act_bits": 6, "quant_method": "rtn"}, "allowed values are 16, 8, 4"),
    ({"kv_bits": 2}, "must be between 4 and 16"),
    ({"weight_bits": 4, "quant_method": "none"}, "choose how to quantize"),
    ({"weight_bits": 3, "format": "fp", "quant_method": "rtn"}, "floating-point numbers exist at 16, 8, 6, 4"),
    ({"weight_bits": 3.5}, "compression.weight_bits = 3.5: must be a whole number"),
    ({"group_size": 100, "weight_bits": 4, "quant_method": "rtn"}, "power of two"),
    ({"pruning_method": "wanda", "sparsity": 0.6, "pattern": "2:4"}, "needs compression.sparsity = 0.5"),
    ({"pruning_method": "structured", "sparsity": 0.3}, "set compression.pattern = rows"),
    ({"sparsity": 0.5}, "choose a pruning method"),
    ({"sparsity": 1.5, "pruning_method": "magnitude"}, "between 0 and 0.99"),
    ({"quant_method": "int4"}, "allowed values are none, rtn, gptq, awq, smoothquant, qat"),
    ({"pattern": "3:4"}, "allowed values are unstructured, 2:4, 4:8, rows"),
    ({"weight_bits": "four"}, "expected a number"),
])
def test_hostile_values_give_clear_messages(compression, needle):
    with pytest.raises(ScenarioError) as err:
        Scenario.from_dict({"model": {"params": 7e9}, "compression": compression})
    assert needle in str(err.value)


def test_fewer_bits_without_a_method_quantize_by_round_to_nearest():
    """The method left out follows the bits (a registry rule, so the CLI, the sweeps and every page agree): none at
    16-bit weights and activations, round-to-nearest below; a method given is kept."""
    def method(compression):
        return Scenario.from_dict({"model": {"params": 7e9}, "compression": compression})

    assert method({}).compression.quant_method == "none"
    four = method({"weight_bits": 4})
    assert four.compression.quant_method == "rtn" and "compression.quant_method" in four.derived
    assert any(n.startswith("compression.quant_method = rtn: ") for n in four.notes)
    assert method({"act_bits": 8}).compression.quant_method == "rtn"
    assert method({"weight_bits": 4, "quant_method": "awq"}).compression.quant_method == "awq"
    rtn = evaluate(method({"weight_bits": 4, "quant_method": "rtn"}))
    auto = evaluate(method({"weight_bits": 4}))
    assert auto.value("quality.ppl_ratio") == rtn.value("quality.ppl_ratio") > 1.0
    grid = sweep(method({}), {"compression.weight_bits": [16, 4]})  # a sweep derives it row by row
    assert list(grid["valid"]) == [True, True]
    assert grid["quality.loss"].iloc[1] == pytest.approx(rtn.value("quality.loss"))


def test_warnings_are_reported_not_refused():
    p = evaluate(Scenario.from_dict({"model": {"params": 7e9}, "compression": {"quant_method": "gptq"}}))
    assert "compression_noop" in {w.code for w in p.warnings}
    p = evaluate(Scenario.from_dict({"model": {"params": 7e9},
                                     "compression": {"weight_bits": 2, "quant_method": "rtn"}}))
    assert "compression_extrapolated" in {w.code for w in p.warnings}


def test_sweep_rows_equal_single_plans():
    """A sweep mixing dense and compressed rows (only the compressed ones are computed) agrees with evaluate."""
    from simulator.sweeps import sweep

    base = Scenario.from_dict({"model": {"params": 1.3e9}})
    grid = {"compression.weight_bits": [16, 8, 4, 3], "compression.quant_method": ["none", "rtn", "awq"],
            "compression.kv_bits": [16, 8], "cluster.accelerator": ["H100-SXM", "A100-80GB-SXM"]}
    df = sweep(base, grid)
    assert (~df["valid"]).sum() == 2 * 3 * 2  # none with 8, 4, 3 bits is refused
    for values in df[df["valid"]].sample(8, random_state=0).to_dict("records"):
        s = Scenario.from_dict({"model": {"params": 1.3e9}, "cluster": {"accelerator": values["cluster.accelerator"]},
                                "compression": {"weight_bits": int(values["compression.weight_bits"]),
                                                "quant_method": values["compression.quant_method"],
                                                "kv_bits": int(values["compression.kv_bits"])}})
        f = evaluate(s).figures
        for key in ("compression.model_bytes", "compression.decode_speedup", "compression.prefill_speedup",
                    "quality.loss", "quality.ppl_ratio"):
            assert values[key] == pytest.approx(f[key].value, rel=1e-9), key
