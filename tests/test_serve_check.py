"""The serving calibration check: the continuous-batching loop's bookkeeping on a fake engine with deterministic
step times (hand-computed latencies and throughput), the seeded Poisson stream, the fixed step overhead a calibrated
device takes from its decode fit, and one short real run of a tiny decoder (numbers reported, no accuracy target:
this machine is shared; the 15% target is checked by benchmarks/serving_cpu_check.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.serve_check import CheckConfig, run_check, same_cpu
from calibration.serve_loop import Stream, poisson_arrivals_s, serve
from simulator.serving.step import fixed_overhead_s


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += max(s, 0.0)


class FakeEngine:
    """A step costs step_s plus per_prompt_s per new prompt plus per_seq_s per decoding sequence; records every
    call and checks the slots stay within the batch."""

    def __init__(self, clock: FakeClock, max_batch: int, step_s: float = 0.5, per_prompt_s: float = 0.5,
                 per_seq_s: float = 0.0) -> None:
        self.clock, self.max_batch = clock, max_batch
        self.step_s, self.per_prompt_s, self.per_seq_s = step_s, per_prompt_s, per_seq_s
        self.calls: list[tuple] = []

    def step(self, lengths: np.ndarray, first_slot: int, count: int) -> None:
        assert first_slot == len(lengths) and len(lengths) + count <= self.max_batch and len(lengths) + count >= 1
        self.calls.append(("step", tuple(int(x) for x in lengths), first_slot, count))
        self.clock.t += self.step_s + self.per_prompt_s * count + self.per_seq_s * len(lengths)

    def move(self, src: int, dst: int) -> None:
        assert 0 <= dst < src < self.max_batch
        self.calls.append(("move", src, dst))


def _serve(arrivals, stream: Stream, **costs):
    clock = FakeClock()
    engine = FakeEngine(clock, stream.max_batch, **costs)
    result = serve(engine, np.asarray(arrivals, dtype=float), stream, clock=clock, sleep=clock.sleep, cpu_clock=clock)
    return result, engine


def test_batch_full_then_queued_request_hand_computed():
    # three requests at t = 0, batch 2, 3 output tokens; a step costs 0.5 s plus 0.5 s per new prompt:
    # step 1 prefills r0, r1 (first tokens at 1.5); steps 2-3 decode them (2.0, 2.5: done); step 4 prefills r2
    # (3.5); steps 5-6 decode it (4.0, 4.5); then idle to 4.75
    stream = Stream(prompt_tokens=4, output_tokens=3, max_batch=2, duration_s=4.75, warmup_s=0.0)
    res, engine = _serve([0.0, 0.0, 0.0], stream)
    assert engine.calls == [("step", (), 0, 2), ("step", (5, 5), 2, 0), ("step", (6, 6), 2, 0), ("step", (), 0, 1),
                            ("step", (5,), 1, 0), ("step", (6,), 1, 0)]
    assert res.steps == 6 and res.completed == 3
    assert res.ttft_median_s == pytest.approx(1.5)
    assert res.ttft_p90_s == pytest.approx(np.quantile([1.5, 1.5, 3.5], 0.9))
    assert res.tpot_median_s == pytest.approx(0.5) and res.tpot_p90_s == pytest.approx(0.5)
    assert res.output_tokens_per_s == pytest.approx(9 / 4.75)
    assert res.mean_batch == pytest.approx((2 + 2 + 1 + 1) / 4)
    assert res.busy_s == pytest.approx(4.5) and res.busy_cpu_s == pytest.approx(4.5)  # the idle 0.25 s left out


def test_new_prompts_share_the_step_of_the_running_decodes_and_refill_retired_slots():
    # output 2, a step 0.5 s + 0.5 s per new prompt: r0 arrives at 0, r1 at 0.6, r2 at 1.1
    # t=0: r0's prompt -> 1.0; t=1.0: r1's prompt (slot 1) with r0's decode -> 2.0 (r0 done; r1 moves to slot 0)
    # t=2.0: r2's prompt (slot 1) with r1's decode -> 3.0 (r1 done; r2 moves to slot 0); t=3.0: r2's decode -> 3.5
    stream = Stream(prompt_tokens=10, output_tokens=2, max_batch=3, duration_s=5.0, warmup_s=0.0)
    res, engine = _serve([0.0, 0.6, 1.1], stream)
    assert engine.calls == [("step", (), 0, 1), ("step", (11,), 1, 1), ("move", 1, 0), ("step", (11,), 1, 1),
                            ("move", 1, 0), ("step", (11,), 1, 0)]
    assert res.ttft_median_s == pytest.approx(sorted([1.0 - 0.0, 2.0 - 0.6, 3.0 - 1.1])[1])
    assert res.tpot_median_s == pytest.approx(1.0)  # r0 and r1: their second token one 1 s step after the first
    assert res.output_tokens_per_s == pytest.approx(6 / 5.0)


def test_warmup_and_end_of_window_are_left_out():
    # one request per second, each served alone: its prompt's step 0.25 s, then 4 decode steps of 0.125 s (output 5)
    stream = Stream(prompt_tokens=8, output_tokens=5, max_batch=4, duration_s=9.5625, warmup_s=3.0)
    res, _ = _serve(np.arange(10.0), stream, step_s=0.125, per_prompt_s=0.125)
    # requests arriving at 3..8 finish in the window; the one at 9 delivers at 9.25, 9.375, 9.5, then 9.625 (past
    # the end: the loop stops there), so it does not complete
    assert res.completed == 6
    assert res.ttft_median_s == pytest.approx(0.25) and res.tpot_median_s == pytest.approx(0.125)
    # tokens delivered in [3, 9.5625): requests 3..8 whole (30) and request 9's first three
    assert res.output_tokens_per_s == pytest.approx((6 * 5 + 3) / 6.5625)
    assert res.mean_batch == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(arrivals=st.lists(st.floats(0.0, 20.0), min_size=1, max_size=40), batch=st.integers(1, 6),
       output=st.integers(1, 7), per_seq=st.floats(0.0, 0.2), per_prompt=st.floats(0.0, 0.3))
def test_loop_invariants(arrivals, batch, output, per_seq, per_prompt):
    stream = Stream(prompt_tokens=5, output_tokens=output, max_batch=batch, duration_s=1000.0, warmup_s=0.0)
    res, engine = _serve(arrivals, stream, step_s=0.05, per_seq_s=per_seq, per_prompt_s=per_prompt)
    steps = [c for c in engine.calls if c[0] == "step"]
    # within a long enough budget every request completes, each with exactly `output` tokens
    assert res.completed == len(arrivals)
    assert res.output_tokens_per_s * res.window_s == pytest.approx(len(arrivals) * output)
    assert sum(c[3] for c in steps) == len(arrivals)
    assert sum(len(c[1]) for c in steps) == len(arrivals) * (output - 1)
    assert all(len(c[1]) + c[3] <= batch for c in steps)
    assert res.ttft_median_s >= 0.05 - 1e-9 and (output == 1 or res.tpot_median_s >= 0.05 - 1e-9)


def test_selective_batching_generates_what_the_model_alone_generates():
    """Prompts prefilled in one step with running decodes, then decoded together, give each sequence the greedy
    tokens the decoder's own forward gives it alone (fp32)."""
    import torch

    from calibration.serve_engine import TorchEngine

    engine = TorchEngine(2, 64, 4, 128, slots=4, max_ctx=40, dtype="fp32", prompt_tokens=8, seed=1)
    reference = {}
    for slot in range(3):
        tokens = engine.prompts[slot:slot + 1].clone()
        for _ in range(4):
            nxt = engine.model(tokens, engine.model.new_cache(1, 40), 0).argmax(-1)
            tokens = torch.cat([tokens, nxt[:, None]], 1)
        reference[slot] = tokens[0, 8:].tolist()
    got: dict[int, list[int]] = {0: [], 1: [], 2: []}
    engine.step(np.zeros(0, dtype=np.int64), 0, 1)  # slot 0's prompt alone
    got[0].append(int(engine.next_token[0]))
    engine.step(np.array([8]), 1, 2)  # slot 0 decodes while slots 1-2 prefill
    for slot in range(3):
        got[slot].append(int(engine.next_token[slot]))
    for i in range(3):
        engine.step(np.array([9 + i, 8 + i, 8 + i]), 3, 0)
        for slot in range(3):
            got[slot].append(int(engine.next_token[slot]))
    assert got[0][:4] == reference[0] and got[1][:4] == reference[1] and got[2][:4] == reference[2]


