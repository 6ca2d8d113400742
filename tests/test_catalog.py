import json
import subprocess
import sys
from pathlib import Path

import pytest

import simulator.catalog as catalog
from simulator.catalog import (
    ASSUMED_SPREADS,
    DEFAULT_CATALOG_PATH,
    PROVENANCES,
    SOURCE_GROUPS,
    CatalogError,
    HardwareSpec,
    UnknownAccelerator,
    device_spreads,
    find_accelerator,
    get_accelerator,
    load_catalog,
)

IDS = ["A100-40GB", "A100-80GB-SXM", "H100-SXM", "H100-PCIe", "H200", "H800", "B200", "L4", "L40S", "MI300X"]
NUMBER_FIELDS = ["hbm_GB", "hbm_GBps", "intra_node_GBps", "intra_node_latency_s", "inter_node_GBps",
                 "inter_node_latency_s", "gpus_per_node", "tdp_W", "gpu_hour_usd"]


def test_all_ids_present():
    assert set(load_catalog()) == set(IDS)


@pytest.mark.parametrize("acc_id", IDS)
def test_spec_positive_and_sourced(acc_id):
    spec = load_catalog()[acc_id]
    assert isinstance(spec, HardwareSpec) and spec.id == acc_id
    for field in NUMBER_FIELDS:
        assert getattr(spec, field) > 0, field
    assert spec.peak_tflops and all(v > 0 for v in spec.peak_tflops.values())
    assert isinstance(spec.gpus_per_node, int)
    for group in SOURCE_GROUPS:
        assert spec.sources[group].strip(), group
    assert 1e-7 < spec.intra_node_latency_s < 1e-3 and 1e-7 < spec.inter_node_latency_s < 1e-3
    assert spec.inter_node_GBps <= spec.intra_node_GBps
    assert spec.peak_for("bf16") >= spec.peak_for("fp32")


def test_reference_peaks():
    assert get_accelerator("H100-SXM").peak_for("bf16") == pytest.approx(989.4, abs=1)
    assert get_accelerator("A100-80GB-SXM").peak_for("bf16") == pytest.approx(312)
    assert get_accelerator("A100-40GB").peak_for("fp16") == pytest.approx(312)
    assert get_accelerator("H800").peak_for("fp8") == get_accelerator("H100-SXM").peak_for("fp8")
    assert get_accelerator("H800").intra_node_GBps == 200
    assert get_accelerator("H100-SXM").intra_node_latency_s == pytest.approx(8e-6)


def test_prices_from_reference_are_dated():
    assert get_accelerator("H100-SXM").gpu_hour_usd == 3.49
    assert get_accelerator("H200").gpu_hour_usd == 4.59
    for spec in load_catalog().values():
        assert spec.price_date[:2] == "20"
        if spec.id in ("A100-40GB", "H100-PCIe", "B200", "L4", "MI300X"):
            assert "ESTIMATE" in spec.sources["price"]


@pytest.mark.parametrize(("name", "acc_id"), [
    ("h100", "H100-SXM"), ("H100", "H100-SXM"), ("h100-sxm", "H100-SXM"), ("H100 SXM", "H100-SXM"),
    ("a100", "A100-80GB-SXM"), ("A100-80GB", "A100-80GB-SXM"), ("a100-40gb", "A100-40GB"),
    ("mi300x", "MI300X"), ("MI300X", "MI300X"), ("h100-pcie", "H100-PCIe"), ("l40s", "L40S"),
    ("NVIDIA H200 SXM 141GB", "H200"),
])
def test_aliases_and_case(name, acc_id):
    assert get_accelerator(name).id == acc_id


def test_unknown_lists_ids_and_suggests():
    with pytest.raises(UnknownAccelerator) as info:
        get_accelerator("H10")
    message = str(info.value)
    assert message.startswith('cluster.accelerator = "H10": unknown accelerator; known: ')
    assert all(acc_id in message for acc_id in IDS)
    assert message.endswith('did you mean "H100-SXM"?')
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(UnknownAccelerator, match=r'serve\.gpu = "zzzz"'):
        get_accelerator("zzzz", field="serve.gpu")


