"""Hugging Face text encoders: sequence classification, token classification and fill-mask.

>>> m = spmm.load("./sst2_dir")                                  # ...ForSequenceClassification
>>> ex = m.explain("a gripping , funny film", target="POSITIVE")  # labels from config.id2label
>>> m = spmm.load("./ner_dir")                                   # ...ForTokenClassification
>>> ex = m.explain("Alice moved to Paris", target=spmm.TokenLabel("Paris", "B-LOC"))
>>> m = spmm.load("./mlm_dir")                                   # ...ForMaskedLM
>>> ex = m.explain("the capital of france is [MASK] .", target="paris")   # or "top1"

Each model is explained on its token embeddings with the ``text`` rule set; scores are words
(the text modality).  The tokenizer comes from the model's folder, or ``tokenizer=`` for a
model passed in.  A token classifier explains one word's label (:class:`spmm.TokenLabel`; the
label is read at the word's first sub-token); a masked LM explains the token predicted at the
one mask token of each text (its output is the logits at the mask, (B, V), so ``"top1"``, a
token string or a token id are its targets and its predictions are the top tokens).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation, Prediction
from spmm.modalities.text.batch import token_limit
from spmm.modalities.text.embedding import HFOutput
from spmm.modalities.text.explanation import TextExplanation, default_score
from spmm.modalities.text.modality import TextModality
from spmm.targets import TokenLabel, output_logits

from .preprocessors import saved_preprocessor
from .tasks import register_hf_task, source_name

PREDICTIONS = 5
"""Top labels listed for the explained token of a token classifier."""
def load_tokenizer(source: str | None, tokenizer: Any, model: nn.Module) -> Any:
    """The tokenizer given (``tokenizer=``) or saved next to the model in ``source`` (its fast
    version where one exists, else its sentencepiece one: Marian, SigLIP)."""
    return saved_preprocessor(source, tokenizer, model, "tokenizer", "tokenizer", "AutoTokenizer")


def pools_last_token(model: nn.Module) -> bool:
    """Whether ``model`` is a decoder-only classifier (Llama, GPT-2, Mistral… ``ForSequenceClassification``):
    a linear ``score`` head read at the last real token."""
    return isinstance(getattr(model, "score", None), nn.Linear) and not getattr(model.config, "is_encoder_decoder", False)


class LastTokenClassifier(HFOutput):
    """A decoder-only classifier as a body: (inputs_embeds (B, L, D), attention_mask (B, L)) -> logits (B, C)
    at each row's last real token, as the model itself pools when it is given token ids (given
    embeddings, transformers reads the last position, a padding token in the shorter texts)."""

    def forward(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        from spmm.adapters.text.targets import last_positions

        hidden = self.model.base_model(inputs_embeds=embeddings, attention_mask=attention_mask).last_hidden_state
        logits = self.model.score(hidden)
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, last_positions(attention_mask).to(logits.device)]


def padded_with_eos(tokenizer: Any, model: nn.Module, source: str | None) -> Any:
    """``tokenizer``, or a copy padding with its EOS token when it has no pad token (as causal LMs are
    padded), with a warning; a model loaded here (``source`` given) gets the same ``pad_token_id``."""
    if tokenizer.pad_token is not None or tokenizer.eos_token is None:
        return tokenizer
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    if source is not None and getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    warnings.warn(f"the tokenizer of {type(model).__name__} has no pad token: texts are padded with its EOS token "
                  f"{tokenizer.eos_token!r}, as for causal language models", stacklevel=3)
    return tokenizer


def text_explainable(
    model: nn.Module, source: str | None, tokenizer: Any, modality_class: type, labels: Sequence[str] | None,
    max_length: int | None, multi_label: bool = False,
) -> Explainable:
    """An Explainable of ``model`` (through :class:`HFOutput`, or :class:`LastTokenClassifier` for a
    decoder-only classifier, whose tokenizer then pads with EOS if it has no pad token) on
    ``modality_class``, with the text rule set."""
    from spmm.adapters.text.registry import TEXT_RULES

    tokenizer = load_tokenizer(source, tokenizer, model)
    body = HFOutput(model)
    if pools_last_token(model):
        tokenizer, body = padded_with_eos(tokenizer, model, source), LastTokenClassifier(model)
    modality = modality_class(tokenizer, token_limit(tokenizer, model.config, max_length))
    labels = list(labels) if labels is not None else None
    return Explainable(body, modality, TEXT_RULES, labels, source_name(source, model), multi_label)


def config_labels(model: nn.Module) -> list[str] | None:
    """``config.id2label`` in class order (None when it has none)."""
    id2label = getattr(model.config, "id2label", None) or {}
    return [str(id2label[i]) for i in sorted(id2label)] or None


@register_hf_task("sequence-classification", ("ForSequenceClassification",))
def load_sequence_classifier(
    model: nn.Module, source: str | None, tokenizer: Any = None, labels: Sequence[str] | None = None,
    max_length: int | None = None,
) -> Explainable:
    """A sequence classifier: per-label word scores; labels from ``config.id2label`` (or ``labels=``);
    ``problem_type="multi_label_classification"`` gives sigmoid probabilities."""
    multi_label = getattr(model.config, "problem_type", None) == "multi_label_classification"
    return text_explainable(model, source, tokenizer, TextModality, labels or config_labels(model), max_length,
                            multi_label)


class TokenLabelModality(TextModality):
    """Texts for a token classifier: targets are :class:`spmm.TokenLabel` (one word's label)."""

    def bind_target(self, target: Any, prepared: Prepared) -> Any:
        """A TokenLabel naming a word -> the TokenLabel of that word's first sub-token in each text.
        The command line's ``WORD:LABEL`` or ``WORD`` (its top label) is read as one."""
        if isinstance(target, str) and target.strip().lower() != "top1":
            word, _, label = target.rpartition(":") if ":" in target else (target, "", "top1")
            target = TokenLabel(int(word) if word.strip().isdigit() else word.strip(), label.strip() or "top1")
        if not isinstance(target, TokenLabel):
            raise SpmmInputError(
                "a token classifier explains one word's label: target=spmm.TokenLabel(word, label) with the "
                f"word's text or index and a label name, index or 'top1' (command line: WORD:LABEL); got {target!r}"
            )
        if target.word is None:
            return target
        batch = prepared.context["batch"]
        positions = [word_position(batch, row, target.word) for row in range(len(batch))]
        return TokenLabel(label=target.label, token=positions)

    def explanation(self, base: Explanation, prepared: Prepared) -> Explanation:
        """The text explanation, with the predictions (top labels) of the explained token."""
        positions = getattr(base.target, "positions", None)
        logits = output_logits(base.output)
        if isinstance(positions, Tensor) and logits.dim() == 3:
            at_token = logits[torch.arange(logits.shape[0]), positions.to(logits.device)].float()
            values, indices = at_token.softmax(-1).topk(min(PREDICTIONS, at_token.shape[-1]), dim=-1)
            labels = base.labels or []
            base.predictions = [
                [Prediction(i, str(labels[i]) if i < len(labels) else str(i), v) for v, i in zip(vs, ix)]
                for vs, ix in zip(values.tolist(), indices.tolist())
            ]
        return base.recast(TokenLabelExplanation, batch=prepared.context["batch"], score=default_score(base.method))


@dataclasses.dataclass(repr=False)
class TokenLabelExplanation(TextExplanation):
    """A token classifier's explanation: word scores, and in each item's ``extra`` the explained token
    (``target_token``: its position, token string and word index)."""

    def explained_token(self, index: int) -> dict[str, Any]:
        position = int(self.target.positions[index])
        batch = self._batch()
        return {"position": position, "token": batch.tokens[index][position], "word": batch.word_ids[index][position]}

    def item_extra(self, index: int) -> dict[str, Any]:
        return {**super().item_extra(index), "target_token": self.explained_token(index)}

    def _heading(self, index: int) -> str:
        return f"{super()._heading(index)} at token {self.explained_token(index)['token']!r}"


def word_position(batch: Any, row: int, word: int | str) -> int:
    """The token position of ``word`` (its index among the text's words, or its text: first occurrence)
    in text ``row`` of a :class:`~spmm.modalities.text.TextBatch`: its first sub-token."""
    word_ids, text = batch.word_ids[row], batch.texts[row]
    starts: dict[int, int] = {}
    for position, word_id in enumerate(word_ids):
        if word_id is not None and word_id not in starts:
            starts[word_id] = position
    if isinstance(word, bool) or not isinstance(word, (int, str)):
        raise SpmmInputError(f"TokenLabel word must be a word's text or its index, got {word!r}")
    if isinstance(word, int):
        if word not in starts:
            raise SpmmInputError(f"text {row} has {len(starts)} words (0..{len(starts) - 1}); word {word} is not one")
        return starts[word]
    spans: dict[int, tuple[int, int]] = {}
    for position, word_id in enumerate(word_ids):
        if word_id is not None:
            start, end = batch.offsets[row][position]
            first, last = spans.get(word_id, (start, end))
            spans[word_id] = (min(first, start), max(last, end))
    for word_id in sorted(spans):
        start, end = spans[word_id]
        if text[start:end] == word:
            return starts[word_id]
    words = [text[s:e] for s, e in (spans[w] for w in sorted(spans))]
    raise SpmmInputError(
        f"word {word!r} is not one of the words of text {row}: {words} (targets of a token classifier: "
        "spmm.TokenLabel(word, label), on the command line WORD:LABEL)"
    )


@register_hf_task("token-classification", ("ForTokenClassification",))
def load_token_classifier(
    model: nn.Module, source: str | None, tokenizer: Any = None, labels: Sequence[str] | None = None,
    max_length: int | None = None,
) -> Explainable:
    """A token classifier (NER, POS…): explains one word's label, ``target=spmm.TokenLabel(word, label)``."""
    return text_explainable(model, source, tokenizer, TokenLabelModality, labels or config_labels(model), max_length)


class LogitsAtPositions(nn.Module):
    """``body``'s logits (B, L, V) read at ``positions`` (B,): (B, V).  ``take`` follows repeated rows."""

    def __init__(self, body: Any, positions: Tensor) -> None:
        super().__init__()
        self.body, self.positions = body, positions
        self.train(getattr(body, "training", False))

    def forward(self, embeddings: Tensor) -> Tensor:
        logits = self.body(embeddings)
        rows = torch.arange(logits.shape[0], device=logits.device)
        positions = self.positions.to(logits.device)
        return logits[rows, positions.expand(logits.shape[0]) if positions.numel() == 1 else positions]

    def take(self, sample_index: Tensor) -> "LogitsAtPositions":
        body = self.body.take(sample_index) if hasattr(self.body, "take") else self.body
        positions = self.positions if self.positions.numel() == 1 else self.positions[sample_index.to(self.positions.device)]
        return LogitsAtPositions(body, positions)


def vocabulary_id(tokenizer: Any, token: str) -> int:
    """A token string -> its id: a vocabulary entry as is (``"##ing"``, ``"Ġparis"``), else a word that
    the tokenizer encodes as one token, alone or after a space (``"paris"`` -> ``"Ġparis"``)."""
    vocabulary = tokenizer.get_vocab()
    if token in vocabulary:
        return vocabulary[token]
    for text in (token, " " + token):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            return ids[0]
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(token, add_special_tokens=False)["input_ids"])
    raise SpmmInputError(f"{token!r} is not one token of the vocabulary (it is {pieces}); give one token")


