"""Fitted-parameter correlations end to end: the fitter stores them, the loader checks them, a calibrated device
carries them between its columns, and the Monte Carlo draws those columns jointly."""

from __future__ import annotations

import contextlib
import copy
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.fit.common import Model, Points, fit_model, fit_record
from simulator.correlations import correlation_matrix, psd_factor
from simulator.decision import uncertainty
from simulator.decision.search import COST, LOSS
from simulator.device_profile import device_from_profile
from simulator.devices import PROFILE_DIR
from simulator.evaluator import (
    clip_to_bounds,
    scenario_device_correlations,
    scenario_device_spreads,
    scenario_rows,
)
from simulator.profile import ProfileError, load_profile, param_corr
from simulator.scenario import Scenario
from simulator.sweeps import evaluate_columns

X = np.linspace(1.0, 5.0, 12)
WIGGLE = 1e-3 * np.where(np.arange(X.size) % 2, 1.0, -1.0)  # a small residual: the covariance needs one
# log y = ln(10)·log10(scale) + rate·x: a straight line in the fitted parameters (log10 scale, rate)
LINE = Model("line", "y = scale * exp(rate * x)", ("scale", "rate"),
             lambda p, f: p["scale"] * np.exp(p["rate"] * f["x"]), lower=(1e-3, -5.0), upper=(1e3, 5.0),
             starts=((1.0, 0.1),), log_params=(True, False))
CPU = json.loads((PROFILE_DIR / "cpu-reference.json").read_text())
DECODE = "cpu/bf16/L4-h512"


def test_a_straight_line_fit_stores_the_textbook_correlation():
    y = 2.0 * np.exp(0.3 * X + WIGGLE)
    out = fit_model(LINE, {"x": X}, y)
    # unweighted least squares on a + b·x: corr(a, b) = -mean(x) / sqrt(mean(x²))
    expected = -np.mean(X) / np.sqrt(np.mean(X**2))
    assert out.corr["params"] == ["scale", "rate"] and out.corr["log10_params"] == ["scale"]
    assert out.corr["matrix"][0][1] == out.corr["matrix"][1][0] == pytest.approx(expected, abs=1e-3)
    assert out.corr["matrix"][0][0] == out.corr["matrix"][1][1] == 1.0
    record = fit_record([LINE], Points({"x": X}, y, X, [[i] for i in range(X.size)], [{}] * X.size),
                        np.arange(X.size), np.arange(0), "none held out", x_name="x")
    assert record["corr"] == out.corr


def test_no_correlation_where_it_is_not_determined():
    one = Model("const", "y = scale", ("scale",), lambda p, f: p["scale"] * np.ones_like(f["x"]), lower=(1e-3,),
                upper=(1e3,), starts=((1.0,),), log_params=(True,))
    assert fit_model(one, {"x": X}, 2.0 * np.exp(WIGGLE)).corr is None  # one parameter: nothing to correlate
    twin = Model("twin", "y = a * b", ("a", "b"), lambda p, f: p["a"] * p["b"] * np.ones_like(f["x"]),
                 lower=(1e-3, 1e-3), upper=(1e3, 1e3), starts=((1.0, 1.5),), log_params=(True, True))
    assert fit_model(twin, {"x": X}, 2.0 * np.exp(WIGGLE)).corr is None  # a and b not separable: rank 1
    exact = fit_model(LINE, {"x": X}, 2.0 * np.exp(0.3 * X))
    assert exact.corr is None or np.all(np.isfinite(exact.corr["matrix"]))


def _with_corr(corr: object) -> bytes:
    p = copy.deepcopy(CPU)
    p["name"] = "correlated test machine"  # its own device id: a shipped one is never replaced
    p["fits"]["inference"]["decode"][DECODE]["corr"] = corr
    return json.dumps(p).encode()


GOOD = {"params": ["overhead_s", "per_kv_token_s"], "log10_params": ["overhead_s", "per_kv_token_s"],
        "matrix": [[1.0, -0.6], [-0.6, 1.0]]}


