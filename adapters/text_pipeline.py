"""One call from texts to labelled word scores: classify, explain, aggregate to words."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch

from spmm.adapters.text import class_index, encode_texts, explain_text
from spmm.adapters.text_models import TextClassifier
from spmm.modalities.text import WordScores, batch_word_scores, token_scores


@dataclasses.dataclass
class ExplainedText:
    """A text's predicted label, class probabilities, explained label and word scores."""

    label: str
    probabilities: dict[str, float]
    explained_label: str
    words: WordScores

    def as_record(self) -> dict:
        """JSON-ready: text, label, probabilities, explained label, words, scores, spans."""
        return {
            "text": self.words.text, "label": self.label, "probabilities": self.probabilities,
            "explained_label": self.explained_label, **self.words.as_dict(),
        }


def classify_and_explain(
    classifier: TextClassifier,
    texts: Sequence[str],
    target: int | str | None = None,
    method: str = "soft_pullback",
    *,
    score: str = "signed",
    on_overflow: str = "truncate",
    **params: Any,
) -> list[ExplainedText]:
    """Explain each text's ``target`` class (index or label name; None: the predicted class).

    Word scores are :func:`spmm.modalities.text.token_scores` of kind ``score`` summed over
    sub-tokens; special tokens get none.
    """
    batch = encode_texts(classifier.tokenizer, texts, on_overflow=on_overflow)
    with torch.no_grad():
        embeddings = classifier.model.get_input_embeddings()(batch.input_ids)
        logits = classifier.model(embeddings, batch.attention_mask)
    predicted = logits.argmax(dim=-1)
    classes = predicted if target is None else torch.full_like(predicted, class_index(target, classifier.labels))
    result = explain_text(classifier.model, classifier.model, batch, classes, method, **params)
    scores = token_scores(result.attributions, result.embeddings, score)
    probabilities = logits.softmax(dim=-1)
    return [
        ExplainedText(
            classifier.labels[int(predicted[i])],
            {label: round(float(p), 6) for label, p in zip(classifier.labels, probabilities[i])},
            classifier.labels[int(classes[i])],
            words,
        )
        for i, words in enumerate(batch_word_scores(batch, scores))
    ]
