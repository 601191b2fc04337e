"""Extractive question answering (``…ForQuestionAnswering``: BERT, DistilBERT, RoBERTa…).

>>> m = spmm.load("./qa_dir")
>>> ex = m.explain(question="where does alice live ?", context="alice lives in paris .")
>>> ex = m.explain([("where does alice live ?", "alice lives in paris .")])   # the same, as pairs

The model's answer is the span (start, end) of context tokens with the largest start + end logit
(start ≤ end, at most :data:`MAX_ANSWER_TOKENS` tokens, as the transformers pipeline picks it),
fixed on the unperturbed input.  The explained output is (B, 3): the span's start logit + end
logit (``"answer"``, the default target: the score the answer was chosen by), its start logit
(``"answer start"``) and its end logit (``"answer end"``).  Words cover the question, then the
context, shown as one text ``question + "\\n" + context``; the predicted answer (its text and
the product of the start and end probabilities) is the explanation's prediction.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation, Prediction
from spmm.modalities.text.batch import encode_pairs, token_limit
from spmm.modalities.text.embedding import EmbeddingModel, HFOutput, embed
from spmm.modalities.text.explanation import TextExplanation, default_score
from spmm.modalities.text.modality import TextModality

from .tasks import register_hf_task, source_name
from .text import load_tokenizer

MAX_ANSWER_TOKENS = 15
"""The longest answer span considered, in tokens (the transformers pipeline's ``max_answer_len``)."""
OUTPUTS = ("answer", "answer start", "answer end")
TARGET_NAMES = {"top1": 0, "answer": 0, "span": 0, "start": 1, "answer start": 1, "end": 2, "answer end": 2}


class SpanLogits(HFOutput):
    """A question-answering model as a body: (embeddings (B, L, D), attention_mask (B, L),
    token_type_ids (B, L) or None) -> (start_logits, end_logits), each (B, L)."""

    def forward(self, embeddings: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> tuple:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.model(inputs_embeds=embeddings, attention_mask=attention_mask, **extra)
        return out.start_logits, out.end_logits


class AnswerSpan(nn.Module):
    """:class:`SpanLogits` read at a fixed answer span: (embeddings, attention_mask) -> (B, 3)
    [start + end, start, end logits].  starts, ends: (B,); token_type_ids: (B, L) or None;
    a context of one row serves any number of rows; ``take`` follows repeated rows."""

    def __init__(self, logits: SpanLogits, starts: Tensor, ends: Tensor, token_type_ids: Tensor | None) -> None:
        super().__init__()
        self.logits, self.starts, self.ends, self.token_type_ids = logits, starts, ends, token_type_ids
        self.train(logits.training)

    def forward(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        rows = embeddings.shape[0]
        types = None if self.token_type_ids is None else self.token_type_ids.to(embeddings.device).expand(rows, -1)
        start_logits, end_logits = self.logits(embeddings, attention_mask, types)
        index = torch.arange(rows, device=embeddings.device)
        start = start_logits[index, self.starts.to(embeddings.device).expand(rows)]
        end = end_logits[index, self.ends.to(embeddings.device).expand(rows)]
        return torch.stack([start + end, start, end], dim=1)

    def take(self, sample_index: Tensor) -> "AnswerSpan":
        if self.starts.shape[0] == 1:
            return self
        types = None if self.token_type_ids is None else self.token_type_ids[sample_index.to(self.token_type_ids.device)]
        index = sample_index.to(self.starts.device)
        return AnswerSpan(self.logits, self.starts[index], self.ends[index], types)


def best_spans(start_logits: Tensor, end_logits: Tensor, in_context: Tensor) -> tuple[Tensor, Tensor]:
    """Per row, the (start, end) context span with the largest start + end logit, start ≤ end <
    start + :data:`MAX_ANSWER_TOKENS`: two (B,) long tensors."""
    length = start_logits.shape[1]
    positions = torch.arange(length, device=start_logits.device)
    width = positions.view(1, -1) - positions.view(-1, 1)
    allowed = (width >= 0) & (width < MAX_ANSWER_TOKENS)
    valid = allowed & in_context.unsqueeze(2) & in_context.unsqueeze(1)
    scores = (start_logits.unsqueeze(2) + end_logits.unsqueeze(1)).masked_fill(~valid, -torch.inf)
    best = scores.flatten(1).argmax(1)
    return best // length, best % length


def question_context_pairs(inputs: Any) -> list[tuple[str, str]]:
    """(question, context) pairs from one pair or a list of pairs; a one-line error for anything else."""
    if isinstance(inputs, tuple) and len(inputs) == 2 and all(isinstance(t, str) for t in inputs):
        return [inputs]
    if isinstance(inputs, list) and inputs and all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(t, str) for t in p) for p in inputs):
        return [(p[0], p[1]) for p in inputs]
    raise SpmmInputError(
        "a question-answering model explains (question, context) pairs: m.explain(question=..., context=...), "
        f"m.explain((question, context)) or a list of pairs; got {type(inputs).__name__}"
    )


class QuestionAnswerModality(TextModality):
    """(question, context) pairs as token embeddings (B, L, D); the output is the answer span's logits (B, 3)."""

    def prepare(self, model: nn.Module, inputs: Any, on_overflow: str = "truncate",
                include_special: bool = False) -> Prepared:
        batch, in_context, token_types = encode_pairs(
            self.tokenizer, question_context_pairs(inputs), max_length=self.max_length, on_overflow=on_overflow)
        device = next(model.parameters()).device
        embeddings = embed(model, batch.input_ids.to(device))
        batch = batch.to(device)
        token_types = None if token_types is None else token_types.to(device)
        with torch.no_grad():
            start_logits, end_logits = model(embeddings, batch.attention_mask, token_types)
        starts, ends = best_spans(start_logits, end_logits, in_context.to(device))
        rows = torch.arange(len(batch), device=device)
        probability = start_logits.softmax(-1)[rows, starts] * end_logits.softmax(-1)[rows, ends]
        answers = [batch.texts[i][batch.offsets[i][int(s)][0]:batch.offsets[i][int(e)][1]]
                   for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist()))]
        free = batch.attention_mask.bool() if include_special else batch.attributable
        wrapped = EmbeddingModel(AnswerSpan(model, starts, ends, token_types), batch.attention_mask, embeddings, free)
        context = {"batch": batch, "answers": answers, "probabilities": probability.tolist(),
                   "spans": list(zip(starts.tolist(), ends.tolist()))}
        return Prepared(embeddings, wrapped, list(batch.texts), context)

    def bind_target(self, target: Any, prepared: Prepared) -> Any:
        """``"answer"`` (also ``"top1"``, ``"span"``), ``"start"`` / ``"answer start"``, ``"end"`` / ``"answer end"``, or 0–2."""
        if isinstance(target, str) and target.strip().lower() in TARGET_NAMES:
            return TARGET_NAMES[target.strip().lower()]
        if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(OUTPUTS):
            return target
        raise SpmmInputError(f"a question-answering model explains 'answer', 'start' or 'end' of its answer span; got {target!r}")

    def explanation(self, base: Explanation, prepared: Prepared) -> Explanation:
        """Word scores; the prediction of each pair is its answer (text, P(start) · P(end)) and
        ``extra`` names the answer's token span."""
        base.predictions = [[Prediction(0, answer, probability)] for answer, probability
                            in zip(prepared.context["answers"], prepared.context["probabilities"])]
        return base.recast(AnswerExplanation, batch=prepared.context["batch"], score=default_score(base.method),
                           answer_spans=prepared.context["spans"])


