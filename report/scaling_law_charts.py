"""The quality calibration's own scaling law beside the published ones (Chinchilla, Epoch), shared by the Compress
page and the PDFs: a table of the fitted constants, and loss against parameters on one log axis.

L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, eq. 2) for all three; the measured law is fitted by
`python -m calibration quality --full` on a small character-level LM (simulator.quality_curves.ScalingLaw, nats per
character), the published ones on 70M-16B-parameter token-level LMs (simulator.quality.LAWS, nats per token). The
units and the scales differ, so the table and the chart compare shapes (the exponents α and β, how fast each
term falls), not levels. As in report.charts: `*_frame`, `*_chart`, `describe_*`.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from report import formatting as fmt
from report.charts import OKABE_ITO, Y_TITLE_CHARS, legend, title_lines
from report.quality_charts import SERIES_DASHES
from simulator.quality import LAWS
from simulator.quality import loss as published_loss
from simulator.quality_curves import ScalingLaw, predict_loss

MEASURED_LAW = "measured here: small character LM"
PUBLISHED_LABELS = {"chinchilla": "Chinchilla (Hoffmann et al. 2022)", "epoch": "Epoch AI refit (Besiroglu et al. 2024)"}
TOKENS_PER_PARAM = 20.0  # the published laws are drawn at about compute-optimal data (Hoffmann et al. 2022, Table 3)
TABLE_COLUMNS = ["Law", "Fitted on", "Loss unit", "E", "A", "B", "α", "β"]
TABLE_WIDTHS_MM = [44, 44, 18, 16, 16, 16, 13, 13]  # the table's columns on an A4 PDF page (180 mm of text)
FRAME_COLUMNS = ["Law", "Params", "Tokens", "Loss", "Kind"]
POINT, LINE = "measured run", "law"
GRID = 40
Y_TITLE = "Loss (nats per character measured here, per token published; lower is better)"


def _g(x: float, digits: int = 3) -> str:
    return fmt.number(x, digits)  # significant figures, never an exponent


def _range(values: list[float]) -> str:
    return f"{fmt.short(min(values))}–{fmt.short(max(values))}"


UNDETERMINED = 1e-6  # a constant fitted to below this (E on a corpus the runs have not saturated) is not determined


def _cell(law: ScalingLaw, name: str) -> str:
    value = law.params[name]
    if abs(value) < UNDETERMINED:
        return f"≈ 0, not determined by these runs (P90 {_g(law.p90[name])})"
    return f"{_g(value)} ({_g(law.p10[name])}–{_g(law.p90[name])})"


def law_table(law: ScalingLaw | None) -> pd.DataFrame:
    """One row per law: what it was fitted on, its loss unit and its five constants (the measured law's with
    its bootstrap P10–P90)."""
    rows = []
    if law is not None:
        names = ("E", "A", "B", "alpha", "beta")
        cells = {n: _cell(law, n) for n in names}
        rows.append({"Law": f"{MEASURED_LAW} (P10–P90)",
                     "Fitted on": f"{len(law.points)} runs: {_range([p['params'] for p in law.points])} params, "
                                  f"{_range([p['tokens'] for p in law.points])} characters",
                     "Loss unit": "nats/character", "E": cells["E"], "A": cells["A"], "B": cells["B"],
                     "α": cells["alpha"], "β": cells["beta"]})
    for key, pub in LAWS.items():
        rows.append({"Law": PUBLISHED_LABELS.get(key, key),
                     "Fitted on": f"{_range(list(pub.params_range))} params, {_range(list(pub.tokens_range))} tokens",
                     "Loss unit": "nats/token", "E": _g(pub.E, 4), "A": _g(pub.A, 4), "B": _g(pub.B, 4),
                     "α": _g(pub.alpha, 4), "β": _g(pub.beta, 4)})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def law_frame(law: ScalingLaw | None) -> pd.DataFrame:
    """The measured runs and the measured law at each of their token budgets (over the sizes run, widened by 2x
    each way), then each published law at 20 tokens per parameter over the sizes it was fitted on."""
    parts = []
    if law is not None and law.points:
        pts = pd.DataFrame(list(law.points))
        parts.append(pd.DataFrame({"Law": MEASURED_LAW, "Params": pts["params"], "Tokens": pts["tokens"],
                                   "Loss": pts["loss"], "Kind": POINT}))
        n = np.geomspace(pts["params"].min() / 2, pts["params"].max() * 2, GRID)
        for d in sorted(pts["tokens"].unique()):
            parts.append(pd.DataFrame({"Law": f"{MEASURED_LAW}, D = {fmt.short(d)}", "Params": n, "Tokens": d,
                                       "Loss": predict_loss(law, n, d), "Kind": LINE}))
    for key, pub in LAWS.items():
        n = np.geomspace(*pub.params_range, GRID)
        parts.append(pd.DataFrame({"Law": f"{PUBLISHED_LABELS.get(key, key)}, D = 20·N", "Params": n,
                                   "Tokens": TOKENS_PER_PARAM * n, "Loss": published_loss(n, TOKENS_PER_PARAM * n, pub),
                                   "Kind": LINE}))
    frame = pd.concat(parts, ignore_index=True)[FRAME_COLUMNS]
    return frame[np.isfinite(frame["Loss"].to_numpy(dtype=float))].reset_index(drop=True)


def law_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Loss against parameters (log axis): the measured runs as points, each law as a line with its own dash."""
    lines = list(dict.fromkeys(frame.loc[frame["Kind"] == LINE, "Law"]))
    palette = [OKABE_ITO[c] for c in ("blue", "sky_blue", "bluish_green", "reddish_purple", "orange", "vermillion",
                                      "yellow", "black")]
    colours = (palette * (len(lines) // len(palette) + 1))[:len(lines)]
    dashes = (SERIES_DASHES * (len(lines) // len(SERIES_DASHES) + 1))[:len(lines)]
    x = alt.X("Params:Q", title="Parameters N (log scale)", scale=alt.Scale(type="log"))
    y = alt.Y("Loss:Q", title=title_lines(Y_TITLE, Y_TITLE_CHARS),
              scale=alt.Scale(zero=False))
    tips = [alt.Tooltip("Law:N"), alt.Tooltip("Params:Q", format=".3~s"), alt.Tooltip("Tokens:Q", format=".3~s"),
            alt.Tooltip("Loss:Q", format=".4~g"), alt.Tooltip("Kind:N")]
    line = alt.Chart(frame).transform_filter(alt.datum.Kind == LINE).mark_line(strokeWidth=1.6).encode(
        x=x, y=y, color=alt.Color("Law:N", scale=alt.Scale(domain=lines, range=colours),
                                  legend=legend(column_px=320, most_columns=2)),
        strokeDash=alt.StrokeDash("Law:N", scale=alt.Scale(domain=lines, range=dashes), legend=None), tooltip=tips)
    points = alt.Chart(frame).transform_filter(alt.datum.Kind == POINT).mark_point(
        filled=True, size=40, color=OKABE_ITO["black"], shape="diamond").encode(x=x, y=y, tooltip=tips)
    return alt.layer(line, points).properties(title="Scaling laws: measured here and published", width="container",
                                              height=240)


def describe_law(frame: pd.DataFrame, law: ScalingLaw | None, source: str = "") -> str:
    """The text alternative: what each law says, and how the measured exponents compare with the published;
    `source` says where the measured law came from (a profile)."""
    pub = "; ".join(f"{PUBLISHED_LABELS.get(k, k)} α = {_g(p.alpha)}, β = {_g(p.beta)}" for k, p in LAWS.items())
    if law is None:
        return (f"No measured scaling law in this profile (`python -m calibration quality --full` fits one). "
                f"Published: {pub}, each drawn at 20 tokens per parameter over the 70M-16B parameters it was fitted on.")
    runs = frame[frame["Kind"] == POINT]
    loo = "n/a" if law.loo_mape_pct is None else f"{_g(law.loo_mape_pct)}%"
    where = f" by {source}" if source else ""
    return (f"Measured{where}: {len(runs)} runs of the small character LM from {fmt.short(runs['Params'].min())} to "
            f"{fmt.short(runs['Params'].max())} parameters, loss {_g(runs['Loss'].min())}-{_g(runs['Loss'].max())} nats per "
            f"character, fitted α = {_g(law.params['alpha'])} (P10-P90 {_g(law.p10['alpha'])}-{_g(law.p90['alpha'])}),"
            f" β = {_g(law.params['beta'])} ({_g(law.p10['beta'])}-{_g(law.p90['beta'])}), leave-one-run-out error "
            f"{loo}{'; E is not determined by these runs (fitted to ~0)' if abs(law.params['E']) < UNDETERMINED else ''}"
            f"; lines at each token budget run. Published: {pub}, drawn at 20 tokens per parameter. Units and "
            "scales differ (characters against tokens, 10^4-10^5 against 10^8-10^10 parameters): compare how fast "
            "each falls, not its level.")
