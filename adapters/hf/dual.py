"""Hugging Face dual encoders (``CLIPModel``, ``SiglipModel``: ``get_image_features`` /
``get_text_features``): an image–text similarity explained on both sides, through the same
:class:`~spmm.adapters.crossmodal.dual.DualEncoderExplainable` as ``lite0-minilm``.

- Pixels: images in [−1, 1] are normalised with the image processor's mean/std and go through
  ``get_image_features``; logits (B, C) = ``logit_scale.exp()`` · cos(image, text) (+ ``logit_bias``
  for SigLIP) over the label texts, as in the model's own ``logits_per_image``.
- Words: the text tower runs the model's own ``get_text_features(input_ids, attention_mask)``
  with the token-embedding lookup's output replaced by the explained embeddings (a forward hook
  on ``get_input_embeddings()`` for the duration of the call), so pooling by token position
  (CLIP's end-of-text token) keeps reading the ids while the gradient reaches the embeddings.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable
from spmm.modalities.text.batch import token_limit

from .preprocessors import saved_preprocessor
from .tasks import register_hf_task, source_name
from .text import load_tokenizer

DUAL_ENCODER_ARCHITECTURES = ("CLIPModel", "SiglipModel")
"""Exact architecture names served (every model with ``get_image_features``/``get_text_features``
and a ``logit_scale`` works the same way through ``spmm.load(model, tokenizer=..., processor=...)``
once its name is added here)."""


def pooled(output: Any) -> Tensor:
    """The projected embedding of a ``get_*_features`` output: a tensor (transformers 4) or the
    ``pooler_output`` of a ``BaseModelOutputWithPooling`` (transformers 5)."""
    return output if isinstance(output, Tensor) else output.pooler_output


class HFImageTower(nn.Module):
    """``get_image_features`` on processor-normalised pixels: (B, 3, H, W) (already normalised) -> (B, D)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, pixel_values: Tensor) -> Tensor:
        return pooled(self.model.get_image_features(pixel_values=pixel_values))


def token_embedding(model: nn.Module) -> nn.Module:
    """The text tower's token-embedding lookup (``CLIPModel`` itself does not implement
    ``get_input_embeddings``; its text model does)."""
    for owner in (model, getattr(model, "text_model", None)):
        if owner is None:
            continue
        try:
            return owner.get_input_embeddings()
        except (NotImplementedError, AttributeError):
            continue
    raise SpmmInputError(f"cannot find the token embeddings of {type(model).__name__}'s text tower")


class HFTextTower(nn.Module):
    """``get_text_features`` with the token embeddings given: (embeddings (B, L, E), attention_mask
    (B, L), input_ids (B, L)) -> (B, D)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def get_input_embeddings(self) -> nn.Module:
        return token_embedding(self.model)

    def forward(self, embeddings: Tensor, attention_mask: Tensor, input_ids: Tensor) -> Tensor:
        handle = self.get_input_embeddings().register_forward_hook(lambda _module, _inputs, _output: embeddings)
        try:
            return pooled(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
        finally:
            handle.remove()


def _preprocessors(source: str | Path | None, tokenizer: Any, processor: Any, model: nn.Module) -> tuple[Any, Any]:
    """(tokenizer, image processor) from the options or the model's folder."""
    source = None if source is None else str(source)
    tokenizer = load_tokenizer(source, tokenizer, model)
    processor = saved_preprocessor(source, processor, model, "processor", "image processor", "AutoImageProcessor")
    return tokenizer, getattr(processor, "image_processor", processor)

def _image_size(processor: Any, model: nn.Module) -> int:
    """The square side the vision tower takes (crop size, else the config's image size)."""
    crop = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
    side = crop.get("height") or crop.get("shortest_edge") if isinstance(crop, dict) else None
    return int(side or model.config.vision_config.image_size)


@register_hf_task("dual-encoder", DUAL_ENCODER_ARCHITECTURES)
def load_dual_encoder(
    model: nn.Module,
    source: str | Path | None,
    labels: Sequence[str] | dict[str, str] | None = None,
    tokenizer: Any = None,
    processor: Any = None,
    max_length: int | None = None,
) -> Explainable:
    """A zero-shot image classifier over ``labels`` (texts, or {label: text}; a text target
    works without them) whose text side explains words (``m.explain_text(text, image=...)``);
    texts are cut at ``max_length`` tokens (default: the text tower's
    :func:`~spmm.modalities.text.batch.token_limit`)."""
    from spmm.adapters.crossmodal.dual import DualEncoder, DualEncoderExplainable
    from spmm.adapters.crossmodal.rules import dual_rules
    from spmm.adapters.vision.models import UnitRangeInput

    tokenizer, processor = _preprocessors(source, tokenizer, processor, model)
    tokenizer = copy.deepcopy(tokenizer)  # the user's tokenizer keeps its own limit
    tokenizer.model_max_length = token_limit(tokenizer, getattr(model.config, "text_config", model.config), max_length)
    image_rules, text_rules = dual_rules()
    image_encoder = UnitRangeInput(HFImageTower(model), processor.image_mean, processor.image_std,
                                   name=type(model).__name__)
    image_encoder.train(model.training)
    bias = getattr(model, "logit_bias", None)
    dual = DualEncoder(
        image_encoder, HFTextTower(model), tokenizer, scale=float(model.logit_scale.detach().exp()),
        bias=float(bias.detach()) if bias is not None else 0.0, image_size=_image_size(processor, model),
        image_rules=image_rules, text_rules=text_rules,
    )
    return DualEncoderExplainable.build(dual, labels if labels is not None else [], source_name(source, model))
