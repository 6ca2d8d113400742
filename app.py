"""Modelfolio: `streamlit run app.py`. Routing only; each page lives in app_pages/."""

import streamlit as st

from simulator.plan import VERSION

st.set_page_config(page_title="Modelfolio", page_icon=":material/model_training:", layout="wide")

PAGES = [  # one line per page
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train", default=True),
    st.Page("app_pages/calibrate.py", title="Calibrate", icon=":material/speed:", url_path="calibrate"),
]

page = st.navigation(PAGES)
st.sidebar.caption(f"Modelfolio {VERSION} · decision support for training large models")
page.run()
