"""The strict profile loader: valid profiles round-trip; every kind of bad input is a ProfileError that
names the problem and where; fuzzed input never escapes as another exception."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simulator.profile as sp
import simulator.profile_fit_schema as fit_schema
import simulator.profile_schema as schema
from simulator.profile import (
    KIND,
    MAX_FILE_BYTES,
    ProfileError,
    collective_cross_world_fit,
    collective_fit,
    compute_fit,
    load_profile,
    parameter_server_fit,
    predict_s,
    profile_label,
)


def fit_record(model: str, params: dict, **meta) -> dict:
    return {"status": "ok", "model": model, "formula": "...", "params": params,
            "stderr": dict.fromkeys(params, 0.0), "n_train": 6, "n_heldout": 2, "mape_train_pct": 3.0,
            "mape_heldout_pct": 5.0, "heldout_rule": "the largest 2 of 8 points",
            "points": {"train": [{"x": 1e6, "measured": 1e-5, "predicted": 1.1e-5, "rows": [0]}],
                       "heldout": [{"x": 1e9, "measured": 2e-3, "predicted": 2.1e-3, "rows": [0]}]}, **meta}


def valid_profile() -> dict:
    return {
        "schema_version": 1, "kind": KIND, "created_utc": "2026-11-28T00:00:00+00:00",
        "name": "Test CPU, calibrated 2026-11-28", "environment": {"cpu_model": "Test CPU"}, "summary": {},
        "fits": {
            "compute": {"gemm": {"cpu/fp32": fit_record("linear_compute",
                                                        {"overhead_s": 5e-6, "achieved_tflops": 0.25})}},
            "collectives": {"all_reduce": {
                "by_world": {"2": fit_record("alpha_beta", {"alpha_s": 5e-5, "busbw_GBps": 2.3},
                                             op="all_reduce", world_size=2)},
                "cross_world": {"status": "insufficient_data", "reason": "one world size"}}},
            "parameter_server": {"sharded": {"status": "insufficient_data", "reason": "no rows"}},
            "ddp": {}, "inference": {},
        },
        "measurements": [{"bench": "gemm", "device": "cpu", "dtype": "fp32", "params": {"m": 64},
                          "world_size": 1, "oversubscribed": False, "status": "ok", "median_s": 1e-5,
                          "p25_s": 0.9e-5, "p75_s": 1.1e-5, "times_s": [1e-5], "flops": 5e5, "bytes": None}],
    }


def dumps(p: dict) -> bytes:
    return json.dumps(p).encode()


def rejects(data: bytes | str | Path, *fragments: str) -> str:
    with pytest.raises(ProfileError) as info:
        load_profile(data)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, msg
    return msg


def test_valid_profile_round_trips_from_bytes_path_and_text(tmp_path):
    p = valid_profile()
    assert load_profile(dumps(p)) == p
    f = tmp_path / "profile.json"
    f.write_bytes(dumps(p))
    assert load_profile(f) == p and load_profile(str(f)) == p
    assert load_profile(json.dumps(p)) == p


def test_accessors_and_predictors():
    p = valid_profile()
    assert compute_fit(p, "cpu", "fp32")["params"]["achieved_tflops"] == 0.25
    assert compute_fit(p, "cuda", "bf16") is None
    assert collective_fit(p, "all_reduce", 2)["params"]["busbw_GBps"] == 2.3
    assert collective_fit(p, "all_gather", 2) is None
    assert collective_cross_world_fit(p, "all_reduce") is None
    assert parameter_server_fit(p) is None
    assert profile_label(p) == "Test CPU, calibrated 2026-11-28 (profile v1, 1 rows)"
    t = predict_s(collective_fit(p, "all_reduce", 2), message_bytes=2.3e9)
    assert t == pytest.approx(5e-5 + 1.0)  # bus factor 2(n-1)/n = 1 at n = 2
    assert predict_s(compute_fit(p, "cpu", "fp32"), flops=0.25e12) == pytest.approx(1.0 + 5e-6)


def test_inventory_fits_carry_and_check_their_gemm_fit():
    p = valid_profile()
    gemm = {"model": "linear_compute", "params": {"overhead_s": 5e-6, "achieved_tflops": 0.25}}
    p["fits"]["compute"]["block_fwd_bwd"] = {"cpu/fp32": fit_record(
        "block_inventory", {"overhead_s": 1e-3, "gemm_scale": 1.0, "elem_GBps": 8.0, "element_bytes": 4.0},
        gemm_fit=gemm)}
    loaded = load_profile(dumps(p))
    block = compute_fit(loaded, "cpu", "fp32", bench="block_fwd_bwd")
    t = predict_s(block, hidden=512, seq=256, batch=4)
    assert t > predict_s({**block, "params": {**block["params"], "elem_GBps": 1e9}}, hidden=512, seq=256, batch=4)
    broken = copy.deepcopy(p)
    del broken["fits"]["compute"]["block_fwd_bwd"]["cpu/fp32"]["gemm_fit"]
    rejects(dumps(broken), "fits.compute.block_fwd_bwd.cpu/fp32", "gemm_fit")
    broken = copy.deepcopy(p)
    broken["fits"]["compute"]["block_fwd_bwd"]["cpu/fp32"]["gemm_fit"]["params"]["achieved_tflops"] = -1.0
    rejects(dumps(broken), "gemm_fit.params.achieved_tflops", "must be > 0")
    broken["fits"]["compute"]["block_fwd_bwd"]["cpu/fp32"]["gemm_fit"] = {"model": "eval", "params": {}}
    rejects(dumps(broken), "gemm_fit.model")


def test_world1_copy_ddp_and_pruning_models_are_predicted():
    assert predict_s({"model": "local_copy", "params": {"alpha_s": 1e-5, "copy_GBps": 2.0}},
                     message_bytes=2e9) == pytest.approx(1.0 + 1e-5)
    assert predict_s({"model": "ddp_overlap", "params": {"overlap_fraction": 0.25}},
                     compute_s=1.0, allreduce_s=0.4) == pytest.approx(1.3)
    shrunk = {"model": "shrunk_bytes", "params": {"overhead_bytes": 1.0, "cache_speedup": 1.0,
                                                  "cache_bytes": 4e6}}
    assert predict_s(shrunk, density=0.5, weight_bytes=16e6) == pytest.approx(0.5, rel=1e-3)


@pytest.mark.parametrize("data, fragments", [
    (b"hello", ("not valid JSON",)),
    (b"", ("not valid JSON",)),
    (b"\xff\xfe{}", ("UTF-8",)),
    (b'{"a": 1, "a": 2}', ("duplicate key 'a'",)),
    (b"[1, 2]", ("a profile is a JSON object",)),
    (b'{"kind": NaN}', ("NaN is not allowed",)),
    (b'{"kind": Infinity}', ("Infinity is not allowed",)),
    (b'{"kind": -Infinity}', ("-Infinity is not allowed",)),
    (b'{"kind": 1e999}', ("overflows",)),
])
def test_malformed_json_rejected(data, fragments):
    rejects(data, *fragments)


def test_truncated_file_rejected():
    data = dumps(valid_profile())
    rejects(data[: len(data) // 2], "not valid JSON", "truncated")
    rejects(data[:-1], "truncated")


def test_wrong_kind_and_versions():
    p = valid_profile()
    p["kind"] = "some.other.file"
    rejects(dumps(p), "kind", "not a Modelfolio profile")
    p = valid_profile()
    del p["schema_version"]
    rejects(dumps(p), "schema_version", "unsupported version None", "reads 1")
    p["schema_version"] = 2
    rejects(dumps(p), "unsupported version 2; this loader reads 1")
    p["schema_version"] = True
    rejects(dumps(p), "schema_version")


def test_size_cap_checked_before_parsing(tmp_path):
    huge = b" " * (MAX_FILE_BYTES + 1)
    rejects(huge, "over the", "cap")
    f = tmp_path / "big.json"
    f.write_bytes(huge)
    rejects(f, "over the", "cap")


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 100_000, b"[" * 100_000 + b"]" * 100_000])
def test_deep_nesting_rejected_without_recursion(data):
    rejects(data, "nesting depth", "exceeds the cap")


def test_brackets_inside_strings_do_not_count_as_depth():
    p = valid_profile()
    p["environment"]["note"] = "[" * 10_000 + '\\"{' * 100
    assert load_profile(dumps(p)) == p


def test_recursion_error_from_parser_becomes_profile_error(monkeypatch):
    monkeypatch.setattr(sp, "MAX_DEPTH", 10**9)  # let the input reach json.loads
    rejects(b"[" * 200_000 + b"]" * 200_000, "nesting too deep")


@pytest.mark.parametrize("mutate, fragments", [
    (lambda p: p["fits"]["compute"]["gemm"]["cpu/fp32"]["params"].update(overhead_s="abc"),
     ("fits.compute.gemm.cpu/fp32.params.overhead_s", "expected a finite number", "str")),
    (lambda p: p["fits"]["compute"]["gemm"]["cpu/fp32"]["params"].update(overhead_s=-1e-6),
     ("fits.compute.gemm.cpu/fp32.params.overhead_s", "must be >= 0")),
    (lambda p: p["fits"]["collectives"]["all_reduce"]["by_world"]["2"]["params"].update(busbw_GBps=0),
     ("fits.collectives.all_reduce.by_world.2.params.busbw_GBps", "must be > 0")),
    (lambda p: p["fits"]["compute"]["gemm"]["cpu/fp32"].update(n_train="6"),
     ("fits.compute.gemm.cpu/fp32.n_train", "expected int")),
    (lambda p: p["fits"]["compute"]["gemm"]["cpu/fp32"].update(n_train=True),
     ("fits.compute.gemm.cpu/fp32.n_train", "expected int")),
    (lambda p: p["fits"]["compute"]["gemm"]["cpu/fp32"]["points"]["heldout"][0].update(measured=0.0),
     ("points.heldout[0].measured", "must be > 0")),
    (lambda p: p["fits"]["compute"]["gemm"]["cpu/fp32"].pop("params"), ("missing required key 'params'",)),
    (lambda p: p["fits"]["compute"]["gemm"]["cpu/fp32"].update(status="great"), ("status", "great")),
    (lambda p: p["fits"]["parameter_server"]["sharded"].pop("reason"), ("parameter_server.sharded",)),
    (lambda p: p["fits"].pop("ddp"), ("fits", "missing required key 'ddp'")),
    (lambda p: p["fits"].update(compute=[]), ("fits.compute", "expected dict")),
    (lambda p: p.update(measurements={}), ("measurements", "expected list")),
    (lambda p: p["measurements"][0].update(median_s=-0.5), ("measurements[0].median_s", "must be > 0")),
    (lambda p: p["measurements"][0].update(median_s=0), ("measurements[0].median_s", "must be > 0")),
    (lambda p: p["measurements"][0].update(median_s=None), ("measurements[0].median_s", "finite number")),
    (lambda p: p["measurements"][0].update(times_s=[1e-5, -1.0]), ("measurements[0].times_s[1]", "> 0")),
    (lambda p: p["measurements"][0].update(status="great"), ("measurements[0].status",)),
    (lambda p: p["measurements"][0].update(world_size=0), ("measurements[0].world_size",)),
    (lambda p: p["measurements"].append(7), ("measurements[1]", "expected object")),
    (lambda p: p.update(name=5), ("name", "expected str")),
])
def test_wrong_types_and_bad_values_name_the_path(mutate, fragments):
    p = valid_profile()
    mutate(p)
    rejects(dumps(p), *fragments)


def test_measurement_cap(monkeypatch):
    monkeypatch.setattr(schema, "MAX_MEASUREMENTS", 3)
    p = valid_profile()
    p["measurements"] = p["measurements"] * 4
    rejects(dumps(p), "measurements", "exceed the cap of 3")


def test_unreadable_path_is_a_profile_error(tmp_path):
    rejects(tmp_path / "missing.json", "cannot read profile file")
    rejects(tmp_path, "cannot read profile file")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data):
    _returns_or_profile_error(data)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_fuzz_random_json_values(value):
    _returns_or_profile_error(json.dumps(value).encode())


def _leaf_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaf_paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaf_paths(v, (*path, i))


PATHS = [p for p in _leaf_paths(valid_profile()) if p]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), json_values)
def test_fuzz_mutated_valid_profile(path, value):
    p = copy.deepcopy(valid_profile())
    node = p
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _returns_or_profile_error(dumps(p))


def _returns_or_profile_error(data: bytes) -> None:
    try:
        out = load_profile(data)
    except ProfileError:
        return
    assert isinstance(out, dict) and out["kind"] == KIND


def test_loader_module_imports_only_stdlib_and_numpy():
    import ast
    import sys

    import simulator.names as nm
    import simulator.profile_checks as pc
    import simulator.profile_models as pm
    import simulator.quality_curves as qc
    import simulator.safe_json as sj
    import simulator.safe_json_errors as sj_errors
    import simulator.safe_json_limits as sj_limits
    import simulator.safe_json_parse as sj_parse
    import simulator.safe_json_read as sj_read
    import simulator.safe_json_scan as sj_scan

    reader = {"simulator.safe_json_errors", "simulator.safe_json_limits", "simulator.safe_json_parse",
              "simulator.safe_json_read", "simulator.safe_json_scan"}  # the bounded reader's own modules
    mine = {"simulator.profile_models", "simulator.safe_json", "simulator.quality_curves", "simulator.names",
            "simulator.data_order",
            "simulator.profile_checks", "simulator.profile_schema", "simulator.profile_fit_schema", *reader}
    for module, first_party in ((sp, mine), (schema, mine), (fit_schema, mine), (pc, mine), (pm, set()), (sj, reader),
                                (sj_errors, reader), (sj_limits, reader), (sj_parse, reader), (sj_read, reader),
                                (sj_scan, reader), (qc, set()), (nm, set())):
        tree = ast.parse(Path(module.__file__).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        roots = {name.split(".")[0] for name in names - first_party}
        assert roots - {"__future__", "numpy"} <= set(sys.stdlib_module_names), (module.__name__, roots)


# ---------------------------------------------------------------- validated as a whole: what consumers read


def _gemm(p: dict) -> dict:
    return p["fits"]["compute"]["gemm"]["cpu/fp32"]


@pytest.mark.parametrize("mutate, fragments", [
    # a GEMM fit under another model's name crashed device_from_profile
    (lambda p: _gemm(p).update(model="ratio_of_roofline_fits"), ("fits.compute.gemm.cpu/fp32.model", "not a model fitted here")),
    (lambda p: _gemm(p).update(model="alpha_beta"), ("fits.compute.gemm.cpu/fp32.model", "linear_compute")),
    (lambda p: _gemm(p).update(model="eval"), ("fits.compute.gemm.cpu/fp32.model", "not a known model")),
    # non-string GPU names crashed device_from_profile (_slug of an int, gpus[0] of a dict)
    (lambda p: p["environment"].update(gpu_names=[1]), ("environment.gpu_names[0]", "expected a string")),
    (lambda p: p["environment"].update(gpu_names={"0": "NVIDIA H200"}), ("environment.gpu_names", "expected a list")),
    (lambda p: p["environment"].update(gpu_names=[""]), ("environment.gpu_names[0]", "must not be empty")),
    # non-object containers and odd keys crashed the device and the display code
    (lambda p: p["fits"]["compute"].update(gemm=[]), ("fits.compute.gemm", "expected an object")),
    (lambda p: p["fits"]["collectives"].update(all_reduce=2.0), ("fits.collectives.all_reduce", "expected an object")),
    (lambda p: p["fits"]["collectives"]["all_reduce"]["by_world"].update({"1e3": {"status": "failed", "reason": "x"}}),
     ("fits.collectives.all_reduce.by_world", 'key "1e3" is not a world size')),
    (lambda p: p["fits"]["compute"].update(gemm=_gemm(p)), ("fits.compute.gemm", "got a fit record")),
    (lambda p: p.update(run=[1]), ("run", "expected dict")),
    (lambda p: p["environment"].update(cpu_flags=5), ("environment.cpu_flags", "expected a list")),
    (lambda p: p["summary"].update(noisy_rows=5), ("summary.noisy_rows", "expected a list")),
    (lambda p: _gemm(p).update(params_at_bound=[1.0]), ("params_at_bound[0]", "expected a string")),
    (lambda p: _gemm(p).update(x_name=["flops"]), ("fits.compute.gemm.cpu/fp32.x_name", "expected a string")),
    (lambda p: _gemm(p)["points"]["train"][0].update(rows=5), ("points.train[0].rows", "expected a list")),
    (lambda p: _gemm(p)["points"]["train"][0].update(rows=[1]), ("points.train[0].rows[0]", "row index in 0..0")),
    (lambda p: _gemm(p)["points"]["train"][0].update(rows=[-1]), ("points.train[0].rows[0]", "row index")),
    # physically impossible or absurd fits (near-zero throughput once gave NaN days)
    (lambda p: _gemm(p)["params"].update(achieved_tflops=0), ("achieved_tflops", "must be > 0", "physically impossible")),
    (lambda p: _gemm(p)["params"].update(achieved_tflops=1e-300), ("achieved_tflops", "must be >= 1e-05")),
    (lambda p: _gemm(p)["params"].update(achieved_tflops=1e6), ("achieved_tflops", "must be < 100000")),
    (lambda p: p["fits"]["collectives"]["all_reduce"]["by_world"]["2"]["params"].update(busbw_GBps=-1),
     ("by_world.2.params.busbw_GBps", "physically impossible")),
    (lambda p: _gemm(p)["params"].update(overhead_s=7200.0), ("overhead_s", "must be < 3600")),
    (lambda p: _gemm(p)["stderr"].update(achieved_tflops=-0.1), ("stderr.achieved_tflops", "must be >= 0")),
    (lambda p: _gemm(p)["points"]["heldout"][0].update(measured=5e-324), ("points.heldout[0].measured", ">= 1e-12")),
    # world sizes an untrusted profile could ask validate to launch
    (lambda p: p["measurements"][0].update(world_size=10**7), ("measurements[0].world_size", "1..1,000,000")),
    (lambda p: p["fits"]["collectives"]["all_reduce"]["by_world"]["2"].update(world_size=0), ("world_size",)),
    # rows the device and validate read
    (lambda p: p["measurements"][0]["params"].update(m=0.5), ("measurements[0].params.m", ">= 1")),
    (lambda p: p["measurements"][0].pop("device"), ("measurements[0].device", "an ok row names its device")),
    (lambda p: p.update(name="x" * 300), ("name", "over the cap of 256")),
])
def test_what_consumers_read_is_checked_by_the_loader(mutate, fragments):
    p = valid_profile()
    mutate(p)
    rejects(dumps(p), *fragments)


def test_fit_and_point_caps(monkeypatch):
    p = valid_profile()
    p["fits"]["inference"]["roofline"] = {f"cpu/fp32/k{i}": {"status": "failed", "reason": "x"} for i in range(4)}
    monkeypatch.setattr(fit_schema, "MAX_FITS", 5)  # the profile's own 4 and the first of these
    rejects(dumps(p), "fits.inference.roofline.cpu/fp32/k1", "more than 5 fit records")
    monkeypatch.setattr(fit_schema, "MAX_FITS", 5_000)
    monkeypatch.setattr(fit_schema, "MAX_POINTS", 1)
    rejects(dumps(valid_profile()), "fits.compute.gemm.cpu/fp32.points", "2 points are over the cap of 1")


def test_world_size_keys_at_the_cap_are_accepted():
    p = valid_profile()
    by_world = p["fits"]["collectives"]["all_reduce"]["by_world"]
    by_world[str(fit_schema.MAX_WORLD_SIZE)] = {"status": "insufficient_data", "reason": "not measured"}
    assert load_profile(dumps(p))["fits"]["collectives"]["all_reduce"]["by_world"][str(fit_schema.MAX_WORLD_SIZE)]
    by_world[str(fit_schema.MAX_WORLD_SIZE + 1)] = by_world.pop(str(fit_schema.MAX_WORLD_SIZE))
    rejects(dumps(p), "is not a world size")
