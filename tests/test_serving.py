"""Serving family: closed forms (batch-1 decode, KV batch limit), traffic monotonicity, a serving-only scenario."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.catalog import load_catalog
from simulator.evaluator import evaluate, scenario_rows
from simulator.scenario import Scenario, ScenarioError
from simulator.serving.constants import DECODE_MEM_EFF, KV_MEMORY_FRACTION, STEP_OVERHEAD_S
from simulator.serving.memory import kv_bytes_per_token
from simulator.sweeps import sweep

LLAMA70 = {"preset": "llama-3-70b"}


def _plan(serving: dict, model: dict | None = None):
    return evaluate(Scenario.from_dict({"model": model or LLAMA70, "serving": serving}))


def test_batch1_decode_is_weight_bytes_over_bandwidth():
    # 70B at 16 bits on 4 H100: one token of batch 1 streams the weights once
    plan = _plan({"accelerator": "H100-SXM", "gpus_per_replica": 4, "batch": 1, "prompt_tokens": 1,
                  "output_tokens": 1, "tpot_target_s": 60, "ttft_target_s": 3600, "requests_per_s": 1e-6})
    h100 = load_catalog()["H100-SXM"]
    params = plan.scenario.model.params
    expected = params * 2.0 / 4 / (h100.hbm_GBps * 1e9 * DECODE_MEM_EFF)
    tpot = plan.figures["serving.tpot_s"].value - STEP_OVERHEAD_S  # less the fixed time per step
    assert expected < tpot < 1.25 * expected  # + KV of one token, elementwise, 2 all-reduces per layer
    assert plan.figures["serving.batch_run"].value == 1


def test_batch_limit_follows_from_kv_cache():
    plan = _plan({"accelerator": "H100-SXM", "gpus_per_replica": 4, "prompt_tokens": 1000, "output_tokens": 1000})
    m = plan.scenario.model
    kv = kv_bytes_per_token(m.layers, m.hidden, m.heads, m.kv_heads, 16)
    assert kv == 2 * 80 * 8 * 128 * 2  # Llama-3-70B: 80 layers, 8 KV heads of 128, 16-bit -> 320 KiB per token
    budget = KV_MEMORY_FRACTION * (4 * 80e9 - m.params * 2)
    assert plan.figures["serving.max_batch"].value == math.floor(budget / (kv * 2000))


def test_weights_that_do_not_fit_warn_and_give_nan():
    plan = _plan({"accelerator": "H100-SXM", "gpus_per_replica": 1})
    assert any(w.code == "serving_no_fit" for w in plan.warnings)
    assert math.isnan(plan.figures["serving.replica_output_tokens_per_s"].value)


def test_unmeetable_targets_warn():
    plan = _plan({"accelerator": "H100-SXM", "gpus_per_replica": 4, "tpot_target_s": 1e-4})
    assert any(w.code == "serving_targets" for w in plan.warnings)
    assert math.isnan(plan.figures["serving.gpus"].value)


def test_targets_shrink_the_batch():
    loose = _plan({"gpus_per_replica": 4, "tpot_target_s": 10})
    tight = _plan({"gpus_per_replica": 4, "tpot_target_s": 0.03})
    assert tight.figures["serving.batch_run"].value < loose.figures["serving.batch_run"].value
    assert tight.figures["serving.tpot_s"].value <= 0.03


def test_batch_words_and_hostile_values():
    assert Scenario.from_dict({"model": LLAMA70, "serving": {"batch": "MAX"}}).serving.batch == "max"
    for bad in ("many", 0, -3, 1.5, True):
        with pytest.raises(ScenarioError, match=r"serving\.batch"):
            Scenario.from_dict({"model": LLAMA70, "serving": {"batch": bad}})
    with pytest.raises(ScenarioError, match=r"serving\.accelerator"):
        Scenario.from_dict({"model": LLAMA70, "serving": {"accelerator": "H1000"}})
    with pytest.raises(ScenarioError, match=r"serving\.gpus_per_replica"):
        Scenario.from_dict({"model": LLAMA70, "serving": {"gpus_per_replica": 3}})


def test_serving_device_defaults_to_cluster_and_gets_prefixed_columns():
    s = Scenario.from_dict({"model": LLAMA70, "cluster": {"accelerator": "A100-80GB-SXM"}})
    assert s.serving.accelerator == "A100-80GB-SXM"
    cols = scenario_rows([s.replace(**{"serving.accelerator": "H200"})])
    assert cols["hbm_GBps"][0] == 2039 and cols["serving_hw_hbm_GBps"][0] == 4800
    assert cols["serving_hw_peak_fp8_tflops"][0] == load_catalog()["H200"].peak_tflops["fp8"]


def test_calibrated_serving_device_uses_its_fits():
    from simulator.devices import shipped_devices

    cpu = next(d for d in shipped_devices().values() if "xeon" in d.id)
    plan = _plan({"accelerator": cpu.id, "gpus_per_replica": 1, "tpot_target_s": 60, "ttft_target_s": 3600},
                 {"layers": 4, "hidden": 512, "heads": 8, "vocab": 32000})
    cols = scenario_rows([plan.scenario])
    assert cols["serving_hw_decode_mem_eff"][0] == pytest.approx(cpu.decode_mem_eff)
    assert cols["serving_hw_step_overhead_s"][0] == pytest.approx(cpu.step_overhead_s)
    assert plan.figures["serving.tpot_s"].value > cpu.step_overhead_s
    assert plan.figures["serving.tpot_s"].low < plan.figures["serving.tpot_s"].high


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(0.01, 500), p2a=st.floats(1, 5), prompt=st.integers(1, 8000), out=st.integers(1, 4000))
def test_doubling_traffic_never_lowers_gpus(rate, p2a, prompt, out):
    base = Scenario.from_dict({"model": {"preset": "llama-3-8b"},
                               "serving": {"prompt_tokens": prompt, "output_tokens": out, "peak_to_average": p2a}})
    frame = sweep(base, {"serving.requests_per_s": [rate, 2 * rate]})
    gpus = frame["serving.gpus"].to_numpy()
    assert np.isnan(gpus).all() or gpus[1] >= gpus[0]


def test_sweep_rows_match_single_plans():
    base = Scenario.from_dict({"model": LLAMA70})
    frame = sweep(base, {"serving.accelerator": ["H100-SXM", "H200"], "serving.requests_per_s": [5, 50]})
    for _, row in frame.iterrows():
        plan = evaluate(base.replace(**{"serving.accelerator": row["serving.accelerator"],
                                        "serving.requests_per_s": row["serving.requests_per_s"]}))
        assert row["serving.gpus"] == plan.figures["serving.gpus"].value


def test_cli_serving_only_scenario(tmp_path):
    path = tmp_path / "serve.json"
    path.write_text(json.dumps({"model": LLAMA70, "serving": {"requests_per_s": 20, "tpot_target_s": 0.2,
                                                              "batch": "max"}}))
    done = subprocess.run([sys.executable, "-m", "simulator", "evaluate", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    for key in ("serving.ttft_s", "serving.tpot_s", "serving.replica_output_tokens_per_s",
                "serving.output_tokens_per_s_per_gpu", "serving.max_batch", "serving.replicas", "serving.gpus",
                "serving.cost_per_million_output_tokens_usd", "serving.monthly_cost_usd", "finance.tco_usd",
                "finance.payback_months", "finance.npv_usd", "finance.api_cost_usd"):
        section, _, name = key.partition(".")
        assert name in plan[section], key
    assert plan["serving"]["gpus"] >= 4 and plan["serving"]["cost_per_million_output_tokens_usd"] > 0


def test_a_whole_prompt_is_not_hidden_under_a_memory_bound_decode_step():
    """Batch 8 of an 8B model at 16 bits on one H100 decodes memory-bound; batch/output = 8/256 of a 2048-token
    prompt joins a step on average, and that prompt's compute (2·N·2048 FLOPs, at most at the peak) adds to the
    mean step: spreading its tokens evenly over the steps would hide them under the weight streaming."""
    from simulator.families.serving import replica
    from simulator.serving.step import steady_step, step_time
    from simulator.sweeps import evaluate_columns

    s = Scenario.from_dict({"model": {"preset": "llama-3-8b"},
                            "serving": {"accelerator": "H100-SXM", "batch": 8, "prompt_tokens": 2048,
                                        "output_tokens": 256}})
    r = replica(evaluate_columns(scenario_rows([s])))
    zero = np.zeros(1)
    decode = step_time(r, zero + 8.0, zero + 2048 + 128.0, zero, zero, zero + 2048.0)
    assert not decode.compute_bound[0]
    mean_s = steady_step(r, zero + 8.0, zero + 2048.0, zero + 256.0).total_s[0]
    prompt_s = 2.0 * r.params[0] * 2048 / r.peak_flops[0]
    assert mean_s - decode.total_s[0] >= 8 / 256 * prompt_s
    alone = steady_step(r, zero + 1.0, zero + 2048.0, zero + 256.0)  # one sequence: 1/256 of a prompt per step
    assert alone.total_s[0] > step_time(r, zero + 1.0, zero + 2176.0, zero, zero, zero + 2048.0).total_s[0]


SERVING_FIGURES = ("serving.ttft_s", "serving.tpot_s", "serving.replicas", "serving.gpus", "serving.monthly_cost_usd")
LOOSE = {"accelerator": "H100-SXM", "gpus_per_replica": 4, "tpot_target_s": 60, "ttft_target_s": 3600}


def test_a_batch_one_above_what_fits_names_the_largest_that_fits():
    fits = int(_plan(LOOSE).figures["serving.max_batch"].value)
    over = _plan({**LOOSE, "batch": fits + 1})
    found = [w for w in over.warnings if w.code == "serving_batch_no_fit"]
    assert len(found) == 1 and found[0].key == "serving.batch", over.warnings
    assert f"at most {fits:,} fit" in found[0].text and f"{fits + 1:,} sequences" in found[0].text
    assert "serving." not in found[0].text  # the user's words: labels, not keys
    assert all(math.isnan(over.figures[k].value) for k in SERVING_FIGURES)
    at = _plan({**LOOSE, "batch": fits})  # the number named is one that fits: its figures are there
    assert "serving_batch_no_fit" not in at.warning_codes()
    assert all(math.isfinite(at.figures[k].value) for k in SERVING_FIGURES)


def test_every_nan_serving_figure_comes_with_a_serving_warning():
    """Batches around the memory limit and far past it: no NaN serving figure without a serving warning."""
    fits = int(_plan(LOOSE).figures["serving.max_batch"].value)
    for batch in (1, fits // 2, fits - 1, fits, fits + 1, 2 * fits, 10_000_000):
        plan = _plan({**LOOSE, "batch": batch})
        if any(math.isnan(plan.figures[k].value) for k in SERVING_FIGURES):
            assert any(w.code.startswith("serving") for w in plan.warnings), (batch, plan.warnings)


def test_fp8_gemms_reach_a_smaller_share_of_their_peak():
    # a compute-bound prefill (8B, one 8192-token prompt on one H100): FP8 doubles the peak but its GEMMs reach
    # 0.73 of it against 0.82 for bf16 (serving/constants.py), so the linear layers speed up by 2 × 0.73 / 0.82
    from simulator.families.serving import replica
    from simulator.serving.constants import LOW_PRECISION_GEMM_EFF_RATIO
    from simulator.serving.step import prefill_alone

    serving = {"accelerator": "H100-SXM", "gpus_per_replica": 1, "prompt_tokens": 8192, "output_tokens": 1}
    fp8 = {"quant_method": "rtn", "format": "fp", "weight_bits": 8, "act_bits": 8, "kv_bits": 8}
    bf16_s = Scenario.from_dict({"model": {"preset": "llama-3-8b"}, "serving": serving})
    fp8_s = Scenario.from_dict({"model": {"preset": "llama-3-8b"}, "serving": serving, "compression": fp8})
    prompt = np.array([8192.0])
    bf16 = prefill_alone(replica(scenario_rows([bf16_s])), prompt)
    low = prefill_alone(replica(scenario_rows([fp8_s])), prompt)
    assert bf16.compute_bound[0] and low.compute_bound[0]
    peaks = load_catalog()["H100-SXM"].peak_tflops
    ratio = peaks["fp8"] / peaks["bf16"] * LOW_PRECISION_GEMM_EFF_RATIO  # 1,979 / 989.4 TFLOP/s dense
    assert bf16.linear_s[0] / low.linear_s[0] == pytest.approx(ratio, rel=1e-9)
