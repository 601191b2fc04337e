"""Targets of text models beyond a class: the logit of a next token (decoders) and the cosine
similarity of a sentence embedding to a reference (encoders).  Both have ``take`` for repeated rows."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from spmm.errors import SpmmInputError


class NextTokenLogit:
    """Score = logit of ``token_ids`` (B,) at ``positions`` (B,) of causal-LM logits (B, L, V)."""

    def __init__(self, token_ids: Tensor, positions: Tensor) -> None:
        self.token_ids, self.positions = token_ids, positions

    def __call__(self, logits: Any) -> Tensor:
        logits = logits if isinstance(logits, Tensor) else logits.logits
        rows = torch.arange(logits.shape[0], device=logits.device)
        return logits[rows, self.positions.to(logits.device), self.token_ids.to(logits.device)]

    def take(self, sample_index: Tensor) -> "NextTokenLogit":
        return NextTokenLogit(self.token_ids[sample_index], self.positions[sample_index])

    def __repr__(self) -> str:
        return f"NextTokenLogit({self.token_ids.tolist()})"


class CosineSimilarity:
    """Score = cos(output embedding, reference): output (B, D), reference (D,) or (B, D)."""

    def __init__(self, reference: Tensor) -> None:
        self.reference = reference.detach()

    def __call__(self, output: Tensor) -> Tensor:
        reference = self.reference.to(output.device).expand_as(output)
        return torch.nn.functional.cosine_similarity(output, reference, dim=-1)

    def take(self, sample_index: Tensor) -> "CosineSimilarity":
        return self if self.reference.dim() == 1 else CosineSimilarity(self.reference[sample_index])


def next_token_id(tokenizer: Any, token: int | str) -> int:
    """A next token given as id or string -> its id (the string must be exactly one token)."""
    if isinstance(token, int) and not isinstance(token, bool):
        if not 0 <= token < len(tokenizer):
            raise SpmmInputError(f"token id {token} is outside the vocabulary (size {len(tokenizer)})")
        return token
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise SpmmInputError(f"next token {token!r} is {len(ids)} tokens {pieces}, not one; give one token")
    return ids[0]


def last_positions(attention_mask: Tensor) -> Tensor:
    """(B,) index of the last real token of each row (works for left and right padding)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device).expand_as(attention_mask)
    return (positions * attention_mask.long()).amax(dim=1)
