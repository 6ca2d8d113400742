"""Model error of the scaling-law loss (quality.dense_loss), measured leave-one-group-out on Chinchilla's own runs.

Rows: benchmarks/data/chinchilla_runs.csv, Epoch AI's reconstruction of the training runs of Hoffmann et al. 2022
(Figure 4, left; Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt", arXiv 2404.10102). The law
L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, eq. 2) is fitted as Hoffmann et al. §3.3 and App. D.2 do:
Huber loss (delta 1e-3) between log L and the log-sum-exp form LSE(a - alpha log N, b - beta log D, e), L-BFGS
from the best points of their start grid. A group is one compute bucket (every run within a quarter decade of a
half-decade of training FLOP: the grouping used, see docs/compression.md) or one model size (all runs of one N);
each held-out run is predicted by the law fitted without its group, and its residual is log(published / predicted). The shipped laws
(simulator.quality.LAWS) are also scored on every run: in-sample for them (both were fitted on these runs).

    python -m benchmarks.loss_error                     # the statistics
    python -m benchmarks.loss_error --rows              # and every held-out row
    python -m benchmarks.loss_error --rebuild-data SVG_EXTRACTED_CSV   # rewrite the data file from Epoch's CSV
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import huber, logsumexp
from scipy.stats import kurtosis, norm

from calibration.quality.fit import HUBER_DELTA, _law_objective, _law_params, _law_pred
from simulator.quality import LAWS, loss

DATA = Path(__file__).parent / "data" / "chinchilla_runs.csv"
SOURCE = ("Besiroglu et al. 2024 (arXiv 2404.10102), github.com/epoch-research/analyzing-chinchilla "
          "data/svg_extracted_data.csv @ 92258837, from Hoffmann et al. 2022 Fig. 4 (left)")
COLUMNS = ("id", "model", "params", "tokens", "training_flops", "loss", "epoch_excluded", "svg_x", "svg_y",
           "hex_color")
N_EXCLUDED = 5  # Besiroglu et al. 2024 drop the 5 highest-loss runs as outliers (data_analysis.ipynb)
# Hoffmann et al. 2022 App. D.2: alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a, b in {0, 5, ..., 25}
GRID = (np.arange(0.0, 26.0, 5.0), np.arange(0.0, 26.0, 5.0), np.arange(-1.0, 1.01, 0.5), np.arange(0.0, 2.01, 0.5),
        np.arange(0.0, 2.01, 0.5))  # in the order (a, b, e, alpha, beta)
# L-BFGS from the 4 best of the 4,500 grid points (on all 240 runs the 8 best all reach one minimum, to 1e-15)
N_STARTS = 4
SVG_SAME_SIZE_PX = 0.01  # runs of one model sit on one row of the figure: y equal to 1e-4 px; sizes differ by >0.1 px
BUCKET_DECADES = 0.5  # compute bucket: training FLOP rounded to the nearest half decade
NORMAL_Q95_Q80 = float(norm.ppf(0.975) / norm.ppf(0.90))  # 1.53: 95% over 80% quantile of |r| for a normal r


# ---------------------------------------------------------------- data

def rebuild_data(extracted_csv: Path, out: Path = DATA) -> pd.DataFrame:
    """Epoch's CSV -> our data file: tokens = FLOP / (6 N) as Besiroglu et al. do, a model label per figure row."""
    src = pd.read_csv(extracted_csv)
    df = pd.DataFrame({"id": [f"chinchilla-fig4-{i:03d}" for i in range(len(src))],
                       "params": src["Model Size"], "training_flops": src["Training FLOP"], "loss": src["loss"],
                       "svg_x": src["x"], "svg_y": src["y"], "hex_color": src["hex_color"]})
    df["tokens"] = df["training_flops"] / (6.0 * df["params"])
    order = np.argsort(df["svg_y"].to_numpy())
    cluster = np.empty(len(df), dtype=int)
    cluster[order] = np.cumsum(np.r_[1, np.diff(df["svg_y"].to_numpy()[order]) > SVG_SAME_SIZE_PX])
    median_params = df.groupby(cluster)["params"].transform("median")
    df["model"] = [f"{p / 1e6:.0f}M" for p in median_params]
    threshold = np.sort(df["loss"].to_numpy())[-N_EXCLUDED]
    df["epoch_excluded"] = df["loss"] >= threshold
    df = df[list(COLUMNS)]
    df.to_csv(out, index=False, float_format="%.10g")
    return df


