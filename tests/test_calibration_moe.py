"""The all-to-all and MoE-layer calibration: the bench's counts by hand, the all_to_all bench under torchrun and its
fit, the moe_gemm_eff fit on synthetic rows (recovered, and wrong data said to be wrong), validate on the new fits,
a profile's new fits as device columns (and none: 1.0, assumed), and hostile values refused by the loader."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from calibration import validate_points, validate_summary
from calibration.fit.collectives import fit_collectives
from calibration.fit.moe import fit_moe_layer
from calibration.profile_writer import build_profile
from calibration.rows import Step, read_rows, step_key
from simulator.device_profile import device_from_profile
from simulator.devices import shipped_profiles
from simulator.hardware_table import HardwareTable
from simulator.profile import ProfileError, bus_factor, load_profile, predict_s
from simulator.profile_models import moe_dense_s

RNG = np.random.default_rng(11)
GEMM_FIT = {"model": "hill_roofline_sum", "params": {"overhead_s": 5e-6, "achieved_tflops": 0.25, "x_half_flops": 3e6,
                                                      "hill_exponent": 1.4, "mem_GBps": 15.0}}
ELEM_GBPS = 6.0
COMPUTE = {"gemm": {"cpu/fp32": {**GEMM_FIT, "status": "ok"}},
           "block_fwd_bwd": {"cpu/fp32": {"status": "ok", "model": "block_inventory", "params": {"elem_GBps": ELEM_GBPS}}}}
SHAPES = [(256, 8, 2, 256, 512), (512, 8, 2, 256, 512), (512, 16, 4, 256, 256), (1024, 32, 4, 256, 256),
          (1024, 8, 2, 512, 512), (2048, 8, 2, 512, 1024), (2048, 16, 2, 1024, 512), (4096, 16, 2, 1024, 512)]
KEYS = ("tokens", "experts", "top_k", "hidden", "expert_ffn")


def _row(bench: str, t_s: float, *, world_size: int = 1, flops: float | None = None, nbytes: float | None = None,
         noise: float = 0.02, **params) -> dict:
    t = float(t_s * math.exp(RNG.normal(0, noise)))
    return {"bench": bench, "device": "cpu", "dtype": "fp32", "params": params, "world_size": world_size,
            "oversubscribed": False, "repeats": 5, "median_s": t, "p25_s": t * 0.98, "p75_s": t * 1.02,
            "times_s": [t] * 5, "flops": flops, "bytes": nbytes, "status": "ok", "error": None,
            "extra": {"threads": 2}, "t_unix": 0.0, "run_id": "test"}


def moe_rows(eff: float, time_of=None) -> list[dict]:
    """moe_layer rows timed as the dense fits predict them over `eff` (or by `time_of(shape)`)."""
    out = []
    for shape in SHAPES:
        s = dict(zip(KEYS, shape, strict=True))
        t = time_of(s) if time_of else float(moe_dense_s(GEMM_FIT, ELEM_GBPS, 4.0, **s)) / eff
        out.append(_row("moe_layer", t, flops=6.0 * s["tokens"] * s["top_k"] * s["hidden"] * s["expert_ffn"], **s))
    return out


# ---------------------------------------------------------------- the bench


def test_moe_counts_against_hand_computed_numbers():
    from calibration.bench.moe import moe_counts

    # 64 tokens, 4 experts, top-2, hidden 32, ffn 64, fp32 (4 bytes): C = 128 token copies, 32 rows per expert
    flops, moved = moe_counts(64, 4, 2, 32, 64, "fp32")
    assert flops == 6 * 64 * 2 * 32 * 64 == 1_572_864  # gate, up, down: 3 GEMMs of 2·C·h·f
    assert moved["router_bytes"] == 64 * 4 * 4 + 2 * 64 * 4 * 4 + 128 * (4 + 8) == 4_608
    assert moved["permute_bytes"] == 2 * 128 * 32 * 4 + 4 * 128 * 8 == 36_864
    assert moved["activation_bytes"] == 3 * 128 * 64 * 4 == 98_304
    assert moved["combine_bytes"] == 3 * 128 * 32 * 4 + 2 * 64 * 32 * 4 + 128 * 12 == 67_072
    _, half = moe_counts(64, 4, 2, 32, 64, "bf16")  # 2-byte elements: the element terms halve, indices do not
    assert half["activation_bytes"] == 98_304 / 2 and half["permute_bytes"] == 2 * 128 * 32 * 2 + 4 * 128 * 8


def test_moe_bench_runs_and_records_its_counts():
    from calibration.bench.moe import prepare_moe_layer
    from calibration.bench.registry import execute
    from calibration.timing import timing_for

    step = Step("moe_layer", "cpu", "fp32", {"tokens": 64, "experts": 4, "top_k": 2, "hidden": 32, "expert_ffn": 64})
    row = execute(step, timing_for("tiny", "cpu"), "t")
    assert row["status"] == "ok", row["error"]
    assert row["median_s"] > 0 and row["flops"] == 1_572_864 and row["bytes"] == 4_608 + 36_864 + 98_304 + 67_072
    assert row["extra"]["expert_gemms"] in ("grouped_mm", "loop") and row["extra"]["pass"] == "forward"
    assert 1.0 <= row["extra"]["max_load_ratio"] <= 4.0
    # the layer computes what a plain per-token MoE computes
    import torch

    prepared = prepare_moe_layer(step)
    with torch.inference_mode():
        out = prepared.fn().clone()
    assert torch.isfinite(out).all() and out.shape == (64, 32) and out.abs().sum() > 0
    bad = execute(Step("moe_layer", "cpu", "fp32", {**step.params, "top_k": 5}), timing_for("tiny", "cpu"), "t")
    assert bad["status"] == "skipped" and "top_k=5" in bad["error"]


def test_all_to_all_skips_a_backend_without_it(monkeypatch):
    import torch.distributed as dist

    from calibration.bench.base import SkipBench
    from calibration.bench.collectives import setup_all_to_all

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        ok = setup_all_to_all(Step("all_to_all", "cpu", "fp32", {"bytes": 4096}, 1))
        ok.fn()
        assert ok.nbytes == 4096 and ok.extra["api"] == "all_to_all_single"

        def missing(*args, **kwargs):
            raise RuntimeError("ProcessGroupX does not support alltoall_base")

        monkeypatch.setattr(dist, "all_to_all_single", missing)
        with pytest.raises(SkipBench, match="no all_to_all_single on cpu tensors: ProcessGroupX"):
            setup_all_to_all(Step("all_to_all", "cpu", "fp32", {"bytes": 4096}, 1))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_all_to_all_under_torchrun_two_ranks_and_its_rows_fit(tmp_path):
    from calibration.bench.launch import launch

    sizes = [1024, 4096, 16384, 65536, 131072, 262144, 524288, 1048576]
    steps = [Step("all_to_all", "cpu", "fp32", {"bytes": n}, 2) for n in sizes]
    result = launch(steps, device="cpu", world_size=2, rows_path=tmp_path / "rows.jsonl", run_id="t", mode="tiny",
                    work_dir=tmp_path)
    rows = read_rows(tmp_path / "rows.jsonl")
    assert result.rc == 0 and result.missing == 0, result.log_path.read_text()[-2000:]
    assert [step_key(r) for r in rows] == [s.key() for s in steps]
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["median_s"] > 0 and r["bytes"] == r["params"]["bytes"] and r["extra"]["api"] == "all_to_all_single"
        assert r["extra"]["best_of"] == 3 and r["extra"]["per_rank_chunk_bytes"] == r["params"]["bytes"] // 2
    fit = fit_collectives(rows)["all_to_all"]["by_world"]["2"]
    assert fit["status"] == "ok" and fit["params"]["busbw_GBps"] > 0 and fit["n_heldout"] == 2
    assert fit["mape_heldout_pct"] is not None


# ---------------------------------------------------------------- the fits


def test_all_to_all_fits_with_its_bus_factor():
    assert float(bus_factor("all_to_all", 4)) == pytest.approx(0.75)  # nccl-tests alltoall: (n-1)/n
    rows = []
    for b in [2**p for p in range(10, 25)]:
        rows.append(_row("all_to_all", 60e-6 + b * 0.5 / 1.2e9, world_size=2, nbytes=float(b), bytes=b))
    fit = fit_collectives(rows)["all_to_all"]
    assert fit["bus_factor"] == "(n-1)/n"
    assert fit["by_world"]["2"]["params"]["busbw_GBps"] == pytest.approx(1.2, rel=0.08)
    assert fit["by_world"]["2"]["mape_heldout_pct"] < 5


@pytest.mark.parametrize("eff", [0.6, 1.4])
def test_moe_fit_recovers_a_known_multiplier(eff):
    rec = fit_moe_layer(moe_rows(eff), COMPUTE)["cpu/fp32"]
    assert rec["status"] == "ok" and rec["model"] == "moe_inventory"
    assert rec["params"]["moe_gemm_eff"] == pytest.approx(eff, rel=0.03)
    assert 0 < rec["stderr"]["moe_gemm_eff"] < 0.05 * eff
    assert rec["params"]["mem_GBps"] == ELEM_GBPS and rec["mem_GBps_source"].startswith("fits.compute.block_fwd_bwd")
    assert rec["n_heldout"] == 2 and rec["mape_heldout_pct"] < 5
    pt = rec["points"]["heldout"][-1]
    assert pt["x"] == max(6.0 * t * k * h * f for t, _, k, h, f in SHAPES)  # the largest expert FLOPs held out
    assert predict_s(rec, **{k: pt[k] for k in KEYS}) == pytest.approx(pt["predicted"])


def test_moe_fit_rejects_a_wrong_multiplier_and_data_of_another_law():
    rec = fit_moe_layer(moe_rows(0.6), COMPUTE)["cpu/fp32"]
    wrong = {**rec, "params": {**rec["params"], "moe_gemm_eff": 1.0}}  # the assumed 1.0 on data measured at 0.6
    errors = [abs(predict_s(wrong, **{k: p[k] for k in KEYS}) / p["measured"] - 1) for p in rec["points"]["heldout"]]
    assert min(errors) > 0.3
    # a layer whose time follows tokens alone (not its GEMMs' shapes) is no multiple of the dense fits: the fit says so
    other = fit_moe_layer(moe_rows(1.0, time_of=lambda s: 2e-6 * s["tokens"]), COMPUTE)["cpu/fp32"]
    assert other["status"] == "ok" and other["mape_heldout_pct"] > 20


def test_moe_fit_needs_a_gemm_fit_and_a_memory_rate():
    assert fit_moe_layer(moe_rows(0.8), {"gemm": {}})["cpu/fp32"]["status"] == "insufficient_data"
    no_rate = {"gemm": {"cpu/fp32": {"status": "ok", "model": "linear_compute",
                                     "params": {"overhead_s": 1e-5, "achieved_tflops": 0.2}}}}
    rec = fit_moe_layer(moe_rows(0.8), no_rate)["cpu/fp32"]
    assert rec["status"] == "insufficient_data" and "memory rate" in rec["reason"]
    gemm_rate = fit_moe_layer(moe_rows(0.8), {"gemm": COMPUTE["gemm"]})["cpu/fp32"]  # no block fit: the GEMM's
    assert gemm_rate["params"]["mem_GBps"] == 15.0 and gemm_rate["mem_GBps_source"].endswith("gemm.cpu/fp32.params.mem_GBps")


# ---------------------------------------------------------------- profile, device, validate


def _gemm_rows() -> list[dict]:
    rows = []
    for m, n, k in [(s, s, s) for s in (32, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 3072)] + \
            [(16, n, n) for n in (2048, 4096, 8192)]:
        flops, ws = 2.0 * m * n * k, 4.0 * (m * k + k * n + m * n)
        rows.append(_row("gemm", predict_s(GEMM_FIT, flops=flops, ws_bytes=ws), flops=flops, nbytes=ws, noise=0.0,
                         m=m, n=n, k=k))
    return rows


def _collective_rows(op: str, busbw_GBps: float) -> list[dict]:
    return [_row(op, 50e-6 + b * float(bus_factor(op, 2)) / (busbw_GBps * 1e9), world_size=2, nbytes=float(b),
                 bytes=b) for b in [2**p for p in range(10, 25)]]


def new_profile() -> dict:
    rows = _gemm_rows() + moe_rows(0.7) + _collective_rows("all_reduce", 2.0) + _collective_rows("all_to_all", 1.5)
    return load_profile(json.dumps(build_profile(rows, {"cpu_model": "Test CPU"})).encode())


def test_a_profile_with_the_new_fits_sets_a2a_eff_and_moe_gemm_eff():
    prof = new_profile()
    moe = prof["fits"]["compute"]["moe_layer"]["cpu/fp32"]
    a2a = prof["fits"]["collectives"]["all_to_all"]["by_world"]["2"]
    ar = prof["fits"]["collectives"]["all_reduce"]["by_world"]["2"]
    spec = device_from_profile(prof)
    # (not 0.7: without a block fit the layer's bytes run at the GEMM fit's memory rate, not the 6 GB/s timed here)
    assert spec.moe_gemm_eff == moe["params"]["moe_gemm_eff"] and 0.3 < spec.moe_gemm_eff < 1.0
    assert spec.a2a_eff == a2a["params"]["busbw_GBps"] / ar["params"]["busbw_GBps"] == pytest.approx(0.75, rel=0.1)
    assert spec.provenance_of["all_to_all"] == spec.provenance_of["moe_gemm"] == "fitted"
    assert spec.sources["all_to_all"].startswith("fitted: all-to-all busbw") and "world size 2" in spec.sources["all_to_all"]
    assert spec.sources["moe_gemm"].startswith("fitted: moe_gemm_eff")
    assert spec.spreads["moe_gemm_eff"] == pytest.approx(max(moe["stderr"]["moe_gemm_eff"] / moe["params"]["moe_gemm_eff"],
                                                             moe["mape_heldout_pct"] / 100))
    assert 0 < spec.spreads["a2a_eff"] <= 0.75
    table = HardwareTable({spec.id: spec}).table
    assert table["a2a_eff"][0] == spec.a2a_eff and table["moe_gemm_eff"][0] == spec.moe_gemm_eff


def test_a_profile_without_them_keeps_one_and_says_assumed():
    cpu = shipped_profiles()["cpu-reference"]
    assert "all_to_all" not in cpu["fits"]["collectives"] and "moe_layer" not in cpu["fits"]["compute"]
    spec = device_from_profile(cpu)
    assert spec.a2a_eff is None and spec.moe_gemm_eff is None
    assert spec.provenance_of["all_to_all"] == spec.provenance_of["moe_gemm"] == "assumed"
    assert spec.sources["all_to_all"].startswith("assumed") and spec.sources["moe_gemm"].startswith("assumed")
    assert "a2a_eff" not in spec.spreads and "moe_gemm_eff" not in spec.spreads
    table = HardwareTable({spec.id: spec}).table
    assert table["a2a_eff"][0] == 1.0 and table["moe_gemm_eff"][0] == 1.0


def test_validate_remeasures_and_scores_the_new_fits():
    prof = new_profile()
    targets = validate_points.heldout_targets(prof)
    paths = {t["fit"] for t in targets}
    assert {"fits.compute.moe_layer.cpu/fp32", "fits.collectives.all_to_all.by_world.2"} <= paths

    def fake_remeasure(rows_in, nproc=None):
        return [{**r, "median_s": r["median_s"] * 1.05} for r in rows_in]

    results = validate_points.compare(prof, fake_remeasure)
    mine = [r for r in results if r["fit"] in ("fits.compute.moe_layer.cpu/fp32", "fits.collectives.all_to_all.by_world.2")]
    n_a2a = prof["fits"]["collectives"]["all_to_all"]["by_world"]["2"]["n_heldout"]
    assert len(mine) == 2 + n_a2a and all(r["counted"] and r["predicted"] is not None for r in mine)
    for t, r in zip(targets, results, strict=True):
        if r in mine:
            assert r["predicted"] == pytest.approx(t["point"]["predicted"], rel=1e-9)
            assert abs(r["error_pct"]) < 10
    per_fit = validate_summary.summarize(results)
    assert per_fit["n_points"] == len(results)
    assert any("experts=16, top_k=2, expert_ffn=512" in r["point"] for r in mine)


# ---------------------------------------------------------------- hostile values


@pytest.mark.parametrize("value", [-1.0, 0.0, 1e300, "NaN", None, 101.0])
def test_a_hostile_moe_gemm_eff_is_refused_by_the_loader(value):
    prof = copy.deepcopy(new_profile())
    prof["fits"]["compute"]["moe_layer"]["cpu/fp32"]["params"]["moe_gemm_eff"] = value
    with pytest.raises(ProfileError, match=r"fits\.compute\.moe_layer\.cpu/fp32\.params\.moe_gemm_eff"):
        load_profile(json.dumps(prof).encode())


@pytest.mark.parametrize("busbw", [-1.0, 0.0, 1e300, 5e3, 1e-5])
def test_a_hostile_all_to_all_bandwidth_is_refused_by_the_loader(busbw):
    prof = copy.deepcopy(new_profile())
    prof["fits"]["collectives"]["all_to_all"]["by_world"]["2"]["params"]["busbw_GBps"] = busbw
    with pytest.raises(ProfileError, match=r"fits\.collectives\.all_to_all\.by_world\.2\.params\.busbw_GBps"):
        load_profile(json.dumps(prof).encode())


def test_an_unknown_model_under_moe_layer_is_refused():
    prof = copy.deepcopy(new_profile())
    prof["fits"]["compute"]["moe_layer"]["cpu/fp32"]["model"] = "block_inventory"
    with pytest.raises(ProfileError, match="is not a model fitted here; expected one of moe_inventory"):
        load_profile(json.dumps(prof).encode())


def test_every_consumer_of_a_profile_works_on_the_new_fits():
    # the Calibrate page's and the simulator's uses of a profile
    from test_profile_hostile import consumers_work

    prof = new_profile()
    consumers_work(prof, [("fits", "compute", "moe_layer", "cpu/fp32"),
                          ("fits", "collectives", "all_to_all", "by_world", "2")])
