"""The pages' cached chart specs (app_pages._chart_specs): built once per table, and drawn exactly as the chart's own
spec would be (the same Vega-Lite JSON, the same Arrow data)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from app_pages import _chart_specs as specs  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_caches")  # tests/conftest.py

DRAWN: list[int] = []


def _costs() -> pd.DataFrame:
    months = list(range(1, 13))
    return pd.DataFrame({"Month": months * 2, "Option": ["Rent"] * 12 + ["Buy"] * 12,
                         "Cost (USD)": [1e5 * m for m in months] + [6e5 + 1e4 * m for m in months]})


def _counted_chart(frame: pd.DataFrame, title: str) -> alt.Chart:
    DRAWN.append(len(frame))
    return alt.Chart(frame, title=title).mark_line().encode(x="Month:Q", y="Cost (USD):Q", color="Option:N")


def test_a_chart_is_built_once_per_distinct_table_and_arguments():
    DRAWN.clear()
    frame = _costs()
    first = specs.spec(_counted_chart, frame, "a")
    again = specs.spec(_counted_chart, frame.copy(), "a")  # an equal table: the cached spec, not drawn again
    other = specs.spec(_counted_chart, frame.assign(**{"Cost (USD)": 2.0}), "a")
    titled = specs.spec(_counted_chart, frame, "b")
    assert DRAWN == [24, 24, 24]
    assert first == again and other != first and titled["title"] == "b"


def _two_charts() -> None:  # an AppTest script: what it needs, it imports
    import altair as alt
    import pandas as pd
    import streamlit as st

    from app_pages import _chart_specs as specs

    def chart(frame: pd.DataFrame) -> alt.LayerChart:
        line = alt.Chart(frame).mark_line().encode(x="Month:Q", y="Cost (USD):Q", color="Option:N")
        return alt.layer(line, line.mark_point())

    months = list(range(1, 13))
    frame = pd.DataFrame({"Month": months * 2, "Option": ["Rent"] * 12 + ["Buy"] * 12,
                          "Cost (USD)": [1e5 * m for m in months] + [6e5 + 1e4 * m for m in months]})
    st.vega_lite_chart(spec=specs.spec(chart, frame), width="stretch")  # cached, data as Arrow
    st.vega_lite_chart(spec=chart(frame).to_dict(), width="stretch")  # built and validated, data as records


def _rows(buffer: bytes) -> list[dict]:
    return pa.ipc.open_stream(io.BytesIO(buffer)).read_all().to_pandas().to_dict("records")


def test_the_cached_spec_draws_the_same_chart_and_data():
    at = AppTest.from_function(_two_charts, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    cached, fresh = (chart.proto for chart in at.get("vega_lite_chart"))
    assert json.loads(cached.spec) == json.loads(fresh.spec)
    assert [(d.name, d.data.data) for d in cached.datasets] == [(d.name, d.data.data) for d in fresh.datasets]
    (dataset,) = cached.datasets
    assert _rows(dataset.data.data) == _costs().to_dict("records")
