"""``lite0-minilm``: an open-vocabulary image classifier made here from two embedded models.

The embedded ImageNet EfficientNet-Lite0 scores class c as w_c · f(x) (f: its pooled 1280-d
feature, w_c: row c of its classifier).  A linear map between Lite0's classifier rows and the
MiniLM embeddings t_c of the 1000 ImageNet class prompts is fitted by ridge regression (no
images used; ``examples/fit_lite0_minilm.py`` recreates it, choosing the direction, centring
and λ on held-out classes, and records the recipe and the measured zero-shot accuracy in
``lite0_minilm_map.json``):

- image-to-text, M (1280 → 384) with w_c M ≈ t_c − μ: an image embeds as f(x) M (Lite0 with its
  classifier layer replaced by M), a text t as MiniLM(t) − μ;
- text-to-image, A (384 → 1280) with (t_c − μ) A + b ≈ w_c: an image embeds as f(x) (Lite0 with
  its classifier removed), a text as (MiniLM(t) − μ) A + b, a predicted classifier row.

Similarity = scale · cos(image embedding, text embedding).  Every Lite0 fact
(squeeze-excitation rules, Grad-CAM layer) still applies on the image side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from spmm.adapters.text.models import DATA_DIR, SentenceEncoder, load_minilm

from .dual import DualEncoder

MAP_NAME = "lite0_minilm_map"
"""``<name>.safetensors`` in the package data: ``image_map.weight`` (384, 1280) or ``text_map.weight``
(1280, 384) and ``text_map.bias``, ``text_centre`` (384,), ``scale`` (), ``label_sentence_embeddings``
(1000, 384): MiniLM embeddings of the default prompts; ``<name>.json``: recipe, selection table and
zero-shot accuracy."""


class SentenceTower(nn.Module):
    """The MiniLM sentence encoder as a text tower: (embeddings, attention_mask, input_ids) -> (B, D):
    (sentence embedding − ``centre``), then ``projection`` if given (the ids are not needed: mean
    pooling reads the mask)."""

    def __init__(self, encoder: SentenceEncoder, centre: Tensor, projection: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.projection = projection if projection is not None else nn.Identity()
        self.register_buffer("centre", centre.detach().float())
        self.train(encoder.training)

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def head(self, sentence_embeddings: Tensor) -> Tensor:
        """MiniLM sentence embeddings (N, 384) -> this tower's embeddings (N, D)."""
        return self.projection(sentence_embeddings - self.centre)

    def forward(self, embeddings: Tensor, attention_mask: Tensor, input_ids: Tensor) -> Tensor:
        return self.head(self.encoder(embeddings, attention_mask))


def _linear(state: dict[str, Tensor], prefix: str) -> nn.Linear:
    """A frozen nn.Linear from ``<prefix>.weight`` (out, in) and an optional ``<prefix>.bias``."""
    weight = state[f"{prefix}.weight"].float()
    bias = state.get(f"{prefix}.bias")
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.load_state_dict({"weight": weight, **({"bias": bias.float()} if bias is not None else {})})
    return layer.requires_grad_(False)


def map_info(data_dir: Path = DATA_DIR) -> dict[str, Any]:
    """The recipe and measured accuracy ``examples/fit_lite0_minilm.py`` recorded."""
    return json.loads((data_dir / f"{MAP_NAME}.json").read_text())


def default_prompts(data_dir: Path = DATA_DIR) -> dict[str, str]:
    """{ImageNet class name: prompt} of the default labels (the template the shipped embeddings used)."""
    from spmm.adapters.vision.models import imagenet_class_names

    template = map_info(data_dir)["default_template"]
    return {name: template.format(name) for name in imagenet_class_names()}


def load_lite0_minilm(data_dir: Path = DATA_DIR) -> tuple[DualEncoder, Tensor]:
    """(the dual encoder, (1000, D) unit-norm text embeddings of :func:`default_prompts`)."""
    from spmm.adapters.vision.models import load_efficientnet_lite0

    from .rules import dual_rules

    path = data_dir / f"{MAP_NAME}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; fit it with examples/fit_lite0_minilm.py")
    state = load_file(path)
    image_encoder = load_efficientnet_lite0()
    image_encoder.model.classifier = _linear(state, "image_map") if "image_map.weight" in state else nn.Identity()
    image_encoder.requires_grad_(False)
    tokenizer, bert = load_minilm()
    text_map = _linear(state, "text_map") if "text_map.weight" in state else None
    text_encoder = SentenceTower(SentenceEncoder(bert).eval(), state["text_centre"], text_map)
    image_rules, text_rules = dual_rules()
    dual = DualEncoder(image_encoder, text_encoder, tokenizer,
                       scale=float(state["scale"]), image_rules=image_rules, text_rules=text_rules)
    with torch.no_grad():
        defaults = nn.functional.normalize(text_encoder.head(state["label_sentence_embeddings"].float()), dim=-1)
    return dual, defaults
