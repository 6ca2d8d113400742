"""The decision: the optimiser against brute force, Pareto and budget invariants, the Monte Carlo's seed, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.decision import decide
from simulator.decision.search import pareto_front, pick
from simulator.decision.space import base_inputs
from simulator.scenario import Scenario, ScenarioError
from simulator.sweeps import sweep

SMALL = {"model.params": [3e8, 1e9, 3e9, 7e9], "training.tokens": [2e10, 6e10, 2e11, 6e11],
         "cluster.gpus": [8, 64, 512], "cluster.tp": [1, 8], "cluster.pp": [1, 4]}


def _scenario(**decision: object) -> Scenario:
    return Scenario.from_dict({"model": {"params": 1e9}, "decision": {"samples": 200, **decision}})


def _brute(s: Scenario) -> object:
    frame = sweep(Scenario.from_dict(base_inputs(s)), SMALL)
    ok = (frame["valid"] & frame["training.fits_memory"]
          & (frame["training.wall_days"] <= s.decision.max_training_days))
    return frame[ok]


def test_optimiser_agrees_with_brute_force_within_budget():
    s = _scenario(budget_usd=200_000)
    d = decide(s, space=SMALL, refine=False)
    rows = _brute(s)
    within = rows[rows["decision.total_cost_usd"] <= 200_000]
    best = within.sort_values(["quality.loss", "decision.total_cost_usd"]).iloc[0]
    assert d.quality_loss == pytest.approx(best["quality.loss"])
    assert d.total_cost_usd == pytest.approx(best["decision.total_cost_usd"])
    assert d.candidates_evaluated == int(np.prod([len(v) for v in SMALL.values()]))


def test_optimiser_agrees_with_brute_force_cheapest_for_quality():
    s = _scenario(objective="cheapest_for_quality", quality_target_loss=2.4)
    d = decide(s, space=SMALL, refine=False)
    rows = _brute(s)
    reach = rows[rows["quality.loss"] <= 2.4]
    assert d.total_cost_usd == pytest.approx(reach["decision.total_cost_usd"].min())
    assert d.quality_loss <= 2.4


def test_factorised_candidates_equal_one_whole_sweep():
    """The three part sweeps combined by index give every combination exactly what one sweep of all gives."""
    from simulator.decision.decide import search_base
    from simulator.decision.search import evaluate_candidates

    space = {**SMALL, "compression.weight_bits": [16, 8, 4], "serving.gpus_per_replica": [1, 2, 8]}
    base = search_base(Scenario.from_dict({"model": {"params": 1e9}, "serving": {"requests_per_s": 5}}))
    parts, whole = evaluate_candidates(base, space), evaluate_candidates(base, space, factorised=False)
    assert np.array_equal(parts.valid, whole.valid) and parts.valid.sum() > 0
    for key, values in whole.figures.items():
        assert np.allclose(parts.figures[key][whole.valid], values[whole.valid], rtol=1e-12, equal_nan=True), key
    assert all(np.array_equal(parts.choices[k], whole.choices[k]) for k in space)


def test_no_pareto_point_within_budget_beats_the_recommendation():
    d = decide(_scenario(budget_usd=500_000), space=SMALL)
    within = [p for p in d.pareto if p.total_cost_usd <= 500_000]
    assert within
    assert all(p.quality_loss >= d.quality_loss - 1e-12 for p in within)


def test_pareto_front_is_monotone_and_undominated():
    rng = np.random.default_rng(0)
    cost, loss = rng.random(500), rng.random(500)
    front = pareto_front(cost, loss)
    assert np.all(np.diff(cost[front]) >= 0) and np.all(np.diff(loss[front]) < 0)
    for i in front:  # no point is at least as cheap and strictly better, or cheaper and as good
        assert not np.any(((cost < cost[i]) & (loss <= loss[i])) | ((cost <= cost[i]) & (loss < loss[i])))


@settings(max_examples=15, deadline=None)
@given(st.floats(1e4, 1e7), st.floats(1.0, 20.0))
def test_a_larger_budget_never_recommends_a_worse_plan(budget, factor):
    small = decide(_scenario(budget_usd=budget, samples=0), space=SMALL, refine=False)
    large = decide(_scenario(budget_usd=budget * factor, samples=0), space=SMALL, refine=False)
    if small.recommendation is not None:
        assert large.quality_loss <= small.quality_loss + 1e-12


def test_pick_prefers_cheaper_at_equal_loss_and_respects_budget():
    cost, loss = np.array([5.0, 3.0, 1.0, 9.0]), np.array([2.0, 2.0, 3.0, 1.0])
    assert pick(cost, loss, "best_quality_within_budget", 6.0, None) == 1
    assert pick(cost, loss, "best_quality_within_budget", 0.5, None) is None
    assert pick(cost, loss, "cheapest_for_quality", 0.0, 2.0) == 1
    assert pick(cost, loss, "cheapest_for_quality", 0.0, 0.5) is None


def test_monte_carlo_is_reproducible_and_ordered():
    a = decide(_scenario(budget_usd=300_000, samples=400, seed=7), space=SMALL)
    b = decide(_scenario(budget_usd=300_000, samples=400, seed=7), space=SMALL)
    c = decide(_scenario(budget_usd=300_000, samples=400, seed=8), space=SMALL)
    assert a.uncertainty.to_dict() == b.uncertainty.to_dict()
    assert a.uncertainty.total_cost_usd != c.uncertainty.total_cost_usd
    u = a.uncertainty
    assert u.total_cost_usd.p10 <= u.total_cost_usd.p50 <= u.total_cost_usd.p90
    assert u.quality_loss.p10 <= u.quality_loss.p50 <= u.quality_loss.p90
    assert 0.0 <= u.prob_over_budget <= 1.0
    assert u.total_cost_usd.p10 < u.total_cost_usd.p90  # the efficiencies really are drawn


def test_sensitivity_brackets_the_plan_and_is_sorted():
    d = decide(_scenario(budget_usd=300_000, samples=0), space=SMALL)
    swings = [s.cost_swing_usd for s in d.sensitivity]
    assert swings == sorted(swings, reverse=True) and swings[0] > 0
    top = d.sensitivity[0]
    assert min(top.cost_low_usd, top.cost_high_usd) <= d.total_cost_usd <= max(top.cost_low_usd, top.cost_high_usd)


def test_no_plan_says_what_to_change():
    d = decide(_scenario(budget_usd=1.0), space=SMALL)
    assert d.recommendation is None
    assert "raise decision.budget_usd" in d.missing.reason
    assert d.missing.closest["total_cost_usd"] > 1.0


def test_recommendation_is_a_full_plan_with_the_name():
    s = Scenario.from_dict({"name": "Ünïcode 模型 🚀", "model": {"params": 1e9},
                            "decision": {"budget_usd": 300_000, "samples": 0}})
    d = decide(s, space=SMALL)
    assert d.recommendation.scenario.name == "Ünïcode 模型 🚀"
    assert d.recommendation.value("decision.total_cost_usd") == pytest.approx(d.total_cost_usd)


@pytest.mark.parametrize("name, message", [(5, "expected text"), ("x" * 201, "at most 200"),
                                           ("a\u0000b", "control character U\\+0000"),
                                           ("Lune \ud800", "unpaired surrogate"),
                                           ("\u200b\u200b\u200b", "shows nothing"),
                                           (" \u200d\u2060\ufeff\u200e ", "shows nothing")])
def test_hostile_names_are_refused_clearly(name, message):
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_dict({"name": name, "model": {"params": 1e9}})


@pytest.mark.parametrize("name, kept", [("  Lune\n  1 ", "Lune 1"), (" \t\n", ""), ("\u200bLune", "\u200bLune"),
                                        ("👩\u200d🚀 Mission", "👩\u200d🚀 Mission"), ("한국어 ไทย हिन्दी", "한국어 ไทย हिन्दी")])
def test_names_that_show_something_are_kept_on_one_line(name, kept):
    assert Scenario.from_dict({"name": name, "model": {"params": 1e9}}).name == kept


def test_cli_decide_prints_the_contract(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "Pilote « Lune » 月", "model": {"params": 1e9},
                                "decision": {"budget_usd": 1e6, "samples": 100, "seed": 1}}), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "simulator", "decide", str(path)], capture_output=True, text=True,
                         encoding="utf-8", timeout=120, check=True)
    data = json.loads(out.stdout)
    assert data["name"] == "Pilote « Lune » 月"
    rec = data["recommendation"]
    assert rec["total_cost_usd"] <= 1e6 and rec["quality_loss"] > 0 and "scenario" in rec
    assert data["candidates_evaluated"] > 10_000
    assert all({"total_cost_usd", "quality_loss", "scenario"} <= set(p) for p in data["pareto"])
    u = data["uncertainty"]
    assert {"p10", "p50", "p90"} <= set(u["total_cost_usd"]) and 0 <= u["prob_over_budget"] <= 1
    assert all({"input", "low", "high"} <= set(s) for s in data["sensitivity"])


def test_cli_decide_refuses_a_missing_target():
    out = subprocess.run([sys.executable, "-m", "simulator", "decide", "-"], capture_output=True, text=True,
                         input=json.dumps({"model": {"params": 1e9}, "decision": {"objective": "cheapest_for_quality"}}),
                         timeout=60)
    assert out.returncode == 2 and "quality_target_loss" in out.stderr and "Traceback" not in out.stderr


def test_decision_pdf_reads_back_and_renders(tmp_path):
    import io
    import shutil

    from pypdf import PdfReader

    from report.decision_pdf import decision_pdf
    from report.decision_text import answer_sentence

    s = Scenario.from_dict({"name": "Pilote « Lune » 月面", "model": {"params": 1e9},
                            "decision": {"budget_usd": 300_000, "samples": 100}})
    d = decide(s, space=SMALL)
    data = decision_pdf(d)
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(" ".join(p.extract_text() for p in reader.pages).split())
    assert reader.metadata.title.startswith("Pilote « Lune »")
    assert " ".join(answer_sentence(d).split()) in text
    assert "Figure Value P10–P90 Range Provenance" in text and "Plan on the Pareto front" in text
    assert "Accelerators and their uncertainty" in text and "Input Key Value Unit Set by" in text
    assert sum(len(p.images) for p in reader.pages) == 2  # the Pareto chart and the tornado
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) not installed: the PNG rendering is not checked")
    pdf = tmp_path / "d.pdf"
    pdf.write_bytes(data)
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=60)
    pngs = list(tmp_path.glob("page-*.png"))  # pdftoppm pads the page number by the page count's digits
    assert len(pngs) == 1 and pngs[0].stat().st_size > 1000


SEARCH = {**SMALL, "compression.weight_bits": [16, 4], "compression.quant_method": ["gptq"],
          "serving.gpus_per_replica": [1, 8]}


def _no_plan_reason(space: dict | None = None, **sections: dict) -> str:
    s = Scenario.from_dict({"model": {"params": 1e9}, "decision": {"budget_usd": 1e9, "samples": 0},
                            **sections})
    d = decide(s, space=space or SEARCH, refine=False)
    assert d.recommendation is None and d.missing is not None
    return d.missing.reason


def test_no_plan_for_a_purchase_without_a_price_asks_for_the_price():
    reason = _no_plan_reason(cluster={"accelerator": "A100-80GB-SXM"}, finance={"deploy": "buy"})
    assert "Purchase price per GPU (USD)" in reason and "A100-80GB-SXM" in reason
    assert "memory" not in reason and "training" not in reason.lower().replace("training, rent", "")


def test_no_plan_for_a_batch_that_never_fits_names_the_largest_that_does():
    reason = _no_plan_reason(serving={"batch": 10_000_000})
    assert "does not fit in memory: at most" in reason and "10,000,000 sequences" in reason
    assert "max_training_days" not in reason and "Longest training" not in reason


def test_no_plan_for_training_time_names_the_fastest():
    slow = {**SEARCH, "model.params": [3e9, 7e9], "training.tokens": [6e11], "cluster.gpus": [8]}
    reason = _no_plan_reason(slow, decision={"budget_usd": 1e9, "samples": 0, "max_training_days": 0.1})
    assert "trains within the longest training of 0.1 days" in reason and "the fastest takes" in reason
    assert "raise Longest training to at least" in reason
    assert "serving" not in reason


def test_decide_keeps_the_compression_the_user_chose():
    """evaluate accepts 4-bit weights with 8-bit activations by SmoothQuant; decide searches only what is left open
    (here: not the compression, nor the GPUs per replica) and recommends a plan with the user's choices."""
    chosen = {"compression": {"weight_bits": 4, "act_bits": 8, "quant_method": "smoothquant"},
              "serving": {"gpus_per_replica": 2}}
    s = Scenario.from_dict({"model": {"params": 1e9}, "decision": {"budget_usd": 1e8, "samples": 0}, **chosen})
    d = decide(s, space=SEARCH)
    plan = d.recommendation.scenario
    for section, values in chosen.items():
        for name, value in values.items():
            assert plan.value(f"{section}.{name}") == value, (section, name)
    assert all("compression.weight_bits" not in p.choice and "serving.gpus_per_replica" not in p.choice
               for p in d.pareto)
    open_ = decide(Scenario.from_dict({"model": {"params": 1e9}, "decision": {"budget_usd": 1e8, "samples": 0}}),
                   space=SEARCH)
    assert {"compression.weight_bits", "serving.gpus_per_replica"} <= set(open_.pareto[0].choice)


