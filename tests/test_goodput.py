"""The goodput family: expected wall time = ideal + checkpoints + failures + evaluation + start-up."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.families.goodput import FAMILY, FIGURES, INPUTS, RULES, run
from simulator.registry import Family

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BY_KEY = {i.key: i for i in INPUTS}
DEFAULTS = {i.column: i.encode(i.default) for i in INPUTS}
OUT_KEYS = {f.key for f in FIGURES}


def cols(**kw):
    """Default goodput columns plus the three columns other families provide; keyword = column name."""
    c = dict(DEFAULTS)
    c.update({"training.ideal_wall_days": 30.0, "gpus": 1024.0, "params": 175e9})
    c.update({k.replace("__", "."): v for k, v in kw.items()})
    return {k: np.asarray(v, dtype=np.float64) for k, v in c.items()}


def bounded(key):
    i = BY_KEY[key]
    return st.floats(i.low, i.high, allow_nan=False, allow_infinity=False)


@st.composite
def rows(draw):
    """One valid row: every goodput input within its bounds, a run of 1 hour to 3 years on 1 to 1M GPUs."""
    c = {i.column: draw(bounded(i.key)) for i in INPUTS if i.kind == "float"}
    c["goodput_enabled"] = 1.0
    c["training.ideal_wall_days"] = draw(st.floats(1.0 / 24.0, 1000.0))
    c["gpus"] = float(draw(st.integers(1, 1_000_000)))
    c["params"] = draw(st.floats(1e5, 1e13))
    return {k: np.asarray(v, dtype=np.float64) for k, v in c.items()}


def wall(c):
    return float(run(c)["training.wall_days"])


# --- the declarations ---------------------------------------------------------------------------------

def test_family_contract():
    assert isinstance(FAMILY, Family)
    assert FAMILY.name == "goodput" and FAMILY.needs == ("training",) and FAMILY.doc
    assert FAMILY.inputs is INPUTS and FAMILY.figures is FIGURES and FAMILY.run is run
    assert set(run(cols())) == OUT_KEYS  # a FigureSpec for each returned key and nothing else
    assert len(OUT_KEYS) == len(FIGURES)
    for key in ("training.wall_days", "training.goodput", "training.checkpoint_days", "training.failure_days",
                "training.eval_days", "training.warmup_days", "training.checkpoint_interval_min"):
        assert key in OUT_KEYS
    for f in FIGURES:
        assert f.label and f.how and f.unit and f.provenance == "computed"
        assert f.ranged == (f.key == "training.wall_days")
    units = {f.key: f.unit for f in FIGURES}
    assert units["training.wall_days"] == "days" and units["training.goodput"] == "fraction"
    assert units["training.checkpoint_interval_min"] == "min"
    assert {f.key: f.better for f in FIGURES}["training.goodput"] == "higher"


def test_inputs_declared_once_with_unique_links_and_columns():
    keys = [i.key for i in INPUTS]
    links = [i.link for i in INPUTS]
    columns = [i.column for i in INPUTS]
    assert len(set(keys)) == len(keys)
    assert len(set(links)) == len(links)
    assert len(set(columns)) == len(columns)
    for i in INPUTS:
        assert i.section == "goodput" and i.name
        assert i.link.startswith("g") and len(i.link) <= 6
        assert i.column == f"goodput_{i.name}"
        assert i.label and i.help and i.provenance in ("published", "assumed")
        assert i.default is not None and i.derived is None
        if i.kind == "bool":
            continue
        assert i.kind == "float" and i.unit
        assert i.low < i.high
        assert i.low <= i.default <= i.high
    published = {i.key for i in INPUTS if i.provenance == "published"}
    assert "goodput.failures_per_1k_gpu_days" in published
    for key in published:  # a published default names its source
        assert "20" in BY_KEY[key].help
    assert BY_KEY["goodput.enabled"].default is True


def test_failure_default_is_llama3():
    # Dubey et al. 2024 §3.3.4: 419 unexpected interruptions, 54 days, 16,384 GPUs
    assert BY_KEY["goodput.failures_per_1k_gpu_days"].default == pytest.approx(419 / (54 * 16384) * 1000, abs=5e-4)
    # Dubey et al. 2024 §3.3.1: 2 TB/s sustained for 16,384 GPUs
    assert BY_KEY["goodput.checkpoint_GBps_per_gpu"].default == pytest.approx(2000 / 16384, abs=5e-4)


# --- hand-computed values -----------------------------------------------------------------------------

def test_hand_computed_small_case():
    c = cols(**{
        "training.ideal_wall_days": 10.0, "gpus": 1000.0, "params": 5e11,
        "goodput_failures_per_1k_gpu_days": 1.0, "goodput_restart_min": 15.0,
        "goodput_checkpoint_GBps_per_gpu": 0.1, "goodput_checkpoint_bytes_per_param": 15.0,
        "goodput_checkpoint_interval_min": 0.0, "goodput_eval_share": 0.02, "goodput_warmup_h": 1.2,
    })
    out = run(c)
    # λ = 1/1000 per GPU-day × 1000 GPUs = 1 failure/day → MTBF M = 1 day = 1440 min
    # δ = 5e11 params × 15 B / (1000 GPUs × 0.1e9 B/s) = 7.5e12 B / 1e11 B/s = 75 s = 1.25 min
    assert float(out["training.checkpoint_write_s"]) == pytest.approx(75.0, rel=1e-12)
    # τ* = sqrt(2 δ M) = sqrt(2 × 1.25 × 1440) = sqrt(3600) = 60 min
    assert float(out["training.checkpoint_interval_min"]) == pytest.approx(60.0, rel=1e-12)
    # eval = 0.02 × 10 = 0.2 days; work W = 10.2 days
    assert float(out["training.eval_days"]) == pytest.approx(0.2, rel=1e-12)
    # checkpoints: W/τ = 10.2 × 24 = 244.8 writes × 75 s = 18,360 s = 0.2125 days
    assert float(out["training.checkpoint_days"]) == pytest.approx(0.2125, rel=1e-12)
    # failures: λ·W = 10.2, each losing τ/2 + R = 30 + 15 = 45 min → 459 min = 0.31875 days
    assert float(out["training.failures"]) == pytest.approx(10.2, rel=1e-12)
    assert float(out["training.failure_days"]) == pytest.approx(0.31875, rel=1e-12)
    # start-up: 1.2 h = 0.05 days
    assert float(out["training.warmup_days"]) == pytest.approx(0.05, rel=1e-12)
    # wall = 10 + 0.2 + 0.2125 + 0.31875 + 0.05 = 10.78125 = 345/32 days; goodput = 10/(345/32) = 64/69
    assert float(out["training.wall_days"]) == pytest.approx(10.78125, rel=1e-12)
    assert float(out["training.goodput"]) == pytest.approx(64 / 69, rel=1e-12)


def test_hand_computed_fixed_interval():
    c = cols(**{
        "training.ideal_wall_days": 10.0, "gpus": 1000.0, "params": 5e11,
        "goodput_failures_per_1k_gpu_days": 1.0, "goodput_restart_min": 15.0,
        "goodput_checkpoint_GBps_per_gpu": 0.1, "goodput_checkpoint_bytes_per_param": 15.0,
        "goodput_checkpoint_interval_min": 120.0, "goodput_eval_share": 0.0, "goodput_warmup_h": 0.0,
    })
    out = run(c)
    # τ = 120 min = 1/12 day; W = 10 days → 120 writes × 75 s = 9,000 s = 0.1041666 days
    assert float(out["training.checkpoint_days"]) == pytest.approx(9000 / 86400, rel=1e-12)
    # 10 failures × (60 + 15) min = 750 min = 0.5208333 days
    assert float(out["training.failure_days"]) == pytest.approx(750 / 1440, rel=1e-12)
    assert float(out["training.wall_days"]) == pytest.approx(10 + 9000 / 86400 + 750 / 1440, rel=1e-12)
    # and worse than the optimum, 60 min: 10 × (1.25/60 + 30/1440) = 0.41666 days of checkpoints + lost work
    optimum = wall({**c, "goodput_checkpoint_interval_min": np.asarray(0.0)})
    assert optimum == pytest.approx(10 + 10 * (1.25 / 60 + 30 / 1440) + 10 * 15 / 1440, rel=1e-12)
    assert optimum < float(out["training.wall_days"])


def test_no_failures_means_one_final_checkpoint():
    out = run(cols(goodput_failures_per_1k_gpu_days=0.0, goodput_eval_share=0.0, goodput_warmup_h=0.0))
    # MTBF infinite → τ* infinite → at most the run: one checkpoint of δ = 175e9 × 14 / (1024 × 0.122e9) s
    delta_s = 175e9 * 14 / (1024 * 0.122e9)
    assert float(out["training.checkpoint_interval_min"]) == pytest.approx(30 * 1440, rel=1e-12)
    assert float(out["training.checkpoint_days"]) == pytest.approx(delta_s / 86400, rel=1e-12)
    assert float(out["training.failure_days"]) == 0.0
    assert float(out["training.wall_days"]) == pytest.approx(30 + delta_s / 86400, rel=1e-12)


def test_llama3_cross_check():
    # 405B on 16,384 GPUs with the Llama 3 defaults: Dubey et al. 2024 report > 90% effective training time
    out = run(cols(**{"training.ideal_wall_days": 54.0, "gpus": 16384.0, "params": 405e9}))
    assert 0.85 < float(out["training.goodput"]) < 0.95
    assert float(out["training.failures"]) == pytest.approx(419 * (1 + 0.01), rel=0.01)  # 54 days × 1.01


# --- the off switch -----------------------------------------------------------------------------------

@SETTINGS
@given(rows())
def test_off_switch_gives_exactly_the_ideal(c):
    c["goodput_enabled"] = np.asarray(0.0)
    out = run(c)
    assert float(out["training.wall_days"]) == float(c["training.ideal_wall_days"])
    assert float(out["training.goodput"]) == 1.0
    for key in OUT_KEYS - {"training.wall_days", "training.goodput"}:
        assert float(out[key]) == 0.0


def test_off_switch_mixed_rows():
    ideal = np.array([1.0, 2.5, 30.0, 400.0])
    out = run(cols(**{"training.ideal_wall_days": ideal, "goodput_enabled": np.array([0.0, 1.0, 0.0, 1.0])}))
    w = out["training.wall_days"]
    assert w[0] == ideal[0] and w[2] == ideal[2]
    assert w[1] > ideal[1] and w[3] > ideal[3]


# --- robustness and monotonicity ----------------------------------------------------------------------

@SETTINGS
@given(rows())
def test_finite_and_consistent(c):
    out = run(c)
    for key, v in out.items():
        assert np.isfinite(v).all(), key
        assert (v >= 0).all(), key
    ideal = float(c["training.ideal_wall_days"])
    parts = ideal + sum(float(out[f"training.{p}_days"]) for p in ("eval", "checkpoint", "failure", "warmup"))
    assert float(out["training.wall_days"]) == pytest.approx(parts, rel=1e-12)
    assert float(out["training.wall_days"]) >= ideal
    assert 0.0 < float(out["training.goodput"]) <= 1.0


@pytest.mark.parametrize("gpus", [1.0, 8.0, 1e6])
def test_extreme_bounds_are_finite(gpus):
    for pick in (lambda i: i.low, lambda i: i.high):
        c = cols(**{i.column: pick(i) for i in INPUTS if i.kind == "float"})
        c["gpus"] = np.asarray(gpus)
        for params in (1e5, 1e15):
            c["params"] = np.asarray(params)
            for ideal in (0.0, 1e-6, 1e4):
                c["training.ideal_wall_days"] = np.asarray(ideal)
                for key, v in run(c).items():
                    assert np.isfinite(v).all(), (key, params, ideal)


@SETTINGS
@given(rows(), st.floats(1.0, 100.0))
def test_more_failures_longer(c, factor):
    base = wall(c)
    old = float(c["goodput_failures_per_1k_gpu_days"])
    new = min(old * factor + 0.01, BY_KEY["goodput.failures_per_1k_gpu_days"].high)
    more = wall({**c, "goodput_failures_per_1k_gpu_days": np.asarray(new)})
    assert more >= base * (1 - 1e-12)
    if float(c["goodput_restart_min"]) >= 1.0 and new - old >= 1e-3:
        assert more > base


@SETTINGS
@given(rows(), st.floats(1.0, 1000.0), st.booleans())
def test_faster_checkpoint_not_longer(c, factor, optimum):
    if optimum:
        c["goodput_checkpoint_interval_min"] = np.asarray(0.0)
    base = wall(c)
    faster = dict(c)
    faster["goodput_checkpoint_GBps_per_gpu"] = c["goodput_checkpoint_GBps_per_gpu"] * factor
    assert wall(faster) <= base * (1 + 1e-12)
    smaller = dict(c)
    smaller["goodput_checkpoint_bytes_per_param"] = c["goodput_checkpoint_bytes_per_param"] / factor
    assert wall(smaller) <= base * (1 + 1e-12)


@SETTINGS
@given(rows())
def test_young_daly_interval_minimises_the_expected_time(c):
    c["goodput_checkpoint_interval_min"] = np.asarray(0.0)
    out = run(c)
    best = float(out["training.wall_days"])
    tau = float(out["training.checkpoint_interval_min"])
    grid = np.concatenate([np.geomspace(1e-3, BY_KEY["goodput.checkpoint_interval_min"].high, 300),
                           tau * np.array([0.5, 0.9, 0.99, 1.01, 1.1, 2.0])])
    grid = grid[(grid > 0) & (grid <= BY_KEY["goodput.checkpoint_interval_min"].high)]
    # all intervals in one vectorised call: the row broadcast against the grid
    trial = dict(c)
    trial["goodput_checkpoint_interval_min"] = grid
    walls = run(trial)["training.wall_days"]
    assert walls.shape == grid.shape
    assert best <= walls.min() * (1 + 1e-12)


def test_young_daly_interval_formula():
    c = cols()
    out = run(c)
    lam = float(c["goodput_failures_per_1k_gpu_days"]) / 1000 * 1024  # per day
    delta_min = 175e9 * float(c["goodput_checkpoint_bytes_per_param"]) / (
        1024 * float(c["goodput_checkpoint_GBps_per_gpu"]) * 1e9) / 60
    assert float(out["training.checkpoint_interval_min"]) == pytest.approx(
        math.sqrt(2 * delta_min * 1440 / lam), rel=1e-12)


# --- vectorisation ------------------------------------------------------------------------------------

@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rows(), min_size=1, max_size=12), st.lists(st.booleans(), min_size=12, max_size=12))
def test_vectorised_rows_equal_single_rows(row_list, switches):
    for r, on in zip(row_list, switches, strict=False):
        r["goodput_enabled"] = np.asarray(float(on))
    table = {k: np.array([float(r[k]) for r in row_list]) for k in row_list[0]}
    together = run(table)
    for n, r in enumerate(row_list):
        alone = run(r)
        for key in OUT_KEYS:
            assert np.ndim(alone[key]) == 0
            assert together[key].shape == (len(row_list),)
            assert together[key][n] == alone[key], key


def test_scalars_broadcast_against_arrays():
    out = run(cols(gpus=np.array([8.0, 1024.0, 16384.0])))
    for key in OUT_KEYS:
        assert out[key].shape == (3,), key
    assert np.all(np.diff(out["training.wall_days"]) > 0)  # more GPUs, same ideal days: more failures


# --- the rule -----------------------------------------------------------------------------------------

def test_first_order_regime_warning():
    (rule,) = RULES
    assert rule.severity == "warning" and rule.code == "goodput_first_order"
    assert rule.key in BY_KEY
    assert not bool(rule.broken(cols()))
    # 100 failures per 1,000 GPU-days on 100,000 GPUs: λ = 10,000/day, MTBF 0.144 min < 15 min restart
    bad = cols(gpus=1e5, goodput_failures_per_1k_gpu_days=100.0)
    assert bool(rule.broken(bad))
    out = run(bad)
    # 30.3 days of work × 10,000 failures/day × (τ/2 + 15 min) ≈ 4.5 million minutes: large but finite
    assert np.isfinite(out["training.wall_days"]) and float(out["training.wall_days"]) > 100 * 30
    row = {k: float(v) for k, v in bad.items()}
    text = rule.message(row)
    assert "0.144 min" in text and "optimistic" in text
    # switched off: no warning
    assert not bool(rule.broken(cols(gpus=1e5, goodput_failures_per_1k_gpu_days=100.0, goodput_enabled=0.0)))
    # 10 GPUs: λ = 1/day, MTBF 1 day > 15 min; 1,000 GPUs: λ = 100/day, MTBF 14.4 min < 15 min
    mixed = cols(gpus=np.array([10.0, 1e3]), goodput_failures_per_1k_gpu_days=100.0)
    assert rule.broken(mixed).tolist() == [False, True]
