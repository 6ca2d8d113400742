"""Global sensitivity (simulator/decision/sensitivity.py): Sobol' indices on models whose indices are known, and on
a real plan through the same draws as the Monte Carlo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from SALib.sample import sobol as salib_sample
from scipy.stats import norm
from streamlit.testing.v1 import AppTest

from simulator.decision.decide import SOBOL_OUTPUTS, decide
from simulator.decision.search import COST, DAYS, LOSS
from simulator.decision.sensitivity import (
    Index,
    OutputIndices,
    base_samples,
    global_sensitivity,
    linked_groups,
    saltelli_design,
    sobol_indices,
)
from simulator.decision.uncertainty import label_of
from simulator.evaluator import scenario_device_spreads, scenario_rows, uncertain_columns
from simulator.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
PLAN = {"name": "Sobol test plan", "model": {"params": 7e9}, "training": {"tokens": 1.4e11},
        "cluster": {"gpus": 64, "tp": 2, "pp": 1}, "serving": {"requests_per_s": 5.0},
        "compression": {"weight_bits": 4, "quant_method": "gptq"}}


def _by_column(found: OutputIndices) -> dict[tuple[str, ...], Index]:
    return {i.columns: i for i in found.indices}


def test_additive_model_indices_are_the_variance_shares():
    """Y = Σ a_i·σ_i·z_i: every index (first = total, no interaction) is a_i²σ_i² / Σ a_j²σ_j², and they sum to 1."""
    a, sigma = np.array([1.0, 2.0, 0.5, 3.0]), np.array([0.3, 0.1, 0.5, 0.05])
    expected = a**2 * sigma**2 / np.sum(a**2 * sigma**2)
    names = ["a", "b", "c", "d"]
    evaluations, (found,) = sobol_indices(lambda z: {"y": (a * sigma) @ z}, names, 1024, 0, ["y"])
    assert evaluations == 1024 * (len(names) + 2)
    got = _by_column(found)
    first = np.array([got[(n,)].first for n in names])
    total = np.array([got[(n,)].total for n in names])
    np.testing.assert_allclose(first, expected, atol=0.03)
    np.testing.assert_allclose(total, expected, atol=0.03)
    assert first.sum() == pytest.approx(1.0, abs=0.05)
    assert total.sum() == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose([got[(n,)].share for n in names], expected, atol=0.03)
    assert [i.columns for i in found.indices] == [("a",), ("c",), ("b",), ("d",)]  # largest total-order first


def test_ishigami_indices_match_the_known_values():
    """Ishigami (a = 7, b = 0.1; x_i uniform on [-π, π], mapped from the unit normals): S1 = 0.314, 0.442, 0 and
    ST = 0.558, 0.442, 0.244 (Ishigami & Homma 1990; Saltelli et al. 2010 table 3)."""
    def ishigami(z: np.ndarray) -> dict[str, np.ndarray]:
        x = -np.pi + 2 * np.pi * norm.cdf(z)
        return {"y": np.sin(x[0]) + 7 * np.sin(x[1]) ** 2 + 0.1 * x[2] ** 4 * np.sin(x[0])}

    _, (found,) = sobol_indices(ishigami, ["x1", "x2", "x3"], 2048, 1, ["y"])
    got = _by_column(found)
    np.testing.assert_allclose([got[(n,)].first for n in ("x1", "x2", "x3")], [0.3139, 0.4424, 0.0], atol=0.04)
    np.testing.assert_allclose([got[(n,)].total for n in ("x1", "x2", "x3")], [0.5576, 0.4424, 0.2437], atol=0.04)
    for i in found.indices:  # each interval is a real interval around its estimate, and the known value is in it
        assert 0 < i.first_conf < 0.1 and 0 < i.total_conf < 0.1


def test_a_group_is_indexed_as_one_input():
    """y = x1 + x2 + x3 with (x1, x2) one group: the group's index is 2/3, x3's 1/3."""
    _, (found,) = sobol_indices(lambda z: {"y": z.sum(axis=0)}, ["x1", "x2", "x3"], 1024, 0, ["y"],
                                groups=[[0, 1], [2]], labels=["x1 and x2", "x3"])
    got = _by_column(found)
    assert set(got) == {("x1", "x2"), ("x3",)}
    assert got[("x1", "x2")].label == "x1 and x2"
    assert got[("x1", "x2")].total == pytest.approx(2 / 3, abs=0.04)
    assert got[("x3",)].first == pytest.approx(1 / 3, abs=0.04)
    # groups given in any order: y = 3·x1 + x2 + x3 with (x2, x3) one group, listed first
    _, (found,) = sobol_indices(lambda z: {"y": 3 * z[0] + z[1] + z[2]}, ["x1", "x2", "x3"], 1024, 0, ["y"],
                                groups=[[1, 2], [0]], labels=["x2 and x3", "x1"])
    got = {i.label: i for i in found.indices}
    assert got["x1"].columns == ("x1",) and got["x1"].total == pytest.approx(9 / 11, abs=0.04)
    assert got["x2 and x3"].columns == ("x2", "x3") and got["x2 and x3"].total == pytest.approx(2 / 11, abs=0.04)


def test_design_is_salibs_saltelli_sample_number_for_number():
    names = ["a", "b", "c", "d", "e"]
    for groups in (names, ["g0", "g1", "g0", "g2", "g1"]):
        problem = {"num_vars": 5, "names": names, "groups": groups, "bounds": [[0.0, 1.0]] * 5, "dists": ["norm"] * 5}
        ours = saltelli_design(dict(problem), 64, 7)
        theirs = salib_sample.sample(dict(problem), 64, calc_second_order=False, seed=7)
        assert np.array_equal(ours, theirs)


def test_base_samples_round_up_to_a_power_of_two():
    assert [base_samples(n) for n in (0, 1, 2, 3, 500, 512, 513)] == [0, 1, 2, 4, 512, 512, 1024]


def test_linked_groups_are_the_connected_sets():
    r = np.eye(5)
    r[0, 3] = r[3, 0] = 0.4
    r[3, 4] = r[4, 3] = -0.2
    assert linked_groups(r) == [[0, 3, 4], [1], [2]]


def test_leading_names_the_inputs_that_hold_most_of_the_spread():
    def index(name: str, share: float) -> Index:
        return Index((name,), name, share, 0.01, share, 0.01, share)

    found = OutputIndices(COST, (index("a", 0.5), index("b", 0.3), index("c", 0.08), index("d", 0.07)))
    assert [i.label for i in found.leading()] == ["a", "b"]  # 80% >= 70%, and c holds under 10%: two suffice
    notable = OutputIndices(COST, (index("a", 0.85), index("b", 0.11), index("c", 0.04)))
    assert [i.label for i in notable.leading()] == ["a", "b"]  # past 70%, b still holds over 10%
    spread = OutputIndices(COST, tuple(index(n, 0.2) for n in "abcde"))
    assert [i.label for i in spread.leading()] == ["a", "b", "c"]  # at most three
    negligible = OutputIndices(COST, (index("a", 0.6), index("b", 0.0)))
    assert [i.label for i in negligible.leading()] == ["a"]  # an input with no share is never named


@pytest.fixture(scope="module")
def plan_cols():
    scenario = Scenario.from_dict(PLAN)
    return scenario_rows([scenario], None), scenario_device_spreads(scenario, None)


def test_a_real_plans_indices_are_shares_of_its_variance(plan_cols):
    cols, spread = plan_cols
    g = global_sensitivity(cols, spread, SOBOL_OUTPUTS, 512, 0)
    moved = uncertain_columns(cols, spread)
    assert g.base_samples == 512 and g.evaluations == 512 * (len(moved) + 2)
    assert [o.key for o in g.outputs] == [COST, DAYS, LOSS]
    for found in g.outputs:
        assert not found.why_none, found.why_none
        assert {c for i in found.indices for c in i.columns} == set(moved)  # every uncertain input, once
        for i in found.indices:  # in [0, 1], allowing the estimator's small noise (its own interval, or 0.02)
            assert -max(i.first_conf, 0.02) <= i.first <= 1 + max(i.first_conf, 0.02)
            assert -max(i.total_conf, 0.02) <= i.total <= 1 + max(i.total_conf, 0.02)
            assert i.first_conf >= 0 and i.total_conf >= 0 and 0 <= i.share <= 1
        assert sum(i.share for i in found.indices) == pytest.approx(1.0)
        assert sum(i.total for i in found.indices) == pytest.approx(1.0, abs=0.2)  # nearly additive in its inputs
    # the training time does not depend on the serving price or the traffic
    days = {i.columns: i for i in g.of(DAYS).indices}
    assert days[("serving_gpu_hour_usd",)].total == pytest.approx(0.0, abs=1e-9)
    assert days[("requests_per_s",)].total == pytest.approx(0.0, abs=1e-9)


def test_the_indices_are_the_same_for_a_seed_and_differ_for_another(plan_cols):
    cols, spread = plan_cols
    first = global_sensitivity(cols, spread, SOBOL_OUTPUTS, 128, 0)
    again = global_sensitivity(cols, spread, SOBOL_OUTPUTS, 128, 0)
    other = global_sensitivity(cols, spread, SOBOL_OUTPUTS, 128, 1)
    assert first == again  # seed 0 included: its bootstrap intervals too (SALib reads a seed 0 as "no seed")
    assert first != other


def test_correlated_columns_are_drawn_jointly_and_indexed_as_one_group(plan_cols):
    cols, spread = plan_cols
    g = global_sensitivity(cols, spread, (COST,), 256, 0, {("gemm_eff_max", "hbm_eff"): 0.6})
    assert g.grouped == (("gemm_eff_max", "hbm_eff"),)
    pair = {i.columns: i for i in g.of(COST).indices}[("gemm_eff_max", "hbm_eff")]
    assert pair.label == f"{label_of('gemm_eff_max')} with {label_of('hbm_eff')}"
    assert "indexed as one group" in g.to_dict()["method"]


def test_an_output_that_does_not_vary_says_so(plan_cols):
    cols, spread = plan_cols
    g = global_sensitivity(cols, spread, ("params",), 64, 0)
    (found,) = g.outputs
    assert found.indices == () and "does not vary" in found.why_none
    assert global_sensitivity(cols, spread, SOBOL_OUTPUTS, 0, 0) is None


def test_an_output_with_infinite_draws_says_how_many():
    _, (found,) = sobol_indices(lambda z: {"y": np.where(z[0] > 1.5, np.inf, z[0])}, ["x"], 64, 0, ["y"])
    assert found.indices == () and "has no finite value in " in found.why_none
    assert " of its 192 draws" in found.why_none


DECIDE = {**PLAN, "decision": {"budget_usd": 2e7, "samples": 200, "sobol_samples": 256}}
SPACE = {"model.params": [1e9, 3e9, 7e9], "training.tokens": [2e10, 1e11], "cluster.gpus": [64],
         "cluster.tp": [1, 2], "cluster.pp": [1]}


@pytest.fixture(scope="module")
def decision():
    return decide(Scenario.from_dict(DECIDE), space=SPACE, refine=False)


def test_decide_reports_first_and_total_indices_with_intervals_per_output(decision):
    d, data, space = decision, DECIDE, SPACE
    assert d.global_sensitivity is not None and d.global_sensitivity.base_samples == 256
    out = json.loads(json.dumps(d.to_dict()))["global_sensitivity"]
    assert set(out["outputs"]) == {COST, DAYS, LOSS}
    for found in out["outputs"].values():
        assert found["indices"] and found["why_none"] is None
        assert {"input", "first_order", "first_order_conf", "total_order", "total_order_conf", "share"} <= set(
            found["indices"][0])
    none = decide(Scenario.from_dict({**data, "decision": {**data["decision"], "sobol_samples": 0}}), space=space,
                  refine=False)
    assert none.global_sensitivity is None and none.to_dict()["global_sensitivity"] is None


def test_the_sentences_name_the_leading_inputs_with_their_shares():
    from report.sensitivity_text import sentence

    def index(label: str, share: float) -> Index:
        return Index((label,), label, share, 0.01, share, 0.01, share)

    cost = OutputIndices(COST, (index("Price per GPU-hour", 0.45), index("GEMM efficiency", 0.30),
                                index("Requests per second", 0.2), index("Other", 0.05)))
    assert sentence(cost) == ("Most of the spread in total cost comes from the price per GPU-hour (45%), GEMM "
                              "efficiency (30%) and the requests per second (20%).")
    days = OutputIndices(DAYS, (index("GEMM efficiency", 0.93), index("Failures per 1,000 GPU-days", 0.07)))
    assert sentence(days) == "Nearly all of the spread in training time comes from GEMM efficiency (93%)."
    flat = OutputIndices(LOSS, tuple(index(f"Input {n}", 0.1) for n in range(10)))
    assert sentence(flat).startswith("The spread in predicted loss is shared by many inputs; the largest are ")
    still = OutputIndices(LOSS, (), "does not vary with the uncertain inputs")
    assert sentence(still) == "The predicted loss does not vary with the uncertain inputs."


def test_the_pdf_says_which_uncertainties_matter_most(decision):
    import io

    import pdfplumber

    from report.decision_pdf import decision_pdf
    from report.sensitivity_text import sentences

    with pdfplumber.open(io.BytesIO(decision_pdf(decision))) as pdf:
        text = " ".join(" ".join((page.extract_text() or "").split()) for page in pdf.pages)
    assert "Which uncertainties matter most" in text
    lines = sentences(decision)
    assert len(lines) == 3 and lines[0].startswith(("Most of the spread in total cost comes from the ",
                                                    "Nearly all of the spread in total cost comes from the "))
    for line in lines:  # each sentence as written (a line break may fall anywhere in it)
        assert " ".join(line.split()) in text
    assert "First order" in text and "Total order" in text


@pytest.mark.usefixtures("fresh_caches")  # tests/conftest.py
def test_the_decide_page_says_which_uncertainties_matter_most():
    sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()  # the root forwards to the home page, Decide
    assert not at.exception, [e.value for e in at.exception]
    assert "Which uncertainties matter most" in [h.value for h in at.subheader]
    said = " ".join(m.value for m in at.markdown)
    assert "of the spread in total cost comes from " in said
    assert "of the spread in training time comes from " in said


def test_student_t_keeps_the_normals_p10_p90_and_fattens_the_tails():
    from scipy import stats

    from simulator.evaluator import Z_P90
    from simulator.model_error import t_draws as student_t

    z = np.array([-4.0, -Z_P90, 0.0, Z_P90, 4.0])
    t = student_t(z, 3.0)
    np.testing.assert_allclose(t[1:4], [-Z_P90, 0.0, Z_P90], atol=1e-4)  # P10, median, P90 (Z_P90 is rounded)
    assert t[4] > 4.0 and t[0] < -4.0  # a heavier tail than normal
    assert t[4] == pytest.approx(stats.t.isf(stats.norm.sf(4.0), 3.0) * Z_P90 / stats.t.ppf(0.9, 3.0))
    assert np.array_equal(student_t(z, np.inf), z)
    assert np.isfinite(student_t(np.array([9.0]), 2.0)).all()  # far in the tail: no quantile rounds to 1


def test_a_heavy_tailed_input_keeps_its_place_but_gains_share(plan_cols):
    cols, spread = plan_cols
    normal = global_sensitivity(cols, spread, (COST,), 256, 0)
    heavy = global_sensitivity(cols, spread, (COST,), 256, 0, tails={"gpu_hour_usd": 2.5})
    share = {g: {i.columns: i.share for i in s.of(COST).indices} for g, s in (("n", normal), ("t", heavy))}
    assert share["t"][("gpu_hour_usd",)] > share["n"][("gpu_hour_usd",)]
