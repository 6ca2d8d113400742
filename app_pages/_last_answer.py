"""One click never blanks a page: the answer to these inputs, or what to change above the last answer made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from report import formatting as fmt
from report import messages
from simulator.scenario import ScenarioError

Answer = TypeVar("Answer")


def answer_or_last(compute: Callable[[dict[str, Any]], Answer], data: dict[str, Any], state_key: str,
                   what: str) -> tuple[Answer, dict[str, Any]] | None:
    """`compute(data)` and `data`. When the inputs cannot be answered: each problem in the user's words, then the
    last answer these inputs allowed (kept under `state_key`) and the inputs it is of; None before any."""
    try:
        answer = compute(data)
    except ScenarioError as exc:
        for problem in exc.problems:
            st.error(fmt.md_escape(messages.in_words(problem)), icon=":material/error:")
        last = st.session_state.get(state_key)
        if last is None:
            return None
        st.warning(f"Below: the last {what} these inputs allowed, until the combination above is changed.",
                   icon=":material/history:")
        return compute(last), last
    st.session_state[state_key] = data
    return answer, data