def load_runs(path: Path = DATA, *, include_excluded: bool = False) -> pd.DataFrame:
    """The runs, by default without the 5 outliers Besiroglu et al. drop; adds the compute bucket."""
    df = pd.read_csv(path)
    if not include_excluded:
        df = df[~df["epoch_excluded"]].reset_index(drop=True)
    df["bucket"] = [f"1e{b:g}" for b in compute_bucket(df["training_flops"].to_numpy())]
    return df


def compute_bucket(flops: np.ndarray) -> np.ndarray:
    """log10 of the half-decade nearest to each run's training FLOP (18.5, 19, 19.5, ...)."""
    return np.round(np.log10(flops) / BUCKET_DECADES) * BUCKET_DECADES


# ---------------------------------------------------------------- the fit

def _start_grid() -> np.ndarray:
    return np.array(list(itertools.product(*GRID)))


def fit_law(params: np.ndarray, tokens: np.ndarray, loss_nats: np.ndarray, *, n_starts: int = N_STARTS
            ) -> dict[str, float]:
    """E, A, B, alpha, beta of L = E + A/N^alpha + B/D^beta: Hoffmann et al. 2022 §3.3 / App. D.2, minimise
    sum Huber_1e-3(LSE(a - alpha log N, b - beta log D, e) - log L) with L-BFGS from the best grid points."""
    logn, logd, logl = (np.log(np.asarray(v, dtype=float)) for v in (params, tokens, loss_nats))
    grid = _start_grid()
    terms = np.stack([grid[:, :1] - grid[:, 3:4] * logn, grid[:, 1:2] - grid[:, 4:5] * logd,
                      np.broadcast_to(grid[:, 2:3], (len(grid), len(logn)))], axis=1)  # (grid, 3, runs)
    scores = huber(HUBER_DELTA, logsumexp(terms, axis=1) - logl).sum(axis=1)
    best = None
    for start in grid[np.argsort(scores)[:n_starts]]:
        # tight tolerances: with delta = 1e-3 the gradient is small; the default tolerances stop early
        r = minimize(_law_objective, start, args=(logn, logd, logl), jac=True, method="L-BFGS-B",
                     options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20_000, "maxcor": 20})
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    return _law_params(best.x)


