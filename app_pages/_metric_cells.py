"""Key figures laid out so that none is cut: each in a cell as wide as its own label, value and range, the cells in
one bordered box that wraps onto another row where the page is narrow. `st.columns` gives each figure a fixed share
of the width, which cut a long label or value with an ellipsis at 1000 px ("Cost per 1M output tok…")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from streamlit.delta_generator import DeltaGenerator


@contextmanager
def metric_cells(count: int, key: str | None = None) -> Iterator[list[DeltaGenerator]]:
    """`count` cells in a bordered, wrapping row (used like `with st.container(border=True)` around columns)."""
    box = st.container(border=True, horizontal=True, gap="medium", key=key)
    with box:
        yield [box.container(width="content") for _ in range(count)]
