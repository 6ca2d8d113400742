"""Streamlit pages, routed by app.py with st.navigation; files starting with _ are the pages' helpers."""
