"""Modelfolio: `streamlit run app.py`. Routing only; each page lives in app_pages/.

Every page has its own address (/decide, /train, /calibrate) that works as a deep link. Streamlit serves the
default page at the root instead of at its url_path, so the root is a hidden page that forwards to the home page,
Decide, or, for a share link of the Train page made before Decide existed (parameters at the root), to /train
with the link's parameters. The tab icon is an emoji (drawn locally as an SVG): a Material icon there makes the browser
fetch it from a font server, which fails offline. It also stands for the pages' own icons, which Streamlit would
otherwise use for the tab; in the menu those come from the Material font Streamlit ships.
"""

import streamlit as st

from simulator.plan import VERSION

st.set_page_config(page_title="Modelfolio", page_icon="🧮", layout="wide")

DECIDE = st.Page("app_pages/decide.py", title="Decide", icon=":material/balance:", url_path="decide")
TRAIN = st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train")
COMPRESS = st.Page("app_pages/compress.py", title="Compress", icon=":material/compress:", url_path="compress")
DEPLOY = st.Page("app_pages/deploy.py", title="Deploy", icon=":material/dns:", url_path="deploy")
CALIBRATE = st.Page("app_pages/calibrate.py", title="Calibrate", icon=":material/speed:", url_path="calibrate")


def _root() -> None:
    params = st.query_params.to_dict()
    st.switch_page(TRAIN if params else DECIDE, query_params=params)


PAGES = [  # one line per page
    st.Page(_root, title="Modelfolio", url_path="home", default=True, visibility="hidden"),
    DECIDE,
    TRAIN,
    COMPRESS,
    DEPLOY,
    CALIBRATE,
]

page = st.navigation(PAGES)
st.sidebar.caption(f"Modelfolio {VERSION} · decision support for investing in large models")
page.run()
