"""Bounded memory: an interleaved group is split into parts that fit a byte budget (fit groups whole), each
point prepared only when its part (or, over budget, its sample) needs it, and dropped after."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.bench.base import Measurement, Prepared
from calibration.bench.footprint import footprint
from calibration.bench.resident import Resident, partition, union_bytes
from calibration.rows import Step, step_key
from calibration.timing import TimingConfig, time_interleaved

MiB = 1 << 20


def test_gemms_that_differ_only_in_m_share_their_weights_in_the_estimate():
    small, big = (Step("gemm", "cpu", "fp32", {"m": m, "n": 8192, "k": 8192}) for m in (4, 16))
    f_small, f_big = footprint(small), footprint(big)
    weights = 8192 * 8192 * 4
    assert f_small[("gemm.b", 8192, 8192, "fp32", "cpu")] == weights  # B[k,n] fp32
    assert union_bytes([f_small, f_big]) == weights + (4 + 16) * 8192 * 4 * 2  # B once, A and C each
    bf16 = footprint(Step("gemm", "cpu", "bf16", {"m": 4, "n": 8192, "k": 8192}))
    assert union_bytes([f_small, bf16]) == weights * 3 // 2 + 4 * 8192 * (4 + 2) * 2  # another dtype: its own B


def test_decode_cache_bytes_follow_the_context():
    step = Step("decode", "cpu", "fp32", {"layers": 4, "hidden": 512, "heads": 8, "vocab": 1000, "batch": 8,
                                          "context": 2047})
    cache = footprint(step)[("decoder.cache", step.key())]
    assert cache == 2 * 4 * 8 * 2048 * 512 * 4  # K and V, 4 layers, 8 sequences, 2048 positions, fp32: 256 MiB


def _steps(sizes_MiB: list[int], bench: str = "gemm", dtype: str = "fp32") -> tuple[list[Step], list[dict]]:
    steps = [Step(bench, "cpu", dtype, {"i": i}) for i in range(len(sizes_MiB))]
    return steps, [{("x", s.key()): mb * MiB} for s, mb in zip(steps, sizes_MiB, strict=True)]


def test_partition_keeps_fit_groups_whole_and_splits_only_what_cannot_fit():
    a, fa = _steps([100, 100, 100], "gemm", "fp32")
    b, fb = _steps([300, 300], "gemm", "bf16")
    c, fc = _steps([50], "prefill", "fp32")
    parts = partition(a + b + c, fa + fb + fc, 700 * MiB)
    assert parts == [[0, 1, 2, 5], [3, 4]]  # prefill joins the first part with room
    big, fbig = _steps([400, 400, 400, 2000])
    assert partition(big, fbig, 1000 * MiB) == [[0, 1], [2], [3]]  # split in order; an oversize point alone


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 600)), min_size=1, max_size=30),
       st.integers(100, 1200))
def test_every_point_in_exactly_one_part_within_budget(points, budget_MiB):
    steps = [Step("gemm", "cpu", ["fp32", "bf16", "fp16", None][g], {"i": i}) for i, (g, _) in enumerate(points)]
    fps = [{("x", s.key()): mb * MiB} for s, (_, mb) in zip(steps, points, strict=True)]
    parts = partition(steps, fps, budget_MiB * MiB)
    assert sorted(i for part in parts for i in part) == list(range(len(steps)))
    for part in parts:
        assert len(part) == 1 or union_bytes([fps[i] for i in part]) <= budget_MiB * MiB


def test_over_budget_points_take_turns_and_are_rebuilt_untimed():
    """Three 40-byte points in a 100-byte budget: the timing loop asks each before every sample; a dropped point
    is built again and gets one untimed call first, and no more than two are ever held."""
    resident = Resident(100)
    calls: dict[int, int] = {0: 0, 1: 0, 2: 0}
    held_max = [0]

    def build(i: int) -> Prepared:
        held_max[0] = max(held_max[0], len(resident.resident) + 1)
        return Prepared(lambda: calls.__setitem__(i, calls[i] + 1), "cpu", lambda t: Measurement(t))

    points = [resident.point(i, "cpu", lambda i=i: build(i), {("x", i): 40}) for i in range(3)]
    cfg = TimingConfig(repeats=4, warmup=1, max_s=10.0, min_repeats=4)
    done: dict[int, object] = {}
    time_interleaved(points, cfg, lambda i, r: done.__setitem__(i, r))
    assert all(len(done[i]) == 4 for i in range(3))
    assert held_max[0] <= 2 and resident.peak_bytes <= 100
    rebuilt = sum(p.builds for p in points) - 3
    assert rebuilt > 0
    # every call: 1 warm-up, 4 samples, one untimed call after each rebuild
    assert sum(calls.values()) == 3 * (1 + 4) + rebuilt


def test_a_group_over_budget_runs_in_parts_with_one_progress_and_every_row():
    from calibration.bench.registry import execute_interleaved
    from calibration.timing import TINY

    steps = [Step("gemm", "cpu", dt, {"m": s, "n": s, "k": s}) for dt in ("fp32", "bf16") for s in (64, 128)]
    steps += [Step("prefill", "cpu", "fp32", {"layers": 1, "hidden": 64, "heads": 2, "vocab": 50, "batch": 1,
                                              "prompt": 8})]
    budget = union_bytes([footprint(s) for s in steps[:2]])  # the fp32 GEMMs fill a part
    rows: list[dict] = []
    reports: list[dict] = []
    execute_interleaved(steps, TINY, "test", rows.append, on_round=lambda new, rep: reports.append(rep),
                        budget_bytes=budget)
    assert sorted(step_key(r) for r in rows) == sorted(s.key() for s in steps)
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    parts = {tuple(r["extra"]["interleaved_part"]) for r in rows}
    assert len(parts) >= 2 and all(n == len(parts) for _, n in parts)
    sampling = [r for r in reports if r["phase"] == "sampling"]
    assert [r["samples"] for r in sampling] == sorted(r["samples"] for r in sampling)  # never goes back
    assert [r["round"] for r in sampling] == list(range(1, len(sampling) + 1))
    assert sampling[-1]["points_done"] == sampling[-1]["points"] == len(steps)
    assert sampling[-1]["samples"] == sampling[-1]["samples_planned"] == sum(r["repeats"] for r in rows)


def test_prepared_point_is_dropped_when_it_finishes():
    resident = Resident(1 << 30)
    p = resident.point(0, "cpu", lambda: Prepared(lambda: None, "cpu", lambda t: Measurement(t),
                                                  contextlib.nullcontext), {("x", 0): 10})
    built_now = p.get()[2]
    assert built_now and resident.resident
    assert p.get()[2] is False  # resident: not built again
    p.release()
    assert not resident.resident and p.prepared is None and p.finish is not None
