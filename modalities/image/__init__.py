"""Images: loading and preprocessing to the [−1, 1] convention, and heatmap rendering."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor
from torchvision.transforms import v2

from spmm.errors import SpmmInputError


MAX_PIXELS = 40_000_000
"""Largest image (width × height) :func:`load_image` decodes from a file: 40 megapixels (e.g. a
7700×5200 photo), about 0.8 GB of memory to decode an 8-bit image and scale it to [0, 1] at full
size; bigger ones are refused before their pixels are decoded (a 1 MB PNG can hold 9400×9400
pixels, 2.7 GB to decode).  PIL's global limit is left alone."""

_EIGHT_BIT_MODES = frozenset({"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_ALPHA_MODES = frozenset({"LA", "PA", "RGBA"})
_PREMULTIPLIED_MODES = frozenset({"La", "RGBa"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_ARRAY_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
"""Channels of a uint8 (H, W, C) array -> its PIL mode."""


def _gray_to_rgb(values: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 3)."""
    return np.repeat(values[..., None], 3, axis=2)


def _decode(image: Image.Image, name: str) -> Tensor:
    """A PIL image of any mode PIL reads -> (3, H, W) float32 RGB in [0, 1].

    8-bit modes (1, L, P, RGB, CMYK, YCbCr, LAB, HSV) go through PIL's RGB conversion and are
    divided by 255; transparent ones (LA, PA, RGBA, palette transparency, premultiplied La and
    RGBa) are composited onto white; 16-bit grayscale (I;16, I;16B, …, and 32-bit I holding 0..65535) is divided by
    65535; float images (F) must already hold values in [0, 1].  Anything else is refused with
    an :class:`SpmmInputError` naming ``name`` and the mode.
    """
    mode = image.mode
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        rgb = rgba[..., :3] * alpha + (1.0 - alpha)
    elif mode in _PREMULTIPLIED_MODES:
        colour_times_alpha = np.asarray(image, dtype=np.float32) / 255.0
        alpha = colour_times_alpha[..., -1:]
        rgb = np.broadcast_to(colour_times_alpha[..., :-1] + (1.0 - alpha), (*alpha.shape[:2], 3))
    elif mode in _EIGHT_BIT_MODES:  # the common case, with one float copy (memory: 12 bytes per pixel)
        rgb8 = torch.from_numpy(np.array(image if mode == "RGB" else image.convert("RGB"), dtype=np.uint8))
        return rgb8.permute(2, 0, 1).float().div_(255.0)
    elif mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float32)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise SpmmInputError(
                f"{name}: 32-bit integer image (mode {mode}) holds values in [{values.min():g}, {values.max():g}]; "
                "spmm reads integer images as 16-bit (0..65535)"
            )
        rgb = _gray_to_rgb(values / 65535.0)
    elif mode == "F":
        values = np.asarray(image, dtype=np.float32)
        if not np.isfinite(values).all():
            raise SpmmInputError(f"{name}: float image (mode F) holds non-finite values")
        if values.size and (values.min() < 0 or values.max() > 1):
            raise SpmmInputError(
                f"{name}: float image (mode F) holds values in [{values.min():g}, {values.max():g}]; "
                "spmm reads float images as intensities in [0, 1]"
            )
        rgb = _gray_to_rgb(values)
    else:
        raise SpmmInputError(f"{name}: image mode {mode!r} is not supported")
    return torch.from_numpy(np.array(rgb, dtype=np.float32, order="C")).permute(2, 0, 1)


def _check_not_empty(image: Image.Image, name: str) -> Image.Image:
    if image.width == 0 or image.height == 0:
        raise SpmmInputError(f"{name} is empty ({image.width}×{image.height} pixels)")
    return image


def _array_image(array: np.ndarray) -> Image.Image:
    """A uint8 array (H, W), (H, W, 1), (H, W, 2) gray + alpha, (H, W, 3) RGB or (H, W, 4) RGBA
    -> a PIL image; anything else is a one-line error naming the shape or dtype."""
    if array.dtype != np.uint8:
        raise SpmmInputError(
            f"image arrays must be uint8 (0..255), got {array.dtype}; scale and convert first "
            "(e.g. (x * 255).round().astype(np.uint8) for floats in [0, 1])"
        )
    channels = array.shape[2] if array.ndim == 3 else 1
    if array.ndim not in (2, 3) or channels not in _ARRAY_MODES:
        hint = "; channels go last" if array.ndim == 3 and array.shape[0] in _ARRAY_MODES else ""
        raise SpmmInputError(
            f"image arrays must be (H, W) or (H, W, C) with C in 1, 2 (gray + alpha), 3 (RGB), 4 (RGBA); "
            f"got shape {array.shape}{hint}"
        )
    if array.size == 0:
        raise SpmmInputError(f"image array is empty (shape {array.shape})")
    pixels = np.ascontiguousarray(array[..., 0] if channels == 1 and array.ndim == 3 else array)
    return Image.fromarray(pixels, _ARRAY_MODES[channels])


def _fit(pixels: Tensor, size: int) -> Tensor:
    """(3, H, W) in [0, 1] -> (3, size, size) in [−1, 1], resized (and cropped) as in the paper."""
    if pixels.shape[1] == pixels.shape[2]:
        steps = [v2.Resize((size, size), antialias=True)]
    else:
        steps = [v2.Resize(round(size * 256 / 224), antialias=True), v2.CenterCrop(size)]
    return v2.Compose(steps)(pixels) * 2.0 - 1.0


def preprocess(image: Image.Image, size: int = 224) -> Tensor:
    """PIL image -> (3, size, size) float tensor in [−1, 1].

    As in the paper: square images are resized to ``size``; others are resized so the
    short side is ``size·256/224`` and centre-cropped.  EXIF orientation is applied and every
    mode is scaled to [0, 1] first (see :func:`_decode`; transparent images composited onto white).
    """
    return _fit(_decode(_check_not_empty(ImageOps.exif_transpose(image), "image"), "image"), size)


def _open(path: Path) -> Image.Image:
    """An image file, loaded and with EXIF orientation applied; every failure an SpmmInputError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                pixels = opened.width * opened.height
                if pixels > MAX_PIXELS:
                    raise SpmmInputError(
                        f"{path}: {opened.width}×{opened.height} = {pixels} pixels is more than MAX_PIXELS = "
                        f"{MAX_PIXELS}; refused as a possible decompression bomb"
                    )
                opened.load()
                return ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise SpmmInputError(f"{path}: refused as a possible decompression bomb ({error})") from None
    except UnidentifiedImageError:
        raise SpmmInputError(f"{path} is not an image (PIL cannot identify its format)") from None
    except OSError as error:
        raise SpmmInputError(f"{path} is not a readable image: {error}") from error


def load_pil(source: str | Path | np.ndarray | Image.Image) -> Image.Image:
    """An image file, a uint8 (H, W[, C]) array or a PIL image -> a loaded PIL image (files and PIL
    images: EXIF orientation applied; decompression bombs, non-images, empty images and arrays
    of other shapes or dtypes refused in one line)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
        return _check_not_empty(_open(path), str(path))
    if isinstance(source, np.ndarray):
        return _array_image(source)
    if isinstance(source, Image.Image):
        return _check_not_empty(ImageOps.exif_transpose(source), "image")
    raise SpmmInputError(f"cannot read an image from a {type(source).__name__}; give a path, a PIL image or a uint8 array")


def load_image(source: str | Path | np.ndarray | Image.Image, size: int = 224) -> Tensor:
    """An image file, a uint8 (H, W[, C]) array or a PIL image -> (3, size, size) in [−1, 1]."""
    name = str(source) if isinstance(source, (str, Path)) else "image"
    return _fit(_decode(load_pil(source), name), size)


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



def absolute_heatmap(attribution: Tensor, percentile: float = 99.5) -> np.ndarray:
    """(3, H, W) attribution -> (H, W) channel sum of |attribution| in [0, 1], scaled by its
    ``percentile`` (values above are clipped, so a few extreme pixels do not wash the map out)."""
    summed = attribution.detach().cpu().abs().sum(0)
    scale = torch.quantile(summed.flatten().double(), percentile / 100).float().clamp_min(1e-12)
    return (summed / scale).clamp(0, 1).numpy()


def input_times_attribution(image: Tensor, attribution: Tensor) -> np.ndarray:
    """(3, H, W) image in [−1, 1] and attribution -> (H, W) channel sum of image ⊙ attribution,
    scaled to [−1, 1] by its largest magnitude (the relevance Focus scores)."""
    return signed_heatmap(image.detach().cpu() * attribution.detach().cpu())


def perturbation_display(delta: Tensor) -> np.ndarray:
    """(3, H, W) input change δ -> (H, W, 3) in [0, 1]: grey 0.5 where δ = 0, colours scaled by max |δ|."""
    delta = delta.detach().cpu()
    scale = delta.abs().max().clamp_min(1e-12)
    return (0.5 + 0.5 * delta / scale).permute(1, 2, 0).numpy()


MAP_KINDS: dict[str, tuple[str, float, float, str]] = {
    "signed": ("bwr", -1.0, 1.0, "relevance (signed, scaled)"),
    "absolute": ("inferno", 0.0, 1.0, "|relevance| (scaled)"),
    "input_x_attribution": ("bwr", -1.0, 1.0, "input ⊙ relevance (scaled)"),
}
"""How each map kind is drawn: colour map, value range, colour-bar label."""


def _map_style(kind: str) -> tuple[str, float, float, str]:
    if kind not in MAP_KINDS:
        raise SpmmInputError(f"unknown map kind {kind!r}; choose from {', '.join(MAP_KINDS)}")
    return MAP_KINDS[kind]


def attribution_map(image: Tensor, attribution: Tensor, kind: str = "signed") -> np.ndarray:
    """The (H, W) map of ``kind`` (see :data:`MAP_KINDS`) for one (3, H, W) image and attribution."""
    if kind == "signed":
        return signed_heatmap(attribution)
    if kind == "absolute":
        return absolute_heatmap(attribution)
    _map_style(kind)
    return input_times_attribution(image, attribution)


def overlay(image: Tensor, heat: np.ndarray, alpha: float = 0.6, cmap: str = "inferno") -> np.ndarray:
    """(3, H, W) image in [−1, 1] and an (H, W) map in [0, 1] -> (H, W, 3) blend in [0, 1]:
    the map's colour weighted by its value over a greyed image."""
    import matplotlib

    colours = matplotlib.colormaps[cmap](np.clip(heat, 0, 1))[..., :3]
    grey = to_display(image).mean(axis=2, keepdims=True).repeat(3, axis=2)
    weight = alpha * np.clip(heat, 0, 1)[..., None]
    return (1 - weight) * grey + weight * colours


# --- feature partitions -------------------------------------------------------------

def patch_groups(height: int, width: int, patch: int | tuple[int, int]) -> Tensor:
    """(H, W) long labels of a regular grid of ``patch``-sized squares (row-major; edge patches
    may be smaller).  E.g. the 56×56 patches of the faithfulness-correlation protocol."""
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    if ph < 1 or pw < 1:
        raise SpmmInputError(f"patch sizes must be positive, got {patch}")
    rows = torch.arange(height).div(ph, rounding_mode="floor")
    cols = torch.arange(width).div(pw, rounding_mode="floor")
    return rows[:, None] * (-(-width // pw)) + cols[None, :]


def superpixel_groups(image: Tensor, segments: int = 50, compactness: float = 10.0) -> Tensor:
    """(3, H, W) image in [−1, 1] -> (H, W) long labels 0..G−1 of SLIC superpixels
    (``skimage.segmentation.slic``, about ``segments`` regions)."""
    from skimage.segmentation import slic

    labels = slic(to_display(image), n_segments=segments, compactness=compactness, start_label=0)
    _, dense = np.unique(labels, return_inverse=True)
    return torch.from_numpy(dense.reshape(labels.shape)).long()


# --- figures --------------------------------------------------------------------------

FIGURE_DPI = 100

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: str | Path, title: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=FIGURE_DPI)
    _pyplot().close(figure)
    return path


def _grid(rows: int, columns: int, cell: float = 2.6):
    """A rows × columns figure of (cell·columns) × (cell·rows + 0.4) inches, so PNGs are
    FIGURE_DPI·that many pixels (constrained layout keeps titles and colour bars inside)."""
    figure, axes = _pyplot().subplots(
        rows, columns, figsize=(cell * columns, cell * rows + 0.4), squeeze=False, layout="constrained"
    )
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    return figure, axes


def _colorbar(figure, axes, shown, label: str = "") -> None:
    if shown is not None:
        figure.colorbar(shown, ax=list(np.ravel(axes)), fraction=0.02, pad=0.01, label=label or None)


def save_heatmap_panel(
    image: Tensor,
    maps: Mapping[str, Tensor],
    path: str | Path,
    title: str = "",
    kind: str = "signed",
) -> Path:
    """Write one row: the image, then each attribution as a map of ``kind`` (default signed:
    red +, blue −).  image: (3, H, W) in [−1, 1]; maps: name -> (3, H, W).  Returns the PNG path."""
    cmap, vmin, vmax, label = _map_style(kind)
    figure, axes = _grid(1, 1 + len(maps), cell=3.2)
    axes = axes[0]
    axes[0].imshow(to_display(image))
    axes[0].set_title("input")
    shown = None
    for axis, (name, attribution) in zip(axes[1:], maps.items()):
        shown = axis.imshow(attribution_map(image, attribution, kind), cmap=cmap, vmin=vmin, vmax=vmax)
        axis.set_title(name)
    _colorbar(figure, axes, shown, label)
    return _save(figure, path, title)


def save_explanation_panel(image: Tensor, attribution: Tensor, path: str | Path, title: str = "") -> Path:
    """One image and one attribution seen four ways: signed map, absolute map, input ⊙ attribution
    and the absolute map overlaid on the image.  image, attribution: (3, H, W)."""
    figure, axes = _grid(1, 5, cell=3.0)
    axes = axes[0]
    axes[0].imshow(to_display(image))
    axes[0].set_title("input")
    shown = {}
    for axis, kind in zip(axes[1:4], ("signed", "absolute", "input_x_attribution")):
        cmap, vmin, vmax, label = MAP_KINDS[kind]
        shown[kind] = axis.imshow(attribution_map(image, attribution, kind), cmap=cmap, vmin=vmin, vmax=vmax)
        axis.set_title(label.replace(" (scaled)", ""), fontsize=9)
    axes[4].imshow(overlay(image, absolute_heatmap(attribution)))
    axes[4].set_title("overlay")
    _colorbar(figure, axes[1], shown["signed"])
    _colorbar(figure, axes[2], shown["absolute"])
    return _save(figure, path, title)


def save_comparison_grid(
    images: Tensor,
    maps: Mapping[str, Tensor],
    path: str | Path,
    row_titles: Sequence[str] = (),
    kind: str = "signed",
    title: str = "",
) -> Path:
    """Method comparison: one row per image (input first), one column per method.

    images: (B, 3, H, W) in [−1, 1]; maps: method -> (B, 3, H, W) attributions;
    row_titles: e.g. the explained class of each row.
    """
    cmap, vmin, vmax, label = _map_style(kind)
    figure, axes = _grid(images.shape[0], 1 + len(maps))
    shown = None
    for row, image in enumerate(images):
        axes[row, 0].imshow(to_display(image))
        axes[row, 0].set_ylabel(row_titles[row] if row < len(row_titles) else "", fontsize=9)
        for column, (method, attributions) in enumerate(maps.items(), start=1):
            shown = axes[row, column].imshow(
                attribution_map(image, attributions[row], kind), cmap=cmap, vmin=vmin, vmax=vmax
            )
            if row == 0:
                axes[row, column].set_title(method, fontsize=10)
    axes[0, 0].set_title("input", fontsize=10)
    _colorbar(figure, axes, shown, label)
    return _save(figure, path, title)


def save_counterfactual_grid(
    trajectories: Mapping[str, Tensor],
    path: str | Path,
    step_scores: Mapping[str, Tensor] | None = None,
    title: str = "",
) -> Path:
    """Counterfactuals: for each target two rows, x_k = x + δ_k (top) and δ_k (bottom, grey = 0),
    one column per ascent step k = 0..K (``pullback_ascent`` ``extras["trajectory"]``).

    trajectories: target label -> (K+1, 3, H, W) for one image; step_scores: label -> (K+1,)
    target scores, shown above each step.
    """
    steps = max(t.shape[0] for t in trajectories.values())
    figure, axes = _grid(2 * len(trajectories), steps)
    for block, (label, trajectory) in enumerate(trajectories.items()):
        scores = None if step_scores is None else step_scores[label]
        for k, x_k in enumerate(trajectory):
            top, bottom = axes[2 * block, k], axes[2 * block + 1, k]
            top.imshow(to_display(x_k))
            heading = "x" if k == 0 else f"x + δ, step {k}"
            top.set_title(heading + ("" if scores is None else f"\nscore {float(scores[k]):.2f}"), fontsize=9)
            bottom.imshow(perturbation_display(x_k - trajectory[0]))
            if k == 0:
                top.set_ylabel(f"→ {label}", fontsize=9)
                bottom.set_ylabel("δ", fontsize=9)
    return _save(figure, path, title)


def save_accentuation_grid(
    images: Tensor,
    accentuated: Tensor,
    path: str | Path,
    row_titles: Sequence[str] = (),
    title: str = "",
) -> Path:
    """Accentuations: per row the image x, the ascent result x_K towards its own class, and δ = x_K − x.

    images, accentuated: (B, 3, H, W) in [−1, 1].
    """
    figure, axes = _grid(images.shape[0], 3)
    for row, (image, result) in enumerate(zip(images, accentuated)):
        axes[row, 0].imshow(to_display(image))
        axes[row, 1].imshow(to_display(result))
        axes[row, 2].imshow(perturbation_display(result - image))
        axes[row, 0].set_ylabel(row_titles[row] if row < len(row_titles) else "", fontsize=9)
    for column, heading in enumerate(("x", "accentuated x + δ", "δ")):
        axes[0, column].set_title(heading, fontsize=10)
    return _save(figure, path, title)