def test_a_valid_corr_loads_and_old_profiles_without_one_still_load():
    p = load_profile(_with_corr(GOOD))
    assert param_corr(p["fits"]["inference"]["decode"][DECODE], "per_kv_token_s", "overhead_s") == -0.6
    old = copy.deepcopy(CPU)
    for section in old["fits"].values():  # strip every corr the shipped file may have
        stack = [section]
        while stack:
            node = stack.pop()
            node.pop("corr", None) if isinstance(node, dict) else None
            stack.extend(v for v in (node.values() if isinstance(node, dict) else []) if isinstance(v, dict))
    spec = device_from_profile(load_profile(json.dumps(old).encode()))
    assert spec.correlations == {}


HOSTILE = st.one_of(
    st.just("not an object"), st.just([1, 2]),
    st.builds(lambda r: {**GOOD, "matrix": [[1.0, r], [r, 1.0]]},
              st.one_of(st.floats(1.0, 1e300, exclude_min=True), st.floats(-1e300, -1.0, exclude_max=True),
                        st.just("0.5"), st.none(), st.booleans())),
    st.builds(lambda a, b: {**GOOD, "matrix": [[1.0, a], [b, 1.0]]}, st.floats(-1, 1), st.floats(-1, 1)).filter(
        lambda c: abs(c["matrix"][0][1] - c["matrix"][1][0]) > 1e-6),
    st.builds(lambda d: {**GOOD, "matrix": [[d, 0.1], [0.1, 1.0]]}, st.floats(-1, 0.99)),
    st.builds(lambda n: {**GOOD, "params": ["overhead_s"] * n}, st.integers(0, 40)),
    st.builds(lambda name: {**GOOD, "params": ["overhead_s", name]}, st.text(max_size=300).filter(
        lambda s: s not in ("per_seq_s", "per_kv_token_s"))),
    st.builds(lambda rows: {**GOOD, "matrix": rows}, st.lists(st.lists(st.just(0.0), max_size=3), max_size=3).filter(
        lambda m: m != [[1.0, 0.0], [0.0, 1.0]])),
    st.builds(lambda extra: {**GOOD, "log10_params": [extra]}, st.sampled_from(["per_seq_s", 3, None, "x" * 300])),
    st.builds(lambda key: {**GOOD, key: 1}, st.sampled_from(["cov", "x" * 300, ""])),
)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(HOSTILE)
def test_hostile_corr_fields_are_refused_with_their_path(corr):
    with pytest.raises(ProfileError, match=r"fits\.inference\.decode\.cpu/bf16/L4-h512\.corr"):
        load_profile(_with_corr(corr))


def test_the_device_carries_the_decode_fits_correlation_with_the_sign_of_its_columns():
    p = load_profile(_with_corr(GOOD))
    spec = device_from_profile(p)
    # step overhead grows with the intercept, the KV efficiency with 1/per_kv_token_s: the sign flips
    assert spec.correlations == {("decode_kv_eff", "step_overhead_s"): pytest.approx(0.6)}
    assert "fits.inference.decode.cpu/bf16/L4-h512" in spec.sources["correlations"]
    assert {"decode_kv_eff", "step_overhead_s"} <= set(spec.spreads)
    s = Scenario.from_dict({"model": {"params": 1e8}, "cluster": {"accelerator": spec.id},
                            "serving": {"accelerator": spec.id}}, devices={spec.id: spec})
    corr = scenario_device_correlations(s, {spec.id: spec})
    assert corr == {("decode_kv_eff", "step_overhead_s"): pytest.approx(0.6),
                    ("serving_hw_decode_kv_eff", "serving_hw_step_overhead_s"): pytest.approx(0.6)}
    cols = scenario_rows([s], {spec.id: spec})
    mc = uncertainty.monte_carlo(cols, scenario_device_spreads(s, {spec.id: spec}), 1e6, 500, 3, COST, LOSS, corr)
    drawn = {tuple(c["columns"]) for c in mc.to_dict()["inputs_correlated"]}
    assert drawn == set(corr) and "drawn jointly" in mc.to_dict()["method"]


def _independent(cols, spread, budget, samples, seed):
    """The Monte Carlo as it was before correlations: one independent normal per column, in sorted order."""
    spreads = uncertainty.uncertain_columns(cols, spread)
    rng = np.random.default_rng(seed)
    rows = {k: np.repeat(np.asarray(v, dtype=float)[:1], samples) for k, v in cols.items()}
    names = sorted(spreads)
    z = rng.standard_normal((len(names), samples))
    for i, name in enumerate(names):
        rows[name] = rows[name] * np.exp(spreads[name] * z[i])
    clip_to_bounds(rows, spreads)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = evaluate_columns(rows)
    return np.quantile(out[COST][np.isfinite(out[COST])], uncertainty.QUANTILES)


