"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.runtime.media_file_manager import MediaFileManager


@pytest.fixture
def deferred(monkeypatch):
    """The callables download buttons register, by file name (AppTest's runtime is gone after the run); the
    page caches are cleared before and after."""
    seen: dict[str, object] = {}
    register = MediaFileManager.add_deferred

    def spy(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        seen[file_name] = data_callable
        return register(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield seen
    st.cache_data.clear()
    st.cache_resource.clear()