class MaskedTokenModality(TextModality):
    """Texts with one mask token each; the model's output is read at the mask: (B, V)."""

    def prepare(self, model: nn.Module, inputs: str | Sequence[str], **options: Any) -> Prepared:
        prepared = super().prepare(model, inputs, **options)
        batch = prepared.context["batch"]
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            raise SpmmInputError("the tokenizer has no mask token; fill-mask needs one")
        is_mask = batch.input_ids == mask_id
        counts = is_mask.sum(1).tolist()
        if any(count != 1 for count in counts):
            row = next(i for i, count in enumerate(counts) if count != 1)
            raise SpmmInputError(
                f"text {row} holds {counts[row]} {self.tokenizer.mask_token} tokens; fill-mask explains "
                f"exactly one {self.tokenizer.mask_token} per text"
            )
        prepared.model = LogitsAtPositions(prepared.model, is_mask.long().argmax(1))
        return prepared

    def bind_target(self, target: Any, prepared: Prepared) -> Any:
        """Token strings (not ``"top1"``) -> vocabulary ids, one target or one per text."""
        def one(item: Any) -> Any:
            if isinstance(item, str) and item.strip().lower() != "top1" and not item.strip().isdigit():
                return vocabulary_id(self.tokenizer, item)
            return item

        return [one(t) for t in target] if isinstance(target, (list, tuple)) else one(target)


@register_hf_task("fill-mask", ("ForMaskedLM",))
def load_masked_lm(
    model: nn.Module, source: str | None, tokenizer: Any = None, max_length: int | None = None,
) -> Explainable:
    """A masked LM: explains the token at the mask (``"top1"``: the predicted one, or a token string / id);
    its labels are the vocabulary's tokens."""
    explainable = text_explainable(model, source, tokenizer, MaskedTokenModality, None, max_length)
    tokenizer = explainable.modality.tokenizer
    size = model.get_output_embeddings().weight.shape[0] if model.get_output_embeddings() is not None else len(tokenizer)
    known = min(size, len(tokenizer))
    explainable.labels = tokenizer.convert_ids_to_tokens(list(range(known))) + [str(i) for i in range(known, size)]
    return explainable