def test_poisson_stream_is_seeded_and_has_the_rate():
    a = poisson_arrivals_s(50.0, 200.0, seed=3)
    assert np.array_equal(a, poisson_arrivals_s(50.0, 200.0, seed=3))
    assert not np.array_equal(a, poisson_arrivals_s(50.0, 200.0, seed=4))
    assert a.min() >= 0.0 and a.max() < 200.0 and np.all(np.diff(a) >= 0)
    assert len(a) / 200.0 == pytest.approx(50.0, rel=0.03)   # 10,000 arrivals: the count's sd is 1%
    gaps = np.diff(a)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, abs=0.05)  # exponential gaps: CV 1
    with pytest.raises(ValueError, match="must be positive"):
        poisson_arrivals_s(0.0, 1.0, seed=0)


def test_bad_stream_is_refused():
    with pytest.raises(ValueError, match="warmup_s"):
        _serve([0.0], Stream(4, 2, 1, duration_s=1.0, warmup_s=1.0))
    with pytest.raises(ValueError, match="at least 1"):
        _serve([0.0], Stream(4, 0, 1, duration_s=1.0, warmup_s=0.0))


def test_fixed_overhead_takes_the_weight_streaming_out_of_the_decode_intercept():
    assert fixed_overhead_s(5e-3, 20e6, 10e9) == pytest.approx(3e-3)  # 5 ms - 20 MB / 10 GB/s
    assert fixed_overhead_s(1e-3, 20e6, 10e9) == 0.0                  # never negative
    from simulator.devices import shipped_devices, shipped_profiles

    profile = next(p for p in shipped_profiles().values() if not p["environment"].get("gpu_names"))
    fit = profile["fits"]["inference"]["decode"]["cpu/bf16/L4-h512"]
    roof = profile["fits"]["inference"]["roofline"]["cpu/bf16/eager_bf16"]["params"]
    # TinyDecoder L4-h512, vocab 1000, bf16: (4·(12·512² + 13·512) + 1000·512) weights × 2 bytes
    weights = (4 * (12 * 512**2 + 13 * 512) + 1000 * 512) * 2.0
    cpu = next(d for d in shipped_devices().values() if "xeon" in d.id)
    expected = fit["params"]["overhead_s"] - weights / (roof["gemv_GBps"] * 1e9)
    assert cpu.step_overhead_s == pytest.approx(expected, rel=1e-9)
    assert "less streaming" in cpu.sources["serving"]


