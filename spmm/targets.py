"""Targets: what to explain, as a callable mapping model output to one score per sample."""

from __future__ import annotations

import dataclasses
import numbers
import os
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from spmm.errors import SpmmInputError

TargetFn = Callable[[Any], Tensor]
"""Maps a model output to (B,) scores.  A target that depends on the sample (such as
:class:`ClassLogit`) also has ``take(sample_index) -> TargetFn`` for batches made of
repeated samples; one without it must treat every row alike."""
Target = Union[int, Sequence[int], Tensor, np.ndarray, TargetFn]


def output_logits(output: Any) -> Tensor:
    """The logits tensor of a model output: a tensor, ``.logits`` (Hugging Face) or the first element."""
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise SpmmInputError(
        f"cannot find logits in a model output of type {type(output).__name__}; pass a callable target "
        "that maps the output to one score per sample"
    )


class ClassLogit:
    """Score = logit of one class per sample.  ``indices``: (B,) long."""

    def __init__(self, indices: Tensor) -> None:
        self.indices = indices

    def __call__(self, output: Any) -> Tensor:
        logits = output_logits(output)
        return logits.gather(1, self.indices.to(logits.device).view(-1, 1)).squeeze(1)

    def take(self, sample_index: Tensor) -> "ClassLogit":
        """The target for a batch whose rows are the samples ``sample_index`` (e.g. expanded by Captum)."""
        return ClassLogit(self.indices[sample_index.to(self.indices.device)])

    def __repr__(self) -> str:
        return f"ClassLogit({self.indices.tolist()})"


