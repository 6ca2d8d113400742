"""The recovery benchmark's reading of what it imposed (benchmarks/multihost.py), without test hosts."""

from __future__ import annotations

from benchmarks.multihost import bottleneck_MBps, markdown


def test_the_slower_host_limits_a_two_way_collective_and_the_root_a_broadcast():
    assert bottleneck_MBps("all_reduce", [1000.0, 200.0]) == 25.0
    assert bottleneck_MBps("all_gather", [200.0, 1000.0]) == 25.0
    assert bottleneck_MBps("broadcast", [1000.0, 200.0]) == 125.0  # rank 0 sends, host 1 only receives
    assert bottleneck_MBps("all_reduce", [0.0, 0.0]) == 0.0  # nothing imposed: no target


def test_the_table_says_within_10_percent_or_not_and_leaves_unshaped_rows_unjudged():
    fit = {"busbw_MBps": 23.0, "alpha_us": 250.0, "model": "alpha_beta", "heldout_mape_pct": 1.0}
    text = markdown([{"rates_mbit": [200.0, 200.0], "rc": [0, 0], "fits": {"all_reduce": fit,
                                                                           "reduce_scatter": {**fit, "busbw_MBps": 12.0}}},
                     {"rates_mbit": [0.0, 0.0], "rc": [0, 0], "fits": {"all_reduce": {**fit, "busbw_MBps": 900.0}}},
                     {"rates_mbit": [200.0, 200.0], "rc": [1, 1], "fits": {}}])
    rows = text.splitlines()[2:]
    assert "| all_reduce | 23.0 | -8.0% | yes |" in rows[0] and "| reduce_scatter | 12.0 | -52.0% | no |" in rows[1]
    assert "unshaped / unshaped" in rows[2] and "| - |" in rows[2]
    assert "(no fit: exit [1, 1])" in rows[3]
