import ast
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.sweep_speed import random_columns
from simulator.training import OUTPUT_KEYS, params_from_shape, training_columns
from simulator.training.model import CHUNK_ROWS

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw):
    """One valid scenario: divisibility of heads by TP, batch by dp·micro-batch, layers ≥ stages."""
    tp = draw(st.sampled_from([1, 2, 4, 8, 16]))
    heads = tp * draw(st.sampled_from([1, 2, 4, 8]))
    kv_choices = [h for h in (1, 2, 4, 8, 16, 32, 64, 128) if heads % h == 0 and h % tp == 0]
    kv_heads = draw(st.sampled_from(kv_choices or [heads]))
    hidden = heads * draw(st.sampled_from([64, 80, 128]))
    glu = draw(st.sampled_from([0, 1]))
    ffn = hidden * (8 // 3 if glu else 4)
    pp = draw(st.sampled_from([1, 2, 4, 8, 16]))
    layers = pp * draw(st.integers(1, 8))
    dp = draw(st.sampled_from([1, 2, 3, 8, 64, 1000]))
    micro = draw(st.sampled_from([1, 2, 4, 8]))
    interleave = draw(st.sampled_from([1, 2])) if pp > 1 and layers % (2 * pp) == 0 else 1
    global_batch = dp * micro * draw(st.sampled_from([1, 3, 16, 64]))
    vocab = draw(st.sampled_from([32000, 50257, 256000]))
    row = {
        "layers": layers, "hidden": hidden, "heads": heads, "kv_heads": kv_heads, "ffn_hidden": ffn,
        "glu": glu,
        "vocab": vocab, "seq_len": draw(st.sampled_from([128, 2048, 32768])),
        "params": params_from_shape(layers, hidden, heads, kv_heads, ffn, glu, vocab),
        "tokens": draw(st.floats(1e6, 1e14)), "global_batch": global_batch, "micro_batch": micro,
        "recompute": draw(st.sampled_from([0, 1, 2])), "zero_stage": draw(st.sampled_from([0, 1, 2, 3])),
        "sequence_parallel": draw(st.sampled_from([0, 1])), "interleave": interleave,
        "param_bytes": draw(st.sampled_from([1, 2, 4])), "act_bytes": draw(st.sampled_from([1, 2, 4])),
        "gpus": tp * pp * dp, "gpus_per_node": draw(st.sampled_from([1, 4, 8])), "tp": tp, "pp": pp, "dp": dp,
        "sync": draw(st.sampled_from([0, 1, 2, 3])), "ps_servers": draw(st.sampled_from([1, 4, 64])),
        "async_kappa": draw(st.floats(0, 0.2)), "straggler_cv": draw(st.floats(0, 0.5)),
        "sharding": draw(st.sampled_from([0, 1])), "dp_overlap": draw(st.floats(0, 1)),
        "flash_attention": draw(st.sampled_from([0, 1])),
        "peak_tflops": draw(st.floats(10, 5000)), "hbm_GB": draw(st.floats(16, 300)),
        "hbm_GBps": draw(st.floats(300, 10000)), "intra_GBps": draw(st.floats(10, 1000)),
        "intra_latency_s": draw(st.floats(1e-7, 1e-4)), "inter_GBps": draw(st.floats(1, 400)),
        "inter_latency_s": draw(st.floats(1e-7, 1e-3)), "tdp_W": draw(st.floats(50, 1500)),
        "gpu_hour_usd": draw(st.floats(0.1, 20)), "server_power_factor": 1.82, "power_utilization": 0.75,
        "pue": draw(st.floats(1.0, 2.0)), "co2_kg_per_kwh": draw(st.floats(0, 1)),
    }
    return {key: np.array([float(v)]) for key, v in row.items()}


@SETTINGS
@given(scenarios())
def test_outputs_finite_and_utilisation_bounded(c):
    out = training_columns(c)
    assert set(out) == set(OUTPUT_KEYS)
    for key, v in out.items():
        assert v.shape == (1,), key
        assert np.all(np.isfinite(v)), key
    assert 0 < out["mfu"][0] <= out["hfu"][0] <= 1.0
    assert 0 < out["gemm_efficiency"][0] < 1.0
    for key in ("step_time_s", "compute_s", "wall_days", "memory_per_gpu_gb"):
        assert out[key][0] > 0, key
    parts = ("compute_s", "tp_comm_s", "pp_bubble_s", "pp_p2p_s", "dp_exposed_s", "straggler_s")
    for key in parts[1:]:
        assert out[key][0] >= 0, key
    np.testing.assert_allclose(sum(out[key] for key in parts), out["step_time_s"], rtol=1e-12)


@SETTINGS
@given(scenarios(), st.floats(1.001, 100))
def test_time_grows_with_tokens(c, factor):
    more = {**c, "tokens": c["tokens"] * factor}
    assert training_columns(more)["wall_days"][0] > training_columns(c)["wall_days"][0]


@SETTINGS
@given(scenarios(), st.sampled_from([2, 3, 8]))
def test_zero3_more_gpus_never_more_memory(c, factor):
    c = {**c, "zero_stage": np.array([3.0])}
    more = {**c, "dp": c["dp"] * factor, "gpus": c["gpus"] * factor,
            "global_batch": c["global_batch"] * factor}
    assert training_columns(more)["memory_per_gpu_gb"][0] <= training_columns(c)["memory_per_gpu_gb"][0]


@settings(max_examples=10, deadline=None)
@given(st.lists(scenarios(), min_size=2, max_size=12))
def test_vectorised_equals_row_by_row(rows):
    cols = {key: np.concatenate([r[key] for r in rows]) for key in rows[0]}
    together = training_columns(cols)
    for i, row in enumerate(rows):
        alone = training_columns(row)
        for key in OUTPUT_KEYS:
            np.testing.assert_allclose(together[key][i], alone[key][0], rtol=1e-12, err_msg=key)


def test_chunked_long_input_equals_row_by_row():
    n = 2 * CHUNK_ROWS + 17
    cols = random_columns(n, seed=3)
    out = training_columns(cols)
    for i in (0, CHUNK_ROWS - 1, CHUNK_ROWS, n - 1):
        alone = training_columns({key: v[i:i + 1] for key, v in cols.items()})
        for key in OUTPUT_KEYS:
            np.testing.assert_allclose(out[key][i], alone[key][0], rtol=1e-12, err_msg=key)


def test_scalars_broadcast():
    cols = random_columns(5, seed=1)
    cols["tokens"] = 1e12
    assert training_columns(cols)["wall_days"].shape == (5,)


def test_simulator_training_imports_only_numpy_scipy_stdlib():
    allowed = {"numpy", "scipy", "collections", "dataclasses", "math", "typing", "__future__"}
    shared = {"simulator.architecture",  # the shape counts training, serving and quality share: checked here too
              "simulator.data_order"}  # the measured data-order columns' names (it imports the standard library only)
    simulator = Path(__file__).resolve().parents[1].joinpath("simulator")
    for path in [*simulator.joinpath("training").glob("*.py"), simulator / "architecture.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed or name in shared, f"{path.name} imports {name}"


def test_per_row_efficiency_columns_override_constants():
    import dataclasses

    from simulator.training import DEFAULT_CONSTANTS

    cols = random_columns(50, seed=2)
    by_column = training_columns({**cols, "gemm_eff_max": 0.7, "hbm_eff": 0.8})
    by_constants = training_columns(cols, dataclasses.replace(DEFAULT_CONSTANTS, gemm_eff_max=0.7, hbm_eff=0.8))
    for key in OUTPUT_KEYS:
        np.testing.assert_array_equal(by_column[key], by_constants[key], err_msg=key)
    assert np.all(by_column["step_time_s"] != training_columns(cols)["step_time_s"])
