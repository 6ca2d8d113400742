"""The mixture-of-experts loss: Ludziejewski et al. 2025's joint law against hand computation and the paper's own
Tables 1 and 4, its join to the dense law, and dense plans unchanged bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.evaluator import evaluate
from simulator.quality import LAWS, loss
from simulator.quality_moe import (
    JOINT_MOE,
    chinchilla_form,
    compute_optimal,
    e_hat,
    expansion,
    joint_loss,
    outside_fit,
    ratio_sigma,
    reducible_ratio,
)
from simulator.scenario import Scenario


def test_law_by_hand_from_table_3():
    # Table 3: a, α, δ, γ, b, β, ω, ζ, E_start, E_max, c; eq. 4 and eq. 6 written out for one point
    a, al, de, ga, b, be, om, ze, es, em, c = (35.91, -0.1889, -0.2285, 0.0098, 35.98, -0.1775, 0.5529, -0.0259,
                                               2.0732, 290.4521, 1.3637)
    n, d, e = 1e9, 2e10, 8.0
    eh = 1.0 / (1.0 / (e - 1.0 + 1.0 / (1.0 / es - 1.0 / em)) + 1.0 / em)
    by_hand = a * eh**de * n ** (al + ga * math.log(eh)) + b * eh**om * d ** (be + ze * math.log(eh)) + c
    assert float(e_hat(e)) == pytest.approx(eh, rel=1e-14)
    assert float(joint_loss(n, d, e)) == pytest.approx(by_hand, rel=1e-14)
    assert float(e_hat(1.0)) == pytest.approx(es, rel=1e-12)  # a dense model sits at Ê = E_start
    eh1 = es
    dense = a * eh1**de * n ** (al + ga * math.log(eh1)) + b * eh1**om * d ** (be + ze * math.log(eh1)) + c
    assert float(reducible_ratio(n, d, e)) == pytest.approx((by_hand - c) / (dense - c), rel=1e-13)


# Ludziejewski et al. 2025 Table 4: the joint law reduced to L = m·N^μ + n·D^ν + c for each E
TABLE_4 = {1: (30.3640, -0.1817, 53.9838, -0.1965), 2: (27.7982, -0.1780, 66.8401, -0.2065),
           4: (24.8462, -0.1731, 87.7022, -0.2192), 8: (21.8330, -0.1676, 119.9126, -0.2338),
           16: (19.0159, -0.1617, 167.5073, -0.2494), 32: (16.5424, -0.1557, 234.6726, -0.2652)}


@pytest.mark.parametrize("experts", sorted(TABLE_4))
def test_table_4_reproduced(experts):
    m, mu, n, nu = (float(x) for x in chinchilla_form(float(experts)))
    pm, pmu, pn, pnu = TABLE_4[experts]
    # Table 3 prints 4 significant figures, Table 4 was computed from the unrounded fit: within 0.5% and 2e-4
    assert m == pytest.approx(pm, rel=5e-3) and n == pytest.approx(pn, rel=5e-3)
    assert mu == pytest.approx(pmu, abs=2e-4) and nu == pytest.approx(pnu, abs=2e-4)


# Ludziejewski et al. 2025 Table 1: compute-optimal active parameters and tokens
TABLE_1 = {(1e20, 1): (1.7e9, 9.7e9), (1e20, 8): (990e6, 17e9), (1e20, 32): (669e6, 24.9e9),
           (1e21, 4): (4.4e9, 38e9), (1e22, 1): (18.8e9, 88.6e9), (1e22, 16): (13.2e9, 126.5e9)}


@pytest.mark.parametrize(("flops", "experts"), sorted(TABLE_1))
def test_table_1_compute_optimal_within_rounding(flops, experts):
    n_opt, d_opt = (float(x) for x in compute_optimal(flops, float(experts)))
    pn, pd = TABLE_1[(flops, experts)]
    assert n_opt == pytest.approx(pn, rel=0.03) and d_opt == pytest.approx(pd, rel=0.03)


def test_expansion_and_fit_range():
    assert expansion(np.array([0, 8, 64, 256, 4]), np.array([2, 2, 8, 8, 8])).tolist() == [1, 4, 8, 32, 1]
    lo, hi = JOINT_MOE.active_params_range
    assert not outside_fit(1e9, 2e10, 8.0)
    assert outside_fit(hi * 1.01, 2e10, 8.0) and outside_fit(lo * 0.99, 2e10, 8.0)
    assert outside_fit(1e9, 1e12, 8.0) and outside_fit(1e9, 2e10, 64.0)
    # the held-out RMSE of ln L (0.0039) carried to the reducible loss: about 2× at the largest dense run
    assert 0.0039 < ratio_sigma() < 0.0039 * 3


# quality.dense_loss and quality.loss of dense plans at commit 83e4e6d (before the MoE law), recorded there
BEFORE = [({"model": {"params": 7e9}}, (2.1911909162956014, 2.1911909162956014)),
          ({"model": {"params": 7e10, "mlp": "swiglu"}, "quality": {"law": "epoch"},
            "compression": {"weight_bits": 4, "quant_method": "gptq"}}, (1.9740569061643083, 1.9917044103446033)),
          ({"model": {"params": 1.2e8}, "training": {"tokens": 3e9},
            "compression": {"weight_bits": 8, "quant_method": "rtn"}}, (3.339510389246765, 3.33965776804097))]


@pytest.mark.parametrize(("inputs", "before"), BEFORE)
def test_dense_loss_bit_identical_to_before(inputs, before):
    f = evaluate(Scenario.from_dict(inputs)).figures
    assert (f["quality.dense_loss"].value, f["quality.loss"].value) == before
    assert f["quality.moe_loss_ratio"].value == 1.0


def test_moe_joined_to_dense_law_at_active_params():
    plan = evaluate(Scenario.from_dict({"model": {"preset": "mixtral-8x7b"}}))
    f, law = plan.figures, LAWS["chinchilla"]
    n_act, d = f["model.active_params"].value, plan.scenario.training.tokens
    ratio = float(reducible_ratio(n_act, d, 4.0))  # Mixtral: 8 experts, top-2 -> E = 4
    assert f["quality.moe_loss_ratio"].value == pytest.approx(ratio, rel=1e-12)
    assert 0.9 < ratio < 1.0  # an MoE beats the dense model of its active size, by a few percent
    expected = law.E + (float(loss(n_act, d, law)) - law.E) * ratio
    assert f["quality.dense_loss"].value == pytest.approx(expected, rel=1e-12)
    # better than dense at its active size, worse than dense at its total size
    assert f["quality.dense_loss"].value < float(loss(n_act, d, law))
    assert f["quality.dense_loss"].value > float(loss(f["model.total_params"].value, d, law))
    assert "quality_moe_extrapolated" in {w.code for w in plan.warnings}  # 12.9B active is past the fit's 2.7B
    low, high = f["quality.moe_loss_ratio"].low, f["quality.moe_loss_ratio"].high
    assert low < ratio < high and high / ratio - 1 == pytest.approx(1.2816 * ratio_sigma(), rel=0.05)


def test_moe_within_fit_has_no_warning():
    plan = evaluate(Scenario.from_dict({"model": {"layers": 16, "hidden": 1024, "heads": 16, "moe_experts": 8,
                                                  "moe_top_k": 1, "mlp": "swiglu"},
                                        "training": {"tokens": 1.6e10}}))
    assert "quality_moe_extrapolated" not in {w.code for w in plan.warnings}
    assert plan.figures["quality.moe_loss_ratio"].value < 1.0
