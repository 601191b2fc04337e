"""The image modality: file paths, PIL images, arrays or tensors -> a batch in [−1, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable, Prepared
from spmm.explanation import Explanation
from spmm.load import register_modality
from spmm.ruleset import RuleSet, get_ruleset

from .explanation import ImageExplanation

ImageSource = str | Path | np.ndarray | Image.Image
RANGE_TOLERANCE = 1e-3


def model_device(model: Any) -> torch.device:
    """Where ``model``'s parameters live (CPU for parameter-free callables)."""
    if isinstance(model, nn.Module):
        for parameter in model.parameters():
            return parameter.device
    return torch.device("cpu")


class ImageModality:
    """Images as (B, 3, size, size) in [−1, 1] (SPEC §3).

    size: side of the square input; preprocess: optional ``PIL image -> (C, H, W)`` tensor for
    models with another input convention (then tensors are taken as given); unit_range: tensors
    must lie in [−1, 1] (default: unless ``preprocess`` is given).
    """

    name = "image"

    def __init__(self, size: int = 224, preprocess: Callable[[Image.Image], Tensor] | None = None,
                 unit_range: bool | None = None) -> None:
        self.size = size
        self.preprocess = preprocess
        self.unit_range = preprocess is None if unit_range is None else unit_range

    def prepare(self, model: Any, inputs: Any, size: int | None = None) -> Prepared:
        """inputs: one image or a list of paths / PIL images / uint8 arrays, or a tensor (B, C, H, W)
        / (C, H, W) already in the model's convention."""
        from spmm.modalities.image import load_image

        if isinstance(inputs, Tensor):
            x = inputs.unsqueeze(0) if inputs.dim() == 3 else inputs
            if x.dim() != 4:
                raise SpmmInputError(f"image tensors must be (B, C, H, W) or (C, H, W), got {tuple(inputs.shape)}")
            if self.unit_range and x.is_floating_point() and x.numel() and x.abs().max() > 1 + RANGE_TOLERANCE:
                raise SpmmInputError(
                    f"image tensors must lie in [−1, 1] (SPEC §3), got values up to {float(x.abs().max()):.3g}; "
                    "pass image files or PIL images to have them preprocessed"
                )
            sources = [f"image {i}" for i in range(x.shape[0])]
        else:
            items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
            if not items:
                raise SpmmInputError("no images given")
            side = size or self.size
            if self.preprocess is None:
                x = torch.stack([load_image(item, side) for item in items])
            else:
                pixels = [self.preprocess(_as_pil(item)) for item in items]
                if len({tuple(p.shape) for p in pixels}) > 1:
                    raise SpmmInputError(
                        f"the model's preprocessing gives these images different sizes "
                        f"({sorted({tuple(p.shape[-2:]) for p in pixels})}); explain them one at a time"
                    )
                x = torch.stack(pixels)
            sources = [str(item) if isinstance(item, (str, Path)) else f"image {i}" for i, item in enumerate(items)]
        return Prepared(x.to(model_device(model)), model, sources)

    def method_params(self, method: str, inputs: Tensor, model: Any) -> dict[str, Any]:
        return {}

    def explanation(self, base: Explanation, prepared: Prepared) -> ImageExplanation:
        return base.recast(ImageExplanation)

    # -- benchmark protocol (SPEC §4) -------------------------------------------
    bench_kinds = {
        "faithfulness": ["infidelity", "faithfulness_correlation", "faithfulness_estimate", "monotonicity_correlation",
                         "max_sensitivity", "random_logit"],
        "focus": ["focus"],
        "groundtruth": ["mass_accuracy", "rank_accuracy", "mask_auroc", "pointing_hit", "infidelity",
                        "faithfulness_correlation", "faithfulness_estimate", "monotonicity_correlation",
                        "max_sensitivity", "random_logit"],
    }
    """``spmm bench KIND`` -> its default metrics (the paper's table; Focus on mosaics; the ground-truth
    metrics and the paper's table on synthetic shapes)."""

    def bench_batches(self, model: Any, data: str | Path, kind: str, n: int, batch_size: int, seed: int,
                      labels: Sequence[str] | None = None) -> list:
        """Batches of a labelled image folder (``kind`` faithfulness) or of mosaics built from it (focus),
        or synthetic shapes at this modality's size with their masks (``data="shapes"``: faithfulness,
        groundtruth); labels.csv or the generator gives class indices, so the model's ``labels`` are not needed."""
        from .bench import bench_batches

        def load(files: Sequence[Path]) -> Tensor:  # the model's own preprocessing, as explain() uses it
            return self.prepare(model, [str(f) for f in files]).inputs

        return bench_batches(model, data, kind, n, batch_size, seed, self.size, load if self.preprocess else None)

    def bench_metrics(self, names: Sequence[str], batches: Sequence, seed: int,
                      overrides: dict[str, dict[str, Any]] | None = None) -> dict:
        """The SPEC §4 metric settings on these images."""
        from .bench import image_metric_specs

        return image_metric_specs(names, batches[0].inputs.shape[1:], seed, overrides)


def _as_pil(item: ImageSource) -> Image.Image:
    from spmm.modalities.image import load_pil

    return load_pil(item)


def wrap_image_model(
    module: nn.Module,
    labels: Sequence[str] | None = None,
    preprocess: Callable[[Image.Image], Tensor] | None = None,
    size: int = 224,
    rules: RuleSet | str = "vision",
    name: str = "",
) -> Explainable:
    """``spmm.load(module, modality="image", ...)``: a user's image classifier (inputs in [−1, 1]
    unless ``preprocess`` says otherwise), explained with the vision rule set by default."""
    ruleset = get_ruleset(rules) if isinstance(rules, str) else rules
    return Explainable(module, ImageModality(size, preprocess), ruleset, labels, name or type(module).__name__)


register_modality("image", wrap_image_model)
