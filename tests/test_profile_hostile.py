"""Hostile calibration profiles: mutations of the shipped profiles (keys deleted, types changed, numbers set to
0 / -1 / 1e300 / "NaN", fit models renamed, thousands of sibling fits, non-string GPU names, odd keys where the
display code reads keys, huge world sizes, row indices out of range). Each one is either refused by the loader
with a ProfileError that says where, or accepted; an accepted profile then becomes a device, a small plan on
that device gives finite days and energy, and every function of report.calibration_summary and
report.calibration_charts works on it with finite figures.

`MODELFOLIO_FUZZ_EXAMPLES` sets the number of mutated profiles (a few hundred by default; `make fuzz`
runs 10,000). Fixed seed, no example database: a failure reproduces on every machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import tracemalloc
import unicodedata
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from calibration import validate_points, validate_summary
from report import calibration_charts as charts
from report import calibration_summary as summary
from simulator import Scenario, ScenarioError, evaluate
from simulator.device_profile import device_from_profile
from simulator.devices import PROFILE_DIR, check_new_device
from simulator.profile import MAX_FITS, ProfileError, load_profile
from simulator.profile_models import KNOWN_MODELS

EXAMPLES = int(os.environ.get("MODELFOLIO_FUZZ_EXAMPLES", "300"))
RAW = {path.stem: path.read_bytes() for path in sorted(PROFILE_DIR.glob("*.json"))}
STEMS = sorted(RAW)
SMALL_PLAN = {"model": {"params": 1e9}, "training": {"tokens": 2e10}, "cluster": {"gpus": 8}}
NOT_ALWAYS_DEFINED = ("serving", "finance", "decision")  # families whose figures may not apply to a plan
PLAN_FIGURES = ("training.wall_days", "training.energy_mwh", "training.step_time_s", "training.cost_usd")

Path_ = tuple[str | int, ...]


def _paths(node: Any, path: Path_ = (), max_index: int = 2) -> Iterator[Path_]:
    """Every key path of a JSON tree (list items up to `max_index` only: the first rows, points, ...)."""
    if path:
        yield path
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*path, key), max_index)
    elif isinstance(node, list):
        for i, child in enumerate(node[: max_index + 1]):
            yield from _paths(child, (*path, i), max_index)


def _fit_paths(node: Any, path: Path_ = ("fits",)) -> Iterator[Path_]:
    if isinstance(node, dict):
        if isinstance(node.get("status"), str):
            yield path
            return
        for key, child in node.items():
            yield from _fit_paths(child, (*path, key))


def _index(stem: str) -> dict[str, list[Path_]]:
    p = json.loads(RAW[stem])
    every = [q for q in _paths(p) if q[0] != "measurements" or (len(q) > 1 and q[1] in (0, 1, 2))]
    fits = list(_fit_paths(p["fits"]))
    ok = [f for f in fits if _at(p, f).get("status") == "ok"]
    return {
        "every": every,
        "fits": fits,
        "fit_fields": [q for q in every if any(q[: len(f)] == f and len(q) > len(f) for f in fits)],
        "params": [(*f, "params", k) for f in ok for k in _at(p, f).get("params", {})],
        "containers": [q for q in every if isinstance(_at(p, q), dict)],
        "by_world": [q for q in every if q[-1] == "by_world"],
        "rows": [(*f, "points", split, 0, "rows") for f in ok for split in ("train", "heldout")
                 if _at(p, (*f, "points", split))],
    }


def _at(node: Any, path: Path_) -> Any:
    for key in path:
        node = node[key]
    return node


INDEX = {stem: _index(stem) for stem in STEMS}

NUMBERS = [0, 0.0, -0.0, -1, -1e-9, 1e-300, 5e-324, 1e-12, 1e-6, 0.5, 1.5, 2.0, 3600.0, 1e5, 1e6, 1e18, 1e300,
           -1e300, 10**30, 2**63, "NaN", "Infinity", "-Infinity", "1e999", "0.25"]
HOSTILE = [*NUMBERS, None, True, False, "", "x" * 5000, "\u0000", [], {}, [1, "a"], [None], {"a": 1},
           {"status": "ok"}, {"status": "ok", "model": "linear_compute"}, [[[]]], list(range(50))]
ODD_KEYS = ["", "/", "cuda/", "cpu/", "cuda/bf16/", "by_world", "status", "fit", "0", "01", "-1", "2.5", "1e9",
            "9" * 30, "1000000", "1000001", "\u0000", "ünï/cødé", "a" * 1000, " 2", "cpu/fp32 ", "$x$", "NaN"]
WORLD_KEYS = ["0", "-2", "2.5", "1e3", "02", "1000000", "1000001", "1000000000", "9" * 40, "abc", ""]
GPU_NAMES = [[1], [None], [["NVIDIA H200"]], [{"a": 1}], ["NVIDIA H200", 5], "NVIDIA H200", [""], ["x" * 5000],
             ["NVIDIA H200"] * 5000, ["AMD Instinct MI300X"], ["NVIDIA H100 80GB HBM3"], ["NVIDIA H200"], [],
             None, 7, {"0": "NVIDIA H200"}, [True]]
MODEL_NAMES = [*KNOWN_MODELS, "eval", "", "__import__('os')", "linear_compute ", "LINEAR_COMPUTE", "roofline\u0000"]
# accepted values at the edges of the loader's ranges: the consumers must still give finite figures
EDGES = [1e-5, 1.0001e-5, 99_999.0, 1e-6, 1e6, 0.0, 3599.0, 1e21, 1e15, 8.0, 16.0, 1e-300, 1.0, -1.0, 1000.0, 1e-9]
ROW_INDICES = [[10**9], [-1], ["0"], 5, [True], [0.5], [], [0, 0, 0], list(range(10_000)), "0"]
SIBLINGS = [2, 50, 1000, MAX_FITS + 1, 20_000]
# names a user or a tool might write: lone surrogates (a JSON \ud800 escape), invisible-only, blank, long, any script
NAMES = ["\ud800", "GPU \udfff box", "\udc80\ud800", "\u200b", "\u200b\u200b\u200b", "\u2060\ufeff\u200e", " ",
         "\t\n", "", "x" * 257, "a\u0000b", "Lab\nbox", " 模型 🚀 ", "👩\u200d🚀", "한국어 ไทย हिन्दी", "\u200bLab"]


@st.composite
def mutation(draw: st.DrawFn, stem: str) -> tuple[Any, ...]:
    ix = INDEX[stem]
    kind = draw(st.sampled_from(["delete", "set", "set", "param", "param", "edge", "edge", "edge", "model",
                                 "siblings", "gpu_names", "odd_key", "world", "rows", "section", "name"]))
    if kind == "name":
        return ("set", ("name",), draw(st.sampled_from(NAMES)))
    if kind == "delete":
        return ("delete", draw(st.sampled_from(ix["every"])))
    if kind == "set":
        return ("set", draw(st.sampled_from(ix["every"] if draw(st.booleans()) else ix["fit_fields"])),
                draw(st.sampled_from(HOSTILE)))
    if kind == "param":
        return ("set", draw(st.sampled_from(ix["params"])), draw(st.sampled_from(NUMBERS)))
    if kind == "edge":
        return ("set", draw(st.sampled_from(ix["params"])), draw(st.sampled_from(EDGES)))
    if kind == "model":
        return ("set", (*draw(st.sampled_from(ix["fits"])), "model"), draw(st.sampled_from(MODEL_NAMES)))
    if kind == "siblings":
        return ("siblings", draw(st.sampled_from(ix["fits"])), draw(st.sampled_from(SIBLINGS)), draw(st.booleans()))
    if kind == "gpu_names":
        return ("set", ("environment", "gpu_names"), draw(st.sampled_from(GPU_NAMES)))
    if kind == "odd_key":
        return ("odd_key", draw(st.sampled_from(ix["containers"])), draw(st.sampled_from(ODD_KEYS)),
                draw(st.sampled_from(["copy", "hostile"])), draw(st.sampled_from(HOSTILE)))
    if kind == "world":
        choice = draw(st.sampled_from(["key", "fit", "row"]))
        if choice == "key":
            return ("odd_key", draw(st.sampled_from(ix["by_world"])), draw(st.sampled_from(WORLD_KEYS)), "copy", None)
        if choice == "fit":
            fit = draw(st.sampled_from(ix["fits"]))
            return ("set", (*fit, "world_size"), draw(st.sampled_from([0, -1, 10**9, 10**6, "2", 2.5, True])))
        return ("set", ("measurements", draw(st.sampled_from([0, 1, 2])), "world_size"),
                draw(st.sampled_from([0, -1, 10**9, 10**6, 10**6 + 1, "2", 2.5, True])))
    if kind == "rows":
        return ("set", draw(st.sampled_from(ix["rows"])), draw(st.sampled_from(ROW_INDICES)))
    section = draw(st.sampled_from([("fits", "compute", "gemm"), ("fits", "compute"), ("fits", "collectives"),
                                    ("fits", "collectives", "all_reduce"), ("fits", "collectives", "all_reduce",
                                                                             "by_world"),
                                    ("fits", "ddp", "by_world"), ("fits", "inference", "roofline"), ("environment",),
                                    ("summary",), ("run",), ("summary", "noisy_rows"), ("environment", "cpu_flags"),
                                    ("summary", "fits_not_done"), ("environment", "peak_tflops")]))
    return ("set", section, draw(st.sampled_from(HOSTILE)))


def apply(p: dict[str, Any], m: tuple[Any, ...]) -> None:
    """Apply one mutation in place; one whose path a previous mutation removed does nothing."""
    kind, path = m[0], m[1]
    try:
        parent = _at(p, path[:-1])
        if kind == "set":
            if isinstance(parent, dict) or (isinstance(parent, list) and path[-1] < len(parent)):
                parent[path[-1]] = m[2]
        elif kind == "delete":
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, list) and path[-1] < len(parent):
                del parent[path[-1]]
        elif kind == "siblings":
            _, _, count, real = m
            fit = parent[path[-1]] if real else {"status": "insufficient_data", "reason": "x"}
            for i in range(count):
                parent[f"{path[-1]}~{i}"] = fit
        elif kind == "odd_key":
            node = _at(p, path)
            if isinstance(node, dict):
                _, _, key, how, value = m
                if how == "copy" and node:
                    node[key] = node.pop(next(iter(node)))
                else:
                    node[key] = value
    except (KeyError, IndexError, TypeError):
        pass


def encode(p: dict[str, Any]) -> bytes:
    # the same object may sit in many places (siblings): json writes each copy out, as a file would hold it
    return json.dumps(p, allow_nan=False).encode()


# ---------------------------------------------------------------- what an accepted profile must support


def _finite(value: Any) -> bool:
    return value is None or isinstance(value, str | bool) or math.isfinite(float(value))


def _frame_finite(frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    for column in columns:
        if column in frame:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            assert not np.isinf(values).any(), (column, frame[column].tolist()[:10])


def _plan_on(spec: Any) -> None:
    if check_new_device(spec) is not None:  # a mutated shipped profile keeps the shipped id: never replaced
        spec = dataclasses.replace(spec, id=f"{spec.id}-mutated")
    precision = next((p for p in ("bf16", "fp32") if p in spec.peak_tflops), next(iter(spec.peak_tflops)))
    scenario = Scenario.from_dict({**SMALL_PLAN, "training": {**SMALL_PLAN["training"], "precision": precision},
                                   "cluster": {**SMALL_PLAN["cluster"], "accelerator": spec.id}},
                                  devices={spec.id: spec})
    plan = evaluate(scenario, devices={spec.id: spec})
    for key in PLAN_FIGURES:
        value = plan.value(key)
        assert isinstance(value, int | float) and math.isfinite(value) and value > 0, (key, value)
    for key, figure in plan.figures.items():
        if key.partition(".")[0] in NOT_ALWAYS_DEFINED and figure.value != figure.value:
            continue  # documented: NaN when it does not apply (no revenue, targets no batch meets, no price)
        assert all(_finite(v) for v in (figure.value, figure.low, figure.high)), (key, figure)


def _charts_of(label: str, fit: dict[str, Any], draw: bool) -> None:
    """The frames and text of one fit's view; with `draw`, its two charts as the page renders them (altair
    specs: slow, so only for the fits a mutation touched)."""
    points = charts.points_frame(fit)
    curve = charts.curve_frame(fit)
    _frame_finite(points, ("x", "Measured", "Predicted", "Error (%)"))
    _frame_finite(curve, ("x", "Predicted"))
    assert isinstance(charts.x_title(fit), str) and isinstance(charts.y_title(fit), str)
    assert isinstance(charts.describe_fit(label, fit, points, curve), str)
    if draw and fit.get("status") == "ok" and not points.empty:
        charts.fit_chart(fit, points, curve).to_dict()
        charts.residual_chart(fit, points).to_dict()
    summary.params_frame(fit)


def consumers_work(profile: dict[str, Any], focus: list[Path_] = ()) -> None:
    """Everything the simulator and the Calibrate page do with an accepted profile. `focus`: the mutated
    paths; the fits holding them are charted (charting every fit of every example would be slow)."""
    try:
        spec = device_from_profile(profile)
    except ValueError as exc:  # documented: a profile without a usable GEMM fit cannot be planned on
        assert "no fitted GEMM throughput" in str(exc), exc
        spec = None
    if spec is not None:
        _plan_on(spec)
        assert all(math.isfinite(v) and v > 0 for v in spec.peak_tflops.values()), spec.peak_tflops
    name = profile["name"]  # one line that shows something and that every page, chart and file can write
    assert name.strip() and name == " ".join(name.split()), repr(name)
    assert any(not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf") for ch in name), repr(name)
    if any(f == ("name",) for f in focus):  # the Calibrate page's throughput chart, titled by the name
        chart = charts.throughput_chart(charts.throughput_frame({name: profile})).to_dict()
        json.dumps(chart, ensure_ascii=False).encode("utf-8")  # what the browser is sent: a lone surrogate cannot be
    main = summary.main_device(profile)
    assert main in ("cpu", "cuda")
    for bench in ("gemm", "block_fwd_bwd"):
        for g in summary.gemm_throughput(profile, bench):
            assert math.isfinite(g["tflops"]) and g["tflops"] > 0, g
            summary.datasheet_peak(profile, spec, g["dtype"])
    for b in summary.busbw(profile):
        assert math.isfinite(b["GBps"]) and b["GBps"] > 0 and b["world"] >= 1, b
    median = summary.heldout_median(profile)
    assert median is None or math.isfinite(median)
    assert sum(summary.row_counts(profile).values()) == len(profile["measurements"])
    assert isinstance(summary.headline(profile, spec), str)
    summary.headline(profile, spec).encode("utf-8")
    other = json.loads(RAW[STEMS[0]])
    _frame_finite(summary.compare_frame(profile, other, "A", "B"), ("A", "B", summary.RATIO))
    summary.environment_frame(profile)
    focused = 0
    for section in ("compute", "collectives", "parameter_server", "ddp", "inference"):
        entries = list(summary.iter_fits(profile["fits"][section]))
        summary.fits_frame(section, entries)
        for i, (path, fit, parent) in enumerate(entries):
            summary.fit_label(path)
            assert isinstance(parent, dict)
            where = ("fits", section, *path)
            hit = any(f[: len(where)] == where or where[: len(f)] == f for f in focus)
            if (hit and focused < 4) or i == 0:
                focused += hit
                _charts_of(".".join(map(str, where)), fit, draw=hit)
    results = validate_points.compare(profile, lambda rows, nproc=None: rows, context="heldout")  # no bench: rows as-is
    assert isinstance(validate_summary.render_markdown(results, validate_summary.summarize(results)), str)
    frame = charts.throughput_frame({"A": profile, "B": other})
    _frame_finite(frame, ("FLOP", "TFLOP/s"))
    assert (pd.to_numeric(frame["TFLOP/s"]) > 0).all()
    if any(f[:3] == ("fits", "compute", "gemm") or f[:1] == ("environment",) for f in focus):
        charts.throughput_chart(frame).to_dict()
    assert isinstance(charts.describe_throughput(frame), str)


# ---------------------------------------------------------------- the tests


def test_shipped_profiles_pass_every_consumer():
    for stem in STEMS:
        consumers_work(load_profile(RAW[stem]), list(INDEX[stem]["fits"]))


def _check(stem: str, mutations: list[tuple[Any, ...]]) -> None:
    p = json.loads(RAW[stem])
    for m in mutations:
        apply(p, m)
    try:
        data = encode(p)
    except ValueError:  # a cycle cannot be written as JSON (never produced by the mutations above)
        return
    try:
        profile = load_profile(data)
    except ProfileError as exc:
        message = str(exc)
        assert ": " in message and len(message) < 2000, message
        return
    consumers_work(profile, [m[1] for m in mutations])


@pytest.mark.fuzz
@pytest.mark.timeout(max(600, EXAMPLES))  # about 0.1 s an example: 10,000 need more than pytest's 600 s
@seed(20261128)
@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_profiles_are_refused_or_work_everywhere(data):
    stem = data.draw(st.sampled_from(STEMS), label="profile")
    mutations = data.draw(st.lists(mutation(stem), min_size=1, max_size=3), label="mutations")
    _check(stem, mutations)


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("model", sorted(KNOWN_MODELS))
def test_every_known_model_name_on_the_gemm_fit_is_refused_or_works(stem, model):
    """The first known failure: a GEMM fit under another model's name crashed device_from_profile."""
    fit = INDEX[stem]["fits"][0]
    _check(stem, [("set", (*fit, "model"), model)])


