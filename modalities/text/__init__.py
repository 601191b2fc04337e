"""Texts: tokenisation to token embeddings, word scores, rendering, feature groups, datasets.

>>> m = spmm.load("minilm-sst2")
>>> ex = m.explain(["a gripping , funny film"])      # a TextExplanation: word scores
>>> ex.aggregate("sentences"); ex.save("words.html"); ex.show()

Importing this package does not import ``transformers``.
"""

from .batch import TextBatch, encode_texts
from .embedding import ATTENTION_IMPLEMENTATIONS, EmbeddingModel, HFOutput, embed, model_labels, use_attention
from .explanation import TextExplanation
from .generation import GenerationExplanation
from .words import (
    TOKEN_SCORE_KINDS, SpanScores, concatenate_segments, delete_groups, replace_groups, token_groups,
    token_scores, word_groups, word_scores,
)

__all__ = [
    "ATTENTION_IMPLEMENTATIONS", "EmbeddingModel", "GenerationExplanation", "HFOutput", "SpanScores", "TOKEN_SCORE_KINDS", "TextBatch",
    "TextExplanation", "concatenate_segments", "delete_groups", "embed", "encode_texts", "model_labels",
    "replace_groups", "token_groups", "token_scores", "use_attention", "word_groups", "word_scores",
]
