"""The data-order effect: measured by real workers, fitted, carried by a calibrated device into the plans, the
Train page's sources and the PDF; a profile without it keeps the assumed constant, said so."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.quality.data_order_fit import fit_data_order, updates_to_target
from simulator import Scenario, evaluate
from simulator.data_order import parse_data_order
from simulator.device_profile import device_from_profile
from simulator.profile import ProfileError, load_profile
from simulator.training.constants import DEFAULT_CONSTANTS

PROFILES = Path(__file__).resolve().parents[1] / "simulator" / "data" / "profiles"


def synthetic_runs(extra: dict[tuple[str, int], float], repeats: int = 3, seed: int = 0) -> list[dict]:
    """Run records whose held-out loss falls as a power law of the updates, L(u) = 3·(u/u0)^-0.3, a sequential run
    needing (1 + extra) times its random partner's updates (u0 scaled), with a few percent of noise per repeat."""
    rng = np.random.default_rng(seed)
    target = 1.7
    out = []
    for (kind, p), e in extra.items():
        syncs = ("allreduce", "ps") if kind == "sync" else ("async",)
        for r in range(repeats):
            base = 10.0 * (p if kind == "async" else 1) * float(np.exp(rng.normal(0, 0.03)))
            for sync in syncs:
                for sharding, scale in (("random", 1.0), ("sequential", 1.0 + e)):
                    u0 = base * scale
                    every = 10 * (p if kind == "async" else 1)
                    evals = [[u, 3.0 * (u / u0) ** -0.3, 0.0] for u in range(every, 40 * every, every)]
                    out.append({"key": f"{sync}/{sharding}/r{r}", "sync": sync, "sharding": sharding, "repeat": r,
                                "workers": p, "evals": evals, "target_loss": target, "updates": evals[-1][0],
                                "wall_s": 1.0, "staleness_mean": p - 1.0 if sync == "async" else 0.0})
    return out


def test_updates_to_target_interpolates_between_the_evaluations_around_the_first_crossing():
    evals = [[10, 2.0, 0], [20, 1.8, 0], [30, 1.6, 0], [40, 1.5, 0]]
    assert updates_to_target(evals, 1.7) == (pytest.approx(25.0), True)  # halfway from 1.8 to 1.6
    assert updates_to_target(evals, 2.5) == (10.0, True)  # the first evaluation already reaches it
    assert updates_to_target(evals, 1.0) == (40.0, False)  # never reached: a lower bound, said so


def test_the_fit_recovers_a_known_penalty_from_a_synthetic_run():
    known = {("sync", 2): 0.7, ("sync", 4): 0.2, ("async", 2): 0.9, ("async", 4): 0.3}
    fit = fit_data_order(synthetic_runs(known))
    for (kind, p), e in known.items():
        got = fit["fits"][kind]["extra_by_workers"][str(p)]
        assert got["mean"] == pytest.approx(e, rel=0.02, abs=0.01)
        assert got["n"] == 3
    # the extra falls with P: the assumed form (which grows with P) cannot hold it, and the trend says so
    assert fit["fits"]["sync"]["trend"]["depends_on_workers"]
    assert fit["fits"]["sync"]["trend"]["slope_per_ln_workers"] < 0
    # the parameter server applies all-reduce's updates: a check, not a second measurement
    assert fit["ps_matches_allreduce"]["max_rel_diff"] == pytest.approx(0.0)
    assert all(r["sync"] == "allreduce" for r in fit["fits"]["sync"]["ratios"])


def test_a_constant_penalty_in_the_assumed_form_is_recovered_with_no_trend():
    pen = 0.25  # the simulator's assumed constant: extra = 0.25·(1 - 1/P)
    known = {("async", p): pen * (1 - 1 / p) for p in (2, 4, 8)}
    fit = fit_data_order(synthetic_runs(known, repeats=4))["fits"]["async"]
    assert fit["form_penalty"] == pytest.approx(pen, rel=0.05)
    assert not fit["trend"]["depends_on_workers"] or abs(fit["trend"]["slope_per_ln_workers"]) < 0.2


def _section(extra: dict[tuple[str, int], float]) -> dict:
    return {"version": 1, "setup": "synthetic", **fit_data_order(synthetic_runs(extra))}


def _profile_with(section: dict | None, name: str = "data order test") -> dict:
    prof = json.loads((PROFILES / "cpu-reference.json").read_text())
    prof["name"] = name
    quality = prof.get("quality") or {"mode": "full", "models": {}, "curves": {}}
    if section is not None:
        quality["data_order"] = section
    else:
        quality.pop("data_order", None)
    prof["quality"] = quality
    return load_profile(json.dumps(prof).encode())


def _updates(spec, gpus: int, sync: str, sharding: str) -> float:
    devs = {spec.id: spec}
    s = Scenario.from_dict({"model": {"params": 1e8}, "training": {"tokens": 1e8, "sharding": sharding},
                            "cluster": {"accelerator": spec.id, "gpus": gpus, "gpus_per_node": 1, "sync": sync}},
                           devices=devs)
    return evaluate(s, devs).figures["training.iterations"].value


