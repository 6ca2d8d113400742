"""The scaling-law loss error benchmark: the fit, leave-one-group-out by construction, and the data file."""

import numpy as np
import pandas as pd
import pytest

from benchmarks import loss_error
from benchmarks.loss_error import COLUMNS, fit_law, folds, load_runs, logo_residuals, predict

TRUE = {"E": 2.0, "A": 300.0, "B": 1200.0, "alpha": 0.30, "beta": 0.33}


def _synthetic(n_runs: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = 10 ** rng.uniform(7.5, 10.5, n_runs)
    tokens = 10 ** rng.uniform(9.0, 11.5, n_runs)
    loss = predict(TRUE, params, tokens) * np.exp(rng.normal(0.0, noise, n_runs))
    return params, tokens, loss


def test_fit_recovers_a_known_law_from_noisy_runs():
    params, tokens, loss = _synthetic(120, noise=0.003)
    law = fit_law(params, tokens, loss, n_starts=2)
    assert law["E"] == pytest.approx(TRUE["E"], rel=0.03)
    assert law["alpha"] == pytest.approx(TRUE["alpha"], abs=0.03)
    assert law["beta"] == pytest.approx(TRUE["beta"], abs=0.03)
    # A and B trade off against the exponents; what matters is the loss, inside and a decade beyond the runs
    n, d = np.array([3e8, 1e10, 3e11]), np.array([1e10, 2e11, 3e12])
    assert predict(law, n, d) == pytest.approx(predict(TRUE, n, d), rel=0.01)


def test_fit_is_exact_on_noiseless_runs():
    params, tokens, loss = _synthetic(60, noise=0.0, seed=1)
    law = fit_law(params, tokens, loss, n_starts=2)
    assert [law[k] for k in TRUE] == pytest.approx(list(TRUE.values()), rel=2e-3)


def test_folds_hold_each_row_out_once_and_never_train_on_it():
    groups = np.array(["a", "b", "a", "c", "b", "a"])
    seen = []
    for g, train, held in folds(groups):
        assert set(groups[held]) == {g}
        assert g not in set(groups[train])
        assert sorted([*train, *held]) == list(range(len(groups)))
        seen.extend(held)
    assert sorted(seen) == list(range(len(groups)))


def _tiny_runs(path):
    """Nine runs, three model sizes, three compute buckets; every token count distinct, to trace each row."""
    params = np.repeat([1e8, 4e8, 1.6e9], 3)
    flops = np.tile([1e19, 1e20, 1e21], 3) * (1 + 0.01 * np.arange(9))
    tokens = flops / (6 * params)
    df = pd.DataFrame({"id": [f"r{i}" for i in range(9)], "model": [f"{p / 1e6:.0f}M" for p in params],
                       "params": params, "tokens": tokens, "training_flops": flops,
                       "loss": predict(TRUE, params, tokens), "epoch_excluded": False, "svg_x": 0.0, "svg_y": 0.0,
                       "hex_color": "#000000"})
    df.to_csv(path, index=False)
    return df


@pytest.mark.parametrize("by", ["model", "bucket"])
def test_logo_fits_never_see_the_held_out_group(tmp_path, monkeypatch, by):
    df = _tiny_runs(tmp_path / "runs.csv")
    group_of = dict(zip(df["tokens"], load_runs(tmp_path / "runs.csv")[by], strict=True))
    fits = []

    def spy(params, tokens, loss_nats, **_):
        fits.append(set(tokens))
        return TRUE

    monkeypatch.setattr(loss_error, "fit_law", spy)
    rows = logo_residuals(by, tmp_path / "runs.csv")
    assert len(fits) == 3 and len(rows) == 9
    by_group = {r["group"]: r for r in rows}
    for trained_on in fits:
        held_groups = set(group_of.values()) - {group_of[t] for t in trained_on}
        assert len(held_groups) == 1  # each fit saw every group but one, and every row of those
        (held,) = held_groups
        assert trained_on == {t for t, g in group_of.items() if g != held}
        assert held in by_group
    for r in rows:
        assert set(r) >= {"id", "group", "params", "tokens", "published", "predicted", "log_ratio", "source"}
        assert r["log_ratio"] == pytest.approx(0.0, abs=1e-12)  # the spy returns the law the runs were drawn from


def test_logo_refuses_an_unknown_grouping():
    with pytest.raises(ValueError, match="compute bucket"):
        logo_residuals("paper")


def test_data_file_loads_with_its_columns_and_counts():
    every = load_runs(include_excluded=True)
    assert tuple(every.columns[:len(COLUMNS)]) == COLUMNS
    assert len(every) == 245 and int(every["epoch_excluded"].sum()) == 5
    used = load_runs()
    assert len(used) == 240 and used["model"].nunique() == 43 and used["bucket"].nunique() == 9
    # the 5 dropped are the 5 highest losses (Besiroglu et al. 2024)
    assert every.loc[every["epoch_excluded"], "loss"].min() > used["loss"].max()
    assert used["tokens"].to_numpy() == pytest.approx(used["training_flops"] / (6 * used["params"]), rel=1e-8)
    assert used["params"].between(5e7, 2e10).all() and used["loss"].between(2.0, 3.5).all()


def test_full_fit_reproduces_the_epoch_refit():
    runs = load_runs()
    law = fit_law(runs["params"], runs["tokens"], runs["loss"])
    # Besiroglu et al. 2024, the shipped "epoch" law: E 1.8172, alpha 0.3478, beta 0.3658
    epoch = loss_error.LAWS["epoch"]
    assert law["E"] == pytest.approx(epoch.E, rel=0.005)
    assert law["alpha"] == pytest.approx(epoch.alpha, abs=0.005)
    assert law["beta"] == pytest.approx(epoch.beta, abs=0.005)
