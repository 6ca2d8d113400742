import numpy as np
import pytest

from simulator.training import DEFAULT_CONSTANTS, training_columns
from simulator.training.codes import SYNC_ASYNC
from simulator.training.examples import gpt_columns
from simulator.training.sync import updates_multiplier


def _columns(**kw):
    base = {"tp": 1.0, "pp": 1.0, "dp": 32.0, "gpus": 32.0, "global_batch": 256.0, "micro_batch": 4.0,
            "ps_servers": 8.0}
    return gpt_columns(24.0, 2048.0, 16.0, **{**base, **kw})


def _run(**kw):
    return training_columns(_columns(**kw))


def test_async_has_no_straggler_wait_and_more_iterations():
    sync = _run(sync=2.0, straggler_cv=0.1)
    asyn = _run(sync=3.0, straggler_cv=0.1, async_kappa=0.02)
    assert asyn["straggler_s"][0] == 0.0
    assert sync["straggler_s"][0] > 0.0
    assert asyn["iterations"][0] == pytest.approx(sync["iterations"][0] * (1 + 0.02 * 31))
    # same communication (parameter servers), no barrier: faster steps, but more of them
    assert asyn["step_time_s"][0] < sync["step_time_s"][0]


def test_straggler_order_statistics():
    out = _run(sync=0.0, straggler_cv=0.05)
    work = out["compute_s"] + out["tp_comm_s"] + out["pp_bubble_s"] + out["pp_p2p_s"]
    # Gaussian E[max of P] ≈ μ(1 + cv·√(2 ln P))
    assert out["straggler_s"][0] == pytest.approx(work[0] * 0.05 * np.sqrt(2 * np.log(32)))
    assert _run(sync=0.0, straggler_cv=0.05, dp=1.0, gpus=1.0, global_batch=8.0)["straggler_s"][0] == 0.0


def test_sharding_only_matters_for_async():
    for sync in (0.0, 1.0, 2.0):
        sequential, shuffled = _run(sync=sync, sharding=1.0), _run(sync=sync, sharding=0.0)
        assert sequential["iterations"][0] == shuffled["iterations"][0]
    rnd = _run(sync=3.0, async_kappa=0.01, sharding=0.0)["iterations"][0]
    seq = _run(sync=3.0, async_kappa=0.01, sharding=1.0)["iterations"][0]
    assert seq / rnd == pytest.approx(1 + DEFAULT_CONSTANTS.noniid_async_penalty * (1 - 1 / 32))


def test_updates_multiplier_vectorised():
    sync, dp, sharding = np.array([0.0, 3.0, 3.0]), np.array([8.0, 8.0, 1.0]), np.array([1.0, 0.0, 1.0])
    got = updates_multiplier(sync, dp, 0.1, sharding)
    np.testing.assert_allclose(got, [1.0, 1.7, 1.0])
    assert updates_multiplier(SYNC_ASYNC, 1.0, 0.5, 0.0) == 1.0


def test_dp_overlap_hides_gradient_sync():
    none = _run(dp_overlap=0.0)
    full = _run(dp_overlap=1.0)
    assert none["dp_exposed_s"][0] > 0.0
    assert full["dp_exposed_s"][0] < none["dp_exposed_s"][0]
    assert full["step_time_s"][0] < none["step_time_s"][0]


def test_tree_slower_than_ring_for_large_gradients():
    assert _run(sync=1.0)["dp_exposed_s"][0] > _run(sync=0.0)["dp_exposed_s"][0]


def test_energy_cost_co2_hand_computed():
    from simulator.families.cost import run as cost_run

    cols = _columns(gpu_hour_usd=2.0, co2_kg_per_kwh=0.5, electricity_usd_per_kwh=0.1)
    wall_days = training_columns(cols)["wall_days"]
    out = cost_run({**cols, "training.wall_days": wall_days})
    hours = wall_days[0] * 24
    assert out["training.gpu_hours"][0] == pytest.approx(32 * hours)
    assert out["training.cost_usd"][0] == pytest.approx(2.0 * 32 * hours)
    mwh = 32 * 400 * 1.82 * 0.75 * 1.10 * hours / 1e6  # Cottier et al. 2024
    assert out["training.energy_mwh"][0] == pytest.approx(mwh)
    assert out["training.co2_t"][0] == pytest.approx(mwh * 0.5)
    assert out["training.electricity_usd"][0] == pytest.approx(mwh * 1000 * 0.1)
