"""The families' own figure sections on a page (simulator.presentation.sections): each a titled table of its
figures with value, P10-P90 and provenance, as the page's PDF prints them (report.pdf_tables.sections_pdf)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from report import formatting as fmt
from report import sections_text
from simulator.plan import Plan
from simulator.registry import Page


def show_sections(plan: Plan, page: Page) -> None:
    for section, shown in sections_text.shown(plan, page):
        st.subheader(section.title)
        if section.text:
            st.caption(fmt.md_escape(section.text))
        st.dataframe(pd.DataFrame([[*sections_text.row(f), f.provenance] for f in shown],
                                  columns=["Figure", "Value", "P10–P90", "Provenance"]), hide_index=True, width="stretch")
