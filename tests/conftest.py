"""Fixtures shared by the test modules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.media_file_manager import MediaFileManager


@pytest.fixture
def fresh_caches():
    """The pages' st.cache_data and st.cache_resource, cleared before and after the test (AppTest shares them
    across runs in one process)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def deferred(monkeypatch, fresh_caches):
    """The callables download buttons register, by file name (AppTest's runtime is gone after the run); the
    page caches are cleared before and after."""
    seen: dict[str, object] = {}
    register = MediaFileManager.add_deferred

    def spy(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        seen[file_name] = data_callable
        return register(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    yield seen


@pytest.fixture(scope="module")
def tools():
    """scripts/screenshot.py: it serves the app and opens the browser the same way for the README screenshot."""
    spec = importlib.util.spec_from_file_location("modelfolio_screenshot",
                                                  Path(__file__).resolve().parents[1] / "scripts" / "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app_url(tools):
    """The app served by `streamlit run` on 127.0.0.1 for one test module (stopped after it)."""
    with tools.serve_app() as url:
        yield url
