"""Reports: Altair charts, human formatting and (later) PDF/CSV/JSON exports, shared by the pages and the PDF."""
