"""The measured scaling law beside the published ones: table, frame, chart and words (report/scaling_law_charts.py)."""

from __future__ import annotations

import numpy as np
import pytest

from report import scaling_law_charts as laws
from simulator.quality import LAWS
from simulator.quality_curves import ScalingLaw

TRUE = {"E": 1.2, "A": 30.0, "B": 80.0, "alpha": 0.3, "beta": 0.35}


def _law() -> ScalingLaw:
    points = tuple({"params": n, "tokens": d, "loss": TRUE["E"] + TRUE["A"] / n ** 0.3 + TRUE["B"] / d ** 0.35}
                   for n in (2e4, 4e4, 8e4) for d in (1e5, 4e5))
    low = {k: v * 0.9 for k, v in TRUE.items()}
    high = {k: v * 1.1 for k, v in TRUE.items()}
    return ScalingLaw(TRUE, low, high, points, 4.2, "fitted")


def test_table_puts_the_measured_law_beside_both_published_ones():
    table = laws.law_table(_law())
    assert list(table.columns) == laws.TABLE_COLUMNS and len(table) == 1 + len(LAWS)
    mine = table.iloc[0]
    assert mine["α"] == "0.3 (0.27–0.33)" and mine["Loss unit"] == "nats/character"
    assert mine["Fitted on"] == "6 runs: 20k–80k params, 100k–400k characters"  # no exponents (issue 18)
    chin = table[table["Law"].str.startswith("Chinchilla")].iloc[0]
    assert chin["α"] == "0.34" and chin["β"] == "0.28" and chin["Loss unit"] == "nats/token"
    assert "70M–16B params" in chin["Fitted on"]
    assert len(laws.law_table(None)) == len(LAWS)  # no measured law: the published ones alone


def test_frame_lines_are_the_laws_own_predictions():
    law = _law()
    frame = laws.law_frame(law)
    points = frame[frame["Kind"] == laws.POINT]
    assert len(points) == 6
    lines = frame[frame["Kind"] == laws.LINE]
    mine = lines[lines["Law"].str.startswith(laws.MEASURED_LAW)]
    assert set(mine["Tokens"]) == {1e5, 4e5}  # one line per token budget run
    n, d = mine["Params"].to_numpy(), mine["Tokens"].to_numpy()
    assert np.allclose(mine["Loss"], TRUE["E"] + TRUE["A"] / n ** 0.3 + TRUE["B"] / d ** 0.35)
    chin = lines[lines["Law"].str.startswith("Chinchilla")]
    c = LAWS["chinchilla"]
    n = chin["Params"].to_numpy()
    assert np.allclose(chin["Loss"], c.E + c.A / n ** c.alpha + c.B / (20 * n) ** c.beta)
    assert n.min() == pytest.approx(7e7) and n.max() == pytest.approx(1.6e10)


def test_chart_and_words():
    law = _law()
    frame = laws.law_frame(law)
    spec = laws.law_chart(frame).to_dict()
    assert len(spec["layer"]) == 2
    words = laws.describe_law(frame, law)
    assert "α = 0.3 (P10-P90 0.27-0.33)" in words and "6 runs" in words and "4.2%" in words
    assert "quality --full" in laws.describe_law(laws.law_frame(None), None)


def test_an_undetermined_constant_says_so():
    law = _law()
    law = ScalingLaw({**law.params, "E": 1e-19}, {**law.p10, "E": 1e-19}, {**law.p90, "E": 4e-5}, law.points, 9.0,
                     "fitted")
    assert laws.law_table(law).iloc[0]["E"] == "≈ 0, not determined by these runs (P90 0.00004)"
    assert "E is not determined by these runs" in laws.describe_law(laws.law_frame(law), law)
