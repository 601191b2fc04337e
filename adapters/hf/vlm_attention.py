"""The attention baseline users reach for on vision-language models: the decoder's attention
weights from a generated word over the image tokens, averaged over heads and layers, upsampled to
the pixels.  Registered as the explainer ``attention:image`` (``spmm.extend.register_explainer``),
so the bench scores it next to spmm's methods (registered when the ``spmm.plugins`` entry point
imports this module); it explains a
:class:`~.vlm_words.WordLogits` model (the rows of the vision-language ground-truth bench)."""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from spmm.errors import SpmmInputError
from spmm.extend import register_explainer

ATTENTION_EXPLAINER = "attention:image"


def image_attention_explainer(seed: int = 0) -> Callable[[Any, Tensor, Tensor], Tensor]:
    """``explain_fn(model, pixels (R, 3, H, W), words (R,)) -> (R, 3, H, W)``: the attention map of
    each row's word (:meth:`.vlm_words.WordLogits.image_attention`) spread evenly over the colour
    channels (their sum is the map).  No randomness: ``seed`` is accepted and unused."""

    def explain_fn(model: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        if not hasattr(model, "image_attention"):
            raise SpmmInputError(f"{ATTENTION_EXPLAINER} reads a vision-language model's attention over its image "
                                 f"tokens; {type(model).__name__} has none (use it on the vision-language ground-truth "
                                 "bench, e.g. spmm bench groundtruth --model shapes-captioner)")
        maps = model.image_attention(inputs, targets)
        return (maps / inputs.shape[1]).unsqueeze(1).expand(-1, inputs.shape[1], -1, -1).to(inputs.dtype)

    explain_fn.method = ATTENTION_EXPLAINER  # type: ignore[attr-defined]
    explain_fn.params = {"average": "heads and layers", "upsample": "bilinear"}  # type: ignore[attr-defined]
    return explain_fn


register_explainer(ATTENTION_EXPLAINER, image_attention_explainer,
                   summary="decoder attention weights over the image tokens (heads and layers averaged, upsampled)")