@dataclasses.dataclass(repr=False)
class AnswerExplanation(TextExplanation):
    """A question-answering explanation: word scores over question and context; ``extra`` holds
    the answer's text and token span (``answer``, ``answer_tokens``: first and last position)."""

    answer_spans: list[tuple[int, int]] = dataclasses.field(default_factory=list)

    def item_extra(self, index: int) -> dict[str, Any]:
        answer = self.predictions[index][0].label if self.predictions else ""
        return {**super().item_extra(index), "answer": answer, "answer_tokens": list(self.answer_spans[index])}


@dataclasses.dataclass(repr=False)
class QuestionAnswering(Explainable):
    """An extractive question-answering model; ``explain`` also takes ``question=`` and ``context=``."""

    def explain(self, inputs: Any = None, target: Any = "answer", method: str = "soft_pullback", *,
                question: str | Sequence[str] | None = None, context: str | Sequence[str] | None = None,
                **params: Any) -> Explanation:
        if question is not None or context is not None:
            if inputs is not None or question is None or context is None:
                raise SpmmInputError("give question= and context= together, or (question, context) pairs, not both")
            inputs = (question, context) if isinstance(question, str) else list(zip(question, context))
        return super().explain(inputs, target, method, **params)


@register_hf_task("question-answering", ("ForQuestionAnswering",))
def load_question_answering(model: nn.Module, source: str | None, tokenizer: Any = None,
                            max_length: int | None = None) -> QuestionAnswering:
    """An extractive question-answering model: explains its answer span on the question's and the context's words."""
    from spmm.adapters.text.registry import TEXT_RULES

    tokenizer = load_tokenizer(source, tokenizer, model)
    modality = QuestionAnswerModality(tokenizer, token_limit(tokenizer, model.config, max_length))
    return QuestionAnswering(SpanLogits(model), modality, TEXT_RULES, list(OUTPUTS), source_name(source, model))
