import numpy as np
import pytest

from simulator.training import training_columns
from simulator.training.codes import SYNC_PS, SYNC_RING, SYNC_TREE
from simulator.training.comm import (
    hierarchical_allreduce_s,
    p2p_s,
    parameter_server_s,
    ring_allgather_s,
    ring_allreduce_s,
    tree_allreduce_s,
)
from simulator.training.examples import gpt_columns
from simulator.training.step import bubble_fraction
from simulator.training.sync import dp_sync_s

N, ALPHA, BW = 1e9, 1e-5, 1e11  # 1 GB message, 10 µs, 100 GB/s


def test_ring_tree_allgather_p2p_hand_computed():
    # Thakur, Rabenseifner & Gropp 2005
    assert ring_allreduce_s(N, 8, ALPHA, BW) == pytest.approx(2 * 7 * 1e-5 + 2 * 7 / 8 * 1e-2)
    assert tree_allreduce_s(N, 8, ALPHA, BW) == pytest.approx(2 * 3 * (1e-5 + 1e-2))
    assert tree_allreduce_s(N, 5, ALPHA, BW) == pytest.approx(2 * 3 * (1e-5 + 1e-2))  # ⌈lg 5⌉ = 3
    assert ring_allgather_s(N, 4, ALPHA, BW) == pytest.approx(3 * 1e-5 + 0.75 * 1e-2)
    assert p2p_s(N, ALPHA, BW) == pytest.approx(1e-5 + 1e-2)
    # ring wins for large messages, the tree for small ones with many ranks
    assert ring_allreduce_s(N, 64, ALPHA, BW) < tree_allreduce_s(N, 64, ALPHA, BW)
    assert tree_allreduce_s(1e3, 64, ALPHA, BW) < ring_allreduce_s(1e3, 64, ALPHA, BW)


def test_parameter_server_hand_computed():
    # 2α + max(2M/B_worker, 2·P·M/(S·B_server)); 16 workers, 1 GB each
    one = parameter_server_s(N, 16 * N, 1, ALPHA, BW, BW)
    assert one == pytest.approx(2e-5 + 2 * 16 * 1e-2)          # one server: its link is the bottleneck
    four = parameter_server_s(N, 16 * N, 4, ALPHA, BW, BW)
    assert four == pytest.approx(2e-5 + 2 * 16 / 4 * 1e-2)
    many = parameter_server_s(N, 16 * N, 64, ALPHA, BW, BW)
    assert many == pytest.approx(2e-5 + 2 * 1e-2)              # enough servers: the worker link binds


def test_hierarchical_allreduce_reduces_to_flat_rings():
    intra, inter = (1e-5, 2e11), (2e-5, 2e10)
    # one node: the intra-node ring
    assert hierarchical_allreduce_s(N, 8, 8, *intra, *inter) == pytest.approx(ring_allreduce_s(N, 8, *intra))
    # one rank per node: the inter-node ring (or tree)
    flat = ring_allreduce_s(N, 16, *inter)
    assert hierarchical_allreduce_s(N, 16, 1, *intra, *inter) == pytest.approx(flat)
    assert hierarchical_allreduce_s(N, 16, 1, *intra, *inter, tree=True) == pytest.approx(
        tree_allreduce_s(N, 16, *inter))
    # 4 nodes × 8: intra reduce-scatter + all-gather, inter ring on the 1/8 shard
    got = hierarchical_allreduce_s(N, 32, 8, *intra, *inter)
    expect = 2 * ring_allgather_s(N, 8, *intra) + ring_allreduce_s(N / 8, 4, *inter)
    assert got == pytest.approx(expect)


def test_dp_sync_methods_and_zero3():
    common = {"grad_bytes_per_gpu": N, "dp": 16.0, "ranks_per_node": 1.0, "ps_servers": 4.0, "gpus": 16.0,
                  "intra_latency_s": 1e-5, "intra_Bps": 2e11, "inter_latency_s": ALPHA, "inter_Bps": BW}
    ring = dp_sync_s(sync=SYNC_RING, zero_stage=0.0, **common)
    tree = dp_sync_s(sync=SYNC_TREE, zero_stage=0.0, **common)
    ps = dp_sync_s(sync=SYNC_PS, zero_stage=0.0, **common)
    assert ring == pytest.approx(ring_allreduce_s(N, 16, ALPHA, BW))
    assert tree == pytest.approx(tree_allreduce_s(N, 16, ALPHA, BW))
    assert ps == pytest.approx(parameter_server_s(N, 16 * N, 4, ALPHA, BW, BW))
    zero3 = dp_sync_s(sync=SYNC_RING, zero_stage=3.0, **common)
    assert zero3 == pytest.approx(ring_allreduce_s(1.5 * N, 16, ALPHA, BW))
    assert dp_sync_s(sync=SYNC_RING, zero_stage=0.0, **{**common, "dp": 1.0}) == 0.0


def test_bubble_fractions():
    assert bubble_fraction(8, 32, 1) == pytest.approx(7 / 32)
    assert bubble_fraction(8, 32, 4) == pytest.approx(7 / 128)
    assert bubble_fraction(1, 32, 1) == 0.0


@pytest.mark.parametrize(("pp", "v", "m"), [(8.0, 1.0, 16.0), (8.0, 2.0, 16.0), (4.0, 3.0, 8.0)])
def test_step_bubble_is_fraction_of_ideal_time(pp, v, m):
    from simulator.training.model import _columns
    from simulator.training.step import step_times

    dp = 4.0
    cols = _columns(gpt_columns(96.0, 12288.0, 96.0, tp=8.0, pp=pp, dp=dp, gpus=8 * pp * dp, micro_batch=1.0,
                                global_batch=m * dp, interleave=v))
    st = step_times(cols)
    ideal = st.compute_s - st.optimizer_s + st.tp_comm_s
    np.testing.assert_allclose(st.pp_bubble_s, (pp - 1) / (v * m) * ideal, rtol=1e-12)


def test_tensor_parallel_traffic_counts():
    base = {"tp": 8.0, "pp": 1.0, "dp": 1.0, "gpus": 8.0, "global_batch": 4.0, "micro_batch": 1.0}
    full = training_columns(gpt_columns(24.0, 4096.0, 32.0, recompute=2.0, **base))
    none = training_columns(gpt_columns(24.0, 4096.0, 32.0, recompute=0.0, **base))
    # 2 all-reduces forward + 2 backward per layer and micro-batch; full recomputation repeats the
    # forward pair
    assert full["tp_comm_s"][0] / none["tp_comm_s"][0] == pytest.approx(6 / 4)
    msg = 2048 * 4096 * 2.0
    one = ring_allreduce_s(msg, 8, 10e-6, 300e9 * 0.77)
    assert none["tp_comm_s"][0] == pytest.approx(4 * one * 24 * 4)
    single = training_columns(gpt_columns(24.0, 4096.0, 32.0, **{**base, "tp": 1.0, "gpus": 1.0}))
    assert single["tp_comm_s"][0] == 0.0
