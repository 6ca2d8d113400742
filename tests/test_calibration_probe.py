"""Probe, then plan (calibration/probe.py): fast, no calibration run."""

from __future__ import annotations

import re

import pytest

from calibration.bench.grids import plan
from calibration.budgets import BUDGETS_S
from calibration.probe import (
    EMULATED_POINTS,
    MIN_POINTS,
    SLOW_ENV,
    Probe,
    fit_budget,
    group_key,
    leave_out_to_fit,
    needed_budget_s,
    point_s,
    probe,
    probe_environment,
)
from calibration.rows import DISTRIBUTED_BENCHES

L3 = 32 << 20


def fake(bf16_gflops: float = 80.0, fp32_gflops: float = 90.0) -> Probe:
    return Probe("cpu", {"fp32": fp32_gflops, "bf16": bf16_gflops}, overhead_s=2e-5, mem_GBps=8.0)


def quick_steps(mode: str = "quick"):
    return plan(mode, ["cpu"], {"cpu": [1, 2]}, L3)


def groups(steps):
    out: dict = {}
    for s in steps:
        if s.bench not in DISTRIBUTED_BENCHES:
            out.setdefault(group_key(s), []).append(s)
    return out


def test_probe_measures_positive_throughputs(monkeypatch):
    monkeypatch.delenv(SLOW_ENV, raising=False)
    pr = probe("cpu", sizes=(64, 128))
    assert set(pr.gflops) == {"fp32", "bf16"}
    assert all(g > 0 for g in pr.gflops.values())
    assert pr.overhead_s > 0 and pr.mem_GBps > 0 and pr.slowed == ()
    env = probe_environment({"cpu": pr})
    assert env["probe"]["cpu.fp32.gflops"] > 0 and isinstance(env["emulated"], list)


def test_slow_dtype_hook_marks_emulated(monkeypatch):
    monkeypatch.setenv(SLOW_ENV, "bf16")
    pr = probe("cpu", sizes=(64, 128))
    assert pr.slowed == ("bf16",)
    assert pr.emulated == ["bf16"]
    env = probe_environment({"cpu": pr})
    assert env["emulated"] == ["bf16"] and env["probe"]["cpu.slowed_by_test_hook"] == "bf16"


def test_emulated_threshold():
    assert fake(bf16_gflops=1.0).emulated == ["bf16"]
    assert fake(bf16_gflops=80.0).emulated == []


def test_plan_fits_budget_and_keeps_small_and_largest_points():
    steps = quick_steps()
    pr = fake()
    least = fit_budget(steps, {"cpu": pr}, "quick", 0.0).predicted_s
    budget = (least + fit_budget(steps, {"cpu": pr}, "quick", 1e9).predicted_s) / 2
    p = fit_budget(steps, {"cpu": pr}, "quick", budget)
    assert p.fits and p.predicted_s <= budget < p.unplanned_s and p.dropped > 0
    kept = {s.key() for s in p.steps}
    # the prediction is the sum of what was kept
    dist = [s for s in p.steps if s.bench in DISTRIBUTED_BENCHES]
    assert dist == [s for s in steps if s.bench in DISTRIBUTED_BENCHES]  # distributed points are not planned
    before, after = groups(steps), groups(p.steps)
    for key, group in before.items():
        mine = after.get(key, [])
        assert len(mine) >= min(MIN_POINTS, len(group)), key
        by_cost = sorted(group, key=lambda s: point_s(s, pr, "quick"))
        # the cheapest (overhead) points stay; only the most expensive are dropped
        assert all(s.key() in kept for s in by_cost[:len(mine)]), key
        assert not any(s.key() in kept for s in by_cost[len(mine):]), key
    gemm = [s for s in p.steps if s.bench == "gemm" and s.dtype == "fp32"]
    assert len(gemm) >= MIN_POINTS  # small, plateau and the largest remaining (held out by the fit)
    assert p.steps == [s for s in steps if s.key() in kept]  # order kept


