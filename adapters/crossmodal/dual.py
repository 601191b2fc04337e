"""Dual encoders explained on either side: which pixels make an image match a text, which words
make a text match an image.

A :class:`DualEncoder` is an image tower and a text tower meeting in one embedding space, with
the similarity ``scale · cos(image, text) + bias`` (CLIP: bias 0; SigLIP: a learned bias).
:class:`DualEncoderExplainable` is what ``spmm.load`` returns for one (``lite0-minilm``, a
Hugging Face ``CLIPModel`` / ``SiglipModel`` folder): an image classifier over text labels,
explained like any image model, whose :meth:`~DualEncoderExplainable.text_side` is the text
model that scores texts against fixed images, explained like any text model.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation
from spmm.rows import RowPlan
from spmm.ruleset import RuleSet
from spmm.targets import ClassTarget
from spmm.adapters.text.labels import check_label_texts
from spmm.adapters.text.rules import L2Normalize
from spmm.modalities.text.batch import encode_texts
from spmm.modalities.text.embedding import EmbeddingModel, embed
from spmm.modalities.image.modality import ImageModality
from spmm.modalities.text.modality import TextModality


@dataclasses.dataclass
class DualEncoder:
    """An image tower and a text tower with one similarity.

    image_encoder: images (B, 3, H, W) in [−1, 1] -> embeddings (B, D).
    text_encoder: a text tower: ``(embeddings (B, L, E), attention_mask (B, L), input_ids (B, L))
        -> (B, D)`` with ``get_input_embeddings()`` (the ids only locate positions such as CLIP's
        end-of-text token; the attribution flows through the embeddings).
    tokenizer: the text tower's fast tokenizer.
    scale, bias: similarity = scale · cos(image, text) + bias.
    image_size: side of the square images the image tower takes.
    image_rules, text_rules: the rule sets each side is explained with.
    image_preprocess: ``PIL image -> (3, H, W)`` in [−1, 1] (default: the image modality's resize).
    max_length: token limit of the text tower (default: the tokenizer's ``model_max_length``).
    """

    image_encoder: nn.Module
    text_encoder: nn.Module
    tokenizer: Any
    scale: float
    bias: float = 0.0
    image_size: int = 224
    image_rules: RuleSet = dataclasses.field(default_factory=RuleSet)
    text_rules: RuleSet = dataclasses.field(default_factory=RuleSet)
    image_preprocess: Callable[[Any], Tensor] | None = None
    max_length: int | None = None

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """Unit-norm text embeddings (N, D), in batches ((0, 0) for no texts)."""
        if not texts:
            return torch.empty(0, 0)
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = encode_texts(self.tokenizer, list(texts[start:start + batch_size]), max_length=self.max_length)
            batch = batch.to(_device(self.text_encoder))
            embeddings = embed(self.text_encoder, batch.input_ids)
            chunks.append(self.text_encoder(embeddings, batch.attention_mask, batch.input_ids))
        return nn.functional.normalize(torch.cat(chunks).float(), dim=-1)

    @torch.no_grad()
    def embed_images(self, images: Tensor) -> Tensor:
        """Unit-norm image embeddings (B, D) of images (B, 3, H, W) in [−1, 1]."""
        return nn.functional.normalize(self.image_encoder(images).float(), dim=-1)


class ImageTextLogits(nn.Module):
    """Images (B, 3, H, W) -> similarity logits (B, C) to C fixed unit-norm text embeddings (C, D)."""

    def __init__(self, image_encoder: nn.Module, text_embeddings: Tensor, scale: float, bias: float = 0.0) -> None:
        super().__init__()
        self.image_encoder, self.scale, self.bias = image_encoder, scale, bias
        self.normalize = L2Normalize()
        self.register_buffer("text_embeddings", text_embeddings.detach())
        self.train(image_encoder.training)

    def forward(self, images: Tensor) -> Tensor:
        if not len(self.text_embeddings):
            raise SpmmInputError("this model has no label texts: give a text target (target=\"a photo of a cat\") "
                                 "or labels=[...] to spmm.load")
        image = self.normalize(self.image_encoder(images))
        return self.scale * (image @ self.text_embeddings.to(image.dtype).T) + self.bias


class TextImageLogits(nn.Module):
    """A text body: (embeddings (B, L, E), attention_mask, input_ids) -> similarity logits (B, K)
    to K fixed unit-norm image embeddings (K, D)."""

    def __init__(self, text_encoder: nn.Module, image_embeddings: Tensor, scale: float, bias: float = 0.0) -> None:
        super().__init__()
        self.text_encoder, self.scale, self.bias = text_encoder, scale, bias
        self.normalize = L2Normalize()
        self.register_buffer("image_embeddings", image_embeddings.detach())
        self.train(text_encoder.training)

    def get_input_embeddings(self) -> nn.Module:
        return self.text_encoder.get_input_embeddings()

    def forward(self, embeddings: Tensor, attention_mask: Tensor, input_ids: Tensor) -> Tensor:
        text = self.normalize(self.text_encoder(embeddings, attention_mask, input_ids))
        return self.scale * (text @ self.image_embeddings.to(text.dtype).T) + self.bias


class TokenEmbeddingModel(EmbeddingModel):
    """:class:`EmbeddingModel` of a body that also reads the token ids (positions of special tokens)."""

    def __init__(self, body: nn.Module, attention_mask: Tensor, fixed: Tensor, free: Tensor, input_ids: Tensor) -> None:
        super().__init__(body, attention_mask, fixed, free)
        self.input_ids = input_ids

    def forward(self, embeddings: Tensor) -> Any:
        rows = embeddings.shape[0]
        mixed = embeddings * self.free + self.fixed * (1 - self.free)
        if rows != self.attention_mask.shape[0] and self.attention_mask.shape[0] != 1:
            raise SpmmInputError(
                f"got {rows} rows for a text batch of {self.attention_mask.shape[0]}; repeated rows need take(sample_index)"
            )
        return self.body(mixed, self.attention_mask.expand(rows, -1), self.input_ids.expand(rows, -1))

    def take(self, sample_index: Tensor) -> "TokenEmbeddingModel":
        if self.attention_mask.shape[0] == 1:
            return self
        index = sample_index.to(self.attention_mask.device)
        return TokenEmbeddingModel(self.body, self.attention_mask[index], self.fixed[index],
                                   self.free[index, :, 0].bool(), self.input_ids[index])


class TowerTextModality(TextModality):
    """The text modality for text towers that read the token ids next to the embeddings."""

    def prepare(
        self, model: nn.Module, inputs: str | Sequence[str], on_overflow: str = "truncate", include_special: bool = False
    ) -> Prepared:
        prepared = super().prepare(model, inputs, on_overflow, include_special)
        plain: EmbeddingModel = prepared.model
        batch = prepared.context["batch"]
        prepared.model = TokenEmbeddingModel(model, plain.attention_mask, plain.fixed, plain.free[..., 0].bool(),
                                             batch.input_ids)
        return prepared


def _device(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    buffer = next(module.buffers(), None)
    found = parameter if parameter is not None else buffer
    return found.device if found is not None else torch.device("cpu")


def _as_descriptions(labels: Sequence[str] | dict[str, str]) -> dict[str, str]:
    """{label: text it is compared with}: label names are their own texts unless a dict says otherwise."""
    if isinstance(labels, str):
        raise SpmmInputError(f"labels must be a list of texts (or {{label: text}}), got the string {labels[:40]!r}")
    check_label_texts(labels)
    descriptions = dict(labels) if isinstance(labels, dict) else {str(t).strip(): str(t).strip() for t in labels}
    check_label_texts(descriptions.values())
    if any(not str(k).strip() or not str(v).strip() for k, v in descriptions.items()):
        raise SpmmInputError(f"labels must be non-empty texts, got {list(descriptions)!r}")
    return descriptions


def relabelled_embeddings(dual: DualEncoder, descriptions: dict[str, str], embeddings: Tensor,
                          labels: dict[str, str]) -> Tensor | None:
    """Unit-norm text embeddings (C, D) of ``labels`` ({label: text}), reusing ``embeddings`` of the
    texts of ``descriptions`` and embedding only the new texts (None for no labels)."""
    known = dict(zip(descriptions.values(), embeddings))
    new = [text for text in dict.fromkeys(labels.values()) if text not in known]
    if new:
        known.update(zip(new, dual.embed_texts(new)))
    return torch.stack([known[text] for text in labels.values()]) if labels else None


class DualImageModality(ImageModality):
    """The image side of a dual encoder: images in [−1, 1] at the image tower's size, whose targets
    may be any text (the :meth:`plan_rows` hook adds texts that are not labels to this call's labels).

    dual: the :class:`DualEncoder`; descriptions: {label: text} of the model's labels.
    """

    def __init__(self, dual: DualEncoder, descriptions: dict[str, str]) -> None:
        super().__init__(dual.image_size, dual.image_preprocess, unit_range=True)
        self.dual, self.descriptions = dual, descriptions

    def plan_rows(self, prepared: Prepared, target: Any, method: str, params: dict[str, Any]) -> RowPlan | None:
        """Texts among the targets that are not labels (nor indices, nor ``"top1"``) join the labels
        for this call: the images are explained on the logits over labels + texts.  None otherwise."""
        texts = [target] if isinstance(target, str) else list(target) if isinstance(target, (list, tuple)) else []
        known = {label.lower() for label in self.descriptions} | {"top1"}
        extra = [t for t in dict.fromkeys(texts) if isinstance(t, str) and t.strip().lower() not in known
                 and not t.strip().lstrip("-").isdigit()]
        if not extra:
            return None
        labels = {**self.descriptions, **{t: t for t in extra}}
        logits: ImageTextLogits = prepared.model
        embeddings = relabelled_embeddings(self.dual, self.descriptions, logits.text_embeddings, labels)
        model = ImageTextLogits(self.dual.image_encoder, embeddings, self.dual.scale, self.dual.bias)
        relabelled = dataclasses.replace(prepared, model=model)
        return RowPlan(relabelled, target, {**self.method_params(method, prepared.inputs, prepared.model), **params}, labels=list(labels))


@dataclasses.dataclass(repr=False)
class DualEncoderExplainable(Explainable):
    """An image classifier over text labels (zero-shot), explainable on both sides.

    >>> m = spmm.load("lite0-minilm", labels=["a photo of a cat", "a photo of a dog"])
    >>> m.explain("cat.jpg", target="a photo of a sleeping cat")      # pixels (any text as target)
    >>> m.explain_text("a photo of a sleeping cat", image="cat.jpg")    # words, the image fixed

    Logits (B, C) = scale · cos(image embedding, label text embedding) + bias.  A ``target`` text
    that is not one of the labels is added to them for that call (its logit is its similarity;
    the other labels only shape the shown probabilities): :class:`DualImageModality` plans it.
    """

    dual: DualEncoder | None = None
    descriptions: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def build(
        cls, dual: DualEncoder, labels: Sequence[str] | dict[str, str], name: str, text_embeddings: Tensor | None = None
    ) -> "DualEncoderExplainable":
        """The image-side explainable of ``dual`` over ``labels`` (texts, or {label: text});
        ``text_embeddings`` (C, D): their unit-norm embeddings when already known."""
        descriptions = _as_descriptions(labels)
        if text_embeddings is None:
            text_embeddings = dual.embed_texts(list(descriptions.values()))
        logits = ImageTextLogits(dual.image_encoder, text_embeddings, dual.scale, dual.bias)
        return cls(logits, DualImageModality(dual, descriptions), dual.image_rules, list(descriptions), name,
                   dual=dual, descriptions=descriptions)

    def with_labels(self, labels: Sequence[str] | dict[str, str]) -> "DualEncoderExplainable":
        """The same model classifying over other ``labels`` (texts, or {label: text}); texts
        already embedded are not embedded again."""
        descriptions = _as_descriptions(labels)
        embeddings = relabelled_embeddings(self.dual, self.descriptions, self.model.text_embeddings, descriptions)
        rebuilt = self.build(self.dual, descriptions, self.name, embeddings)
        return dataclasses.replace(rebuilt, rules=self.rules)

    def to(self, device: torch.device | str) -> "DualEncoderExplainable":
        """Move both towers to ``device`` (in place) and return self."""
        self.dual.text_encoder.to(device)
        super().to(device)
        return self

    def text_side(self, images: Any) -> Explainable:
        """The text model scoring texts against fixed ``images`` (paths / PIL images / a tensor in
        [−1, 1]): texts -> logits (B, K), one per image (labels: the images' names)."""
        prepared = self.modality.prepare(self.model, images)
        image_embeddings = self.dual.embed_images(prepared.inputs)
        body = TextImageLogits(self.dual.text_encoder, image_embeddings, self.dual.scale, self.dual.bias)
        names = [os.path.basename(str(source)) or str(source) for source in prepared.sources]
        return Explainable(body, TowerTextModality(self.dual.tokenizer, self.dual.max_length), self.dual.text_rules,
                           names, f"{self.name} (text side)")

    def explain_text(
        self, texts: str | Sequence[str], image: Any, target: ClassTarget | Any = "top1",
        method: str = "soft_pullback", **params: Any,
    ) -> Explanation:
        """Explain which words make each text match ``image`` (one image, or several: ``target``
        picks one by index or name; default: the best-matching one)."""
        return self.text_side(image).explain(texts, target, method, **params)
