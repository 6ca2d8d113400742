import copy
import dataclasses
import json
import math

import numpy as np
import pytest

from simulator import Scenario, evaluate
from simulator.catalog import SOURCE_GROUPS, device_spreads, get_accelerator, load_catalog
from simulator.device_curve import fit_gemm_curve
from simulator.device_fits import MAX_SPREAD, fit_spread
from simulator.device_profile import device_from_profile, device_id
from simulator.devices import (
    DeviceClashError,
    all_devices,
    check_new_device,
    shipped_devices,
    shipped_profiles,
)
from simulator.devices import get_accelerator as find_device
from simulator.profile import TFLOPS_RANGE, ProfileError, load_profile
from simulator.training.constants import DEFAULT_CONSTANTS
from simulator.training.layer import layer_times

H200 = shipped_profiles()["h200-quick"]
CPU = shipped_profiles()["cpu-reference"]
SPREAD_COLUMNS = ("gemm_eff_max", "hbm_eff", "intra_GBps", "inter_GBps")
CURVE_TOLERANCE = 0.10  # simulator GEMM time vs the profile's GEMM fit, measured compute-bound shapes ≥ 1 GFLOP


def test_gpu_profile_overlays_only_what_it_measured():
    spec = device_from_profile(H200)
    sheet = get_accelerator("H200")
    assert spec.id == device_id(H200) and spec.id in all_devices()
    assert spec.peak_tflops == sheet.peak_tflops  # datasheet peak kept
    for field in ("hbm_GB", "hbm_GBps", "intra_node_GBps", "inter_node_GBps", "tdp_W", "gpu_hour_usd"):
        assert getattr(spec, field) == getattr(sheet, field), field  # not measured: the datasheet's
    fitted = H200["fits"]["compute"]["gemm"]["cuda/bf16"]["params"]["achieved_tflops"]
    # the bf16 fit is linear_compute (no size effect beyond its per-call overhead): its curve is flat
    assert spec.gemm_eff_max == pytest.approx(fitted / sheet.peak_tflops["bf16"], rel=1e-3)
    assert spec.gemm_dim_half is not None and spec.gemm_dim_half < 1.0
    assert spec.provenance == "fitted" and "fitted" in spec.sources["peak_tflops"]
    assert dict(spec.provenance_of) == {"peak_tflops": "fitted", "hbm": "datasheet", "intra_node": "datasheet",
                                        "inter_node": "datasheet", "tdp": "datasheet", "price": "datasheet",
                                        "all_to_all": "assumed", "moe_gemm": "assumed", "data_order": "assumed"}
    assert spec.sources["hbm"] == sheet.sources["hbm"]  # not measured: datasheet, and says so
    assert spec.sources["intra_node"] == sheet.sources["intra_node"]  # one GPU: no all-reduce across a link


def test_datasheet_devices_say_datasheet_for_every_group():
    for spec in load_catalog().values():
        assert set(spec.provenance_of) == set(SOURCE_GROUPS)
        assert set(spec.provenance_of.values()) == {"datasheet"} and spec.provenance == "datasheet"
        assert spec.gemm_eff_max is None and spec.gemm_dim_half is None


def test_plans_on_a_calibrated_device_say_fitted_and_use_its_efficiency():
    base = {"model": {"params": 7e9}, "cluster": {"gpus": 64}}
    on_sheet = evaluate(Scenario.from_dict({**base, "cluster": {"gpus": 64, "accelerator": "H200"}}))
    on_profile = evaluate(Scenario.from_dict({**base, "cluster": {"gpus": 64, "accelerator": device_id(H200)}}))
    # a computed figure names the provenance of the hardware groups it was computed from
    assert "peak_tflops fitted" in on_profile.training["step_time_s"].basis
    assert "hbm datasheet" in on_profile.training["step_time_s"].basis
    assert "peak_tflops datasheet" in on_sheet.training["step_time_s"].basis
    assert on_profile.value("training.mfu") != pytest.approx(on_sheet.value("training.mfu"), rel=1e-3)


