"""Global sensitivity of one plan: variance-based (Sobol') indices of its total cost, training time and loss over
the uncertain inputs the Monte Carlo draws (simulator.evaluator.uncertain_columns: device efficiencies and
bandwidths, inputs declared with a spread, model-error terms), each drawn as the Monte Carlo draws it:
log(column / plan value) = σ · z, z standard normal.

Where the tornado moves one input at a time, these indices move all of them together:

* first-order S_i = Var(E[Y | X_i]) / Var(Y): the share of Y's variance X_i explains alone;
* total-order S_Ti = E[Var(Y | X_~i)] / Var(Y): its share counting every interaction with the others.

Sampling and estimators are SALib's (Herman & Usher 2017, JOSS 2(9):97): Saltelli's cross-sampling of a scrambled
Sobol' sequence (Saltelli 2002, CPC 145:280), the first-order estimator of Saltelli et al. 2010 (CPC 181:259) and
the total-order estimator of Jansen 1999 (CPC 117:35, as Saltelli et al. 2010 table 2 give it), with bootstrap
confidence intervals. The inputs are drawn in the unit normal space (SALib `dists: norm`, mean 0, sd 1) and
mapped to columns as `simulator.decision.uncertainty.evaluate_draws` maps the Monte Carlo's draws (a term the Monte
Carlo draws from a Student-t gets the same marginal here: its normal mapped quantile for quantile, `simulator.model_error.t_draws`).

Sobol' indices assume independent inputs. Columns of a calibrated device set from one profile fit are correlated
(simulator/correlations.py); each set of columns linked by a correlation is one SALib group, drawn jointly with its
correlation (the group's normals through `psd_factor`, as the Monte Carlo draws them) and indexed as one input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from SALib.analyze import sobol as sobol_analyze
from SALib.util import scale_samples
from scipy.stats import qmc

from simulator import model_error
from simulator.correlations import Pair, correlation_matrix, psd_factor
from simulator.decision.uncertainty import evaluate_draws, plan_row
from simulator.evaluator import uncertain_columns
from simulator.inputs import FIGURES
from simulator.spreads import label_of

CONF_LEVEL = 0.95  # of the bootstrap confidence intervals
RESAMPLES = 100  # bootstrap resamples behind them (SALib's default)
MOST = 3  # the inputs `OutputIndices.leading` names at most ...
COVER = 0.7  # ... adding inputs until they hold this share of the summed total-order indices ...
NOTABLE = 0.1  # ... or, past it, while the next holds at least this share

Model = Callable[[np.ndarray], Mapping[str, np.ndarray]]  # z (inputs × draws) -> {output: value per draw}


@dataclass(frozen=True)
class Index:
    """One input's (or one correlated group's) indices for one output."""

    columns: tuple[str, ...]  # the model columns moved: one, or a group drawn jointly
    label: str
    first: float  # first-order index
    first_conf: float  # half-width of its confidence interval (CONF_LEVEL, bootstrap)
    total: float  # total-order index
    total_conf: float
    share: float  # the total-order index over the sum of all inputs' (negative estimates counted as 0)

    def to_dict(self) -> dict[str, object]:
        return {"input": self.label, "columns": list(self.columns), "first_order": self.first,
                "first_order_conf": self.first_conf, "total_order": self.total, "total_order_conf": self.total_conf,
                "share": self.share}


@dataclass(frozen=True)
class OutputIndices:
    """Every input's indices for one output, largest total-order index first; `why_none` says why there are none."""

    key: str  # the figure, e.g. "decision.total_cost_usd"
    indices: tuple[Index, ...]
    why_none: str = ""  # follows the output's name: "does not vary with the uncertain inputs"

    @property
    def label(self) -> str:
        return FIGURES[self.key].label if self.key in FIGURES else self.key

    def leading(self, most: int = MOST, cover: float = COVER, notable: float = NOTABLE) -> tuple[Index, ...]:
        """The inputs that hold most of the spread, largest share first: at most `most`, added until they hold
        `cover` of it, and past that while the next holds at least `notable` (inputs with no share never)."""
        out: list[Index] = []
        for index in self.indices:
            held = sum(i.share for i in out)
            if index.share <= 0.0 or len(out) >= most or (held >= cover and index.share < notable):
                break
            out.append(index)
        return tuple(out)

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "indices": [i.to_dict() for i in self.indices],
                "why_none": self.why_none or None}