def test_monte_carlo_memory_stays_bounded_at_the_most_samples():
    import tracemalloc

    from simulator.decision.uncertainty import monte_carlo
    from simulator.evaluator import scenario_device_spreads, scenario_rows
    from simulator.families.decision import MAX_SAMPLES

    s = Scenario.from_dict({"model": {"params": 7e9}, "serving": {"requests_per_s": 5.0}})
    cols = scenario_rows([s])
    tracemalloc.start()
    try:
        mc = monte_carlo(cols, scenario_device_spreads(s, None), 2e7, MAX_SAMPLES, 0, "decision.total_cost_usd",
                         "quality.loss")
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mc.samples == MAX_SAMPLES and mc.total_cost_usd.p10 < mc.total_cost_usd.p90
    assert peak_bytes < 128 * 2**20, peak_bytes / 2**20  # all at once: 270 MiB at 50,000 draws, 1.1 GiB at 200,000
    with pytest.raises(ScenarioError, match=r"decision\.samples"):
        Scenario.from_dict({"model": {"params": 1e9}, "decision": {"samples": MAX_SAMPLES + 1}})


def test_no_plan_when_no_layout_is_legal_quotes_the_rule():
    reason = _no_plan_reason({**SEARCH, "cluster.gpus": [64, 512]}, training={"global_batch_seqs": 4},
                             cluster={"gpus": 4})
    assert reason.startswith("every one of the 512 candidates breaks a rule")
    assert "needs at least one sequence per step" in reason and "memory" not in reason


def test_no_plan_when_nothing_fits_in_training_memory_says_so_with_numbers():
    reason = _no_plan_reason(model={"params": 1e9, "seq_len": 1_000_000},
                             training={"micro_batch_seqs": 64, "global_batch_seqs": 4096})
    assert reason.startswith("no candidate's training fits in the memory of the NVIDIA H100 SXM5 80GB (80 GB)")
    assert "GB per GPU" in reason and "e+" not in reason and "rule" not in reason
