"""The web page of ``spmm serve`` (optional extra ``spmm[ui]``: Gradio).

:mod:`.results` computes what the page shows through ``spmm.load(...).explain(...)``;
:mod:`.app` lays it out with Gradio.
"""
