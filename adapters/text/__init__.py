"""Text models (Hugging Face ``transformers``, the MiniLM classifiers): the ``text`` rule set
(SiLU T = 1, module rules found per model), the named models and targets beyond a class.

>>> m = spmm.load("minilm-sst2")                                     # the default text model
>>> m = spmm.load("minilm-zero-shot", labels=["sports", "politics"])
>>> m = spmm.load(hf_model, modality="text", tokenizer=tokenizer)   # any HF sequence classifier
>>> ex = m.explain("a gripping , funny film")

Importing this package does not import ``transformers``: the loaders do.
"""

from .registry import TEXT_RULES, load_minilm_agnews, load_minilm_sst2, load_minilm_zero_shot
from .rules import L2Normalize, text_module_rules
from .targets import CosineSimilarity, NextTokenLogit, last_positions, next_token_id

__all__ = [
    "CosineSimilarity", "L2Normalize", "NextTokenLogit", "TEXT_RULES", "last_positions", "load_minilm_agnews",
    "load_minilm_sst2", "load_minilm_zero_shot", "next_token_id", "text_module_rules",
]
