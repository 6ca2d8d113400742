"""The provenance view's "What the ranges include": every spread term of a plan with its size and source."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from report import ranges_text


def spread_table(plan: Any) -> None:
    """Inside a provenance expander: the plan's spread terms (model error, device, inputs) as a table."""
    st.markdown("**What the ranges include**")
    st.caption(f"{ranges_text.summary(plan)} {ranges_text.METHOD}".replace("$", r"\$"))
    st.dataframe(pd.DataFrame(ranges_text.rows(plan), columns=ranges_text.HEADER), hide_index=True, width="stretch")
