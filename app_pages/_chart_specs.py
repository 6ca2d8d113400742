"""Chart specs built once per table: a page's rerun rebuilds no chart whose data did not change.

Building an Altair chart validates each channel against the Vega-Lite schema, and `st.altair_chart` converts and
validates it again: 30-200 ms a chart on the 2-core development machine, most of a rerun's server time on the
Compress and Deploy pages (docs/benchmarks.md, "Browser rerun"). `spec` runs a chart function of report/ once per
distinct arguments (tables and settings, hashed by `st.cache_data`) and keeps its Vega-Lite spec, without a second
validation (the report's tests validate the same functions) and with its named datasets already in the Arrow form
`st.vega_lite_chart` sends (which passes bytes through): a page draws it with `st.vega_lite_chart(spec=...)`, the
chart and data `st.altair_chart` would have sent, at the cost of a cache lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st
from streamlit import dataframe_util


@st.cache_data(show_spinner=False, max_entries=256)
def _spec(name: str, args: tuple[Any, ...], _draw: Callable[..., Any]) -> dict[str, Any]:
    # the key: `name` (the chart function's module and name) and `args`; the function itself is not hashed
    chart = _draw(*args)
    spec = chart.to_dict(validate=False) if hasattr(chart, "to_dict") else dict(chart)
    if "datasets" in spec:  # the conversion st.vega_lite_chart would make on every rerun, made once
        spec["datasets"] = {name: dataframe_util.convert_anything_to_arrow_bytes(rows)
                            for name, rows in spec["datasets"].items()}
    return spec


def spec(draw: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """The Vega-Lite spec of `draw(*args)` (an Altair chart, or a spec dict already), built once per `args`."""
    return _spec(f"{draw.__module__}.{draw.__qualname__}", args, _draw=draw)