@dataclass(frozen=True)
class GlobalSensitivity:
    base_samples: int  # N of the Saltelli design (a power of two)
    evaluations: int  # N × (inputs + 2) model evaluations
    seed: int
    outputs: tuple[OutputIndices, ...]
    grouped: tuple[tuple[str, ...], ...] = ()  # column sets drawn jointly (correlated) and indexed as one input

    def of(self, key: str) -> OutputIndices | None:
        return next((o for o in self.outputs if o.key == key), None)

    def to_dict(self) -> dict[str, object]:
        groups = "; ".join(" with ".join(label_of(c) for c in g) for g in self.grouped)
        method = (f"Sobol' indices (SALib: Saltelli sampling of a scrambled Sobol' sequence, first order by Saltelli "
                  f"et al. 2010, total order by Jansen 1999), {self.base_samples:,} base samples, "
                  f"{self.evaluations:,} evaluations, {CONF_LEVEL:.0%} bootstrap confidence intervals; inputs drawn "
                  "as in the Monte Carlo (median = the plan's value, normal in log space, Student-t where the Monte "
                  "Carlo draws heavier tails); share = total-order index over "
                  "the sum of all total-order indices; ")
        method += (f"correlated inputs drawn jointly and indexed as one group: {groups}" if groups
                   else "all inputs independent")
        return {"base_samples": self.base_samples, "evaluations": self.evaluations, "seed": self.seed,
                "confidence_level": CONF_LEVEL, "method": method,
                "outputs": {o.key: o.to_dict() for o in self.outputs}}


def base_samples(requested: int) -> int:
    """The Saltelli design's N: `requested` rounded up to a power of two (a Sobol' sequence balances only those)."""
    return 1 << max(0, int(requested) - 1).bit_length() if requested > 0 else 0


def linked_groups(r: np.ndarray) -> list[list[int]]:
    """The connected sets of a correlation matrix's variables (two are linked by a nonzero correlation), each in
    index order, ordered by their first member."""
    seen: set[int] = set()
    groups: list[list[int]] = []
    for start in range(len(r)):
        if start in seen:
            continue
        group, todo = [], [start]
        seen.add(start)
        while todo:
            i = todo.pop()
            group.append(i)
            for j in np.flatnonzero(r[i] != 0.0):
                if int(j) not in seen:
                    seen.add(int(j))
                    todo.append(int(j))
        groups.append(sorted(group))
    return groups


def saltelli_design(problem: dict, n: int, seed: int) -> np.ndarray:
    """SALib's `sample.sobol.sample(problem, n, calc_second_order=False, seed=seed)`, number for number (a test
    checks it), built with array operations instead of its loop over every cell: for each of the `n` rows of a
    scrambled Sobol' sequence in 2·D dimensions (A = its first D columns, B the others) the rows A, then A with
    group k's columns taken from B for each group k, then B; scaled to the problem's distributions."""
    names = problem.get("groups") or problem["names"]
    group_names = list(dict.fromkeys(names))  # SALib's group order: first appearance
    member = np.array([group_names.index(g) for g in names])
    dims = problem["num_vars"]
    base = qmc.Sobol(d=2 * dims, scramble=True, seed=seed).random(n)
    a, b = base[:, :dims], base[:, dims:]
    cross = [np.where(member == k, b, a) for k in range(len(group_names))]
    design = np.stack([a, *cross, b], axis=1).reshape(n * (len(group_names) + 2), dims)
    return scale_samples(design, problem)


def _indices(problem: dict, y: np.ndarray, seed: int, members: Sequence[tuple[str, ...]],
             labels: Sequence[str]) -> tuple[Index, ...]:
    # a Generator, not an int: SALib takes seed 0 as "no seed" and would resample from numpy's global state
    s = sobol_analyze.analyze(problem, y, calc_second_order=False, num_resamples=RESAMPLES, conf_level=CONF_LEVEL,
                              seed=np.random.default_rng(seed))
    total = np.asarray(s["ST"], dtype=float)
    weight = np.clip(total, 0.0, None)
    share = weight / weight.sum() if weight.sum() > 0 else np.zeros_like(weight)
    out = [Index(members[g], labels[g], float(s["S1"][g]), float(s["S1_conf"][g]), float(total[g]),
                 float(s["ST_conf"][g]), float(share[g])) for g in range(len(members))]
    return tuple(sorted(out, key=lambda i: -i.total))


