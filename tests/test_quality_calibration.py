"""The quality calibration (calibration/quality) and its reader (simulator/quality_curves.py): metrics are
scikit-learn's, fits recover known parameters, quantization and pruning do exactly what they say, runs are
deterministic and resumable, and the section round-trips through the profile loader."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("sklearn")

from calibration.profile_writer import attach_quality
from calibration.quality import compress
from calibration.quality.fit import fit_curve, fit_one, fit_scaling_law
from calibration.quality.hook import quality_share
from calibration.quality.models import MLP, CharLM, LMConfig, prunable
from calibration.quality.plan import PLANS, variants
from calibration.quality.run import POINTS_NAME, read_points, run_quality
from calibration.quality.train import classification_metrics
from simulator.profile import ProfileError, load_profile
from simulator.quality_curves import error_at, evaluate, parse_quality, predict_loss, quality_from_profile

REFERENCE = Path(__file__).resolve().parents[1] / "simulator" / "data" / "profiles" / "cpu-reference.json"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quality-tiny")
    run_quality(out, "tiny", log=lambda msg: None)
    return out


# ---------------------------------------------------------------- metrics


def test_metrics_are_scikit_learns_on_fixed_predictions() -> None:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    y_true = np.array([0, 0, 1, 1, 2, 2, 2, 1, 0, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2, 2, 0, 2])
    m = classification_metrics(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(0.7)  # 7 of 10 by hand
    assert m["accuracy"] == accuracy_score(y_true, y_pred)
    assert m["precision_macro"] == precision_score(y_true, y_pred, average="macro")
    assert m["recall_macro"] == recall_score(y_true, y_pred, average="macro")
    assert m["f1_macro"] == f1_score(y_true, y_pred, average="macro")
    # class 0: precision 2/3, recall 2/3; class 1: 2/3, 2/3; class 2: 3/4, 3/4 -> macro F1 = (2/3 + 2/3 + 3/4) / 3
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 3 / 4) / 3)


# ---------------------------------------------------------------- fits


@pytest.mark.parametrize(("model", "truth", "x"), [
    ("exp_bits", {"e_dense": 0.05, "C": 2.0, "gamma_bits": 1.3}, [1, 2, 3, 4, 6, 8]),
    ("logistic_bits", {"e_dense": 0.05, "e_max": 0.8, "bits_mid": 2.4, "width_bits": 0.6}, [1, 1.5, 2, 2.5, 3, 4, 6, 8]),
    ("rosenfeld_limit", {"e_dense": 0.05, "e_max": 0.9, "p_density": 0.15}, [0, .25, .5, .7, .8, .9, .95]),
    ("rosenfeld_density", {"e_dense": 0.05, "e_max": 0.9, "p_density": 0.15, "gamma": 2.5},
     [0, .25, .5, .6, .7, .8, .85, .9, .93, .95, .97]),
])
def test_fit_recovers_known_parameters(model: str, truth: dict[str, float], x: list[float]) -> None:
    xs = np.array(x, dtype=float)
    e = error_at(model, truth, xs)
    got = fit_one(model, xs, e, truth["e_dense"], 1.0)
    assert got is not None
    for name, value in truth.items():
        assert got[0][name] == pytest.approx(value, rel=2e-2), name


def test_fit_curve_with_folds_recovers_and_bands() -> None:
    rng = np.random.default_rng(3)
    truth = {"e_dense": 0.04, "e_max": 0.7, "bits_mid": 2.2, "width_bits": 0.5}
    x = np.array([1, 2, 3, 4, 6, 8], dtype=float)
    folds = 5
    acc = 1 - (error_at("logistic_bits", truth, x)[:, None] + rng.normal(0, 0.003, (len(x), folds)))
    dense = 1 - (0.04 + rng.normal(0, 0.003, folds))
    rec = fit_curve(x, acc, dense, family="bits", y_name="accuracy", y_transform="one_minus", e_cap=1.0)
    assert rec["status"] == "ok" and rec["model"] == "logistic_bits"
    assert rec["params"]["bits_mid"] == pytest.approx(2.2, abs=0.15)
    assert rec["heldout"]["loo_mae"] < 0.05
    assert len(rec["fold_params"]) == folds
    assert all(p["std"] > 0 and p["n"] == folds for p in rec["points"])


def test_scaling_law_recovers_known_parameters() -> None:
    truth = {"E": 1.0, "A": 40.0, "B": 300.0, "alpha": 0.4, "beta": 0.35}
    n = np.repeat([2e4, 5e4, 1e5, 3e5], 4)
    d = np.tile([1e5, 3e5, 1e6, 3e6], 4)
    loss = truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]
    rec = fit_scaling_law(n, d, loss, n_boot=10)
    assert rec["status"] == "ok"
    pred = rec["params"]["E"] + rec["params"]["A"] / n ** rec["params"]["alpha"] + rec["params"]["B"] / d ** rec[
        "params"]["beta"]
    assert np.max(np.abs(pred / loss - 1)) < 2e-3
    assert rec["params"]["alpha"] == pytest.approx(0.4, abs=0.05)
    assert rec["params"]["beta"] == pytest.approx(0.35, abs=0.05)
    assert rec["loo_mape_pct"] < 1.0
    assert fit_scaling_law(n[:5], d[:5], loss[:5])["status"] == "insufficient_data"


# ---------------------------------------------------------------- quantization and pruning


@pytest.mark.parametrize("bits", [16, 8, 4, 2])
def test_quantization_moves_each_weight_at_most_half_a_step(bits: int) -> None:
    w = torch.randn(32, 64, generator=torch.Generator().manual_seed(bits))
    q = compress.quantize(w, bits)
    step = compress.quant_step(w, bits)
    assert torch.all((q - w).abs() <= step / 2 * (1 + 1e-6) + w.abs() * 2 ** -23)  # + the final rounding to fp32
    assert all(len(torch.unique(row)) <= 2 ** bits for row in q)


def test_binary_is_sign_times_mean_abs() -> None:
    w = torch.tensor([[0.5, -1.5, 2.0, -0.0]])
    assert torch.equal(compress.quantize(w, 1), torch.tensor([[1.0, -1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="bits = 0"):
        compress.quantize(w, 0)


def test_fake_quant_forward_is_quantized_and_gradient_passes() -> None:
    model = MLP(8, 16, 3)
    compress.add_fake_quant(model, 3)
    model(torch.randn(4, 8)).sum().backward()
    layer = model.hidden[0]
    assert layer.parametrizations.weight.original.grad is not None
    w = layer.parametrizations.weight.original.detach()
    assert torch.allclose(layer.weight.detach(), compress.quantize(w, 3), atol=1e-6)  # w + (q - w): fp32 rounding
    compress.bake_fake_quant(model)
    assert torch.allclose(model.hidden[0].weight.detach(), compress.quantize(w, 3), atol=1e-6)


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.5, 0.9, 0.95])
def test_unstructured_pruning_hits_the_requested_sparsity(sparsity: float) -> None:
    model = MLP(64, 128, 10)
    compress.remove_masks(compress.prune_model(model, "l1_unstructured", sparsity))
    for layer in prunable(model):
        assert int((layer.weight == 0).sum()) == round(sparsity * layer.weight.numel())
    assert torch.count_nonzero(model.head.weight) == model.head.weight.numel()  # the head is never pruned


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.8])
def test_row_pruning_zeroes_whole_rows(sparsity: float) -> None:
    model = MLP(64, 128, 10)
    compress.remove_masks(compress.prune_model(model, "l2_rows", sparsity))
    for layer in prunable(model):
        zero_rows = int((layer.weight.abs().sum(dim=1) == 0).sum())
        assert zero_rows == round(sparsity * layer.weight.shape[0])
        assert int((layer.weight == 0).sum()) == zero_rows * layer.weight.shape[1]


def test_two_four_keeps_two_of_every_four() -> None:
    model = CharLM(LMConfig(vocab=20, d_model=16, layers=1, heads=2, ctx=8))
    compress.remove_masks(compress.prune_model(model, "2:4", 0.5))
    for layer in prunable(model):
        groups = layer.weight.reshape(layer.weight.shape[0], -1, 4)
        assert torch.all((groups != 0).sum(dim=2) == 2)
    assert compress.sparsity_of(model) == 0.5
    with pytest.raises(ValueError, match="multiple of 4"):
        compress.two_four_mask(torch.randn(3, 6))


def test_bad_pruning_requests_say_what_to_change() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        compress.prune_model(MLP(), "random", 0.5)
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\)"):
        compress.prune_model(MLP(), "l1_unstructured", 1.0)


# ---------------------------------------------------------------- the run


def test_tiny_run_is_deterministic_and_complete(tiny_run: Path, tmp_path: Path) -> None:
    first = {r["key"]: r["metrics"] for r in read_points(tiny_run / POINTS_NAME)}
    plan = PLANS["tiny"]
    assert len(first) == (plan.mlp_folds + plan.lm_folds) * len(variants(plan))  # every fold, every variant
    run_quality(tmp_path, "tiny", log=lambda msg: None)
    second = {r["key"]: r["metrics"] for r in read_points(tmp_path / POINTS_NAME)}
    assert first == second  # same seed, same numbers


def test_resume_measures_only_what_is_missing(tiny_run: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_run / "quality_plan.json", tmp_path / "quality_plan.json")
    lines = (tiny_run / POINTS_NAME).read_text().splitlines()
    kept = lines[: len(lines) // 2]
    (tmp_path / POINTS_NAME).write_text("\n".join(kept) + "\n" + lines[len(lines) // 2][:17])  # a cut-short line
    run_quality(tmp_path, "tiny", resume=True, log=lambda msg: None)
    resumed = read_points(tmp_path / POINTS_NAME)
    assert [r["key"] for r in resumed[: len(kept)]] == [json.loads(x)["key"] for x in kept]
    full = {r["key"]: r["metrics"] for r in read_points(tiny_run / POINTS_NAME)}
    assert {r["key"]: r["metrics"] for r in resumed} == full
    section = json.loads((tmp_path / "quality.json").read_text())
    run_quality(tmp_path, "tiny", resume=True, log=lambda msg: None)  # nothing left to measure: refit only
    again = json.loads((tmp_path / "quality.json").read_text())
    assert again["runs_s"][:-1] == section["runs_s"] and again["duration_s"] >= section["duration_s"]
    assert again["curves"] == section["curves"]


def test_section_round_trips_through_the_profile_loader(tiny_run: Path, tmp_path: Path) -> None:
    section = json.loads((tiny_run / "quality.json").read_text())
    path = tmp_path / "profile.json"
    shutil.copy(REFERENCE, path)
    attach_quality(path, section)
    profile = load_profile(path)
    parsed = quality_from_profile(profile)
    assert parsed is not None and quality_from_profile({"name": "no section"}) is None
    assert parsed.mode == "tiny" and parsed.duration_s is not None
    assert set(parsed.models) == {"digits_mlp", "char_lm"}
    curve = parsed.curve("digits_mlp", "bits", "rtn", False, "accuracy")
    assert curve is not None and curve.provenance == "fitted"
    band = evaluate(curve, np.array([1.0, 2.0, 4.0, 8.0]))
    assert np.all(band.low <= band.mean) and np.all(band.mean <= band.high)
    assert np.all(np.isfinite(band.mean))
    assert profile["fits"] == json.loads(REFERENCE.read_text())["fits"]  # nothing else changed


def test_loader_rejects_a_broken_section_naming_the_path(tiny_run: Path) -> None:
    profile = json.loads(REFERENCE.read_text())
    section = json.loads((tiny_run / "quality.json").read_text())
    key = next(k for k, c in section["curves"].items() if c["status"] == "ok")
    section["curves"][key]["model"] = "magic"
    profile["quality"] = section
    with pytest.raises(ProfileError, match=rf"quality\.curves\.{key}\.model: 'magic' is not one of"):
        load_profile(json.dumps(profile).encode())
    section["curves"][key]["model"] = "exp_bits"
    section["curves"][key]["params"] = {"e_dense": 0.1, "C": "big", "gamma_bits": 1.0}
    with pytest.raises(ProfileError, match=r"params\.C: expected a finite number"):
        load_profile(json.dumps(profile).encode())


def test_quality_share_only_for_quick_and_full_runs() -> None:
    from calibration.run_config import RunConfig

    cfg = RunConfig(mode="quick", out=Path("x"))
    assert quality_share(cfg, "quick") == 0.25
    assert quality_share(cfg, "tiny") == 0.0
    assert quality_share(replace(cfg, only=frozenset({"gemm"})), "quick") == 0.0
    assert quality_share(replace(cfg, node_rank=1, nnodes=2), "full") == 0.0


def test_cli_refuses_a_missing_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from calibration.cli import main

    assert main(["quality", "--quick", "-o", str(tmp_path), "--into", str(tmp_path / "nope.json")]) == 2
    assert "no such profile file" in capsys.readouterr().err


# ---------------------------------------------------------------- invariants of the reader


@settings(max_examples=60, deadline=None)
@given(e0=st.floats(0.01, 2.0), rise=st.floats(0.01, 3.0), mid=st.floats(0.5, 6.0), width=st.floats(0.05, 3.0),
       c=st.floats(0.0, 50.0), gamma=st.floats(0.1, 10.0), p=st.floats(0.01, 0.9), g=st.floats(0.2, 15.0))
def test_fewer_bits_or_more_sparsity_never_improves(e0: float, rise: float, mid: float, width: float, c: float,
                                                   gamma: float, p: float, g: float) -> None:
    bits = np.linspace(1, 16, 61)
    for model, params in (("exp_bits", {"e_dense": e0, "C": c, "gamma_bits": gamma}),
                          ("logistic_bits", {"e_dense": e0, "e_max": e0 + rise, "bits_mid": mid, "width_bits": width})):
        e = error_at(model, params, bits)
        assert np.all(np.diff(e) <= 1e-12)  # error falls (or stays) as bits rise
    sparsity = np.linspace(0, 0.99, 67)
    for model, params in (("rosenfeld_limit", {"e_dense": e0, "e_max": e0 + rise, "p_density": p}),
                          ("rosenfeld_density", {"e_dense": e0, "e_max": e0 + rise, "p_density": p, "gamma": g})):
        e = error_at(model, params, sparsity)
        assert np.all(np.diff(e) >= -1e-12 * e[:-1])  # error rises (or stays) as sparsity rises
        assert e[0] >= e0 * (1 - 1e-9) and e[-1] <= (e0 + rise) * (1 + 1e-9)


def test_scaling_law_reader_matches_hoffmann_form() -> None:
    from simulator.quality_curves import ScalingLaw

    law = ScalingLaw({"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}, {}, {}, (), None, "fitted")
    # Hoffmann et al. 2022 Approach 3 at N = 70e9, D = 1.4e12, by hand: 1.69 + 406.4/70e9^0.34 + 410.7/1.4e12^0.28
    assert float(predict_loss(law, 70e9, 1.4e12)) == pytest.approx(
        1.69 + 406.4 / 70e9 ** 0.34 + 410.7 / 1.4e12 ** 0.28, rel=1e-12)


def test_scaling_runs_train_several_sizes_and_fit_the_law(tmp_path: Path) -> None:
    from calibration.quality.run import _scaling_runs

    plan = replace(PLANS["tiny"], scaling_sizes=(8, 16), scaling_steps=(4, 8, 16), scaling_bootstrap=8)
    law = _scaling_runs(plan, "cpu", tmp_path, set(), lambda msg: None)
    pts = [r for r in read_points(tmp_path / POINTS_NAME) if r["model"] == "char_lm_scaling"]
    assert len(pts) == 6 and len({r["params"] for r in pts}) == 2
    assert {r["tokens"] for r in pts} == {s * plan.lm_batch * plan.lm_ctx for s in (4, 8, 16)}
    assert law["status"] == "ok" and len(law["points"]) == 6
    assert all(law["p10"][k] <= law["p90"][k] for k in law["p10"])


def test_shipped_reference_profile_carries_the_quick_curves() -> None:
    section = quality_from_profile(load_profile(REFERENCE))
    assert section is not None and section.mode == "quick"
    assert section.duration_s is not None and section.duration_s < 60  # the quick budget's share is 45 s
    rtn = section.curve("char_lm", "bits", "rtn", False, "loss_nats")
    assert rtn is not None and rtn.loo_mae is not None
    loss = evaluate(rtn, np.array([1.0, 2.0, 3.0, 4.0, 8.0])).mean
    assert np.all(np.diff(loss) <= 1e-12)  # fewer bits, higher loss
    assert all(c.provenance == "fitted" and c.points for c in section.curves.values())


def test_parse_quality_names_the_bad_field() -> None:
    from simulator.quality_curves import QualitySectionError

    with pytest.raises(QualitySectionError, match=r"^quality\.mode: expected a non-empty string"):
        parse_quality({"mode": 5})
    with pytest.raises(QualitySectionError, match=r"^quality\.curves: expected an object"):
        parse_quality({"mode": "quick", "curves": []})
