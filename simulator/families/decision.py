"""Decision family: the question a plan answers (budget, horizon, objective, quality target) and each candidate's
total cost. The search over candidates (simulator.decision) reads these columns on a whole sweep at once."""

from __future__ import annotations

import numpy as np

from simulator.registry import Columns, Family, FieldGroup, FigureSpec, Input, Rule, Section

OBJECTIVES = ("best_quality_within_budget", "cheapest_for_quality")
# Most Monte Carlo draws: `decide` at this many stays within a few seconds and far below 1 GiB (the draws are
# evaluated in blocks: benchmarks/decision_speed.py measures both). Its P10 and P90 are then known to about 0.01σ
# (standard error of a quantile, √(p(1−p)/n) / φ(z_p)), far inside the spreads they summarise.
MAX_SAMPLES = 50_000
# Most base samples N of the Sobol' indices (simulator.decision.sensitivity; N × (uncertain inputs + 2) evaluations):
# `decide` at this many stays within a few seconds (benchmarks/decision_speed.py). The default, 512, adds about a
# tenth of a second and gives the largest indices to about ±0.1 (95% bootstrap interval).
MAX_SOBOL_SAMPLES = 4096
# The highest chance of going over the budget (or above the quality target) a recommended plan may have, unless the
# user says otherwise: one in five, the P80 of the plan's cost inside the budget.
DEFAULT_TOLERANCE = 0.2

INPUTS = (
    Input("decision.budget_usd", "float", "Budget", "All the money for this model: training plus serving over the "
          "horizon.", "USD", 0.0, 1e13, default=10_000_000.0, link="budget", column="budget_usd", step=100_000.0,
          scale=1e6, widget_unit="million USD"),
    Input("decision.horizon_months", "int", "Horizon", "Months of serving counted in the total cost, the rent / "
          "buy / API comparison, NPV and payback.", "months", 1, 120, default=36, link="hz", column="horizon_months"),
    Input("decision.objective", "choice", "Objective", "Best predicted quality within the budget, or the cheapest "
          "plan that reaches the quality target.", choices=OBJECTIVES,
          choice_labels={"best_quality_within_budget": "Best quality within the budget",
                         "cheapest_for_quality": "Cheapest plan that reaches the quality target"},
          default="best_quality_within_budget", link="obj", column="objective",
          informational=True),  # it picks among plans; it moves no figure of one plan
    Input("decision.quality_target_loss", "float", "Quality target", "The predicted loss the model must reach "
          "(lower is better; Chinchilla 70B predicts about 1.94).", "nats/token", 0.5, 20.0, link="qt",
          column="quality_target_loss", step=0.01, absent="no quality target (needed by cheapest_for_quality)"),
    Input("decision.max_training_days", "float", "Longest training", "Plans whose expected training takes longer "
          "are not recommended.", "days", 0.1, 3650.0, default=120.0, link="maxd", column="max_training_days",
          step=1.0),
    Input("decision.max_prob_over_budget", "float", "Highest chance over budget", "The recommended plan is the "
          "best one whose chance of costing more than the budget (every uncertain input and the model's own error "
          "drawn) is at most this; 100% picks on the predicted costs alone.", "fraction", 0.0, 1.0,
          default=DEFAULT_TOLERANCE, link="pob", step=0.05, scale=0.01, widget_unit="%"),
    Input("decision.max_prob_over_target", "float", "Highest chance of missing the target", "The cheapest plan "
          "reaching the quality target is the cheapest one whose chance of a loss above the target (every "
          "uncertain input and the model's own error drawn) is at most this; 100% picks on the predicted loss "
          "alone.", "fraction", 0.0, 1.0, default=DEFAULT_TOLERANCE, link="pot", step=0.05, scale=0.01,
          widget_unit="%"),
    Input("decision.samples", "int", "Monte Carlo samples", "Draws of the uncertain inputs for the P10-P90 band "
          "and the chance of going over budget (0 = none).", "samples", 0, MAX_SAMPLES, default=2000, link="mc"),
    Input("decision.seed", "int", "Random seed", "The same seed gives the same Monte Carlo draws and sensitivity "
          "indices.", "", 0,
          2**32 - 1, default=0, link="seed"),
    Input("decision.sobol_samples", "int", "Sensitivity samples", "Base samples N of the global sensitivity "
          "(Sobol' indices: which uncertain inputs make most of the spread), rounded up to a power of two; the "
          "plan is evaluated N × (uncertain inputs + 2) times (0 = none).", "samples", 0, MAX_SOBOL_SAMPLES,
          default=512, link="sobol"),
)


FIGURES = (
    FigureSpec("decision.serving_cost_usd", "Serving cost over the horizon", "USD",
               "finance.tco_usd without the training run: the chosen deployment (rent, buy or API) over the horizon",
               "lower", ranged=True),
    FigureSpec("decision.total_cost_usd", "Total cost", "USD",
               "training.cost_usd + serving cost over the horizon", "lower", ranged=True),
    FigureSpec("decision.budget_left_usd", "Budget left", "USD", "decision.budget_usd − total cost (below 0: over "
               "budget)", "higher"),
    FigureSpec("decision.loss_margin", "Margin to the quality target", "nats/token",
               "decision.quality_target_loss − quality.loss (below 0: misses the target; empty without a target)",
               "higher"),
    FigureSpec("decision.days_left", "Days to spare", "days", "decision.max_training_days − training.wall_days "
               "(below 0: training takes too long)", "higher"),
)


def run(c: Columns) -> dict[str, np.ndarray]:
    training = c["training.cost_usd"]
    serving = c["finance.tco_usd"] - training * (c["include_training"] > 0)
    total = training + serving
    return {"decision.serving_cost_usd": serving, "decision.total_cost_usd": total,
            "decision.budget_left_usd": c["budget_usd"] - total,
            "decision.loss_margin": c["quality_target_loss"] - c["quality.loss"],
            "decision.days_left": c["max_training_days"] - c["training.wall_days"]}


RULES = (
    Rule("decision.quality_target_loss", "cheapest_for_quality needs a quality target",
         lambda c: (c["objective"] == OBJECTIVES.index("cheapest_for_quality")) & np.isnan(c["quality_target_loss"]),
         lambda r: "decision.quality_target_loss is empty, and decision.objective = cheapest_for_quality needs a "
                   "target loss: give decision.quality_target_loss (e.g. 2.0) or set decision.objective = "
                   "best_quality_within_budget"),
)

FIELDS = (
    FieldGroup("decide", "Question", ("decision.budget_usd", "decision.horizon_months", "decision.objective",
                                      "decision.quality_target_loss"), main=True, order=0),
    FieldGroup("decide", "Limits, prices and sampling", ("decision.max_training_days",), order=10),
    FieldGroup("decide", "Limits, prices and sampling", ("decision.samples", "decision.seed"), order=13),
    FieldGroup("decide", "Risk", ("decision.max_prob_over_budget", "decision.max_prob_over_target"), order=20),
    FieldGroup("deploy", "Money", ("decision.horizon_months",), order=21),
)
SECTIONS = (
    Section(("decide",), "Total cost", ("decision.total_cost_usd",), headline=True, order=1),
    Section(("decide",), "Serving cost", ("decision.serving_cost_usd",), headline=True, order=3),
)

FAMILY = Family("decision", INPUTS, FIGURES, run, rules=RULES, needs=("cost", "goodput", "quality", "finance"),
                fields=FIELDS, sections=SECTIONS,
                doc="The question (budget, horizon, objective, quality target) and each candidate's total cost")