def test_a_profile_without_the_section_keeps_the_assumed_value_said_assumed():
    spec = device_from_profile(_profile_with(None))
    assert spec.provenance_of["data_order"] == "assumed"
    assert "assumed" in spec.sources["data_order"] and spec.data_order is None
    p = 4
    ratio = _updates(spec, p, "async", "sequential") / _updates(spec, p, "async", "random")
    assert ratio == pytest.approx(1 + DEFAULT_CONSTANTS.noniid_async_penalty * (1 - 1 / p))
    assert _updates(spec, p, "ring", "sequential") == pytest.approx(_updates(spec, p, "ring", "random"))


def test_a_measured_effect_moves_the_plans_interpolated_in_ln_p_and_held_beyond():
    known = {("sync", 2): 0.7, ("sync", 4): 0.2, ("async", 2): 0.9, ("async", 4): 0.3}
    spec = device_from_profile(_profile_with(_section(known)))
    assert spec.provenance_of["data_order"] == "measured"
    assert "measured" in spec.sources["data_order"] and "sync P=2: +70%" in spec.sources["data_order"]
    m = spec.data_order
    for kind, sync in (("sync", "ring"), ("async", "async")):
        lo, hi = m[f"seq_{kind}_lo"], m[f"seq_{kind}_hi"]
        for gpus, want in ((2, lo), (4, hi), (16, hi), (3, lo + (hi - lo) * math.log(3 / 2) / math.log(2))):
            ratio = _updates(spec, gpus, sync, "sequential") / _updates(spec, gpus, sync, "random")
            assert ratio == pytest.approx(1 + want, rel=1e-9), (kind, gpus)
    assert spec.spreads["seq_sync_lo"] > 0  # the repeats' spread enters the ranges


def test_the_train_pdf_says_the_data_order_effect_was_measured():
    from report.pdf import plan_pdf
    from tests.test_report_pdf import text_of

    spec = device_from_profile(_profile_with(_section({("sync", 2): 0.7, ("sync", 4): 0.2})))
    devs = {spec.id: spec}
    s = Scenario.from_dict({"model": {"params": 1e8}, "training": {"tokens": 1e8, "sharding": "sequential"},
                            "cluster": {"accelerator": spec.id, "gpus": 4, "gpus_per_node": 1}}, devices=devs)
    text = text_of(plan_pdf(evaluate(s, devs), None))
    assert "data_order measured measured: sequential shards" in text


@pytest.mark.parametrize("path, value, words", [
    (("fits", "sync", "extra_by_workers", "2", "mean"), "lots", "not a finite number"),
    (("fits", "sync", "extra_by_workers", "2", "mean"), -1.5, "no updates at all"),
    (("fits", "sync", "extra_by_workers", "2", "n"), 0, "positive whole number"),
    (("fits", "sync", "extra_by_workers"), {"1": {"mean": 0.1, "n": 2}}, "whole number from 2"),
    (("fits",), [], "object of fits"),
])
def test_a_broken_section_is_refused_at_load_naming_its_path(path, value, words):
    section = _section({("sync", 2): 0.7, ("sync", 4): 0.2})
    node = section
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(ProfileError, match=r"quality\.data_order") as err:
        _profile_with(section)
    assert words in str(err.value)


@pytest.mark.fuzz
@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=12))
def test_hostile_sections_parse_or_fail_with_a_message(junk):
    try:
        got = parse_data_order({"fits": {"sync": {"extra_by_workers": junk}}})
    except ValueError as exc:
        assert "quality.data_order" in str(exc)
    else:
        assert got is None or all(np.isfinite(v) or math.isnan(v) for v in got.columns().values())


@pytest.mark.distributed
def test_real_workers_measure_it_end_to_end_and_a_resume_keeps_the_runs(tmp_path):
    from calibration.quality.data_order import PLANS, RUNS_NAME, run_data_order

    section = run_data_order(tmp_path, PLANS["tiny"], 90.0, log=lambda _: None)
    assert section is not None and set(section["fits"]) == {"sync", "async"}
    runs = (tmp_path / RUNS_NAME).read_text().splitlines()
    assert len(runs) == 6  # the reference, the sequential all-reduce, the asynchronous pair, the server's pair
    keys = {json.loads(r)["key"] for r in runs}
    assert {"allreduce/random/r0", "async/sequential/r0", "ps/sequential/r0"} <= keys
    stale = [json.loads(r)["staleness_mean"] for r in runs if json.loads(r)["sync"] == "async"]
    assert all(0.5 < s < 1.5 for s in stale)  # 2 workers: each gradient about one update stale, measured
    again = run_data_order(tmp_path, PLANS["tiny"], 90.0, resume=True, log=lambda _: None)
    assert len((tmp_path / RUNS_NAME).read_text().splitlines()) == 6  # nothing re-run
    assert again["fits"] == section["fits"]
    parse_data_order(copy.deepcopy(section))  # what calibration writes, the simulator reads


def test_the_train_page_says_the_data_order_effect_was_measured():
    from tests.test_app_train import run_app

    spec = device_from_profile(_profile_with(_section({("sync", 2): 0.7, ("sync", 4): 0.2})))
    at = run_app(devices={spec.id: spec})
    at.selectbox(key="cluster.accelerator").set_value(spec.id).run()
    assert not at.exception and not at.error
    shown = "\n".join(m.value for m in at.markdown)
    assert "data_order: measured: sequential shards" in shown and "sync P=2: +70%" in shown
