"""Registers the peer explainers as methods (``m.explain(method="lxt:attnlrp")``, ``spmm bench
--explainers lxt:attnlrp,...``).

Importing it imports no peer library: each factory checks its library when called, and a method
whose library is missing is refused naming the extra to install.
"""

from __future__ import annotations

from functools import partial

from spmm.methods.registry import register_explainer

from .captum_explainers import CAPTUM_METHODS, captum_explainer
from .lxt_explainers import LXT_EXPLAINERS, lxt_explainer
from .zennit_explainers import COMPOSITES, zennit_explainer

for _name, _variant in LXT_EXPLAINERS.items():
    register_explainer(_name, partial(lxt_explainer, _variant), requires=("lxt", "peers"),
                       summary=f"LXT {_variant} (lxt library; transformers models)")
for _name in COMPOSITES:
    register_explainer(f"zennit:{_name}", partial(zennit_explainer, _name), requires=("zennit", "peers"),
                       summary=f"zennit composite {_name} (zennit library; image models)")
for _name in CAPTUM_METHODS:
    register_explainer(_name, partial(captum_explainer, _name), requires=("captum", "peers"),
                       summary=f"Captum {CAPTUM_METHODS[_name]} with Captum's defaults")
