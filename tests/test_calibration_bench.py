"""Rows, timing summaries, environment capture, grids, and single benches measured in-process."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calibration.rows import (
    ROW_KEYS,
    Step,
    append_row,
    finished_keys,
    make_row,
    read_rows,
    step_key,
    summarize,
)

REPO = Path(__file__).resolve().parents[1]


def _row(i: int = 0, status: str = "ok") -> dict:
    return make_row(Step("gemm", "cpu", "fp32", {"m": i, "n": 1, "k": 1}), run_id="t", times_s=[0.1, 0.2, 0.3],
                    status=status, flops=2.0 * i)


def test_row_has_exactly_the_contract_keys():
    row = _row(3)
    assert tuple(row) == ROW_KEYS
    assert row["repeats"] == 3 and row["median_s"] == pytest.approx(0.2)
    assert row["p25_s"] == pytest.approx(0.15) and row["p75_s"] == pytest.approx(0.25)


def test_append_then_read_round_trip(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [_row(i) for i in range(5)]
    for r in rows:
        append_row(path, r)
    assert read_rows(path) == rows


def test_truncated_last_line_is_skipped_and_next_append_stays_clean(tmp_path):
    path = tmp_path / "rows.jsonl"
    append_row(path, _row(1))
    line = (json.dumps(_row(2)) + "\n").encode()
    with path.open("ab") as f:
        f.write(line[: len(line) // 2])  # a writer killed mid-line
    assert [r["params"]["m"] for r in read_rows(path)] == [1]
    append_row(path, _row(3))
    assert [r["params"]["m"] for r in read_rows(path)] == [1, 3]


def test_missing_file_reads_as_no_rows(tmp_path):
    assert read_rows(tmp_path / "absent.jsonl") == []


def test_nan_is_stored_as_null(tmp_path):
    path = tmp_path / "rows.jsonl"
    row = _row(1)
    row["extra"] = {"overlap_fraction": float("nan")}
    append_row(path, row)
    assert read_rows(path)[0]["extra"]["overlap_fraction"] is None


def _append_many(path: str, start: int) -> None:
    for i in range(start, start + 40):
        append_row(path, _row(i))


def test_concurrent_appends_from_processes_never_interleave(tmp_path):
    path = str(tmp_path / "rows.jsonl")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, 1000 * k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    rows = read_rows(path)
    lines = Path(path).read_text().splitlines()
    assert len(rows) == len(lines) == 160
    assert sorted(r["params"]["m"] for r in rows) == sorted(1000 * k + i for k in range(4) for i in range(40))


def test_summarize_known_values_and_empty():
    assert summarize([3.0, 1.0, 2.0, 4.0]) == (2.5, 1.75, 3.25)
    assert summarize([5.0]) == (5.0, 5.0, 5.0)
    assert summarize([]) == (None, None, None)


@given(st.lists(st.floats(min_value=0, max_value=1e3), min_size=1, max_size=50))
def test_summarize_quartiles_are_ordered(times):
    median, p25, p75 = summarize(times)
    assert min(times) <= p25 <= median <= p75 <= max(times)


def test_step_key_survives_json_and_ignores_results():
    step = Step("prune_latency", "cpu", "fp32", {"method": "l2_structured", "sparsity": 0.5, "hook": True}, 1)
    row = json.loads(json.dumps(make_row(step, run_id="x", times_s=[1.0])))
    assert step_key(row) == step.key()
    assert finished_keys([row]) == {step.key()}
    assert finished_keys([{**row, "status": "failed"}]) == set()


def test_package_import_does_not_import_torch():
    code = "import sys, calibration, calibration.rows, calibration.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_capture_env_keys():
    from calibration.env import capture_env

    env = capture_env()
    for key in ("cpu_model", "cpu_flags", "physical_cores", "logical_cpus", "available_cpus", "l3_cache_bytes",
                "gpu_count", "gpu_names", "torch_version", "torchao_version", "backend", "omp_num_threads",
                "python_version", "platform", "date_utc", "hostname_sha256_8"):
        assert key in env, key
    assert env["backend"] in ("gloo", "nccl")
    assert env["physical_cores"] >= 1 and isinstance(env["cpu_flags"], list)
    json.dumps(env)


def _run(step: Step) -> dict:
    from calibration.bench.registry import execute
    from calibration.timing import TINY

    return execute(step, TINY, "test")


def test_tiny_gemm_row_is_sane():
    row = _run(Step("gemm", "cpu", "fp32", {"m": 64, "n": 32, "k": 16}))
    assert row["status"] == "ok", row["error"]
    assert row["flops"] == 2 * 64 * 32 * 16
    assert row["repeats"] >= 3 and len(row["times_s"]) == row["repeats"]
    assert 0 < row["p25_s"] <= row["median_s"] <= row["p75_s"] < 1.0
    assert row["world_size"] == 1 and row["oversubscribed"] is False


def test_injected_failure_becomes_failed_row(monkeypatch):
    monkeypatch.setenv("MODELFOLIO_CALIB_FAIL", "gemm")
    row = _run(Step("gemm", "cpu", "fp32", {"m": 8, "n": 8, "k": 8}))
    assert row["status"] == "failed" and "injected" in row["error"] and row["median_s"] is None


def test_cuda_step_without_cuda_is_skipped_with_reason():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    row = _run(Step("gemm", "cuda", "bf16", {"m": 8, "n": 8, "k": 8}))
    assert row["status"] == "skipped" and "CUDA" in row["error"]


def test_int8_linear_runs_without_leaking_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = _run(Step("infer_linear", "cpu", "int8", {"batch": 2, "hidden": 64, "layers": 2, "path": "ao_dynamic_int8"}))
    assert row["status"] == "ok", row["error"]
    assert row["extra"]["path_ran"] == "ao_dynamic_int8" and row["extra"]["rel_error_vs_fp32"] < 0.1


@pytest.mark.parametrize(("bench", "params"), [
    ("block_fwd_bwd", {"hidden": 64, "seq": 16, "batch": 2}),
    ("prefill", {"layers": 1, "hidden": 64, "heads": 2, "vocab": 50, "batch": 1, "prompt": 8}),
    ("decode", {"layers": 1, "hidden": 64, "heads": 2, "vocab": 50, "batch": 2, "context": 16}),
    ("prune_latency", {"method": "l1_unstructured", "sparsity": 0.8, "hidden": 64, "batch": 2, "hook": True}),
    ("prune_latency", {"method": "l2_structured", "sparsity": 0.5, "hidden": 64, "batch": 2, "hook": False}),
])
def test_small_benches_measure(bench, params):
    row = _run(Step(bench, "cpu", "fp32", params))
    assert row["status"] == "ok", row["error"]
    assert row["median_s"] > 0 and row["flops"] > 0


def test_structured_shrunk_layer_loses_rows():
    row = _run(Step("prune_latency", "cpu", "fp32",
                    {"method": "l2_structured_shrunk", "sparsity": 0.75, "hidden": 64, "batch": 2, "hook": False}))
    assert row["status"] == "ok" and row["extra"]["out_features"] == 16
    dense = _run(Step("prune_latency", "cpu", "fp32",
                      {"method": "l2_structured", "sparsity": 0.75, "hidden": 64, "batch": 2, "hook": False}))
    assert dense["extra"]["out_features"] == 64 and dense["extra"]["nonzero_fraction"] == pytest.approx(0.25)


def test_quick_grid_covers_what_the_fits_need():
    from calibration.bench.grids import plan

    steps = plan("quick", ["cpu"], {"cpu": [1, 2]}, l3_bytes=32 << 20)
    keys = [s.key() for s in steps]
    assert len(keys) == len(set(keys))
    for dtype in ("fp32", "bf16"):
        gemms = [s.params for s in steps if s.bench == "gemm" and s.dtype == dtype]
        assert len(gemms) >= 8
        assert any(p["m"] * p["n"] * p["k"] >= 2048**3 for p in gemms)
        assert any(p["k"] * p["n"] * 4 > 32 << 20 for p in gemms)  # weights beyond the L3
    for bench in ("all_reduce", "all_gather", "reduce_scatter", "broadcast"):
        for ws in (1, 2):
            sizes = {s.params["bytes"] for s in steps if s.bench == bench and s.world_size == ws}
            assert len(sizes) >= 8 and min(sizes) == 1024 and max(sizes) >= 16 << 20
    a2a = {s.params["bytes"] for s in steps if s.bench == "all_to_all" and s.world_size == 2}
    assert len(a2a) >= 8 and max(a2a) >= 16 << 20
    assert not [s for s in steps if s.bench == "all_to_all" and s.world_size == 1]  # nothing crosses a link
    for dtype in ("fp32", "bf16"):  # enough to hold the largest quarter out and fit one multiplier on the rest
        assert len([s for s in steps if s.bench == "moe_layer" and s.dtype == dtype]) >= 6
    assert {s.world_size for s in steps if s.bench == "ddp_step"} == {1, 2}
    assert {s.params["servers"] for s in steps if s.bench == "ps_push_pull"} == {1}
    assert {s.dtype for s in steps if s.bench == "infer_linear"} == {"fp32", "bf16", "int8"}
    methods = {(s.params["method"], s.params["sparsity"]) for s in steps if s.bench == "prune_latency"}
    assert len(methods) == 18 and {0.0, 0.5, 0.8, 0.9} <= {sp for _, sp in methods}


def test_oversubscription_is_judged_against_available_cpus():
    from calibration.timing import available_cpus, is_oversubscribed

    assert not is_oversubscribed(1)
    assert not is_oversubscribed(available_cpus())
    assert is_oversubscribed(available_cpus() + 1)


def test_world_sizes_per_mode_and_nodes():
    from calibration.run_plan import world_sizes

    assert world_sizes("quick", "cpu", 6, 1) == [1, 2, 4, 6]
    assert world_sizes("full", "cpu", 3, 1) == [1, 2, 3]
    assert world_sizes("quick", "cpu", 2, 2) == [2, 4]


def test_median_rel_ci_order_statistics():
    from calibration.timing import median_rel_ci

    assert median_rel_ci([1.0, 2.0, 3.0]) == pytest.approx((3.0 - 1.0) / 2 / 2.0)  # few samples: [min, max]
    xs = [1.0] * 10 + [1.01] * 10 + [5.0]  # one outlier cannot widen the CI of the median
    assert median_rel_ci(xs) < 0.01
    assert median_rel_ci([]) == float("inf")


def test_time_fn_loops_short_calls_and_stops_when_the_median_is_pinned():
    from calibration.timing import TimingConfig, time_fn

    calls = []
    cfg = TimingConfig(repeats=50, warmup=1, max_s=5.0, min_repeats=6, min_sample_s=0.002, target_rel_ci=2.0)
    times = time_fn(lambda: calls.append(1), "cpu", cfg)
    assert times.info["inner"] > 10  # a ~microsecond call is looped to fill 2 ms samples
    assert 6 <= len(times) < 50  # a loose CI target is met right after min_repeats
    assert len(calls) == times.info["warmup_calls"] + times.info["inner"] * len(times)


def test_time_interleaved_spreads_samples_and_isolates_failures():
    from calibration.timing import TimingConfig, time_interleaved

    order: list[str] = []
    cfg = TimingConfig(repeats=6, warmup=1, max_s=10.0, min_repeats=6)

    def boom() -> None:
        if len(order) > 3:
            raise RuntimeError("boom")

    items = [(lambda: order.append("a"), "cpu", contextlib.nullcontext),
             (lambda: order.append("b"), "cpu", contextlib.nullcontext),
             (boom, "cpu", contextlib.nullcontext)]
    done: dict[int, object] = {}
    time_interleaved(items, cfg, lambda i, r: done.__setitem__(i, r))
    assert isinstance(done[2], RuntimeError)
    assert len(done[0]) == len(done[1]) == 6 and done[0].info["interleaved_with"] == 2
    # interleaved: b's first sample comes before a's last one, and samples alternate
    timed_a = [i for i, x in enumerate(order) if x == "a"][1:]
    timed_b = [i for i, x in enumerate(order) if x == "b"][1:]
    assert timed_b[0] < timed_a[-1] and timed_a[0] < timed_b[-1]


def test_ctrl_c_mid_group_keeps_the_points_that_have_enough_samples():
    from calibration.timing import TimingConfig, time_interleaved

    calls = {"a": 0, "b": 0}
    cfg = TimingConfig(repeats=20, warmup=1, max_s=100.0, min_repeats=4)

    def a() -> None:
        calls["a"] += 1

    def b() -> None:  # samples alternate a, b: Ctrl-C in b's 4th sample, after a's 4th
        calls["b"] += 1
        if calls["a"] >= 5:  # a's warm-up call and 4 samples
            raise KeyboardInterrupt

    cfg_b = [(a, "cpu", contextlib.nullcontext), (b, "cpu", contextlib.nullcontext)]
    done: dict[int, object] = {}
    with pytest.raises(KeyboardInterrupt):
        time_interleaved(cfg_b, cfg, lambda i, r: done.__setitem__(i, r))
    assert list(done) == [0]  # a had >= 4 samples: kept and marked; b had fewer: left for --resume
    assert done[0].info["interrupted"] is True and len(done[0]) == 4 and done[0].info["planned"] == 20


def test_execute_interleaved_rows_say_how_they_were_timed():
    from calibration.bench.registry import execute_interleaved
    from calibration.timing import TINY

    rows: list[dict] = []
    steps = [Step("gemm", "cpu", "fp32", {"m": s, "n": s, "k": s}) for s in (16, 32)]
    steps.append(Step("prefill", "cpu", "fp32", {"layers": 1, "hidden": 64, "heads": 2, "vocab": 50,
                                                 "batch": 1, "prompt": 8}))
    execute_interleaved(steps, TINY, "test", rows.append)
    assert sorted(step_key(r) for r in rows) == sorted(s.key() for s in steps)
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["extra"]["interleaved_with"] == 2 and r["extra"]["threads"] >= 1 and r["extra"]["inner"] >= 1


def test_consecutive_collectives_of_one_world_are_batched_within_the_byte_cap():
    from calibration.dist_worker import INTERLEAVE_MAX_BYTES, _interleavable

    big = INTERLEAVE_MAX_BYTES // 2
    steps = [Step("all_reduce", "cpu", "fp32", {"bytes": 1024}, 2), Step("broadcast", "cpu", "fp32", {"bytes": big}, 2),
             Step("all_gather", "cpu", "fp32", {"bytes": big}, 2), Step("ddp_step", "cpu", "fp32", {"layers": 1}, 2),
             Step("all_reduce", "cpu", "fp32", {"bytes": 1024}, 1)]
    assert _interleavable(steps, 0, 2) == steps[:2]  # the third would pass the cap
    assert _interleavable(steps, 2, 2) == steps[2:3]  # DDP steps are timed alone
    assert _interleavable(steps, 3, 2) == []
    assert _interleavable(steps, 4, 2) == []  # another world size
