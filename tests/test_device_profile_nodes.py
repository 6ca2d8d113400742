"""A profile measured across nodes sets the inter-node link (issue 22): the run's node count travels from run.json
into the profile's `run`, and device_from_profile then reads the all-reduce fit as the network between nodes,
which a data-parallel plan with one GPU per node uses, instead of as the link inside a node."""

from __future__ import annotations

import copy
import json

import pytest

from calibration.profile_writer import write_profile
from simulator import Scenario, evaluate
from simulator.device_profile import device_from_profile, run_nodes
from simulator.devices import shipped_profiles
from simulator.profile import load_profile
from simulator.training.constants import DEFAULT_CONSTANTS

CPU = shipped_profiles()["cpu-reference"]
H200 = shipped_profiles()["h200-quick"]
FIT = CPU["fits"]["collectives"]["all_reduce"]["by_world"]["2"]


def _across(profile: dict, nodes: object) -> dict:
    out = copy.deepcopy(profile)
    out["run"] = {**out.get("run", {}), "nnodes": nodes}
    return out


def test_an_all_reduce_across_two_nodes_sets_the_network_not_the_node():
    one, two = device_from_profile(CPU), device_from_profile(_across(CPU, 2))
    busbw = FIT["params"]["busbw_GBps"]
    assert two.inter_node_GBps == pytest.approx(busbw / DEFAULT_CONSTANTS.inter_link_eff)
    assert two.inter_node_latency_s == FIT["params"]["alpha_s"]
    assert two.provenance_of["inter_node"] == "fitted" and "across 2 nodes" in two.sources["inter_node"]
    assert two.provenance_of["intra_node"] == "assumed"  # nothing measured inside one node
    assert two.intra_node_GBps != one.intra_node_GBps
    assert one.provenance_of["inter_node"] == "assumed" and one.provenance_of["intra_node"] == "fitted"
    assert one.intra_node_GBps == pytest.approx(busbw / DEFAULT_CONSTANTS.intra_link_eff)


def test_a_gpu_profile_across_nodes_keeps_the_datasheet_nvlink():
    base = copy.deepcopy(H200)
    base["fits"]["collectives"]["all_reduce"]["by_world"]["2"] = copy.deepcopy(FIT)
    inside, across = device_from_profile(base), device_from_profile(_across(base, 2))
    assert inside.provenance_of["intra_node"] == "fitted" and inside.provenance_of["inter_node"] == "datasheet"
    assert across.provenance_of["intra_node"] == "datasheet" and across.provenance_of["inter_node"] == "fitted"


@pytest.mark.parametrize("nodes", [1, 0, -2, True, "2", 2.0, None, [2]])
def test_a_node_count_that_is_not_an_integer_above_one_means_one_node(nodes):
    assert run_nodes(_across(CPU, nodes)) == 1
    assert device_from_profile(_across(CPU, nodes)).provenance_of["intra_node"] == "fitted"


def test_a_data_parallel_plan_with_one_gpu_per_node_syncs_over_the_fitted_link():
    profile = _across(CPU, 2)
    profile["name"] = "Test CPU across two nodes, calibrated 2026-12-08"  # the shipped device's id is taken
    spec = device_from_profile(profile)
    devices = {spec.id: spec}
    plan = evaluate(Scenario.from_dict({
        "model": {"layers": 4, "hidden": 256, "heads": 4, "vocab": 4096, "seq_len": 128},
        "training": {"precision": "fp32", "global_batch_seqs": 16, "micro_batch_seqs": 8, "zero_stage": 0},
        "cluster": {"accelerator": spec.id, "gpus": 2, "gpus_per_node": 1, "dp_overlap": 0.0}}, devices), devices)
    grad_bytes = 4 * plan.value("model.total_params")
    # Thakur et al. 2005 ring, 2 ranks: 2α + n/B, B the fitted busbw
    expected_s = 2 * FIT["params"]["alpha_s"] + grad_bytes / (FIT["params"]["busbw_GBps"] * 1e9)
    assert plan.value("training.dp_exposed_s") == pytest.approx(expected_s, rel=1e-6)


def test_the_profile_says_how_many_nodes_its_run_spanned(tmp_path):
    assert load_profile(write_profile(tmp_path, [], {"cpu_model": "T"}))["run"] == {}  # no run.json: nothing said
    (tmp_path / "run.json").write_text(json.dumps({"run_id": "r", "mode": "quick", "nproc": 1, "nnodes": 2,
                                                   "node_rank": 0, "env": {"cpu_model": "T"}}))
    prof = load_profile(write_profile(tmp_path, [], {"cpu_model": "T"}))
    assert prof["run"] == {"run_id": "r", "mode": "quick", "nproc": 1, "nnodes": 2}
    assert run_nodes(prof) == 2