def test_emulated_dtype_gets_a_few_small_points():
    steps = quick_steps()
    pr = fake(bf16_gflops=1.0)
    p = fit_budget(steps, {"cpu": pr}, "quick", 1e9)  # no budget pressure: only the emulation cut
    for key, group in groups(p.steps).items():
        full = groups(steps)[key]
        if key[2] == "bf16":
            assert len(group) == min(EMULATED_POINTS, len(full)), key
            cheapest = sorted(full, key=lambda s: point_s(s, pr, "quick"))[:len(group)]
            assert {s.key() for s in group} == {s.key() for s in cheapest}
        else:
            assert len(group) == len(full), key
    bf16_gemm = [s for s in p.steps if s.bench == "gemm" and s.dtype == "bf16"]
    assert max(2 * s.params["m"] * s.params["n"] * s.params["k"] for s in bf16_gemm) < 2 * 1024**3
    assert "bf16 emulated" in p.describe()


def test_emulated_plan_fits_quick_budget():
    # the machine: ~1 GFLOP/s bf16 against ~89 fp32 on 2 cores
    steps = quick_steps()
    probes = {"cpu": fake(bf16_gflops=1.0, fp32_gflops=89.0)}
    assert fit_budget(steps, probes, "quick", 1e9).unplanned_s > BUDGETS_S["quick"]
    p = fit_budget(steps, probes, "quick", BUDGETS_S["quick"])
    assert p.fits, p.describe()


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_plan_shrinks_with_budget(mode):
    steps = quick_steps(mode)
    probes = {"cpu": fake(fp32_gflops=20.0, bf16_gflops=10.0)}
    sizes, predicted = [], []
    least = fit_budget(steps, probes, mode, 0.0).predicted_s
    most = fit_budget(steps, probes, mode, 1e9).predicted_s
    for budget in [1e9] + [least + f * (most - least) for f in (0.7, 0.4, 0.0)]:
        p = fit_budget(steps, probes, mode, budget)
        sizes.append(len(p.steps))
        predicted.append(p.predicted_s)
        assert p.predicted_s <= budget
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert predicted == sorted(predicted, reverse=True)


def test_profile_with_probe_environment_loads():
    import json

    from calibration.profile_writer import build_profile
    from simulator.profile import load_profile

    pr = Probe("cpu", {"fp32": 89.0, "bf16": 1.0}, {"fp32": {256: 80.0, 512: 89.0}}, slowed=("bf16",))
    env = {"cpu_model": "test", "l3_cache_bytes": L3, **probe_environment({"cpu": pr})}
    loaded = load_profile(json.dumps(build_profile([], env), allow_nan=False).encode())
    environment = loaded["environment"]
    assert environment["emulated"] == ["bf16"] and environment["probe"]["cpu.bf16.gflops"] == 1.0


# ---------------------------------------------------------------- over budget: what fits (issue 18, item 9)


def slow() -> Probe:
    """A machine slow enough that every fit's fewest points exceed a quick budget."""
    return fake(fp32_gflops=2.0, bf16_gflops=1.5)


def test_leaving_out_benches_fits_the_budget_and_never_drops_gemm():
    steps = quick_steps()
    probes = {"cpu": slow()}
    floor = fit_budget(steps, probes, "quick", 0.0)
    budget = floor.predicted_s / 3
    assert not fit_budget(steps, probes, "quick", budget).fits
    benches, plan = leave_out_to_fit(steps, probes, "quick", budget)
    assert benches and "gemm" not in benches and plan.fits and plan.budget_s == budget
    assert {s.bench for s in plan.steps}.isdisjoint(benches) and any(s.bench == "gemm" for s in plan.steps)
    # as little as the budget allows: putting back the last bench picked no longer fits
    back = [s for s in steps if s.bench not in benches[:-1]]
    assert not fit_budget(back, probes, "quick", budget).fits
    assert leave_out_to_fit(steps, probes, "quick", 1.0) is None  # not even GEMM alone fits a second


def test_the_budget_a_plan_needs_fits_it_with_the_quality_share():
    steps = quick_steps()
    probes = {"cpu": slow()}
    over = fit_budget(steps, probes, "quick", 60.0)
    need = needed_budget_s(over.predicted_s, 0.25)
    assert need % 10 == 0 and need * 0.75 >= over.predicted_s > (need - 10) * 0.75
    assert fit_budget(steps, probes, "quick", need * 0.75).fits