def _is_index(value: Any) -> bool:
    """A Python or NumPy integer (not a bool)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def class_indices(target: int | Sequence[int] | Tensor | np.ndarray, logits: Tensor) -> Tensor:
    """Validate an index target (Python or NumPy integers, an integer tensor or array) against
    logits (B, C, ...) and return (B,) long indices."""
    if logits.dim() != 2:
        raise SpmmInputError(
            f"an index target needs logits of shape (batch, classes), got {tuple(logits.shape)}; "
            "pass a callable target that maps the output to one score per sample"
        )
    batch, classes = logits.shape
    if isinstance(target, np.ndarray):
        if target.dtype.kind not in "iu":
            raise SpmmInputError(f"target array must hold integer class indices, got dtype {target.dtype}")
        target = torch.from_numpy(target.astype(np.int64))
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise SpmmInputError(f"target tensor must hold integer class indices, got dtype {target.dtype}")
        indices = target.detach().flatten().long()
    elif _is_index(target):
        indices = torch.full((batch,), int(target), dtype=torch.long)
    elif isinstance(target, Sequence) and not isinstance(target, str) and all(_is_index(t) for t in target):
        indices = torch.tensor([int(t) for t in target], dtype=torch.long)
    else:
        raise SpmmInputError(
            f"target must be an int, one int per sample, or a callable; got {type(target).__name__}"
        )
    if indices.numel() == 1 and batch != 1:
        indices = indices.expand(batch)
    if indices.numel() != batch:
        raise SpmmInputError(f"got {indices.numel()} targets for a batch of {batch} samples")
    bad = (indices < 0) | (indices >= classes)
    if bad.any():
        raise SpmmInputError(
            f"target index {indices[bad][0].item()} is out of range for a model with {classes} outputs "
            f"(valid: 0..{classes - 1})"
        )
    return indices.clone()


def model_output(output: Any) -> Any:
    """A Hugging Face ``ModelOutput`` carrying ``.logits`` -> those logits; any other output as it is."""
    logits = getattr(output, "logits", None)
    is_model_output = any(cls.__name__ == "ModelOutput" for cls in type(output).__mro__)
    return logits if is_model_output and isinstance(logits, Tensor) else output


class OnModelOutput:
    """A user's callable target applied to :func:`model_output` of the output, so that it sees the
    logits tensor of a Hugging Face model rather than its ``ModelOutput``."""

    def __init__(self, target_fn: TargetFn) -> None:
        self.target_fn = target_fn

    def __call__(self, output: Any) -> Tensor:
        return self.target_fn(model_output(output))

    def take(self, sample_index: Tensor) -> "OnModelOutput":
        return OnModelOutput(target_for_rows(self.target_fn, sample_index))

    def __getattr__(self, name: str) -> Any:
        if name == "target_fn":
            raise AttributeError(name)
        return getattr(self.target_fn, name)

    def __repr__(self) -> str:
        return repr(self.target_fn)


def resolve_target(target: Target, output: Any, labels: Sequence[str] | None = None) -> TargetFn:
    """Turn ``target`` into a callable.  :class:`Contrast` becomes a :class:`LogitDifference`;
    targets with ``resolve(output, labels)`` (such as :class:`TokenLabel`) resolve themselves
    against the clean output; other callables receive :func:`model_output` of every output (a
    Hugging Face ``ModelOutput`` becomes its ``.logits``); class targets (:func:`class_targets`:
    indices, ``"top1"``, label names of ``labels``) are validated against ``output``.
    :class:`Continuation` and :class:`SequenceLogProb` need a model that generates (``spmm.load``
    of a language model).  This is the one place model outputs meet targets."""
    if isinstance(target, (Continuation, SequenceLogProb)):
        raise SpmmInputError(
            f"{type(target).__name__} targets need a generative model loaded with spmm.load (a causal or "
            "sequence-to-sequence language model); this call explains a fixed output"
        )
    if isinstance(target, Contrast):
        logits = output_logits(output)
        return LogitDifference(class_targets(target.target, logits, labels), class_targets(target.foil, logits, labels))
    if hasattr(target, "resolve") and not isinstance(target, (Tensor, str, os.PathLike)):
        return target.resolve(model_output(output), labels)
    if callable(target) and not isinstance(target, Tensor):
        return target if isinstance(target, (ClassLogit, OnModelOutput)) else OnModelOutput(target)
    return ClassLogit(class_targets(target, output_logits(output), labels))


class PositionLogit:
    """Score = logit of class ``indices`` (B,) at sequence position ``positions`` (B,) of logits (B, L, C)."""

    def __init__(self, positions: Tensor, indices: Tensor) -> None:
        self.positions, self.indices = positions, indices

    def __call__(self, output: Any) -> Tensor:
        logits = output_logits(output)
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, self.positions.to(logits.device), self.indices.to(logits.device)]

    def take(self, sample_index: Tensor) -> "PositionLogit":
        index = sample_index.to(self.indices.device)
        return PositionLogit(self.positions[index], self.indices[index])

    def __repr__(self) -> str:
        return f"PositionLogit(positions={self.positions.tolist()}, classes={self.indices.tolist()})"


@dataclasses.dataclass(frozen=True)
class TokenLabel:
    """Explain the label of one token (token classification, e.g. named entities).

    word: which word: its text (first occurrence in each input, e.g. ``"Paris"``) or its index
        among the input's words (``3``: the fourth word); a word's label is read at its first
        sub-token.  Needs a model that knows its inputs' words (a text model from ``spmm.load``).
    label: ``"top1"`` (the word's predicted label), a label name or a class index.
    token: instead of ``word``, a sequence position of the model output (B, L, C) itself (one
        int, or one per input); works with any model.

    >>> ex = m.explain("Alice moved to Paris", target=spmm.TokenLabel("Paris", "B-LOC"))
    """

    word: int | str | None = None
    label: int | str = "top1"
    token: int | Sequence[int] | None = None

    def __post_init__(self) -> None:
        if (self.word is None) == (self.token is None):
            raise SpmmInputError("TokenLabel needs exactly one of word= (a word or its index) and token= (a position)")

    def resolve(self, output: Any, labels: Sequence[str] | None = None) -> PositionLogit:
        """The :class:`PositionLogit` of this label on logits (B, L, C), validated."""
        logits = output_logits(output)
        if self.token is None:
            raise SpmmInputError(
                f"TokenLabel(word={self.word!r}) needs a model that knows its inputs' words (spmm.load of a text "
                "model); for a raw sequence output give token=<position>"
            )
        if logits.dim() != 3:
            raise SpmmInputError(
                f"TokenLabel needs per-token logits (batch, tokens, classes), got shape {tuple(logits.shape)}"
            )
        batch, length, _ = logits.shape
        tokens = [self.token] * batch if _is_index(self.token) else list(self.token)
        if len(tokens) != batch or not all(_is_index(t) for t in tokens):
            raise SpmmInputError(f"TokenLabel token= must be one position or one per input ({batch}), got {self.token!r}")
        bad = [t for t in tokens if not 0 <= int(t) < length]
        if bad:
            raise SpmmInputError(f"token position {bad[0]} is outside the sequence of {length} tokens")
        positions = torch.tensor([int(t) for t in tokens], dtype=torch.long, device=logits.device)
        at_tokens = logits[torch.arange(batch, device=logits.device), positions]
        return PositionLogit(positions, class_targets(self.label, at_tokens, labels))


def target_for_rows(target_fn: TargetFn, sample_index: Tensor | None) -> TargetFn:
    """``target_fn`` for a batch whose rows are the samples ``sample_index`` (None: the original batch)."""
    if sample_index is None or not hasattr(target_fn, "take"):
        return target_fn
    return target_fn.take(sample_index)


def target_scores(target_fn: TargetFn, output: Any, batch: int) -> Tensor:
    """Apply ``target_fn`` and check it gives one score per sample: (B,).  A target that fails on
    the output (e.g. a callable indexing a class the model does not have) is named in one line."""
    try:
        scores = target_fn(output)
    except SpmmInputError:
        raise
    except (IndexError, KeyError, RuntimeError, TypeError, ValueError) as error:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise SpmmInputError(
            f"the target {target_fn!r} failed on the model output {shape}: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(scores, Tensor):
        raise SpmmInputError(f"target callable must return a tensor, got {type(scores).__name__}")
    if scores.shape != (batch,):
        raise SpmmInputError(
            f"target callable must return one score per sample, shape ({batch},); got {tuple(scores.shape)}"
        )
    return scores


ClassTarget = Union[int, str, Sequence[Union[int, str]], Tensor]
"""``"top1"``, a class index, a label name (or a digit string), or one of those per sample."""


def label_index(name: str | int, labels: Sequence[str]) -> int:
    """The index of class ``name`` in ``labels`` (case-insensitive; an integer or a digit string is
    an index, not checked against the number of classes here)."""
    import difflib

    if _is_index(name):
        return int(name)
    if not isinstance(name, str):
        raise SpmmInputError(f"a class must be an integer index or a label name, got {name!r} ({type(name).__name__})")
    text = name.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    lowered = [str(label).lower() for label in labels]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    close = difflib.get_close_matches(text.lower(), lowered, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(str(labels[lowered.index(c)])) for c in close)}?" if close else ""
    raise SpmmInputError(f"{name!r} is not one of the model's {len(labels)} labels{hint}")


def class_targets(target: ClassTarget, logits: Tensor, labels: Sequence[str] | None = None) -> Tensor:
    """(B,) class indices from ``"top1"`` (each sample's highest logit), an index, a label name, a
    (B,) tensor, or one of those per sample; validated against ``logits`` (B, C)."""
    if logits.dim() != 2:
        raise SpmmInputError(
            f"a class target needs logits of shape (batch, classes), got {tuple(logits.shape)}; "
            "pass a callable target that maps the output to one score per sample"
        )
    batch = logits.shape[0]
    if isinstance(target, (Tensor, np.ndarray)) or _is_index(target):
        return class_indices(target, logits)
    items = list(target) if isinstance(target, (list, tuple)) else [target] * batch
    if len(items) != batch:
        raise SpmmInputError(f"got {len(items)} targets for a batch of {batch} samples")
    indices = []
    for row, item in enumerate(items):
        if isinstance(item, str) and item.strip().lower() == "top1":
            indices.append(int(logits[row].argmax()))
        elif isinstance(item, str):
            if labels is None and not item.strip().lstrip("-").isdigit():
                raise SpmmInputError(f"target {item!r} is a label name, but the model has no labels; give an index")
            indices.append(label_index(item, labels or []))
        elif _is_index(item):
            indices.append(int(item))
        else:
            raise SpmmInputError(
                f"target must be an int, 'top1' or a label name (one per sample), or a callable; got {item!r}"
            )
    return class_indices(indices, logits)


# -- targets of language models (generation is run by the adapters) -------------------------
CONTINUATION_SCORES = ("logit", "logprob")
DEFAULT_NEW_TOKENS = 10


@dataclasses.dataclass(frozen=True)
class Continuation:
    """Explain every token of a continuation of the prompt, each on the prompt and the tokens before it.

    text: the continuation to explain (teacher-forced), as text or as token ids (exactly these
        tokens, e.g. a sampled generation), or None to generate one greedily
        (``do_sample=False``) of ``max_new_tokens`` tokens (default :data:`DEFAULT_NEW_TOKENS`).
    score: what each row explains: ``"logit"`` of the token, or its ``"logprob"`` (log-softmax).

    The explanation is a tokens × tokens matrix (rows: continuation tokens; columns: prompt and
    continuation tokens; a row is undefined on the columns from its own token on).
    """

    text: str | Sequence[int] | None = None
    max_new_tokens: int | None = None
    score: str = "logit"

    def __post_init__(self) -> None:
        if isinstance(self.text, (list, tuple)) and self.text and all(_is_index(i) for i in self.text):
            object.__setattr__(self, "text", tuple(int(i) for i in self.text))
        elif self.text is not None and (not isinstance(self.text, str) or not self.text.strip()):
            raise SpmmInputError(f"Continuation text must be a non-empty string or token ids, got {self.text!r}")
        if self.text is not None and self.max_new_tokens is not None:
            raise SpmmInputError("give Continuation either text= (explained as given) or max_new_tokens= (generated), not both")
        if self.max_new_tokens is not None and (not _is_index(self.max_new_tokens) or self.max_new_tokens < 1):
            raise SpmmInputError(f"max_new_tokens must be a positive integer, got {self.max_new_tokens!r}")
        if self.score not in CONTINUATION_SCORES:
            raise SpmmInputError(f"Continuation score must be one of {CONTINUATION_SCORES}, got {self.score!r}")

    @property
    def new_tokens(self) -> int:
        """How many tokens to generate when no text is given."""
        return self.max_new_tokens or DEFAULT_NEW_TOKENS


@dataclasses.dataclass(frozen=True)
class SequenceLogProb:
    """Explain log p(text | prompt) = Σ_t log p(token_t | prompt, tokens before t): one score,
    attributed to the prompt and the continuation's own tokens."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise SpmmInputError(f"SequenceLogProb needs the continuation as a non-empty string, got {self.text!r}")


@dataclasses.dataclass(frozen=True)
class Contrast:
    """Score = logit(target) − logit(foil): why this output rather than that one.  Each side is a
    class index, ``"top1"`` or a label name; language models also take token strings (one token
    each, explained at the next position)."""

    target: int | str
    foil: int | str

    def __post_init__(self) -> None:
        if not isinstance(self.target, (list, tuple, Tensor, np.ndarray)) and self.target == self.foil:
            raise SpmmInputError(f"Contrast target and foil are the same class ({self.target!r}): the score would be 0")


class LogitDifference:
    """Score = logit of ``target`` minus logit of ``foil`` per sample: indices (B,) each."""

    def __init__(self, target: Tensor, foil: Tensor) -> None:
        self.indices, self.foil = target, foil

    def __call__(self, output: Any) -> Tensor:
        logits = output_logits(output)
        return ClassLogit(self.indices)(logits) - ClassLogit(self.foil)(logits)

    def take(self, sample_index: Tensor) -> "LogitDifference":
        index = sample_index.to(self.indices.device)
        return LogitDifference(self.indices[index], self.foil[index])

    def __repr__(self) -> str:
        return f"LogitDifference({self.indices.tolist()} - {self.foil.tolist()})"