def _siblings(n: int, containers: int = 1) -> bytes:
    """The cpu profile with `n` small sibling fit records, spread over `containers` inference sections."""
    p = json.loads(RAW["cpu-reference"])
    fit = {"status": "insufficient_data", "reason": "x"}
    for c in range(containers):
        p["fits"]["inference"][f"roofline{c or ''}"] = {f"cpu/fp32/k{i}": dict(fit) for i in range(n // containers)}
    return encode(p)


@pytest.mark.parametrize("containers, fragment", [
    (1, "keys"),  # one object of 20,000 keys: the bounded reader's object cap
    (4, rf"fits\.inference\.roofline\d?\.cpu/fp32/k\d+: more than {MAX_FITS:,} fit records"),  # 4 x 5,000: the fit cap
])
def test_twenty_thousand_sibling_fits_are_refused_fast_and_small(containers, fragment):
    """The known failure: 20,000 sibling fits (a 2 MB file) took over 8 GB once accepted. Now refused in well
    under a second, holding little more than the parsed file."""
    data = _siblings(20_000, containers)
    assert len(data) < 2_500_000
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(ProfileError, match=fragment):
            load_profile(data)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0, elapsed
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_many_fits_under_the_cap_cost_linear_memory():
    """At the cap, walking every fit (the Calibrate page's section table) holds no copy of a parent per fit."""
    profile = load_profile(_siblings(MAX_FITS - 100))
    tracemalloc.start()
    try:
        entries = list(summary.iter_fits(profile["fits"]["inference"]))
        summary.fits_frame("inference", entries)
        summary.heldout_median(profile)
        device_from_profile(profile)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(entries) >= MAX_FITS - 100
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("name, from_file, from_python", [
    # a lone surrogate: the JSON reader refuses its escape wherever it is; from Python the name check refuses it
    ("\ud800", r"name: the text holds an unpaired surrogate escape \\ud800", "is an unpaired surrogate"),
    ("GPU \udfff", r"name: the text holds an unpaired surrogate escape \\udfff", "is an unpaired surrogate"),
    ("\u200b\u200b", "name: shows nothing", "shows nothing"),
    ("\u2060\ufeff\u200e", "name: shows nothing", "shows nothing"),
    ("a\u0000b", r"name: contains the control character U\+0000", r"contains the control character U\+0000"),
])
def test_profile_names_are_checked_as_scenario_names_are(name, from_file, from_python):
    """One check (simulator.names) for a profile's name and a scenario's: the same words for the same name."""
    p = json.loads(RAW[STEMS[0]])
    p["name"] = name
    with pytest.raises(ProfileError, match=from_file):
        load_profile(encode(p))
    with pytest.raises(ScenarioError, match="(?i)" + from_file):  # a file: "scenario: name: ..." or "Name: ..."
        Scenario.from_json(json.dumps({"name": name, "model": {"params": 1e9}}))
    with pytest.raises(ScenarioError, match=f"Name: .*{from_python}"):
        Scenario.from_dict({"name": name, "model": {"params": 1e9}})


def test_a_blank_profile_name_is_refused_where_a_blank_scenario_name_is_none():
    p = json.loads(RAW[STEMS[0]])
    p["name"] = " \t "
    with pytest.raises(ProfileError, match="name: must not be empty"):
        load_profile(encode(p))
    assert Scenario.from_dict({"name": " \t ", "model": {"params": 1e9}}).name == ""


def test_a_profile_name_is_kept_on_one_line():
    p = json.loads(RAW[STEMS[0]])
    p["name"] = "  Lab\n box  模型 "
    assert load_profile(encode(p))["name"] == "Lab box 模型"
