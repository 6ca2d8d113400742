"""At small scale the loss increase follows the quality calibration's measured curves (simulator/compression/small_scale.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulator import Scenario, evaluate
from simulator.compression.constants import PRUNING_METHODS, QUANT_METHODS, SPARSITY_PATTERNS, load_fitted
from simulator.compression.penalty import loss_delta
from simulator.compression.small_scale import SMALL_SPAN, from_section, law_weight, reference
from simulator.devices import shipped_profiles
from simulator.quality import LAWS
from simulator.quality_curves import error_at, quality_from_profile

K = load_fitted()["constants"]
CHIN = LAWS["chinchilla"]
SMALL = reference()


def _cols(**over) -> dict[str, np.ndarray]:
    cols = {"params": 1e5, "tokens": 2e6, "hidden": 64.0, "weight_bits": 16.0, "act_bits": 16.0, "kv_bits": 16.0,
            "group_size": 0.0, "quant_method": 0.0, "pruning_method": 0.0, "sparsity": 0.0, "sparsity_pattern": 0.0,
            "loss_scale": 1.0, "prune_loss_scale": 1.0} | over
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}


def _delta(small=SMALL, **over) -> np.ndarray:
    return loss_delta(_cols(**over), CHIN.A, CHIN.alpha, K, small)


def _carried(curve, x, params, tokens) -> float:
    """By hand: the curve's rise from 16 bits (or no sparsity), times (D/D_cal)^γ_D (N_cal/N)^γ_N (Kumar eq. 2)."""
    rise = float(error_at(curve.model, curve.params, x) - error_at(curve.model, curve.params, 16.0 if curve.family == "bits" else 0.0))
    return rise * (tokens / SMALL.tokens) ** K["gamma_D"] * (SMALL.params / params) ** K["gamma_N"]


RTN, QAT = float(QUANT_METHODS.index("rtn")), float(QUANT_METHODS.index("qat"))
MAG, STRUCT = float(PRUNING_METHODS.index("magnitude")), float(PRUNING_METHODS.index("structured"))
ROWS = float(SPARSITY_PATTERNS.index("rows"))


def test_the_shipped_reference_has_the_lm_curves():
    assert SMALL is not None and SMALL.source == "cpu-reference.json"
    assert set(SMALL.weight) == {"rtn", "qat"} and set(SMALL.prune) == {"unstructured", "rows"}
    assert set(SMALL.prune_points) == {"2:4"}
    assert SMALL.params == 62145 and SMALL.law_min_params == 1.25e8  # OPT-125M, the law's smallest row


@pytest.mark.parametrize(("over", "curve", "x"), [
    ({"weight_bits": 4.0, "quant_method": RTN}, ("weight", "rtn"), 4.0),
    ({"weight_bits": 2.0, "quant_method": RTN}, ("weight", "rtn"), 2.0),
    ({"weight_bits": 2.0, "quant_method": QAT}, ("weight", "qat"), 2.0),
    ({"pruning_method": MAG, "sparsity": 0.7}, ("prune", "unstructured"), 0.7),
    ({"pruning_method": STRUCT, "sparsity": 0.5, "sparsity_pattern": ROWS}, ("prune", "rows"), 0.5),
])
def test_small_models_take_the_measured_curve_carried_by_the_laws_exponents(over, curve, x):
    c = getattr(SMALL, curve[0])[curve[1]]
    for params, tokens in ((1e5, 2e6), (5e5, 1e7)):
        assert float(_delta(params=params, tokens=tokens, **over)[()]) == pytest.approx(
            _carried(c, x, params, tokens), rel=1e-9)


def test_at_the_calibrated_size_the_measured_points_come_back():
    """At N_cal, D_cal the prediction is the fitted curve, which stays near the k-fold means it was fitted on."""
    c = SMALL.weight["rtn"]
    dense = c.params["e_dense"]
    for point in c.points:
        got = float(_delta(params=SMALL.params, tokens=SMALL.tokens, weight_bits=point.x, quant_method=RTN)[()])
        assert got == pytest.approx(max(point.mean - dense, 0.0), abs=max(3 * point.std, 0.02))


def test_large_models_keep_the_law_and_methods_without_a_curve_keep_it_everywhere():
    for over in ({"weight_bits": 4.0, "quant_method": RTN}, {"pruning_method": MAG, "sparsity": 0.5}):
        for params in (1.25e8, 7e9):
            assert _delta(params=params, **over) == _delta(small=None, params=params, **over)
    for over in ({"weight_bits": 4.0, "quant_method": float(QUANT_METHODS.index("gptq"))},
                 {"pruning_method": float(PRUNING_METHODS.index("wanda")), "sparsity": 0.5},
                 {"pruning_method": float(PRUNING_METHODS.index("wanda")), "sparsity": 0.5,
                  "sparsity_pattern": float(SPARSITY_PATTERNS.index("2:4"))},
                 {"pruning_method": MAG, "sparsity": 0.5, "sparsity_pattern": float(SPARSITY_PATTERNS.index("4:8"))},
                 {"weight_bits": 16.0, "act_bits": 8.0, "quant_method": RTN}):
        assert _delta(**over) == _delta(small=None, **over)


