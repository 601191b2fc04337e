"""Registers the peer explainers with the bench (``spmm bench --explainers lxt:attnlrp,...``).

Importing it imports no peer library: each factory checks its library when called.
"""

from __future__ import annotations

from functools import partial

from spmm.bench.explainers import register_explainer

from .captum_explainers import CAPTUM_METHODS, captum_explainer
from .lxt_explainers import LXT_EXPLAINERS, lxt_explainer
from .zennit_explainers import COMPOSITES, zennit_explainer

for _name, _variant in LXT_EXPLAINERS.items():
    register_explainer(_name, partial(lxt_explainer, _variant))
for _name in COMPOSITES:
    register_explainer(f"zennit:{_name}", partial(zennit_explainer, _name))
for _name in CAPTUM_METHODS:
    register_explainer(_name, partial(captum_explainer, _name))