def test_without_correlations_the_draws_are_the_independent_ones_number_for_number():
    s = Scenario.from_dict({"model": {"params": 1e9}, "training": {"tokens": 2e10}, "cluster": {"gpus": 8}})
    cols, spread = scenario_rows([s]), scenario_device_spreads(s, None)
    old = _independent(cols, spread, 1e5, 400, 11)
    for corr in (None, {}, {("gemm_eff_max", "not_a_column"): 0.9}):
        mc = uncertainty.monte_carlo(cols, spread, 1e5, 400, 11, COST, LOSS, corr)
        assert [mc.total_cost_usd.p10, mc.total_cost_usd.p50, mc.total_cost_usd.p90] == list(old)
        assert "all inputs independent" in mc.to_dict()["method"]


TOY = {"x": np.array([1.0]), "y": np.array([1.0])}


@contextlib.contextmanager
def _toy_model():
    """A model of two columns whose effects add in log space: cost = x·y, loss = x / y."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(uncertainty, "evaluate_columns", lambda rows: {COST: rows["x"] * rows["y"],
                                                                  LOSS: rows["x"] / rows["y"]})
        yield


@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(r=st.floats(-0.99, -0.3), sx=st.floats(0.05, 0.5), sy=st.floats(0.05, 0.5), seed=st.integers(0, 2**31))
def test_a_negative_correlation_shrinks_the_spread_of_effects_that_add(r, sx, sy, seed):
    spreads = {"x": sx, "y": sy}
    with _toy_model():
        joint = uncertainty.monte_carlo(TOY, spreads, 1.0, 4000, seed, COST, LOSS, {("x", "y"): r})
        alone = uncertainty.monte_carlo(TOY, spreads, 1.0, 4000, seed, COST, LOSS)
    width = lambda s: math.log(s.p90 / s.p10)  # noqa: E731
    assert width(joint.total_cost_usd) < width(alone.total_cost_usd)  # x·y: the draws cancel
    assert width(joint.quality_loss) > width(alone.quality_loss)  # x/y: they reinforce
    # log cost ~ N(0, sx² + sy² + 2·r·sx·sy): its P10-P90 width is 2·1.2816 σ (sampling error ~3%)
    sigma = math.sqrt(sx**2 + sy**2 + 2 * r * sx * sy)
    assert width(joint.total_cost_usd) == pytest.approx(2 * 1.2816 * sigma, rel=0.12, abs=0.01)
    for s in (joint.total_cost_usd, joint.quality_loss):
        assert s.p10 <= s.p50 <= s.p90


def test_a_perfect_anticorrelation_cancels_and_a_seed_reproduces():
    with _toy_model():
        mc = uncertainty.monte_carlo(TOY, {"x": 0.3, "y": 0.3}, 1.0, 1000, 5, COST, LOSS, {("x", "y"): -1.0})
        again = uncertainty.monte_carlo(TOY, {"x": 0.3, "y": 0.3}, 1.0, 1000, 5, COST, LOSS, {("x", "y"): -1.0})
    assert mc.total_cost_usd.p10 == pytest.approx(1.0) and mc.total_cost_usd.p90 == pytest.approx(1.0)
    assert again.to_dict() == mc.to_dict()


@given(st.lists(st.floats(-1, 1), min_size=3, max_size=3))
@settings(max_examples=40, deadline=None, database=None, derandomize=True)
def test_the_factor_is_a_unit_diagonal_psd_correlation(rs):
    names = ["a", "b", "c", "d"]
    r = correlation_matrix(names, {("a", "b"): rs[0], ("a", "c"): rs[1], ("b", "c"): rs[2]})
    f = psd_factor(r)
    c = f @ f.T
    assert np.allclose(np.diag(c), 1.0) and np.linalg.eigvalsh(c).min() > -1e-9
    assert np.array_equal(f[3], [0, 0, 0, 1]) and np.array_equal(f[:, 3], [0, 0, 0, 1])  # "d" untouched
    if np.linalg.eigvalsh(r).min() >= 0:  # already a correlation matrix: kept as it is
        assert np.allclose(c, r, atol=1e-9)
