"""Layout knobs a scenario leaves empty, chosen as a practitioner would: the fastest step that fits in memory.

The micro-batch size and the pipeline interleave are tried over a few legal values per row; each candidate is
one vectorised pass of the step model (`training_columns`) on the rows where it is legal, so a million rows cost a
few model passes, never a Python loop over rows. A candidate that does not fit in memory is never picked; a row
where none fits keeps the most conservative values (micro-batch 1, no interleaving), and its memory warning.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .layout import interleave_legal, planner_can_interleave
from .model import INPUT_KEYS, NOT_IN_STEP, OPTIONAL_INPUTS, step_columns, training_columns
from .rows import unique_rows

# Narayanan et al. 2021 (Megatron-LM) §3.5 and Fig. 7 compare micro-batches of 1, 2, 4 and 8 sequences, and
# published runs interleave 2, 4 or 8 virtual stages per GPU: powers of two, at most 8
MICRO_BATCH_CANDIDATES = (1.0, 2.0, 4.0, 8.0)
INTERLEAVE_CANDIDATES = (1.0, 2.0, 4.0, 8.0)
FASTEST = "the fastest that fits"
TEXT = f"chosen by the planner: {FASTEST}"


def candidates_text(values: tuple[float, ...]) -> str:
    """"1, 2, 4 and 8": the candidate values in words."""
    shown = [f"{v:g}" for v in values]
    return ", ".join(shown[:-1]) + f" and {shown[-1]}"


def _model_columns(c: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The training model's input columns from resolved scenario columns (dp follows tp, pp and the GPU count), at
    one training token: the tokens change how many steps, not which layout is fastest."""
    keys = [k for k in (*INPUT_KEYS, *OPTIONAL_INPUTS) if k != "dp" and k not in NOT_IN_STEP and k in c]
    cols = {k: np.asarray(c[k], dtype=np.float64).reshape(-1) for k in keys} | {k: np.ones(1) for k in NOT_IN_STEP}
    n = max(v.size for v in cols.values())
    cols = {k: np.broadcast_to(v, (n,)) for k, v in cols.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["dp"] = cols["gpus"] / (cols["tp"] * cols["pp"])
    return cols


def _run(cols: dict[str, np.ndarray], rows: np.ndarray, micro_batch: np.ndarray, interleave: np.ndarray):
    """(step s, fits, first, last) of `rows` at the given micro-batch and interleave (arrays over those rows)."""
    part = {k: v[rows] for k, v in cols.items()} | {"micro_batch": micro_batch, "interleave": interleave}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = training_columns(part)
    step_s = np.where(np.isfinite(out["step_time_s"]), out["step_time_s"], np.inf)
    return step_s, out["fits_memory"].astype(bool), out["first_stage_layers"], out["last_stage_layers"]


def choose_layout(c: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(micro-batch, interleave) per row: a given value (finite in `c`) is kept; an empty one (NaN) is the
    candidate of the fastest step time among those that are legal and fit in memory, jointly when both are empty.

    Legal: a micro-batch up to the per-rank batch ⌈B/dp⌉; an interleave only with pp > 1 and dividing the layers
    of every stage (layout.interleave_legal). Ties go to the smaller micro-batch, then the smaller interleave.
    Rows alike but for the training tokens (a sweep over them) are chosen for once.
    """
    cols = _model_columns(c)
    n = cols["layers"].size
    if n > 1:
        first, inverse = unique_rows(step_columns(cols))
        if first.size < n:
            b, v = _choose({k: v[first] for k, v in cols.items()})
            return b[inverse], v[inverse]
    return _choose(cols)


def _choose(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    n = cols["layers"].size
    b_in, v_in = cols["micro_batch"], cols["interleave"]
    b_free, v_free = ~np.isfinite(b_in), ~np.isfinite(v_in)
    per_rank = np.ceil(cols["global_batch"] / cols["dp"])
    b_cands = [np.where(b_free, b, b_in) for b in MICRO_BATCH_CANDIDATES]
    v_cands = [np.where(v_free, v, v_in) for v in INTERLEAVE_CANDIDATES]
    b_legal = [b_free & (b <= per_rank) for b in MICRO_BATCH_CANDIDATES]
    b_legal[0] = np.ones(n, dtype=bool)  # one sequence, or the given value: always a candidate
    # an interleave can be legal only with pp > 1 and, left to the planner, if its split can give every stage a
    # multiple of v layers (a given split, known after the first pass, decides); a row with one candidate in all
    # is not evaluated
    stages = _stages_given(cols, np.arange(n))
    v_maybe = [v_free & (cols["pp"] > 1) & (stages | planner_can_interleave(cols["layers"], cols["pp"], v))
               for v in INTERLEAVE_CANDIDATES[1:]]
    several = (np.sum(b_legal, axis=0) > 1) | np.any(v_maybe, axis=0)
    best_s = np.full(n, np.inf)
    best_b, best_v = b_cands[0].copy(), v_cands[0].copy()
    # every micro-batch at the given interleave (or none) in one model pass: the split it gives decides which
    # interleaves are legal; then every legal (micro-batch, interleave) pair in a second pass
    firsts = [(rows, b[rows], v_cands[0][rows]) for b_ok, b in zip(b_legal, b_cands, strict=True)
              if (rows := np.flatnonzero(b_ok & several)).size]
    timed_firsts = _run_all(cols, firsts)
    seconds: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
    for (rows, b, _), (_, _, first, last) in zip(firsts, timed_firsts, strict=True):
        pairs = []
        for i in range(1, len(INTERLEAVE_CANDIDATES)):
            v = v_cands[i][rows]
            ok = v_maybe[i - 1][rows] & interleave_legal(cols["layers"][rows], cols["pp"][rows], first, last, v,
                                                          stages[rows])
            if ok.any():
                pairs.append((rows[ok], b[ok], v[ok]))
        seconds.append(pairs)
    timed = iter(_run_all(cols, [pair for pairs in seconds for pair in pairs]))
    # kept in the order tried one by one before: each micro-batch at no interleave, then at 2, 4 and 8
    for (rows, b, v), (step_s, fits, _, _), pairs in zip(firsts, timed_firsts, seconds, strict=True):
        _keep_faster(best_s, best_b, best_v, rows, np.where(fits, step_s, np.inf), b, v)
        for (sub, b_sub, v_sub), (step_v, fits_v, _, _) in zip(pairs, timed, strict=False):
            _keep_faster(best_s, best_b, best_v, sub, np.where(fits_v, step_v, np.inf), b_sub, v_sub)
    return best_b, best_v


def _run_all(cols: dict[str, np.ndarray], parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
             ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """`_run` of every (rows, micro-batch, interleave) part in one model pass (the model is row by row, so the
    numbers are those of one pass per part), split back into parts."""
    if not parts:
        return []
    out = _run(cols, *(np.concatenate(x) for x in zip(*parts, strict=True)))
    cuts = np.cumsum([p[0].size for p in parts])[:-1]
    return list(zip(*(np.split(x, cuts) for x in out), strict=True))


def _stages_given(cols: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rows whose first or last stage size is given (the planner's split otherwise)."""
    given = np.zeros(rows.size, dtype=bool)
    for key in ("first_stage_layers", "last_stage_layers"):
        if key in cols:
            given |= np.isfinite(cols[key][rows])
    return given


def _keep_faster(best_s: np.ndarray, best_b: np.ndarray, best_v: np.ndarray, rows: np.ndarray, step_s: np.ndarray,
                 b: np.ndarray, v: np.ndarray) -> None:
    """Where the candidate's step (inf: illegal or does not fit) beats the best so far, it becomes the best."""
    better = step_s < best_s[rows]
    at = rows[better]
    best_s[at], best_b[at], best_v[at] = step_s[better], b[better], v[better]


def chosen_micro_batch(c: Mapping[str, np.ndarray]) -> np.ndarray:
    return choose_layout(c)[0]


def chosen_interleave(c: Mapping[str, np.ndarray]) -> np.ndarray:
    return choose_layout(c)[1]


def chosen_by_planner(rule: object) -> bool:
    """Whether a derived input's rule (registry.Derived) is this planner's choice rather than a formula."""
    return getattr(rule, "fn", None) in (chosen_micro_batch, chosen_interleave)
