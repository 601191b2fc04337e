"""Images: loading and preprocessing to the [−1, 1] convention, and heatmap rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torchvision.transforms import v2

from spmm.errors import SpmmInputError


def preprocess(image: Image.Image, size: int = 224) -> Tensor:
    """PIL image -> (3, size, size) float tensor in [−1, 1].

    As in the paper: square images are resized to ``size``; others are resized so the
    short side is ``size·256/224`` and centre-cropped.  EXIF orientation is applied and
    grayscale/RGBA/palette images are converted to RGB.
    """
    image = ImageOps.exif_transpose(image).convert("RGB")
    if image.width == image.height:
        steps = [v2.Resize((size, size), antialias=True)]
    else:
        steps = [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
    transform = v2.Compose([v2.PILToTensor(), *steps, v2.ToDtype(torch.float32, scale=True)])
    return transform(image) * 2.0 - 1.0


def load_image(source: str | Path | np.ndarray | Image.Image, size: int = 224) -> Tensor:
    """An image file, a uint8 (H, W[, C]) array or a PIL image -> (3, size, size) in [−1, 1]."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.copy()
        except OSError as error:
            raise SpmmInputError(f"{path} is not a readable image: {error}") from error
    elif isinstance(source, np.ndarray):
        if source.dtype != np.uint8:
            raise SpmmInputError(f"image arrays must be uint8, got {source.dtype}")
        image = Image.fromarray(source)
    else:
        image = source
    return preprocess(image, size)


def load_images(sources: Sequence[str | Path | np.ndarray | Image.Image], size: int = 224) -> Tensor:
    """Several images of any sizes -> one batch (B, 3, size, size) in [−1, 1]."""
    if not sources:
        raise SpmmInputError("no images given")
    return torch.stack([load_image(s, size) for s in sources])


def to_display(image: Tensor) -> np.ndarray:
    """(3, H, W) in [−1, 1] -> (H, W, 3) float array in [0, 1] for plotting."""
    return ((image.detach().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def signed_heatmap(attribution: Tensor) -> np.ndarray:
    """(3, H, W) attribution -> (H, W) channel sum scaled to [−1, 1] by its largest magnitude."""
    summed = attribution.detach().cpu().sum(0)
    scale = summed.abs().max().clamp_min(1e-12)
    return (summed / scale).numpy()


def save_heatmap_panel(
    image: Tensor,
    maps: Mapping[str, Tensor],
    path: str | Path,
    title: str = "",
) -> Path:
    """Write one row: the image, then each attribution as a signed heatmap (red +, blue −).

    image: (3, H, W) in [−1, 1]; maps: name -> (3, H, W).  Returns the PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = 1 + len(maps)
    figure, axes = plt.subplots(1, columns, figsize=(3.2 * columns, 3.6), squeeze=False)
    axes = axes[0]
    axes[0].imshow(to_display(image))
    axes[0].set_title("input")
    shown = None
    for axis, (name, attribution) in zip(axes[1:], maps.items()):
        shown = axis.imshow(signed_heatmap(attribution), cmap="bwr", vmin=-1, vmax=1)
        axis.set_title(name)
    for axis in axes:
        axis.axis("off")
    if shown is not None:
        figure.colorbar(shown, ax=list(axes), fraction=0.015, pad=0.01, label="relevance (scaled)")
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path
