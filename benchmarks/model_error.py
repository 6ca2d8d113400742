"""The model's own error, measured on published results, and how often the plan's P10-P90 holds them.

    python -m benchmarks.model_error            # coverage and width per family, before and after (no file written)
    python -m benchmarks.model_error --write    # also write simulator/data/model_error.json (the shipped spreads)

Every row of `benchmarks/published/*.json` (one published figure with the scenario that states its setting) is
evaluated through the public path (`Scenario.from_dict` -> `evaluate`). Its error becomes the value of the model
term that would have made the prediction exact: r = ln(published / predicted) / elasticity, the elasticity being
d ln(figure) / d ln(term) of that row (a step-time error moves tokens/s by -1, GPU-hours by +1). The loss law's
and the compression laws' residuals are their leave-one-group-out fits (benchmarks.loss_error,
benchmarks.compression_quality, benchmarks.pruning_quality): each held-out row predicted by constants fitted
without its group.

Coverage is leave-one-group-out as well: a row of group g is judged by the range whose model-error spread was
measured on the other groups only (simulator.model_error.summarise(exclude_group=g)), through `evaluate` for
training and serving rows. The loss and compression laws cannot be refitted by the public path, so their rows'
ranges are formed on the held-out prediction with the same band the plan uses (log: exp(±1.2816σ) for the loss,
relative: 1 ± 1.2816σ on the loss increase for compression). "Before" is the same rows with every model-error
spread at 0: the ranges the product gave before it measured its own error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.published_rows import load_sets
from simulator import model_error
from simulator.evaluator import Z_P90, evaluate, scenario_rows
from simulator.model_error import BY_NAME, DECLARED, Declared, needed, summarise
from simulator.scenario import Scenario
from simulator.sweeps import evaluate_columns

ZERO = {d.column: 0.0 for d in DECLARED if not d.input_key}  # every model-error spread at 0: the ranges before
STEP = 0.05  # ln of the term's nudge that measures a row's elasticity
COVERAGE_TARGET = (0.70, 0.90)  # per family with at least MIN_ROWS rows
OVERALL_TARGET = (0.75, 0.85)
MIN_ROWS = 5


@dataclass
class Row:
    """One published figure with the scenario that states its setting."""

    id: str
    group: str
    figure: str
    published: float
    scenario: dict[str, Any]
    source: str
    set: str
    term: Declared = field(repr=False, default=BY_NAME["train_step"])
    outside: str = ""  # why the set's setting is one a scenario cannot state (reported, not measured on)


def term_of(figure: str, set_name: str = "", cols: Mapping[str, np.ndarray] | None = None) -> Declared:
    """The term a row of `set_name` measuring `figure` belongs to: the one measured on that set where it acts on
    the row (`cols`, the row's resolved columns: a dense row of a mixture-of-experts set is no MoE residual), else
    the one measured on that figure in every other set."""
    for declared in DECLARED:
        if set_name in declared.sets and figure in declared.figures and (
                declared.applies is None or cols is None or bool(np.all(declared.applies(cols)))):
            return declared
    for declared in DECLARED:
        if figure in declared.figures and not declared.input_key and not declared.sets:
            return declared
    raise ValueError(f"no model-error term is measured on {figure}; known: "
                     f"{sorted({f for d in DECLARED for f in d.figures})}")


def _claimed(r: Mapping[str, Any]) -> Mapping[str, np.ndarray] | None:
    """The row's resolved columns where a term of its own set must look at them, else None."""
    if any(r["set"] in d.sets and d.applies is not None for d in DECLARED):
        return scenario_rows([Scenario.from_dict(r["scenario"])])
    return None


def published_rows(pattern: str = "*") -> list[Row]:
    """Every row of the published sets whose file name matches `pattern` (benchmarks.published_rows.load_sets)."""
    return [Row(r["id"], r["group"], r["figure"], float(r["published"]), r["scenario"], r["source"], r["set"],
                term_of(r["figure"], r["set"], _claimed(r)), r.get("outside_model", "")) for r in load_sets(pattern)]


def elasticity(scenario: Scenario, figure: str, column: str) -> float:
    """d ln(figure) / d ln(term column) of one plan, by nudging the column by e^STEP."""
    cols = scenario_rows([scenario])
    rows = {k: np.repeat(np.asarray(v, dtype=float)[:1], 2) for k, v in cols.items()}
    rows[column][1] *= math.exp(STEP)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = evaluate_columns(rows)
    value = np.asarray(out[figure], dtype=float)
    return float(np.log(value[1] / value[0]) / STEP)


def record(row: Row) -> dict[str, Any]:
    """The row's prediction, elasticity and residual (the term's log value that makes it exact)."""
    scenario = Scenario.from_dict(row.scenario)
    f = evaluate(scenario, model_spreads=ZERO).figures[row.figure]
    e = elasticity(scenario, row.figure, row.term.column)
    # the row's own range without model error (devices, inputs), as a log σ of the term
    other = (math.log(f.high / f.low) / (2 * Z_P90) / abs(e)
             if f.low is not None and f.high is not None and f.low > 0 else 0.0)
    return {"id": row.id, "group": row.group, "set": row.set, "figure": row.figure, "published": row.published,
            "predicted": float(f.value), "elasticity": e, "log_ratio": math.log(row.published / float(f.value)) / e,
            "other_sigma": other, "source": row.source}


def _law_records(held: np.ndarray, published: np.ndarray, df: Any, groups: Iterable[str], source: str,
                 kind: str) -> list[dict[str, Any]]:
    """Residuals of a compression law's held-out loss increase δ (ln ppl ratio) where δ is not ~0: the loss_scale
    value that makes it exact, pub/held (linear scale, as the input moves)."""
    out = []
    for i, (h, p, g) in enumerate(zip(held, published, groups, strict=True)):
        if p <= 0.01 or not np.isfinite(h) or h <= 0:
            continue
        r = df.iloc[i]
        out.append({"id": f"{kind}:{r['model']}:{r['method']}:{i}", "group": g, "set": kind,
                    "figure": "quality.ppl_ratio", "published": float(math.exp(p)), "predicted": float(math.exp(h)),
                    "elasticity": 1.0, "log_ratio": float(math.log(p / h)), "linear": float(p / h - 1.0),
                    "source": str(r["source"])})
    return out


def compression_records() -> dict[str, list[dict[str, Any]]]:
    """Leave-one-family-out (quantization) and leave-one-size-out (pruning) residuals of the compression laws."""
    from benchmarks import compression_quality, pruning_quality
    from simulator.compression.constants import load_fitted

    q = compression_quality.load_rows()
    held, _ = compression_quality.leave_one_family_out(q)
    quant = _law_records(held, np.log(q["published_ratio"].to_numpy()), q,
                         q["family"].map(compression_quality.CV_FAMILY), "quantization", "quantization")
    p = pruning_quality.load_rows()
    held_p, _ = pruning_quality.leave_one_size_out(p, load_fitted()["constants"])
    prune = _law_records(held_p, np.log(p["published_ratio"].to_numpy()), p, p["model"], "pruning", "pruning")
    return {"compression": quant, "pruning": prune}


def loss_records() -> list[dict[str, Any]]:
    """Residuals of the default scaling law on the Chinchilla runs (benchmarks.loss_error): the shipped law's error on
    each run (its printed constants are rounded: about -1.7% on its own runs) plus what a fit loses on a compute
    range it did not see (leave-one-compute-bucket-out against the fit on every run)."""
    from benchmarks.loss_error import fit_law, load_runs, logo_residuals, predict
    from simulator.inputs import INPUTS
    from simulator.quality import LAWS, loss

    runs = load_runs()
    full = fit_law(runs["params"].to_numpy(), runs["tokens"].to_numpy(), runs["loss"].to_numpy())
    law = LAWS[INPUTS["quality.law"].default]
    out = []
    for r in logo_residuals():
        n, d = np.array([r["params"]]), np.array([r["tokens"]])
        shipped, best = float(loss(n, d, law)[0]), float(predict(full, n, d)[0])
        predicted = shipped * r["predicted"] / best
        out.append({"id": f"chinchilla:{r['id']}", "group": f"chinchilla/{r['group']}", "set": "chinchilla_runs",
                    "figure": "quality.dense_loss", "published": float(r["published"]), "predicted": predicted,
                    "elasticity": 1.0, "log_ratio": math.log(float(r["published"]) / predicted), "source": r["source"]})
    return out


def all_records(rows: list[Row]) -> dict[str, list[dict[str, Any]]]:
    by_term: dict[str, list[dict[str, Any]]] = {d.name: [] for d in DECLARED}
    for row in rows:
        if not row.outside:
            by_term[row.term.name].append(record(row))
    by_term["loss"] = loss_records()
    by_term |= compression_records()
    return by_term


def _less(declared: Declared, by_term: Mapping[str, list[dict[str, Any]]], exclude: str | None,
          level: float) -> dict[str, float]:
    return {name: summarise(BY_NAME[name], by_term[name], exclude_group=exclude, level=level, tail=False)["sigma"]
            for name in declared.less}


def _residuals(d: Declared, by_term: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A term's records; compression terms take the linear residual (pub/held − 1), as their input moves."""
    recs = by_term.get(d.name, [])
    return [r | {"log_ratio": r["linear"]} for r in recs] if d.input_key else list(recs)


def term_summary(by_term: Mapping[str, list[dict[str, Any]]], exclude: str | None = None, level: float = 0.8,
                 tail: bool = True) -> dict[str, dict[str, Any]]:
    """Each term's σ, tail, bias, rows and groups (leaving out `exclude`), σ holding the share `level`."""
    return {d.name: summarise(d, _residuals(d, by_term), _less(d, by_term, exclude, level), exclude_group=exclude,
                              level=level, tail=tail) for d in DECLARED}


LEVELS = np.round(np.arange(0.80, 0.9501, 0.01), 2)  # the σ quantiles tried; 0.80 is the in-sample P10-P90 share
LEVEL_TARGET = 0.80  # the share of held-out rows the P10-P90 should hold


def heldout_share(by_term: Mapping[str, list[dict[str, Any]]], level: float) -> float:
    """The share of all records whose residual a σ measured without their own group (at quantile `level`) covers,
    with each row's other spreads: the leave-one-group-out coverage, from the residuals alone (no evaluate)."""
    groups = sorted({r["group"] for recs in by_term.values() for r in recs})
    held = {g: term_summary(by_term, exclude=g, level=level, tail=False) for g in groups}
    inside = []
    for d in DECLARED:
        for r in _residuals(d, by_term):
            h = held[r["group"]]
            other = math.sqrt(float(r.get("other_sigma", 0.0)) ** 2 + sum(h[n]["sigma"] ** 2 for n in d.less))
            inside.append(bool(needed([r["log_ratio"]], [other])[0] <= h[d.name]["sigma"] * (1 + 1e-9)))
    return float(np.mean(inside)) if inside else 1.0


def choose_level(by_term: Mapping[str, list[dict[str, Any]]]) -> float:
    """The least quantile in LEVELS whose leave-one-group-out σ covers LEVEL_TARGET of the held-out records: a σ
    taken at the 80th percentile of the rows it was measured on covers fewer rows it has not seen (a new paper is
    less like the others than they are like each other), so the quantile is raised, once for all terms, until the
    held-out share reaches the target (cross-conformal calibration; Barber et al. 2021, "Predictive inference with
    the jackknife+", Ann. Statist. 49(1), section 3)."""
    for level in LEVELS:
        if heldout_share(by_term, float(level)) >= LEVEL_TARGET:
            return float(level)
    return float(LEVELS[-1])


def _inside(low: float | None, high: float | None, value: float) -> bool:
    return low is not None and high is not None and low * (1 - 1e-12) <= value <= high * (1 + 1e-12)


def _public_check(row: Row, sigmas: Mapping[str, float]) -> tuple[bool, float, float]:
    """Whether the row's published figure is inside the plan's P10-P90 with these model-error σ, the range's width
    relative to the plan's value, and the plan's value."""
    plan = evaluate(Scenario.from_dict(row.scenario), model_spreads=sigmas)
    f = plan.figures[row.figure]
    if f.low is None or f.high is None:
        return False, 0.0, float(f.value)
    return _inside(f.low, f.high, row.published), (f.high - f.low) / abs(float(f.value)), float(f.value)


def _law_check(rec: Mapping[str, Any], sigma: float, linear: bool) -> tuple[bool, float]:
    """A law's held-out prediction with the plan's band: the loss (log σ) or the loss increase (relative σ)."""
    if linear:  # quality.ppl_ratio = exp(δ·s), s in 1 ± Zσ
        held = math.log(rec["predicted"])
        low, high = math.exp(held * max(0.0, 1 - Z_P90 * sigma)), math.exp(held * (1 + Z_P90 * sigma))
    else:
        low, high = rec["predicted"] * math.exp(-Z_P90 * sigma), rec["predicted"] * math.exp(Z_P90 * sigma)
    return _inside(low, high, rec["published"]), (high - low) / rec["predicted"]


FAMILY_OF_TERM = {"train_step": "training", "goodput": "training", "serve_step": "serving",
                  "serve_moe": "serving (mixture of experts)", "train_moe": "training (mixture of experts)",
                  "loss": "quality",
                  "compression": "compression", "pruning": "compression"}


@dataclass
class Check:
    family: str  # the product family the figure belongs to (training, serving, compression, quality)
    set: str  # the published set
    id: str
    group: str
    inside_before: bool
    inside_after: bool
    width_before: float
    width_after: float
    error: float = 0.0  # ln(predicted / published): + over-predicts


def coverage(rows: list[Row], by_term: Mapping[str, list[dict[str, Any]]],
             progress: Callable[[str], None] | None = None, level: float = 0.8) -> list[Check]:
    """Leave-one-group-out coverage of every row, before (no model error) and after (σ at quantile `level`)."""
    zero = ZERO
    checks = []
    for row in rows:
        held = term_summary(by_term, exclude=row.group, level=level, tail=False)
        sigmas = {BY_NAME[n].column: s["sigma"] for n, s in held.items() if not BY_NAME[n].input_key}
        before, wb, value = _public_check(row, zero)
        after, wa, _ = _public_check(row, sigmas)
        family = FAMILY_OF_TERM[row.term.name] + (" (outside the model)" if row.outside else "")
        checks.append(Check(family, row.set, row.id, row.group, before, after, wb, wa,
                            math.log(value / row.published)))
        if progress:
            progress(row.id)
    for name, linear in (("loss", False), ("compression", True), ("pruning", True)):
        for rec in by_term.get(name, []):
            sigma = term_summary(by_term, exclude=rec["group"], level=level, tail=False)[name]["sigma"]
            # before: no loss error; the compression laws' robust σ (1.4826 MAD) of fitted.json, all families in
            before, wb = _law_check(rec, 0.0 if name == "loss" else _robust_sigma(name), linear)
            after, wa = _law_check(rec, sigma, linear)
            checks.append(Check(FAMILY_OF_TERM[name], rec["set"], rec["id"], rec["group"], before, after, wb, wa,
                                math.log(rec["predicted"] / rec["published"])))
    return checks


def _robust_sigma(name: str) -> float:
    from simulator.compression.constants import load_fitted

    fitted = load_fitted()
    return float((fitted if name == "compression" else fitted["pruning"])["heldout_delta_rel_sigma"])


def table(checks: list[Check], by: str = "family") -> list[dict[str, Any]]:
    """Per family (or per published set: `by="set"`) and overall: rows, coverage before and after, median relative
    width before and after."""
    names = list(dict.fromkeys(getattr(c, by) for c in checks))
    counted = [c for c in checks if "outside the model" not in c.family]
    out = []
    for name, subset in [(f, [c for c in checks if getattr(c, by) == f]) for f in names] + [("all", counted)]:
        out.append({"family": name, "rows": len(subset), "groups": len({c.group for c in subset}),
                    "coverage_before": float(np.mean([c.inside_before for c in subset])),
                    "coverage_after": float(np.mean([c.inside_after for c in subset])),
                    "width_before": float(np.median([c.width_before for c in subset])),
                    "width_after": float(np.median([c.width_after for c in subset])),
                    "median_error": float(np.median([c.error for c in subset]))})
    return out


def data_file(by_term: Mapping[str, list[dict[str, Any]]], checks: list[Check], level: float = 0.8
              ) -> dict[str, Any]:
    """simulator/data/model_error.json: per term its measured σ, tail, bias, coverage and every residual."""
    summary = term_summary(by_term, level=level)
    covered = {}
    for d in DECLARED:
        mine = [c for c in checks if c.id in {r["id"] for r in by_term.get(d.name, [])}]
        if mine:
            covered[d.name] = round(float(np.mean([c.inside_after for c in mine])), 3)
    terms = {}
    for d in DECLARED:
        s = summary[d.name]
        if not s["rows"]:
            continue
        terms[d.name] = {"column": d.column, "sigma": round(s["sigma"], 5),
                         "df": None if not math.isfinite(s["df"]) else round(s["df"], 2),
                         "bias": round(s["bias"], 5), "rows": s["rows"], "groups": s["groups"],
                         "sources": s["sources"], "coverage": covered.get(d.name),
                         "residuals": [{k: r[k] for k in ("id", "group", "set", "figure", "published", "predicted",
                                                           "elasticity", "log_ratio", "linear", "other_sigma") if k in r}
                                       for r in by_term[d.name]]}
    return {"version": 1, "date": dt.date.today().isoformat(), "command": "python -m benchmarks.model_error --write",
            "level": level,
            "method": "residual r = ln(published / predicted) / elasticity of the figure in the term, every row "
                      "through Scenario -> evaluate (laws: leave-one-group-out refits); sigma = the `level` "
                      "quantile (groups weighted equally) of the sigma each row needs beside its other spreads, "
                      "|r| / 1.2816 alone (bias included; goodput: less the step-time sigma in quadrature); `level` "
                      "= the least quantile from 0.80 whose leave-one-group-out sigma covers 80% of the held-out "
                      "residuals; df = Student-t "
                      "fitted to r about its median (scipy.stats.t.fit), none below 20 rows, at least 3; "
                      "coverage = leave-one-group-out "
                      "share of rows inside their P10-P90",
            "terms": terms}


def markdown(rows: list[dict[str, Any]], by: str = "family") -> str:
    lines = [f"| {by} | rows | groups | median error | coverage before | coverage after | median width before | "
             "median width after |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['rows']} | {r['groups']} | {math.expm1(r['median_error']):+.1%} | "
                     f"{r['coverage_before']:.0%} | {r['coverage_after']:.0%} | {r['width_before']:.1%} | "
                     f"{r['width_after']:.1%} |")
    return "\n".join(lines)


def verdict(rows: list[dict[str, Any]]) -> list[str]:
    """The targets the coverage misses (empty: all met)."""
    missed = []
    for r in rows:
        lo, hi = OVERALL_TARGET if r["family"] == "all" else COVERAGE_TARGET
        counted = r["family"] == "all" or (r["rows"] >= MIN_ROWS and "outside the model" not in r["family"])
        if counted and not lo <= r["coverage_after"] <= hi:
            missed.append(f"{r['family']}: {r['coverage_after']:.0%} (target {lo:.0%}-{hi:.0%})")
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {model_error.DATA_PATH}")
    parser.add_argument("--sets", default="*", help="only the published sets whose file name matches (a glob)")
    args = parser.parse_args(argv)
    rows = published_rows(args.sets)
    by_term = all_records(rows)
    level = choose_level(by_term)
    print(f"sigma quantile (leave-one-group-out, for {LEVEL_TARGET:.0%} of held-out residuals): {level:.2f}")
    summary = term_summary(by_term, level=level)
    for name, recs in by_term.items():
        if recs:
            s = summary[name]
            print(f"{name:<12} rows {s['rows']:>3}  groups {len(s['groups']):>2}  sigma {s['sigma']:.3f}  "
                  f"bias {s['bias']:+.3f}  df {s['df']:.3g}")
    checks = coverage(rows, by_term, level=level)
    result = table(checks)
    print()
    print(markdown(result))
    print()
    print(markdown(table(checks, "set")[:-1], "set"))
    outside = [c for c in checks if not c.inside_after]
    if outside:
        print("\noutside their P10-P90 after: " + ", ".join(f"{c.id}" for c in outside[:40])
              + (" ..." if len(outside) > 40 else ""))
    missed = verdict(result)
    print("\ntargets: " + ("met" if not missed else "NOT met: " + "; ".join(missed)))
    if args.write:
        model_error.DATA_PATH.write_text(json.dumps(data_file(by_term, checks, level), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {model_error.DATA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