def predict(law: dict[str, float], params: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    theta = [*np.log([law["A"], law["B"], law["E"]]), law["alpha"], law["beta"]]
    return np.exp(_law_pred(np.array(theta), np.log(np.asarray(params, float)), np.log(np.asarray(tokens, float))))


def folds(groups: np.ndarray) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(group, training rows, held-out rows): the training rows never include a row of the held-out group."""
    for g in pd.unique(groups):
        held = np.flatnonzero(groups == g)
        train = np.flatnonzero(groups != g)
        yield str(g), train, held


def logo_residuals(by: str = "bucket", path: Path = DATA) -> list[dict]:
    """Leave-one-group-out residuals log(published / predicted), one dict per run; `by` = "bucket" (one compute
    bucket: the default, see docs/compression.md "How far the loss law is off") or "model" (one model size)."""
    return _logo(by, path)[0]


def _logo(by: str, path: Path = DATA) -> tuple[list[dict], dict[str, dict[str, float]]]:
    """The held-out rows and each fold's law (keyed by the group it left out)."""
    if by not in ("bucket", "model"):
        raise ValueError(f"by = {by!r}: a group is one compute bucket ('bucket') or one model size ('model')")
    df = load_runs(path)
    rows: list[dict] = []
    laws: dict[str, dict[str, float]] = {}
    for group, train, held in folds(df[by].to_numpy()):
        law = laws[group] = fit_law(df["params"].to_numpy()[train], df["tokens"].to_numpy()[train],
                                    df["loss"].to_numpy()[train])
        pred = predict(law, df["params"].to_numpy()[held], df["tokens"].to_numpy()[held])
        for row, p in zip(df.iloc[held].itertuples(), pred, strict=True):
            rows.append({"id": row.id, "group": group, "params": float(row.params), "tokens": float(row.tokens),
                         "published": float(row.loss), "predicted": float(p),
                         "log_ratio": float(np.log(row.loss / p)), "figure": "quality.dense_loss",
                         "method": f"leave-one-{'model-size' if by == 'model' else 'compute-bucket'}-out refit "
                                   "(Huber 1e-3 on log L, L-BFGS from the App. D.2 grid)",
                         "source": SOURCE})
    return rows, laws


def extrapolation_residuals(column: str, cut: float, path: Path = DATA) -> tuple[pd.DataFrame, np.ndarray]:
    """Fit on the runs with `column` below `cut`, predict the rest: (held-out runs, log(published / predicted))."""
    df = load_runs(path)
    train = df[column] < cut
    law = fit_law(df.loc[train, "params"].to_numpy(), df.loc[train, "tokens"].to_numpy(), df.loc[train, "loss"].to_numpy())
    held = df[~train]
    return held, np.log(held["loss"].to_numpy() / predict(law, held["params"].to_numpy(), held["tokens"].to_numpy()))


def shipped_residuals(path: Path = DATA, *, include_excluded: bool = False) -> dict[str, np.ndarray]:
    """log(published / predicted) of each shipped law on every run: IN-SAMPLE (both laws were fitted on them)."""
    df = load_runs(path, include_excluded=include_excluded)
    return {name: np.log(df["loss"].to_numpy() / loss(df["params"].to_numpy(), df["tokens"].to_numpy(), law))
            for name, law in LAWS.items()}


# ---------------------------------------------------------------- statistics

def summary(r: np.ndarray) -> dict[str, float]:
    a = np.abs(r)
    return {"n": len(r), "median": float(np.median(r)), "median_abs": float(np.median(a)),
            "p10": float(np.quantile(r, 0.10)), "p90": float(np.quantile(r, 0.90)),
            "robust_sigma": float(1.4826 * np.median(np.abs(r - np.median(r)))),
            "excess_kurtosis": float(kurtosis(r)),
            "q95_q80_abs": float(np.quantile(a, 0.95) / np.quantile(a, 0.80))}


def _pct(x: float) -> str:
    return f"{np.expm1(x) * 100:+.2f}%"


def _line(label: str, s: dict[str, float]) -> str:
    heavy = "heavier than normal" if s["q95_q80_abs"] > NORMAL_Q95_Q80 * 1.1 or s["excess_kurtosis"] > 1 else "about normal"
    return (f"{label:<34} n={s['n']:>3}  median {_pct(s['median'])}  median|r| {np.expm1(s['median_abs']) * 100:.2f}%"
            f"  P10 {_pct(s['p10'])}  P90 {_pct(s['p90'])}  sigma(MAD) {s['robust_sigma']:.4f}"
            f"  kurt {s['excess_kurtosis']:+.1f}  q95/q80 {s['q95_q80_abs']:.2f} ({heavy})")


# Hoffmann et al.'s Approach 3 fit before rounding (the arXiv TeX source; Besiroglu et al. 2024 v2, abstract, trace the
# shipped law's misfit partly to the rounding printed in the body): Epoch's data_analysis.ipynb `true_params`
# (a, b, e, alpha, beta) = (6.0073404, 6.0179186, 0.5267228, 0.33917084, 0.2849083), A = e^a, B = e^b, E = e^e
CHINCHILLA_UNROUNDED = {"A": float(np.exp(6.0073404)), "B": float(np.exp(6.0179186)), "E": float(np.exp(0.5267228)),
                        "alpha": 0.33917084, "beta": 0.2849083}
# product scale, as the presets have them (simulator/presets.py): Chinchilla 70B on 1.4T tokens (Hoffmann et al. 2022,
# Table 4) and Llama 3 405B on 15.6T (Dubey et al. 2024); the fold laws' spread there is parameter uncertainty
# carried 4-25x beyond the largest run's N
PRODUCT_POINTS = ((70e9, 1.4e12), (405e9, 15.6e12))
CHOSEN = "bucket"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", action="store_true", help="print every held-out row")
    parser.add_argument("--rebuild-data", type=Path, metavar="CSV", help="Epoch's svg_extracted_data.csv")
    args = parser.parse_args(argv)
    if args.rebuild_data:
        df = rebuild_data(args.rebuild_data)
        print(f"wrote {DATA}: {len(df)} runs, {df['model'].nunique()} model sizes")
        return 0
    t0 = time.perf_counter()
    runs = load_runs()
    every = load_runs(include_excluded=True)
    print(f"data: {len(every)} runs of Hoffmann et al. 2022 Fig. 4\n  {SOURCE}\n  {len(runs)} used (the "
          f"{len(every) - len(runs)} highest-loss runs dropped as Besiroglu et al. do); {runs['model'].nunique()} model "
          f"sizes {runs['params'].min() / 1e6:.0f}M-{runs['params'].max() / 1e9:.1f}B, {runs['bucket'].nunique()} "
          f"compute buckets {runs['training_flops'].min():.1e}-{runs['training_flops'].max():.1e} FLOP")
    law = fit_law(runs["params"].to_numpy(), runs["tokens"].to_numpy(), runs["loss"].to_numpy())
    print("fit on all {} runs: E={E:.4f} A={A:.2f} B={B:.2f} alpha={alpha:.4f} beta={beta:.4f}".format(len(runs), **law))
    print("  shipped 'epoch' (Besiroglu et al. 2024): E={E} A={A} B={B} alpha={alpha} beta={beta}".format(
        **vars(LAWS["epoch"])))
    print("\nresiduals r = log(published / predicted); percentages are exp(r) - 1\n")
    results = {by: _logo(by) for by in ("model", "bucket")}
    for by, label in (("model", "LOGO, group = one model size"), ("bucket", "LOGO, group = one compute bucket")):
        rows = results[by][0]
        r = np.array([x["log_ratio"] for x in rows])
        print(_line(label + (" *" if by == CHOSEN else ""), summary(r)) + f"  groups={len(results[by][1])}")
    chosen = {x["id"]: x for x in results[CHOSEN][0]}
    r_chosen = np.array([chosen[i]["log_ratio"] for i in runs["id"]])
    big = (runs["params"] >= 2e9).to_numpy()
    trained = (runs["tokens"] / runs["params"] >= 2).to_numpy()
    print(_line("  * held-out N >= 2B", summary(r_chosen[big])))
    print(_line("  * tokens/param >= 2", summary(r_chosen[trained])))
    print()
    for column, cut, label in (("params", 2e9, "fit N < 2B, predict N >= 2B"),
                               ("training_flops", 3e20, "fit C < 3e20, predict C >= 3e20")):
        print(_line(label, summary(extrapolation_residuals(column, cut)[1])))
    print()
    for name, r in shipped_residuals().items():
        print(_line(f"shipped '{name}' IN-SAMPLE", summary(r)))
        print(_line(f"shipped '{name}' IN-SAMPLE, N >= 2B", summary(r[big])))
    unrounded = np.log(runs["loss"].to_numpy() / predict(CHINCHILLA_UNROUNDED, runs["params"], runs["tokens"]))
    print(_line("Hoffmann unrounded IN-SAMPLE", summary(unrounded)))
    print(f"\nnormal: q95/q80 of |r| = {NORMAL_Q95_Q80:.2f}, excess kurtosis 0")
    print(f"\nat product scale: loss predicted by the full fit, the {CHOSEN} folds' laws (min-max) and the shipped laws")
    fold_laws = results[CHOSEN][1].values()
    for n, d in PRODUCT_POINTS:
        full = float(predict(law, n, d))
        folds_ = np.array([float(predict(f, n, d)) for f in fold_laws])
        shipped = ", ".join(f"{k} {float(loss(n, d, v)):.3f}" for k, v in LAWS.items())
        shipped += f", Hoffmann unrounded {float(predict(CHINCHILLA_UNROUNDED, n, d)):.3f}"
        print(f"  N={n:.3g} D={d:.3g}: full fit {full:.3f}; folds {folds_.min():.3f}-{folds_.max():.3f} "
              f"({(folds_.min() / full - 1) * 100:+.1f}% to {(folds_.max() / full - 1) * 100:+.1f}%); {shipped}")
    if args.rows:
        print(f"\n{'id':<20} {'group':>7} {'params':>9} {'tokens':>9} {'published':>9} {'predicted':>9} {'error':>8}")
        for x in results[CHOSEN][0]:
            print(f"{x['id']:<20} {x['group']:>7} {x['params']:9.3g} {x['tokens']:9.3g} {x['published']:9.4f} "
                  f"{x['predicted']:9.4f} {_pct(x['log_ratio']):>8}")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
