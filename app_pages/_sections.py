"""The families' own figure sections on a page (simulator.presentation.sections): each a titled table of its
figures with value, P10-P90 and provenance, as the page's PDF prints them (report.pdf_tables.sections_pdf)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from report import formatting as fmt
from simulator import presentation
from simulator.plan import Plan
from simulator.registry import Page


def show_sections(plan: Plan, page: Page) -> None:
    for section in presentation.sections(page):
        shown = [plan.figures[k] for k in section.figures if k in plan.figures]
        if not shown:
            continue
        st.subheader(section.title)
        if section.text:
            st.caption(fmt.md_escape(section.text))
        st.dataframe(pd.DataFrame([{"Figure": f.label, "Value": fmt.by_unit(f.value, f.unit),
                                    "P10–P90": fmt.span(f.low, f.high, f.unit) if f.low is not None else "",
                                    "Provenance": f.provenance} for f in shown]), hide_index=True, width="stretch")
