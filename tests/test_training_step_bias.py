"""Issue 19: terms added to the step model where published rows showed a bias (each fails on the old step)."""

import copy

import pytest

from benchmarks.published_rows import load_sets
from simulator import Scenario, evaluate

ROWS = {r["id"]: r for r in load_sets("training_throughput")}


def _plan(scenario):
    return evaluate(Scenario.from_dict(scenario))


def test_zero3_gathers_parameters_for_every_micro_batch():
    # PyTorch FSDP (Zhao et al. 2023 §3): under gradient accumulation every micro-batch all-gathers and
    # reduce-scatters again, so 3 accumulation steps move 3x the traffic of 1 (MPT-13B row, FSDP FULL_SHARD)
    one = copy.deepcopy(ROWS["mpt-13b-s2048-8gpu"]["scenario"])
    one["training"]["global_batch_seqs"] = 16  # micro-batch 2 on 8 GPUs: 1 micro-batch per step
    one["cluster"]["dp_overlap"] = 0.0
    three = copy.deepcopy(one)
    three["training"]["global_batch_seqs"] = 48  # 3 micro-batches per step, as published
    a, b = _plan(one), _plan(three)
    assert float(b.value("training.microbatches")) == 3.0
    assert float(b.value("training.dp_exposed_s")) == pytest.approx(3.0 * float(a.value("training.dp_exposed_s")))