def _cpu_variant():
    cpu = copy.deepcopy(H200)
    cpu["environment"]["gpu_names"] = []
    cpu["name"], cpu["created_utc"] = "Test CPU, calibrated 2026-11-28", "2026-11-28T12:00:00+00:00"
    cpu["fits"]["compute"]["gemm"] = {
        "cpu/fp32": {**H200["fits"]["compute"]["gemm"]["cuda/fp32"], "device": "cpu",
                     "params": {"overhead_s": 1e-5, "achieved_tflops": 0.11}},
        "cpu/bf16": {**H200["fits"]["compute"]["gemm"]["cuda/bf16"], "device": "cpu",
                     "params": {"overhead_s": 1e-5, "achieved_tflops": 0.5}},
    }
    return cpu


def test_cpu_profile_uses_its_fitted_throughput_as_peak_and_marks_the_rest_assumed():
    spec = device_from_profile(_cpu_variant())
    assert spec.peak_tflops == {"fp32": 0.11, "tf32": 0.11, "bf16": 0.5}
    assert spec.gemm_eff_max == pytest.approx(1.0, abs=1e-3) and "assumed" in spec.sources["hbm"]
    assert dict(spec.provenance_of) == {"peak_tflops": "fitted", "hbm": "assumed", "intra_node": "assumed",
                                        "inter_node": "assumed", "tdp": "assumed", "price": "assumed",
                                        "all_to_all": "assumed", "moe_gemm": "assumed", "data_order": "assumed"}
    plan = evaluate(Scenario.from_dict({"model": {"params": 1.25e8}, "training": {"tokens": 1e9},
                                        "cluster": {"accelerator": spec.id, "gpus": 2}}, {spec.id: spec}),
                    {spec.id: spec})
    assert plan.hardware.id == spec.id and plan.value("training.wall_days") > 1


def test_the_shipped_cpu_profile_claims_its_all_reduce_link():
    spec = device_from_profile(CPU)
    assert spec.provenance_of["intra_node"] == "fitted" and spec.provenance_of["hbm"] == "assumed"
    fit = CPU["fits"]["collectives"]["all_reduce"]["by_world"]["2"]
    se = fit["stderr"]["busbw_GBps"] / fit["params"]["busbw_GBps"]
    assert spec.spreads["intra_GBps"] == pytest.approx(max(se, fit["mape_heldout_pct"] / 100))


def test_profile_without_gemm_fits_cannot_become_a_device():
    bare = copy.deepcopy(H200)
    bare["environment"]["gpu_names"] = []
    bare["fits"]["compute"]["gemm"] = {}
    with pytest.raises(ValueError, match="no fitted GEMM throughput"):
        device_from_profile(bare)


# ---------------------------------------------------------------- the efficiency curve


@pytest.mark.parametrize("stem", sorted(shipped_profiles()))
def test_fitted_curve_reproduces_the_profile_gemm_fit_at_measured_sizes(stem):
    profile = shipped_profiles()[stem]
    spec = device_from_profile(profile)
    gpu = bool(profile["environment"].get("gpu_names"))
    key = "cuda/bf16" if gpu else "cpu/bf16"
    curve = fit_gemm_curve(profile, key, spec.peak_for("bf16"), spec.hbm_GBps)
    assert (spec.gemm_eff_max, spec.gemm_dim_half) == pytest.approx((curve.eff_max, curve.dim_half))
    assert len(curve.measured) >= 10 and any(m < 64 for m, _, _ in curve.measured)  # square and skinny
    assert curve.max_err(1e9) <= CURVE_TOLERANCE, list(zip(curve.measured, curve.rel_err, strict=True))
    if gpu:  # a flat fit is followed exactly wherever the model is compute-bound
        assert curve.max_err() <= 0.01


