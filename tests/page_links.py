"""Share-link helpers for the page tests: a page's address opened in a new session, and the address it writes."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def open_link(page: str, query: dict[str, str], timeout_s: float = 60) -> AppTest:
    """`app_pages/<page>.py`'s address with these parameters, opened in a new browser session."""
    at = AppTest.from_file(APP, default_timeout=timeout_s)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def link_of(at: AppTest) -> dict[str, str]:
    """The address's parameters as the page left them."""
    return {k: v[-1] if isinstance(v, list) else v for k, v in at.query_params.items()}
