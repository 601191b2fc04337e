"""Hugging Face dual encoders (``CLIPModel``, ``SiglipModel``: ``get_image_features`` /
``get_text_features``): an image–text similarity explained on both sides, through the same
:class:`~spmm.adapters.crossmodal.dual.DualEncoderExplainable` as ``lite0-minilm``.

- Pixels: images go through the image processor's own geometry and colour map as for image
  classifiers (:mod:`.vision`), are explained in [−1, 1] and reach ``get_image_features`` as the
  processor's ``pixel_values``; logits (B, C) = ``logit_scale.exp()`` · cos(image, text)
  (+ ``logit_bias`` for SigLIP) over the label texts, as in the model's own ``logits_per_image``.
  Siglip2's processor keeps each image's aspect ratio and cuts it into at most ``max_num_patches``
  patches: the explained image is that resized image, cut into the same patches inside the model.
- Words: the text tower runs the model's own ``get_text_features(input_ids, attention_mask)``
  with the token-embedding lookup's output replaced by the explained embeddings (a forward hook
  on ``get_input_embeddings()`` for the duration of the call), so pooling by token position
  (CLIP's end-of-text token, SigLIP's last position) keeps reading the ids while the gradient
  reaches the embeddings.  Texts are padded as the model's processor pads them
  (:data:`TEXT_PADDING`: SigLIP pads to ``max_length`` and pools the last position, so the padding
  changes its text embedding).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable
from spmm.modalities.text.batch import token_limit

from .preprocessors import saved_preprocessor
from .tasks import register_hf_task, source_name
from .text import load_tokenizer

DUAL_ENCODER_ARCHITECTURES = ("CLIPModel", "SiglipModel", "Siglip2Model")
"""Exact architecture names served (every model with ``get_image_features``/``get_text_features``
and a ``logit_scale`` works the same way through ``spmm.load(model, tokenizer=..., processor=...)``
once its name is added here)."""

TEXT_PADDING = {"SiglipModel": "max_length", "Siglip2Model": "max_length"}
"""Architectures whose processors pad texts to ``max_length`` (the text tower's token limit);
the others pad to the longest text of a batch."""


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


class HFPatchImageTower(nn.Module):
    """``get_image_features`` of a model taking patch sequences (Siglip2): processor-normalised
    images (B, 3, h·p, w·p) are cut into the processor's row-major (p, p, C) patches, padded to
    ``max_patches`` with zeros and masked, with their grid (h, w) as ``spatial_shapes``: (B, D)."""

    def __init__(self, model: nn.Module, patch_size: int, max_patches: int) -> None:
        super().__init__()
        self.model = model
        self.patch_size, self.max_patches = patch_size, max_patches
        self.train(model.training)

    def forward(self, pixel_values: Tensor) -> Tensor:
        batch, channels, height, width = pixel_values.shape
        p = self.patch_size
        rows, columns = height // p, width // p
        if rows * columns > self.max_patches or rows * p != height or columns * p != width:
            raise SpmmInputError(f"a {height}×{width} image is not a grid of at most {self.max_patches} patches of {p}")
        patches = pixel_values.reshape(batch, channels, rows, p, columns, p).permute(0, 2, 4, 3, 5, 1)
        patches = patches.reshape(batch, rows * columns, p * p * channels)
        padded = nn.functional.pad(patches, (0, 0, 0, self.max_patches - rows * columns))
        mask = torch.zeros(batch, self.max_patches, dtype=torch.int32, device=pixel_values.device)
        mask[:, : rows * columns] = 1
        shapes = torch.tensor([[rows, columns]] * batch, device=pixel_values.device)
        return pooled(self.model.get_image_features(pixel_values=padded, pixel_attention_mask=mask,
                                                    spatial_shapes=shapes))


def image_tower(model: nn.Module, processor: Any) -> nn.Module:
    """The image tower on processor-normalised images: patch sequences when the processor makes them."""
    if "pixel_attention_mask" in getattr(processor, "model_input_names", ()):
        return HFPatchImageTower(model, int(processor.patch_size), int(processor.max_num_patches))
    return HFImageTower(model)


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
    (B, L), input_ids (B, L)) -> (B, D).

    pad_to: when set, sequences shorter than ``pad_to`` are padded on the tokenizer's side with its
    pad token (id ``pad_id``, attention 0) to that length first, as ``padding="max_length"`` does.
    """

    def __init__(self, model: nn.Module, pad_to: int | None = None, pad_id: int = 0, pad_left: bool = False) -> None:
        super().__init__()
        self.model = model
        self.pad_to, self.pad_id, self.pad_left = pad_to, pad_id, pad_left
        self.train(model.training)

    def get_input_embeddings(self) -> nn.Module:
        return token_embedding(self.model)

    def padded(self, embeddings: Tensor, attention_mask: Tensor, input_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The three inputs padded to ``pad_to`` positions (unchanged when not set or already as long)."""
        missing = (self.pad_to or 0) - input_ids.shape[1]
        if missing <= 0:
            return embeddings, attention_mask, input_ids
        ids = torch.full((input_ids.shape[0], missing), self.pad_id, dtype=input_ids.dtype, device=input_ids.device)
        with torch.no_grad():
            pads = self.get_input_embeddings()(ids).to(embeddings.dtype)
        mask = torch.zeros_like(ids, dtype=attention_mask.dtype)

        def join(real: Tensor, pad: Tensor) -> Tensor:
            return torch.cat([pad, real] if self.pad_left else [real, pad], dim=1)

        return join(embeddings, pads), join(attention_mask, mask), join(input_ids, ids)

    def forward(self, embeddings: Tensor, attention_mask: Tensor, input_ids: Tensor) -> Tensor:
        embeddings, attention_mask, input_ids = self.padded(embeddings, attention_mask, input_ids)
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

def text_limit(tokenizer: Any, model: nn.Module) -> int:
    """The text tower's token limit: the tokenizer's ``model_max_length``, at most the text
    config's ``max_position_embeddings``."""
    limits = [getattr(tokenizer, "model_max_length", None),
              getattr(getattr(model.config, "text_config", None), "max_position_embeddings", None)]
    known = [int(limit) for limit in limits if isinstance(limit, int) and 0 < limit < 2**31]
    if not known:
        raise SpmmInputError(f"{type(model).__name__}: neither its tokenizer nor its text config gives a token limit")
    return min(known)


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

    from .vision import ProcessorInput, ProcessorPixels, colour_map, model_side

    tokenizer, processor = _preprocessors(source, tokenizer, processor, model)
    tokenizer = copy.deepcopy(tokenizer)  # the user's tokenizer keeps its own limit
    tokenizer.model_max_length = token_limit(tokenizer, getattr(model.config, "text_config", model.config), max_length)
    image_rules, text_rules = dual_rules()
    colours = colour_map(processor)
    image_encoder = ProcessorInput(image_tower(model, processor), colours, name=type(model).__name__)
    image_encoder.train(model.training)
    limit = text_limit(tokenizer, model)
    pad_to = limit if TEXT_PADDING.get(type(model).__name__) == "max_length" else None
    text_encoder = HFTextTower(model, pad_to, tokenizer.pad_token_id or 0, tokenizer.padding_side == "left")
    bias = getattr(model, "logit_bias", None)
    dual = DualEncoder(
        image_encoder, text_encoder, tokenizer, scale=float(model.logit_scale.detach().exp()),
        bias=float(bias.detach()) if bias is not None else 0.0, image_size=model_side(processor),
        image_rules=image_rules, text_rules=text_rules, image_preprocess=ProcessorPixels(processor, colours),
        max_length=limit,
    )
    return DualEncoderExplainable.build(dual, labels if labels is not None else [], source_name(source, model))