def test_curve_fit_recovers_a_curve_of_its_own_form():
    """A roofline_sum GEMM fit, t = F/A + bytes/M, is the simulator's curve with eff_max = A/peak and
    d½ = bytes per element · A / (2·M): the least squares must find both."""
    profile = copy.deepcopy(CPU)
    achieved, mem = 0.8, 4.0  # TFLOP/s, GB/s
    profile["fits"]["compute"]["gemm"]["cpu/bf16"] = {
        **profile["fits"]["compute"]["gemm"]["cpu/bf16"], "model": "roofline_sum",
        "params": {"overhead_s": 1e-4, "achieved_tflops": achieved, "mem_GBps": mem}}
    curve = fit_gemm_curve(profile, "cpu/bf16", peak_tflops=1.0, hbm_GBps=1e9)  # no memory roofline
    assert curve.eff_max == pytest.approx(achieved, rel=1e-4)
    assert curve.dim_half == pytest.approx(2.0 * achieved * 1e12 / (2.0 * mem * 1e9), rel=1e-4)
    assert curve.max_err() < 1e-6 and curve.grid_rms_err < 1e-6


def test_layer_times_take_a_per_row_dim_half():
    args = (2048.0, 1.0, 4096.0, 32.0, 32.0, 16384.0, 0.0, 50257.0, 1.0, 0.0, 2.0, 0.0, 989e12, 4.8e12, 0.8, 0.7)
    by_column = layer_times(*args, gemm_dim_half=np.array([0.0, 500.0]))
    for i, d_half in enumerate((0.0, 500.0)):
        by_constant = layer_times(*args, dataclasses.replace(DEFAULT_CONSTANTS, gemm_dim_half=d_half))
        assert by_column.fwd_s[i] == pytest.approx(by_constant.fwd_s)
    assert by_column.fwd_s[0] < by_column.fwd_s[1]
    assert layer_times(*args).fwd_s == pytest.approx(layer_times(*args, gemm_dim_half=None).fwd_s)


# ---------------------------------------------------------------- spreads


def test_spreads_exist_and_are_positive_for_every_device():
    for spec in all_devices().values():
        spreads = device_spreads(spec)
        for column in SPREAD_COLUMNS:
            assert math.isfinite(spreads[column]) and spreads[column] > 0, (spec.id, column)


def test_calibrated_spreads_come_from_the_fit_and_are_never_below_its_held_out_error():
    spec = device_from_profile(H200)
    fit = H200["fits"]["compute"]["gemm"]["cuda/bf16"]
    se = fit["stderr"]["achieved_tflops"] / fit["params"]["achieved_tflops"]
    assert spec.spreads["gemm_eff_max"] == pytest.approx(max(se, fit["mape_heldout_pct"] / 100))
    assert spec.spreads["hbm_eff"] == get_accelerator("H200").spreads["hbm_eff"]  # datasheet: assumed spread
    held_out_only = {"params": {"x": 2.0}, "stderr": {"x": None}, "mape_heldout_pct": 12.0}
    assert fit_spread(held_out_only, "x") == pytest.approx(0.12)
    assert fit_spread({"params": {"x": 2.0}, "stderr": {"x": 0.0}}, "x") is None  # an SE of 0 is no certainty


# ---------------------------------------------------------------- no registry


def test_all_devices_adds_a_callers_devices_without_keeping_them():
    spec = device_from_profile(_cpu_variant())
    assert spec.id not in all_devices()
    assert all_devices({spec.id: spec})[spec.id] == spec
    assert spec.id not in all_devices()  # nothing is remembered between calls
    assert find_device(spec.id, extra={spec.id: spec}) == spec
    assert set(shipped_devices()) <= set(all_devices())


def test_a_shipped_device_is_never_replaced():
    shipped = device_from_profile(H200)
    impostor = copy.deepcopy(H200)
    impostor["fits"]["compute"]["gemm"]["cuda/bf16"]["params"]["achieved_tflops"] /= 2
    fake = device_from_profile(impostor)
    assert fake.id == shipped.id and fake != shipped
    with pytest.raises(DeviceClashError, match=f'"{shipped.id}".*shipped reference profile'):
        all_devices({fake.id: fake})
    assert "shipped reference profile" in check_new_device(fake)
    assert check_new_device(shipped) is None  # the same device again is no clash
    assert all_devices({shipped.id: shipped})[shipped.id] == shipped