def sobol_indices(model: Model, names: Sequence[str], samples: int, seed: int, outputs: Sequence[str],
                  groups: Sequence[Sequence[int]] | None = None, labels: Sequence[str] | None = None,
                  ) -> tuple[int, tuple[OutputIndices, ...]]:
    """(evaluations, indices per output) of `model` over independent standard normal inputs `names`.

    `groups`: sets of input positions indexed as one (default: each input alone), `labels` one per group. The
    design has `base_samples(samples)` base rows and N × (groups + 2) evaluations, all passed to `model` at once
    as z of shape (inputs, evaluations); `seed` fixes the sequence's scrambling and the bootstrap."""
    groups = [list(g) for g in groups] if groups is not None else [[i] for i in range(len(names))]
    labels = list(labels) if labels is not None else [", ".join(names[i] for i in g) for g in groups]
    # SALib orders groups by first appearance among the inputs: order them so, to read its indices in that order
    order = sorted(range(len(groups)), key=lambda g: min(groups[g]))
    groups, labels = [groups[g] for g in order], [labels[g] for g in order]
    n = base_samples(samples)
    member = {i: g for g, members in enumerate(groups) for i in members}
    problem = {"num_vars": len(names), "names": list(names), "groups": [f"g{member[i]}" for i in range(len(names))],
               "bounds": [[0.0, 1.0]] * len(names), "dists": ["norm"] * len(names)}
    z = saltelli_design(problem, n, seed)
    y = model(z.T)
    members = [tuple(names[i] for i in g) for g in groups]
    found = []
    for key in outputs:
        values = np.asarray(y[key], dtype=float)
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            why = f"has no finite value in {bad:,} of its {values.size:,} draws, so its variance is undefined"
        elif np.ptp(values) <= 1e-12 * max(1.0, float(np.max(np.abs(values)))):
            why = "does not vary with the uncertain inputs"
        else:
            found.append(OutputIndices(key, _indices(problem, values, seed, members, labels)))
            continue
        found.append(OutputIndices(key, (), why))
    return z.shape[0], tuple(found)


def global_sensitivity(cols: Mapping[str, np.ndarray], device_spread: Mapping[str, float], outputs: Sequence[str],
                       samples: int, seed: int, correlations: Mapping[Pair, float] | None = None,
                       tails: Mapping[str, float] | None = None) -> GlobalSensitivity | None:
    """The Sobol' indices of the plan's one row (`cols`) for `outputs` over every uncertain column, drawn as
    `monte_carlo` draws them (same spreads, same correlations, same clipping to bounds; `tails`: column -> Student-t
    degrees of freedom of a column drawn with heavier tails, default the model-error terms' as the Monte Carlo draws
    them, `simulator.model_error.t_draws`); None when no column is uncertain or
    `samples` is 0."""
    spreads = uncertain_columns(cols, device_spread)
    names = sorted(spreads)
    if not names or samples <= 0:
        return None
    r = correlation_matrix(names, correlations or {})
    groups = linked_groups(r)
    factors = [(g, psd_factor(r[np.ix_(g, g)])) for g in groups if len(g) > 1]
    tails = model_error.tails() if tails is None else tails
    heavy = [(i, float(tails[name])) for i, name in enumerate(names) if name in tails]
    plan = plan_row(cols)

    def model(z: np.ndarray) -> Mapping[str, np.ndarray]:
        z = z.copy()
        for g, factor in factors:  # within a group only: a group's normals never move another group's columns
            z[g] = factor @ z[g]
        for i, df in heavy:
            z[i] = model_error.t_draws(z[i], df)
        return evaluate_draws(plan, spreads, names, z, tuple(outputs))

    labels = [" with ".join(label_of(names[i]) for i in g) for g in groups]
    evaluations, found = sobol_indices(model, names, samples, seed, outputs, groups, labels)
    grouped = tuple(tuple(names[i] for i in g) for g in groups if len(g) > 1)
    return GlobalSensitivity(base_samples(samples), evaluations, seed, found, grouped)