def test_a_profile_of_another_cpu_is_told_apart():
    here = {"cpu_model": "AMD EPYC", "cpu_flags": ["avx2", "avx512_bf16"]}
    assert same_cpu({"environment": {"cpu_model": "AMD EPYC", "cpu_flags": ["avx512_bf16", "avx2"]}}, here)
    assert not same_cpu({"environment": {"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_flags": ["avx2"]}}, here)
    assert not same_cpu({"environment": {"cpu_model": "AMD EPYC", "cpu_flags": ["avx2"]}}, here)
    assert not same_cpu({"environment": {**here, "gpu_names": ["NVIDIA H200"]}}, here)


def test_cli_refuses_a_missing_profile(tmp_path, capsys):
    from calibration.cli import main

    assert main(["serve-check", "--profile", str(tmp_path / "none.json"), "--quick"]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["serve-check", "--profile", str(bad), "--quick"]) == 2
    assert f"--profile {bad}:" in capsys.readouterr().err


def test_short_real_run_reports_measured_and_predicted():
    cfg = CheckConfig(layers=2, hidden=64, heads=4, vocab=128, prompt_tokens=16, output_tokens=8, max_batch=4,
                      stream_s=2.5, warmup_s=0.3)
    report = run_check(cfg, log=lambda _: None)
    assert [c.quantity for c in report.rows] == ["output tokens/s", "time to first token (s)",
                                                 "time per output token (s)"]
    for c in report.rows:
        assert math.isfinite(c.measured) and c.measured > 0 and math.isfinite(c.predicted) and c.predicted > 0, (
            report.table(), report.as_dict())
        assert math.isfinite(c.error)
    assert report.saturated.mean_batch > report.steady.mean_batch, report.as_dict()
    # the latency stream runs at half the throughput the saturated one measured
    assert report.rates_per_s["steady"] * cfg.output_tokens == pytest.approx(0.5 * report.saturated.output_tokens_per_s)
    assert "output tokens/s" in report.table() and report.as_dict()["rows"][0]["error"] == report.throughput_error


def test_calibrated_decode_step_matches_the_profiles_own_decode_rows():
    """The step model on the shipped CPU device reproduces that profile's measured bf16 decode steps of the decoder
    (before the weight streaming was taken out of the step overhead it was 13-52% slow)."""
    from calibration.serve_check import scenario_dict
    from simulator.devices import shipped_devices, shipped_profiles
    from simulator.evaluator import scenario_rows
    from simulator.families.serving import replica
    from simulator.scenario import Scenario
    from simulator.serving.step import step_time
    from simulator.sweeps import evaluate_columns

    cpu = next(d for d in shipped_devices().values() if "xeon" in d.id)
    profile = next(p for p in shipped_profiles().values() if not p["environment"].get("gpu_names"))
    r = replica(evaluate_columns(scenario_rows([Scenario.from_dict(scenario_dict(CheckConfig(), cpu.id, 1.0))])))
    rows = [m for m in profile["measurements"] if m["bench"] == "decode" and m["dtype"] == "bf16"]
    assert len(rows) >= 6
    for m in rows:
        b, ctx = float(m["params"]["batch"]), float(m["params"]["context"])
        zero = np.zeros(1)
        t = step_time(r, np.array([b]), np.array([ctx]), zero, zero, np.array([128.0])).total_s[0]
        assert t / m["median_s"] - 1.0 == pytest.approx(0.0, abs=0.15), (b, ctx, t, m["median_s"])