def test_the_shipped_profiles_cannot_be_changed_by_a_caller():
    """The profiles are read once and shared by every caller: the mapping is a read-only view."""
    profiles = shipped_profiles()
    with pytest.raises(TypeError):
        profiles["mine"] = copy.deepcopy(H200)  # type: ignore[index]
    with pytest.raises(TypeError):
        del profiles["h200-quick"]  # type: ignore[attr-defined]
    assert "mine" not in shipped_profiles() and "h200-quick" in shipped_profiles()
    assert shipped_profiles() is profiles  # one view, read once


# ---------------------------------------------------------------- accepted extremes plan finitely


@pytest.mark.parametrize("tflops", [TFLOPS_RANGE[0], 0.5, TFLOPS_RANGE[1] * 0.999])
def test_a_cpu_profile_at_the_throughput_floor_or_ceiling_plans_finite_days_and_energy(tflops):
    """Known failure: a fitted throughput near zero (1e-300 TFLOP/s) gave infinite energy and NaN days; the loader
    now refuses anything below its floor, and at the floor itself every figure stays finite."""
    cpu = _cpu_variant()
    for fit in cpu["fits"]["compute"]["gemm"].values():
        fit["model"], fit["params"]["achieved_tflops"] = "linear_compute", tflops  # the variant's own params
    spec = device_from_profile(load_profile(json.dumps(cpu).encode()))
    plan = evaluate(Scenario.from_dict({"model": {"params": 1.25e8}, "training": {"tokens": 1e9},
                                        "cluster": {"accelerator": spec.id, "gpus": 2}}, {spec.id: spec}),
                    {spec.id: spec})
    for key in ("training.wall_days", "training.energy_mwh", "training.cost_usd"):
        figure = plan.figures[key]
        assert all(v is None or (math.isfinite(v) and v > 0) for v in (figure.value, figure.low, figure.high)), figure
    near_zero = copy.deepcopy(cpu)
    near_zero["fits"]["compute"]["gemm"]["cpu/fp32"]["params"]["achieved_tflops"] = 1e-300
    with pytest.raises(ProfileError, match=r"fits\.compute\.gemm\.cpu/fp32\.params\.achieved_tflops: must be >= 1e-05"):
        load_profile(json.dumps(near_zero).encode())


def test_a_fitted_spread_never_reaches_a_zero_p10():
    """A held-out error of 100% (or a standard error larger than the value) would put the P10 rate at zero: the
    spread is capped at MAX_SPREAD, below 1 / 1.2816."""
    assert fit_spread({"params": {"x": 1.0}, "stderr": {"x": 50.0}, "mape_heldout_pct": 400.0}, "x") == MAX_SPREAD
    assert 1.0 - 1.2816 * MAX_SPREAD > 0
    wild = copy.deepcopy(CPU)
    wild["name"] = "Wild CPU, calibrated 2026-11-28"
    for fit in (*wild["fits"]["compute"]["gemm"].values(), wild["fits"]["collectives"]["all_reduce"]["by_world"]["2"]):
        fit["mape_heldout_pct"] = 900.0
    spec = device_from_profile(wild)
    assert spec.spreads["intra_GBps"] == spec.spreads["gemm_eff_max"] == MAX_SPREAD
    plan = evaluate(Scenario.from_dict({"model": {"params": 1e9}, "training": {"tokens": 2e10},
                                        "cluster": {"accelerator": spec.id, "gpus": 16, "gpus_per_node": 2}},
                                       {spec.id: spec}), {spec.id: spec})
    days = plan.figures["training.wall_days"]  # uncapped, the P10 rate is zero and the band is dropped
    assert days.low is not None and math.isfinite(days.high) and days.low <= days.value <= days.high


def test_gpu_names_of_no_letters_match_no_datasheet():
    odd = copy.deepcopy(H200)
    odd["environment"]["gpu_names"] = ["---"]  # its slug is "", which every name contains
    odd["name"] = "Odd GPU, calibrated 2026-11-28"
    spec = device_from_profile(load_profile(json.dumps(odd).encode()))
    assert spec.provenance_of["hbm"] == "assumed"  # planned as its own fitted throughput, not as some datasheet
