import copy

import pytest

from simulator import Scenario, evaluate
from simulator.catalog import all_devices, get_accelerator, register_device
from simulator.devices import device_from_profile, device_id, shipped_profiles

H200 = shipped_profiles()["h200-quick"]


def test_gpu_profile_overlays_the_datasheet_with_fitted_efficiency():
    spec = device_from_profile(H200)
    sheet = get_accelerator("H200")
    assert spec.id == device_id(H200) and spec.id in all_devices()
    assert spec.peak_tflops == sheet.peak_tflops  # datasheet peak kept
    fitted = H200["fits"]["compute"]["gemm"]["cuda/bf16"]["params"]["achieved_tflops"]
    assert spec.gemm_eff_max == pytest.approx(min(1.0, max(fitted / sheet.peak_tflops["bf16"],
                                                         H200["fits"]["compute"]["gemm"]["cuda/fp16"]["params"]["achieved_tflops"] / sheet.peak_tflops["fp16"])))
    assert spec.provenance == "fitted" and "fitted" in spec.sources["peak_tflops"]
    assert spec.sources["hbm"] == sheet.sources["hbm"]  # not measured: datasheet, and says so


def test_plans_on_a_calibrated_device_say_fitted_and_use_its_efficiency():
    base = {"model": {"params": 7e9}, "cluster": {"gpus": 64}}
    on_sheet = evaluate(Scenario.from_dict({**base, "cluster": {"gpus": 64, "accelerator": "H200"}}))
    on_profile = evaluate(Scenario.from_dict({**base, "cluster": {"gpus": 64, "accelerator": device_id(H200)}}))
    assert on_profile.training["step_time_s"].provenance == "fitted"
    assert on_sheet.training["step_time_s"].provenance == "datasheet"
    assert on_profile.value("training.mfu") != pytest.approx(on_sheet.value("training.mfu"), rel=1e-3)


def test_cpu_profile_uses_its_fitted_throughput_as_peak():
    cpu = copy.deepcopy(H200)
    cpu["environment"]["gpu_names"] = []
    cpu["name"], cpu["created_utc"] = "Test CPU, calibrated 2026-11-28", "2026-11-28T12:00:00+00:00"
    cpu["fits"]["compute"]["gemm"] = {
        "cpu/fp32": {**H200["fits"]["compute"]["gemm"]["cuda/fp32"], "params": {"overhead_s": 1e-5, "achieved_tflops": 0.11}},
        "cpu/bf16": {**H200["fits"]["compute"]["gemm"]["cuda/bf16"], "params": {"overhead_s": 1e-5, "achieved_tflops": 0.5}},
    }
    spec = device_from_profile(cpu)
    assert spec.peak_tflops == {"fp32": 0.11, "tf32": 0.11, "bf16": 0.5}
    assert spec.gemm_eff_max == 1.0 and "assumed" in spec.sources["hbm"]
    register_device(spec)
    plan = evaluate(Scenario.from_dict({"model": {"params": 1.25e8}, "training": {"tokens": 1e9},
                                        "cluster": {"accelerator": spec.id, "gpus": 2}}))
    assert plan.hardware.id == spec.id and plan.value("training.wall_days") > 1


def test_profile_without_gemm_fits_cannot_become_a_device():
    bare = copy.deepcopy(H200)
    bare["environment"]["gpu_names"] = []
    bare["fits"]["compute"]["gemm"] = {}
    with pytest.raises(ValueError, match="no fitted GEMM throughput"):
        device_from_profile(bare)