def _plan_only(monkeypatch, capsys, *args: str) -> tuple[dict, str]:
    """`python -m calibration run --quick --plan-only` in this process, the probe replaced by `slow()`."""
    import json

    import calibration.probe as probe_module
    from calibration.cli import main

    monkeypatch.setattr(probe_module, "probe", lambda device: slow())
    monkeypatch.delenv("MODELFOLIO_CALIB_GRID", raising=False)
    assert main(["run", "--quick", "--plan-only", "--device", "cpu", "--nproc", "2", "--progress", "jsonl",
                 *args]) == 0
    out, err = capsys.readouterr()
    line = next(x for x in out.splitlines() if x.startswith("PLAN "))
    return json.loads(line[len("PLAN "):]), err


def test_the_cli_warns_before_a_run_predicted_over_its_budget_and_says_what_fits(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # --plan-only writes nothing: no runs/ folder appears
    plan, err = _plan_only(monkeypatch, capsys, "--budget-s", "120")
    assert not plan["fits_budget"] and plan["predicted_s"] > plan["budget_s"] == 120.0
    assert plan["quality_s"] == 30.0 and plan["hardware_budget_s"] == 90.0  # a quarter goes to quality
    advice = plan["advice"]
    benches = ",".join(advice["leave_out"])
    assert advice["leave_out_plan"]["fits_budget"] and advice["leave_out_plan"]["skip"] == advice["leave_out"]
    assert advice["budget_plan"]["fits_budget"] and advice["budget_plan"]["budget_s"] == advice["budget_s"]
    warning = next(x for x in err.splitlines() if x.startswith("warning: "))
    assert "over its 2:00 budget, with every fit already at its fewest points. To fit: leave out" in warning
    assert f"(--skip {benches}: predicted " in warning and f"or allow --budget-s {advice['budget_s']:g} " in warning
    assert "Starting anyway" not in warning and not (tmp_path / "runs").exists()
    # the advice taken: the plan fits and says nothing more
    fitted, err = _plan_only(monkeypatch, capsys, "--budget-s", "120", "--skip", benches)
    assert fitted["fits_budget"] and fitted["advice"] is None and "warning" not in err
    assert fitted["predicted_s"] == pytest.approx(advice["leave_out_plan"]["predicted_s"])


def test_a_run_over_its_budget_is_refused_unless_forced(monkeypatch, capsys, tmp_path):
    """A plan over its budget with every fit at its fewest points is not started: the CLI exits 2 naming the budget
    that fits and the benches to leave out, measuring nothing; --force runs it with a warning."""
    import calibration.probe as probe_module
    from calibration.cli import main
    from calibration.run_config import RunConfig
    from calibration.run_plan import plan_run, print_plan, refused

    monkeypatch.setattr(probe_module, "probe", lambda device: slow())
    monkeypatch.delenv("MODELFOLIO_CALIB_GRID", raising=False)
    cfg = RunConfig("quick", out=None, device="cpu", nproc=2, budget_s=60.0)
    planned = plan_run(cfg, {"l3_cache_bytes": L3})
    assert refused(planned, cfg) and not refused(planned, RunConfig("quick", out=None, budget_s=60.0, force=True))
    print_plan(planned, starting=True, forced=True)
    err = capsys.readouterr().err
    assert "warning: the plan is predicted to take" in err and "Starting anyway (--force)" in err
    assert len(planned.steps) == planned.summary["points"]
    out = tmp_path / "run"
    assert main(["run", "--quick", "--device", "cpu", "--nproc", "2", "--budget-s", "60", "--out", str(out),
                 "--progress", "bar", "--no-profile"]) == 2
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    assert re.search(r"allow --budget-s \d+ \(\d+:\d\d\)", line) and "Not started" in line and "--force" in line
    assert not (out / "rows.jsonl").exists() or not (out / "rows.jsonl").read_text().strip()


def test_grad_bytes_counts_the_modules_parameters_without_building_it():
    import torch

    from calibration.bench.ddp import TinyLM, grad_bytes

    for layers, hidden in [(1, 64), (2, 192), (4, 384), (3, 100)]:
        with torch.device("meta"):
            model = TinyLM(layers, hidden)
        assert grad_bytes(layers, hidden) == 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_planning_the_grids_does_not_import_dynamo():
    """Counting the DDP model's parameters on the meta device imported torch._dynamo: 2-4 s of every plan."""
    import subprocess
    import sys

    code = ("import sys; from calibration.bench.grids import plan; plan('quick', ['cpu'], {'cpu': [1, 2]}, 32 << 20);"
            " print('torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
