"""validate's headline counts the fits the simulator's plans use: a lone rank's collectives, fits the simulator does
not read and an emulated dtype's fits are re-measured and shown apart, out of it (calibration/validate_scope.py)."""

from __future__ import annotations

import pytest
from test_calibration_fit import collective_rows, gemm_rows

from calibration import validate, validate_points, validate_scope, validate_summary
from calibration.profile_writer import write_profile
from simulator.profile import load_profile

LONE = "fits.collectives.all_reduce.by_world.1"
GEMM_FP32, GEMM_BF16 = "fits.compute.gemm.cpu/fp32", "fits.compute.gemm.cpu/bf16"
EMULATING_CPU = {"cpu_model": "T", "emulated": ["bf16"], "probe": {"cpu.fp32.gflops": 200.0, "cpu.bf16.gflops": 2.0}}


def slower(match, factor: float):
    """A fake remeasure: the rows `match` picks come back `factor` times slower, the rest as measured."""
    def remeasure(rows_in, nproc=None):
        return [{**r, "median_s": r["median_s"] * factor} if match(r) else r for r in rows_in]
    return remeasure


def test_a_lone_ranks_collective_is_shown_apart_and_the_used_fits_make_the_headline(tmp_path, monkeypatch, capsys):
    rows = gemm_rows() + collective_rows("all_reduce", 1, 20e-6, 5.0, floor_s=30e-6) \
        + collective_rows("all_reduce", 2, 50e-6, 2.3)
    path = write_profile(tmp_path, rows, {"cpu_model": "T"})
    lone_slower = slower(lambda r: r["world_size"] == 1 and r["bench"] == "all_reduce", 1.6)
    results = validate_points.compare(load_profile(path), lone_slower)
    section = {r["fit"]: r["section"] for r in results}
    assert section == {GEMM_FP32: "headline", "fits.collectives.all_reduce.by_world.2": "headline",
                       LONE: "unused"}
    assert all("lone rank" in r["why"] for r in results if r["fit"] == LONE)
    summary = validate_summary.summarize(results)
    lone = summary["sections"]["unused"]
    assert lone["n_points"] == sum(r["fit"] == LONE for r in results) > 0 and lone["mape_pct"] > 30
    assert summary["n_points"] == sum(r["fit"] != LONE for r in results) and summary["mape_pct_overall"] < 10
    assert summary["mape_pct_all"] > summary["mape_pct_overall"]  # the lone rank's error is shown, not pooled in
    assert LONE not in summary["mape_pct_by_fit"] and not summary["by_fit"][LONE]["counted"]

    monkeypatch.setattr(validate, "_load_remeasure", lambda: lone_slower)
    out = tmp_path / "v.md"
    assert validate.main([str(path), "--nproc", "2", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Headline MAPE (what the plans use" in text and "beside a repeatability floor of" in text
    apart = text.split("Not in the headline, feeds no simulator figure")[1]
    assert f"| {LONE} |" in apart and GEMM_FP32 not in apart
    assert "changes the device the simulator plans on" in text
    capsys.readouterr()


def test_an_emulated_dtypes_fits_are_shown_apart_with_the_reason(tmp_path):
    bf16 = {"overhead_s": 5e-6, "achieved_tflops": 0.002, "x_half_flops": 3e6, "hill_exponent": 1.4}
    path = write_profile(tmp_path, gemm_rows() + gemm_rows(bf16, dtype="bf16"), EMULATING_CPU)
    prof = load_profile(path)
    results = validate_points.compare(prof, slower(lambda r: r["dtype"] == "bf16", 2.0))
    assert {r["fit"]: r["section"] for r in results} == {GEMM_FP32: "headline", GEMM_BF16: "emulated"}
    why = next(r["why"] for r in results if r["fit"] == GEMM_BF16)
    # the CPU device plans bf16 at this fit's throughput: it feeds a figure, and is still kept out of the headline
    assert why.startswith("bf16 is emulated on this cpu (probe: 2 GFLOP/s against 200 in fp32") and "; feeds simulator" in why
    summary = validate_summary.summarize(results)
    assert summary["sections"]["emulated"]["mape_pct"] == pytest.approx(50, abs=5) and summary["mape_pct_overall"] < 10
    assert summary["n_points"] == sum(r["fit"] == GEMM_FP32 for r in results)
    text = validate_summary.render_markdown(results, summary)
    assert f"| {GEMM_BF16} | {summary['sections']['emulated']['n_points']} |" in text.split("an emulated dtype (")[1]


def test_the_probes_figures_decide_per_device():
    prof = {"environment": EMULATING_CPU}
    assert validate_scope.emulated_reason(prof, "cpu", "bf16") is not None
    assert validate_scope.emulated_reason(prof, "cpu", "fp32") is None
    fast = {"environment": {**EMULATING_CPU, "probe": {**EMULATING_CPU["probe"], "cuda.fp32.gflops": 5e4,
                                                        "cuda.bf16.gflops": 4e5}}}
    assert validate_scope.emulated_reason(fast, "cuda", "bf16") is None  # marked for the CPU, fast on the GPU
    assert validate_scope.emulated_reason({"environment": {"emulated": []}}, "cpu", "bf16") is None


def test_which_fits_count_follows_what_the_simulator_reads(tmp_path):
    """The device reads the all-reduce at the largest world above one and no all-gather: a hand list of names could
    not tell world 2 from world 4; asking the simulator does."""
    rows = gemm_rows() + collective_rows("all_reduce", 2, 50e-6, 2.3) + collective_rows("all_reduce", 4, 80e-6, 1.9) \
        + collective_rows("all_gather", 2, 50e-6, 2.0)
    prof = load_profile(write_profile(tmp_path, rows, {"cpu_model": "T"}))
    sections, how = validate_scope.classify(prof, validate_points.heldout_targets(prof))
    assert {k: v[0] for k, v in sections.items()} == {
        GEMM_FP32: "headline", "fits.collectives.all_reduce.by_world.4": "headline",
        "fits.collectives.all_reduce.by_world.2": "unused", "fits.collectives.all_gather.by_world.2": "unused",
        "fits.collectives.all_reduce.cross_world": "unused"}  # pooled over worlds: the device reads none
    assert sections["fits.collectives.all_gather.by_world.2"][1].startswith("feeds no simulator figure")
    assert "device_from_profile" in how


def test_without_a_device_every_fit_counts_and_says_why(tmp_path, monkeypatch):
    rows = gemm_rows() + collective_rows("all_gather", 2, 50e-6, 2.0)
    prof = load_profile(write_profile(tmp_path, rows, {"cpu_model": "T"}))

    def no_device(profile):
        raise ValueError("no fitted GEMM throughput")

    monkeypatch.setattr(validate_scope, "device_from_profile", no_device)
    sections, how = validate_scope.classify(prof, validate_points.heldout_targets(prof))
    assert {v[0] for v in sections.values()} == {"headline"} and len(sections) == 2
    assert how.startswith("every fit counts: the simulator builds no device") and "no fitted GEMM" in how
