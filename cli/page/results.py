"""What the page shows, computed through ``spmm.load(...).explain(...)`` only (no Gradio here).

Each ``explain_*`` function takes a loaded :class:`spmm.Explainable` and what a person gave on the
page, writes every download (PNG / HTML / WAV and the framework's JSON) into ``folder`` and returns
the pictures and numbers to show.  Failures a person can fix are :class:`spmm.SpmmInputError`;
:func:`friendly_message` turns any failure into one line for the page.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

import spmm
from spmm.errors import SpmmInputError

GATE_TEMPERATURES = ("relu", "leaky_relu", "hardtanh")
"""Rule temperatures the image tab's slider sets together (the ReLU family, ReLU6 included)."""
PAGE_MAX_SECONDS = 10.0
"""Most audio one request explains (longer clips are refused with a message)."""
MAX_TEXT_CHARACTERS = 2000
"""Longest text one request explains."""
TOP_K = 5
LABELLED_KEPT = 4
"""Zero-shot models (one per label set) kept loaded at a time."""

Reporter = Callable[[Iterable[Any], str, int], Iterable[Any]]


class Models:
    """``spmm.load`` results by spec, each loaded once, on first use; of the models loaded with
    user labels (zero-shot), only the :data:`LABELLED_KEPT` most recently used are kept.

    options: per spec, the keywords ``spmm.load`` gets (e.g. ``{"honk-res8": {"weights": path}}``).
    """

    def __init__(self, options: dict[str, dict[str, Any]] | None = None) -> None:
        self.options = options or {}
        self._loaded: OrderedDict[tuple[str, tuple[str, ...]], spmm.Explainable] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: str, labels: tuple[str, ...] = ()) -> spmm.Explainable:
        """The model ``spec`` (zero-shot models with ``labels``)."""
        key = (spec, labels)
        with self._lock:
            if key not in self._loaded:
                options = dict(self.options.get(spec, {}))
                if labels:
                    options["labels"] = list(labels)
                self._loaded[key] = spmm.load(spec, **options)
            self._loaded.move_to_end(key)
            labelled = [k for k in self._loaded if k[1]]
            for old in labelled[:-LABELLED_KEPT]:
                del self._loaded[old]
            return self._loaded[key]


def friendly_message(error: BaseException) -> str:
    """One line for the page: what went wrong with the input, or that the server failed."""
    if isinstance(error, (SpmmInputError, FileNotFoundError)):
        return str(error).replace("\n", " ")
    if isinstance(error, MemoryError):
        return "this input needs more memory than the server has; try a smaller one"
    return f"the explanation failed ({type(error).__name__}: {error})"


def _reporting(reporter: Reporter | None) -> AbstractContextManager[None]:
    from spmm.progress import reporting

    return nullcontext() if reporter is None else reporting(reporter)


def _probabilities(explanation: spmm.Explanation) -> dict[str, float]:
    return {p.label: p.probability for p in (explanation.predictions or [[]])[0]}


def _save(explanation: spmm.Explanation, folder: Path, stem: str) -> list[Path]:
    """The explanation's renderings (audio: a WAV only when it can be sonified) and its JSON under ``folder``."""
    return [explanation.save(folder / f"{stem}{suffix}") for suffix in (*explanation.renderings, ".json")]