def test_no_step_where_the_curve_hands_over_to_the_law():
    params = np.geomspace(1e5, 1e9, 400)
    n = params.size
    for over in ({"weight_bits": 3.0, "quant_method": RTN}, {"pruning_method": MAG, "sparsity": 0.5}):
        d = _delta(params=params, tokens=np.full(n, 2e9), **{k: np.full(n, v) for k, v in over.items()})
        steps = np.abs(np.diff(np.log(d)))
        assert steps.max() < 0.1  # no jump of more than ~10% between neighbours 2.3% apart in N
    w = law_weight(np.array([SMALL.params * SMALL_SPAN, 1e7, 1.25e8]), SMALL)
    assert w[0] == 0.0 and 0.0 < w[1] < 1.0 and w[2] == 1.0


@pytest.mark.parametrize("method", [RTN, QAT])
def test_fewer_bits_never_improve_small_models(method):
    params = np.repeat(np.geomspace(1e5, 1e9, 9), 8)
    bits = np.tile([16, 8, 6, 5, 4, 3, 2, 1], 9).astype(float)
    d = _delta(params=params, tokens=params * 20, weight_bits=bits, quant_method=np.full(bits.size, method))
    assert np.all(np.diff(d.reshape(9, 8), axis=1) >= 0.0) and np.all(d >= 0.0)


@pytest.mark.parametrize(("method", "pattern"), [(MAG, 0.0), (MAG, ROWS), (STRUCT, ROWS)])
def test_more_sparsity_never_improves_small_models(method, pattern):
    params = np.repeat(np.geomspace(1e5, 1e9, 9), 12)
    s = np.tile(np.linspace(0.0, 0.99, 12), 9)
    d = _delta(params=params, tokens=params * 20, sparsity=s, pruning_method=np.full(s.size, method),
               sparsity_pattern=np.full(s.size, pattern))
    assert np.all(np.diff(d.reshape(9, 12), axis=1) >= 0.0)


def test_the_public_path_uses_the_curves_for_a_small_model():
    model = {"layers": 4, "hidden": 64, "heads": 4, "vocab": 64}  # a character-level LM like the calibrated one
    small = evaluate(Scenario.from_dict({"model": model, "compression": {"weight_bits": 4, "quant_method": "rtn"}}))
    params, tokens = small.scenario.value("model.params"), small.scenario.value("training.tokens")
    assert params < SMALL.params * SMALL_SPAN
    assert small.figures["quality.loss_delta"].value == pytest.approx(_carried(SMALL.weight["rtn"], 4.0, params, tokens))
    assert small.figures["quality.ppl_ratio"].value < 1.05
    assert float(_delta(small=None, params=params, tokens=tokens, weight_bits=4.0, quant_method=RTN)[()]) > 0.3


def test_magnitude_two_four_takes_the_measured_point():
    """2:4 exists at one sparsity (0.5): the quality calibration measures it there (k-fold table), by hand here."""
    table = shipped_profiles()["cpu-reference"]["quality"]["table"]
    loss = {(r["family"], r["method"]): r["metrics"]["loss_nats"]["mean"] for r in table
            if r["model"] == "char_lm" and r["finetuned"] is False and r["method"] in ("none", "2:4")}
    rise = loss[("sparsity", "2:4")] - loss[("dense", "none")]
    assert SMALL.prune_points == {"2:4": pytest.approx(rise)}
    two_four = float(SPARSITY_PATTERNS.index("2:4"))
    got = float(_delta(params=2e5, tokens=4e6, pruning_method=MAG, sparsity=0.5, sparsity_pattern=two_four)[()])
    by_hand = rise * (4e6 / SMALL.tokens) ** K["gamma_D"] * (SMALL.params / 2e5) ** K["gamma_N"]
    assert got == pytest.approx(by_hand, rel=1e-9)
    unstructured = float(_delta(params=2e5, tokens=4e6, pruning_method=MAG, sparsity=0.5)[()])
    assert got > unstructured  # the constraint costs (measured 1.86x here; the energy rule says 1.86x of energy)


@pytest.mark.parametrize("table", [None, [], [{"model": "char_lm"}], "x",
                                   [{"model": "char_lm", "family": "dense", "method": "none", "finetuned": False,
                                     "metrics": {"loss_nats": {"mean": float("nan")}}}]])
def test_a_missing_or_broken_table_gives_no_points(table):
    from simulator.compression.small_scale import point_deltas

    assert point_deltas(table) == {}


def test_a_section_without_the_lm_gives_no_small_scale():
    section = quality_from_profile(shipped_profiles()["cpu-reference"])
    models = {k: v for k, v in section.models.items() if k != "char_lm"}
    assert from_section(dataclasses.replace(section, models=models), 1.25e8, "x") is None


def test_the_laws_fitted_range_is_the_published_tables():
    from benchmarks.compression_quality import load_rows

    params = load_rows()["params"]
    assert load_fitted()["params_range"] == [float(params.min()), float(params.max())]