def test_peak_for_errors_and_fallbacks():
    a100 = get_accelerator("A100-80GB-SXM")
    with pytest.raises(ValueError, match=r"A100-80GB-SXM has no fp8 unit; it supports fp32, tf32, bf16, fp16, int8"):
        a100.peak_for("fp8")
    with pytest.raises(ValueError, match="fp4"):
        get_accelerator("B200").peak_for("fp4")
    assert a100.peak_for("BF16") == 312
    no_tf32 = HardwareSpec(**{**vars(a100), "peak_tflops": {"fp32": 19.5, "bf16": 312.0}})
    assert no_tf32.peak_for("tf32") == 19.5


def _write_catalog(tmp_path, edit):
    data = json.loads(DEFAULT_CATALOG_PATH.read_text())
    edit(data["accelerators"])
    path = tmp_path / "hardware.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda a: a["H100-SXM"].update(hbm_GBps=-1), r'accelerators\["H100-SXM"\]\.hbm_GBps = -1: a positive number'),
    (lambda a: a["L4"].pop("tdp_W"), r'accelerators\["L4"\]\.tdp_W = None'),
    (lambda a: a["B200"]["sources"].pop("price"), r'accelerators\["B200"\]\.sources\.price is missing'),
    (lambda a: a["H200"]["peak_tflops"].update(bf16=0), r'accelerators\["H200"\]\.peak_tflops\.bf16 = 0'),
    (lambda a: a["H200"]["peak_tflops"].update(fp64=67), r'accelerators\["H200"\]\.peak_tflops\.fp64: unknown'),
    (lambda a: a["MI300X"].update(gpus_per_node=8.5), r'accelerators\["MI300X"\]\.gpus_per_node = 8\.5'),
    (lambda a: a["H800"].update(price_date="Sep 2026"), r'accelerators\["H800"\]\.price_date'),
    (lambda a: a["L40S"].update(display_name=""), r'accelerators\["L40S"\]\.display_name'),
])
def test_malformed_catalog_rejected(tmp_path, edit, pattern):
    path = _write_catalog(tmp_path, edit)
    with pytest.raises(CatalogError, match=pattern):
        load_catalog(path)


def test_custom_catalog_loads(tmp_path):
    path = _write_catalog(tmp_path, lambda a: a["H100-SXM"].update(gpu_hour_usd=2.0))
    assert load_catalog(path)["H100-SXM"].gpu_hour_usd == 2.0
    assert load_catalog()["H100-SXM"].gpu_hour_usd == 3.49


def test_bad_schema_version(tmp_path):
    path = tmp_path / "hardware.json"
    path.write_text(json.dumps({"schema_version": 2, "accelerators": {}}))
    with pytest.raises(CatalogError, match="schema_version"):
        load_catalog(path)


def test_datasheet_specs_state_provenance_per_group_and_assumed_spreads():
    for spec in load_catalog().values():
        assert dict(spec.provenance_of) == dict.fromkeys(SOURCE_GROUPS, "datasheet")
        assert set(spec.provenance_of.values()) <= set(PROVENANCES)
        spreads = device_spreads(spec)
        assert spreads == ASSUMED_SPREADS and all(0 < v < 1 for v in spreads.values())
    assert set(ASSUMED_SPREADS) >= {"gemm_eff_max", "hbm_eff", "intra_GBps", "inter_GBps"}
    bare = HardwareSpec(**{**vars(get_accelerator("H100-SXM")), "spreads": {"gemm_eff_max": 0.2}})
    assert device_spreads(bare) == {**ASSUMED_SPREADS, "gemm_eff_max": 0.2}  # missing columns: assumed


def test_no_process_wide_registry_and_no_import_of_the_devices_module():
    for name in ("register_device", "registry_version", "all_devices", "_REGISTERED", "_STATE"):
        assert not hasattr(catalog, name), name
    code = "import sys, simulator.catalog as c; c.get_accelerator('h100'); print('simulator.devices' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"


def test_find_accelerator_searches_the_mapping_it_is_given():
    h100 = get_accelerator("H100-SXM")
    mine = HardwareSpec(**{**vars(h100), "id": "profile:my-rig", "display_name": "My rig, calibrated"})
    devices = {**load_catalog(), mine.id: mine}
    assert find_accelerator("profile:my-rig", devices) is mine
    assert find_accelerator("My rig, calibrated", devices) is mine
    assert find_accelerator("h100", devices) is h100
    with pytest.raises(UnknownAccelerator, match="profile:my-rig"):
        get_accelerator("profile:my-rig")  # the catalog alone knows datasheet accelerators only