def _rgb(values: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] -> uint8."""
    return (np.clip(values, 0.0, 1.0) * 255).round().astype(np.uint8)


def _parse_target(text: str) -> str:
    """The typed target (an index, a label name or ``"top1"``; an empty box is ``"top1"``)."""
    return (text or "").strip() or "top1"


@dataclasses.dataclass
class ImageResult:
    """overlay, heatmap: (H, W, 3) uint8; probabilities: top-k label -> probability."""

    overlay: np.ndarray
    heatmap: np.ndarray
    probabilities: dict[str, float]
    target: str
    files: list[Path]


def explain_image(model: spmm.Explainable, image: str | Path, method: str, target: str, temperature: float,
                  folder: Path, reporter: Reporter | None = None) -> ImageResult:
    """Explain ``target`` ("top1", a class index or label) on one image file with ``method``, the
    ReLU-family rules at ``temperature``."""
    import matplotlib

    from spmm.modalities.image import absolute_heatmap, overlay, signed_heatmap

    tuned = model.with_rules(**{name: float(temperature) for name in GATE_TEMPERATURES})
    with _reporting(reporter):
        explanation = tuned.explain([str(image)], _parse_target(target), method, top_k=TOP_K, seed=0)
    pixels, attribution = explanation.inputs[0], explanation.attributions[0]
    signed = matplotlib.colormaps["bwr"]((signed_heatmap(attribution) + 1) / 2)[..., :3]
    return ImageResult(
        overlay=_rgb(overlay(pixels, absolute_heatmap(attribution))),
        heatmap=_rgb(signed),
        probabilities=_probabilities(explanation),
        target=explanation.target_label(0) or str(target),
        files=_save(explanation, folder, f"image-{method}"),
    )


@dataclasses.dataclass
class Counterfactual:
    """frames: x_k of each PullbackAscent step as (H, W, 3) uint8; captions: the target's logit and
    probability at each step."""

    frames: list[np.ndarray]
    captions: list[str]
    files: list[Path]


def counterfactual(model: spmm.Explainable, image: str | Path, target: str, steps: int, folder: Path,
                   reporter: Reporter | None = None) -> Counterfactual:
    """PullbackAscent towards ``target`` for ``steps`` steps: the image and the target's score at each step."""
    from spmm.modalities.image import to_display

    with _reporting(reporter):
        explanation = model.explain([str(image)], _parse_target(target), "pullback_ascent", steps=int(steps),
                                    top_k=TOP_K)
    trajectory = explanation.extras["trajectory"][:, 0]
    logits = explanation.extras["step_scores"][:, 0]
    prepared = model.prepare(trajectory)
    with torch.no_grad():
        probabilities = model.probabilities(prepared.model(prepared.inputs))
    cls = explanation.target_index(0)
    label = explanation.target_label(0)
    captions = [
        f"step {k}: '{label}' logit {float(logit):.2f}, probability {float(probabilities[k, cls]):.1%}"
        for k, logit in enumerate(logits)
    ]
    return Counterfactual([_rgb(to_display(x)) for x in trajectory], captions,
                          _save(explanation, folder, "counterfactual"))


@dataclasses.dataclass
class TextResult:
    """html: per label, the coloured words explaining that label; probabilities: top-k."""

    html: dict[str, str]
    probabilities: dict[str, float]
    predicted: str
    files: list[Path]


def explain_text(model: spmm.Explainable, text: str, method: str, folder: Path,
                 reporter: Reporter | None = None) -> TextResult:
    """Explain each of the model's top-k labels on ``text`` (one batch): switching labels on the page is instant."""
    from spmm.modalities.text.render import render_html

    text = (text or "").strip()
    if not text:
        raise SpmmInputError("type a text to explain")
    if len(text) > MAX_TEXT_CHARACTERS:
        raise SpmmInputError(f"the text has {len(text)} characters; the page explains at most {MAX_TEXT_CHARACTERS}")
    top = model.predict([text], k=TOP_K)[0]
    with _reporting(reporter):
        explanation = model.explain([text] * len(top), [p.index for p in top], method, top_k=TOP_K, seed=0)
    html = {
        p.label: render_html(explanation.words(i), f"'{p.label}' ({p.probability:.1%}), {method}")
        for i, p in enumerate(top)
    }
    return TextResult(html, _probabilities(explanation), top[0].label,
                      _save(explanation, folder, f"text-{method}"))


@dataclasses.dataclass
class AudioResult:
    """spectrogram: PNG path; wav: the sonified "what mattered" clip (None when the front-end is not
    STFT based); probabilities: top-k."""

    spectrogram: Path
    wav: Path | None
    probabilities: dict[str, float]
    files: list[Path]


def explain_audio(model: spmm.Explainable, clip: str | Path, method: str, target: str, folder: Path,
                  reporter: Reporter | None = None) -> AudioResult:
    """Explain ``target`` on one audio file of at most :data:`PAGE_MAX_SECONDS` (checked from its
    header before it is decoded, when soundfile can read it)."""
    import soundfile

    try:
        seconds = soundfile.info(str(clip)).duration
    except (RuntimeError, soundfile.LibsndfileError):
        seconds = 0.0  # unreadable: the explanation reports why
    if seconds > PAGE_MAX_SECONDS:
        raise SpmmInputError(f"{Path(clip).name} lasts {seconds:.1f} s; the page explains at most "
                             f"{PAGE_MAX_SECONDS:g} s of audio at a time")
    with _reporting(reporter):
        explanation = model.explain([str(clip)], _parse_target(target), method, top_k=TOP_K, seed=0,
                                    prepare_options={"max_seconds": PAGE_MAX_SECONDS})
    files = _save(explanation, folder, f"audio-{method}")
    by_suffix = {path.suffix: path for path in files}
    return AudioResult(by_suffix[".png"], by_suffix.get(".wav"), _probabilities(explanation), files)
