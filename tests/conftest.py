"""Fixtures shared by the test modules."""

from __future__ import annotations

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
