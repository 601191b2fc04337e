"""What the page shows, computed through ``spmm.load(...).explain(...)`` only (no Gradio here).

Each ``explain_*`` function takes a loaded :class:`spmm.Explainable` and what a person gave on the
page, writes every download (PNG / HTML / WAV and the framework's JSON) into ``folder`` and returns
the pictures and numbers to show.  Failures a person can fix are :class:`spmm.SpmmInputError`;
:func:`friendly_message` turns any failure into one line for the page.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

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
"""``reporter(iterable, description, total) -> iterable``: the page's bar over a method's own loop."""
Counter = Callable[[int, int, str], None]
"""``counter(done, total, description)``: the page's bar set to ``done`` of ``total`` samples."""


@dataclasses.dataclass(frozen=True)
class Progress:
    """How a request shows progress: ``loop`` wraps the loops methods report through
    :mod:`spmm.progress` (ascent steps, SmoothGrad / GradientShap sample passes, FusionGrad model
    samples), named ``"<method>: <loop>"``; ``count`` shows the work of methods that do not
    (IntegratedGradients runs inside Captum), counted as the rows the model evaluates."""

    loop: Reporter
    count: Counter


class Models:
    """``spmm.load`` results by spec, each loaded once, on first use; of the models loaded with
    user labels (zero-shot), only the :data:`LABELLED_KEPT` most recently used are kept.

    options: per spec, the keywords ``spmm.load`` gets (e.g. ``{"honk-res8": {"weights": path}}``).
    """

    def __init__(self, options: dict[str, dict[str, Any]] | None = None) -> None:
        self.options = options or {}
        self._loaded: OrderedDict[tuple[str, tuple[str, ...]], spmm.Explainable] = OrderedDict()
        self._lock = threading.Lock()

    def is_loaded(self, spec: str, labels: tuple[str, ...] = ()) -> bool:
        """Whether ``get(spec, labels)`` answers without loading."""
        with self._lock:
            return (spec, labels) in self._loaded

    def get(self, spec: str, labels: tuple[str, ...] = ()) -> spmm.Explainable:
        """The model ``spec`` (zero-shot models with ``labels``), loaded on first use."""
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


@contextlib.contextmanager
def _reporting(progress: Progress | None, model: spmm.Explainable | None = None, method: str = "",
               inputs: int = 1) -> Iterator[None]:
    """Show ``method``'s progress on ``model`` through ``progress``: its own loops when it reports
    them, else the model evaluations it makes (see :func:`forward_progress`)."""
    from spmm.progress import reporting

    if progress is None:
        yield
        return
    looped = False

    def loop(iterable: Iterable[Any], description: str, total: int) -> Iterable[Any]:
        nonlocal looped
        looped = True
        return progress.loop(iterable, f"{method}: {description}" if method else description, total)

    def count(done: int, total: int) -> None:
        if not looped:
            progress.count(done, total, f"{method}: model evaluations")

    units = sample_units(method) if model is not None and method else 0
    with reporting(loop), forward_progress(getattr(model, "model", None), inputs, units, count):
        yield


def _probabilities(explanation: spmm.Explanation) -> dict[str, float]:
    return {p.label: p.probability for p in (explanation.predictions or [[]])[0]}


def download_stem(source: str | Path, spec: str, method: str, target: str) -> str:
    """``<input>-<model>-<method>-<target>``, each part sanitised as the CLI names its outputs
    (the input's file name without its suffix; a model path without its folders)."""
    from spmm.cli.commands.common import OutputFiles

    return OutputFiles(".").stem(Path(str(source)).name, Path(spec).name, method, target)


def _save(explanation: spmm.Explanation, folder: Path, stem: str, only: tuple[str, ...] | None = None) -> list[Path]:
    """The explanation's renderings (audio: a WAV only when it can be sonified; those in ``only``
    when given) and its JSON under ``folder``."""
    shown = [suffix for suffix in explanation.renderings if only is None or suffix in only]
    return [explanation.save(folder / f"{stem}{suffix}") for suffix in (*shown, ".json")]


def _explained_target(explanation: spmm.Explanation, typed: str) -> str:
    return explanation.target_label(0) or str(explanation.target_index(0) if typed == "top1" else typed)


def _rgb(values: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] -> uint8."""
    return (np.clip(values, 0.0, 1.0) * 255).round().astype(np.uint8)


def _parse_target(text: str) -> str:
    """The typed target (an index, a label name or ``"top1"``; an empty box is ``"top1"``)."""
    return (text or "").strip() or "top1"


OVERLAY_COLOUR_MAPS = ("inferno", "viridis", "magma", "plasma", "hot", "jet", "gray")
"""Colour maps offered for the |relevance| overlay (matplotlib names; perceptually uniform first)."""


@dataclasses.dataclass
class ImageResult:
    """overlay, heatmap: (H', W', 3) uint8 figures, each with its colour bar; probabilities: top-k
    label -> probability; pixels: (3, H, W) input in [−1, 1] and heat: (H, W) |relevance| in [0, 1],
    kept to redraw the overlay with another opacity or colour map."""

    overlay: np.ndarray
    heatmap: np.ndarray
    probabilities: dict[str, float]
    target: str
    files: list[Path]
    pixels: Any = None
    heat: np.ndarray | None = None


def figure_with_colour_bar(picture: np.ndarray, cmap: str, low: float, high: float, label: str) -> np.ndarray:
    """``picture`` (H, W, 3) in [0, 1] drawn at its own size with a vertical colour bar of ``cmap``
    from ``low`` to ``high`` labelled ``label`` on its right: (H', W', 3) uint8."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    height, width = picture.shape[:2]
    dpi = 100
    figure = Figure(figsize=((width + 110) / dpi, (height + 10) / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(figure)
    axis = figure.add_axes((5 / (width + 110), 5 / (height + 10), width / (width + 110), height / (height + 10)))
    axis.imshow(np.clip(picture, 0, 1), interpolation="nearest")
    axis.set_axis_off()
    bar = figure.add_axes(((width + 15) / (width + 110), 0.1, 12 / (width + 110), 0.8))
    figure.colorbar(ScalarMappable(Normalize(low, high), cmap), cax=bar, label=label)
    bar.tick_params(labelsize=7)
    bar.yaxis.label.set_size(8)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def render_overlay(pixels: Any, heat: np.ndarray, opacity: float, cmap: str) -> np.ndarray:
    """The |relevance| overlay at ``opacity`` (0–1) in ``cmap`` over the greyed picture, with its
    colour bar: (H', W', 3) uint8."""
    from spmm.modalities.image import overlay

    if cmap not in OVERLAY_COLOUR_MAPS:
        raise SpmmInputError(f"unknown colour map {cmap!r}; choose one of {', '.join(OVERLAY_COLOUR_MAPS)}")
    blend = overlay(pixels, heat, alpha=float(opacity), cmap=cmap)
    return figure_with_colour_bar(blend, cmap, 0.0, 1.0, "|relevance| / 99.5th percentile")


def explain_image(model: spmm.Explainable, image: str | Path, method: str, target: str, temperature: float,
                  folder: Path, progress: Progress | None = None, spec: str = "model", opacity: float = 0.6,
                  cmap: str = "inferno") -> ImageResult:
    """Explain ``target`` ("top1", a class index or label) on one image file with ``method``, the
    ReLU-family rules at ``temperature``; the overlay drawn at ``opacity`` in ``cmap``.  Downloads are
    named ``<image>-<spec>-<method>-<target>``."""
    import matplotlib

    from spmm.modalities.image import absolute_heatmap, signed_heatmap

    tuned = model.with_rules(**{name: float(temperature) for name in GATE_TEMPERATURES})
    typed = _parse_target(target)
    with _reporting(progress, tuned, method):
        explanation = tuned.explain([str(image)], typed, method, top_k=TOP_K, seed=0)
    pixels, attribution = explanation.inputs[0], explanation.attributions[0]
    signed = matplotlib.colormaps["bwr"]((signed_heatmap(attribution) + 1) / 2)[..., :3]
    heat = absolute_heatmap(attribution)
    label = _explained_target(explanation, typed)
    return ImageResult(
        overlay=render_overlay(pixels, heat, opacity, cmap),
        heatmap=figure_with_colour_bar(signed, "bwr", -1.0, 1.0, "relevance / max |relevance|"),
        probabilities=_probabilities(explanation),
        target=label,
        files=_save(explanation, folder, download_stem(image, spec, method, label)),
        pixels=pixels,
        heat=heat,
    )


@dataclasses.dataclass
class Counterfactual:
    """frames: x_k of each PullbackAscent step as (H, W, 3) uint8; captions: the target's logit and
    probability at each step."""

    frames: list[np.ndarray]
    captions: list[str]
    files: list[Path]


def counterfactual(model: spmm.Explainable, image: str | Path, target: str, steps: int, folder: Path,
                   progress: Progress | None = None, spec: str = "model") -> Counterfactual:
    """PullbackAscent towards ``target`` for ``steps`` steps: the image and the target's score at each step."""
    import torch

    from spmm.modalities.image import to_display

    with _reporting(progress, model, "pullback_ascent"):
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
    stem = download_stem(image, spec, "pullback_ascent", label or str(cls))
    return Counterfactual([_rgb(to_display(x)) for x in trajectory], captions, _save(explanation, folder, stem))


@dataclasses.dataclass
class TextResult:
    """html: per label, the coloured words explaining that label; probabilities: top-k."""

    html: dict[str, str]
    probabilities: dict[str, float]
    predicted: str
    files: list[Path]


def explain_text(model: spmm.Explainable, text: str, method: str, folder: Path,
                 progress: Progress | None = None, spec: str = "model") -> TextResult:
    """Explain each of the model's top-k labels on ``text`` (one batch): switching labels on the page is
    instant.  Downloads are named ``text-<spec>-<method>-top<k>`` (they hold every label)."""
    from spmm.modalities.text.render import render_html

    text = (text or "").strip()
    if not text:
        raise SpmmInputError("type a text to explain")
    if len(text) > MAX_TEXT_CHARACTERS:
        raise SpmmInputError(f"the text has {len(text)} characters; the page explains at most {MAX_TEXT_CHARACTERS}")
    top = model.predict([text], k=TOP_K)[0]
    with _reporting(progress, model, method, len(top)):
        explanation = model.explain([text] * len(top), [p.index for p in top], method, top_k=TOP_K, seed=0)
    html = {
        p.label: render_html(explanation.words(i), f"'{p.label}' ({p.probability:.1%}), {method}")
        for i, p in enumerate(top)
    }
    return TextResult(html, _probabilities(explanation), top[0].label,
                      _save(explanation, folder, download_stem("text", spec, method, f"top{len(top)}")))


MAX_NEW_TOKENS = 32
"""Most tokens one vision-language or speech-to-text request generates and explains."""
ENLARGED_SIDE = 320
"""Side in CSS pixels of the chosen token's heatmap on the page."""


@dataclasses.dataclass
class VisionLanguageResult:
    """html: the explanation's own HTML (the continuation as a strip of tokens, each over its heatmap
    on the image, then the tokens × tokens matrix); tokens: per continuation token (``"i. token"``),
    its heatmap enlarged (the same renderer, :meth:`ImageGenerationExplanation.token_html`)."""

    html: str
    tokens: dict[str, str]
    continuation: str
    files: list[Path]


def explain_vision_language(model: spmm.Explainable, image: str | Path, prompt: str, new_tokens: int, method: str,
                            folder: Path, progress: Progress | None = None, spec: str = "model") -> VisionLanguageResult:
    """Generate ``new_tokens`` (1 to :data:`MAX_NEW_TOKENS`) greedily after ``prompt`` on one image file
    and explain every generated token with ``method``.  Downloads (HTML, JSON) are named
    ``<image>-<spec>-<method>-generate<N>``."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise SpmmInputError("type a prompt, e.g. 'What is in the picture?'")
    if len(prompt) > MAX_TEXT_CHARACTERS:
        raise SpmmInputError(f"the prompt has {len(prompt)} characters; the page takes at most {MAX_TEXT_CHARACTERS}")
    count = int(new_tokens)
    if not 1 <= count <= MAX_NEW_TOKENS:
        raise SpmmInputError(f"generate between 1 and {MAX_NEW_TOKENS} tokens, not {new_tokens}")
    with _reporting(progress, model, method):
        explanation = model.explain(str(image), prompt=prompt, target=spmm.Continuation(max_new_tokens=count),
                                    method=method, seed=0)
    tokens = {f"{r + 1}. {token}": explanation.token_html(r, ENLARGED_SIDE)
              for r, token in enumerate(explanation.row_tokens)}
    files = _save(explanation, folder, download_stem(image, spec, method, f"generate{count}"))
    return VisionLanguageResult(explanation.html(), tokens, explanation.continuation, files)


@dataclasses.dataclass
class AudioResult:
    """spectrogram: PNG path; wav: the sonified "what mattered" clip (None when the front-end is not
    STFT based); probabilities: top-k."""

    spectrogram: Path
    wav: Path | None
    probabilities: dict[str, float]
    files: list[Path]


def explain_audio(model: spmm.Explainable, clip: str | Path, method: str, target: str, folder: Path,
                  progress: Progress | None = None, spec: str = "model") -> AudioResult:
    """Explain ``target`` on one audio file of at most :data:`PAGE_MAX_SECONDS` (checked from its
    header before it is decoded, when soundfile can read it).  Downloads are named
    ``<clip>-<spec>-<method>-<target>``."""
    _check_clip_length(clip)
    typed = _parse_target(target)
    with _reporting(progress, model, method):
        explanation = model.explain([str(clip)], typed, method, top_k=TOP_K, seed=0,
                                    prepare_options={"max_seconds": PAGE_MAX_SECONDS})
    files = _save(explanation, folder, download_stem(clip, spec, method, _explained_target(explanation, typed)))
    by_suffix = {path.suffix: path for path in files}
    return AudioResult(by_suffix[".png"], by_suffix.get(".wav"), _probabilities(explanation), files)


def _check_clip_length(clip: str | Path) -> None:
    """Refuse a clip longer than :data:`PAGE_MAX_SECONDS`, read from its header before it is decoded
    (when soundfile can read it; an unreadable clip is left for the explanation to report)."""
    import soundfile

    try:
        seconds = soundfile.info(str(clip)).duration
    except (RuntimeError, soundfile.LibsndfileError):
        return
    if seconds > PAGE_MAX_SECONDS:
        raise SpmmInputError(f"{Path(clip).name} lasts {seconds:.1f} s; the page explains at most "
                             f"{PAGE_MAX_SECONDS:g} s of audio at a time")


ENLARGED_SPECTROGRAM_WIDTH = 640
"""Width in CSS pixels of the chosen token's map over the spectrogram on the page."""
SPEECH_DOWNLOADS = (".html", ".wav")
"""The speech-to-text renderings offered besides the JSON (the per-token PNG panels, slow to draw for
long clips, stay with the CLI)."""


@dataclasses.dataclass
class TranscriptionResult:
    """html: the explanation's own HTML (the transcript as a strip of tokens, each over its map on the
    spectrogram, then the tokens × tokens matrix for decoders); tokens: per explained token
    (``"i. token"``), its map enlarged (the same renderer,
    :meth:`TranscriptionExplanation.token_html`); wavs: per token, its sonified clip (the
    explanation's WAV rendering of that row; empty when the front-end cannot be played back)."""

    html: str
    tokens: dict[str, str]
    wavs: dict[str, Path]
    transcript: str
    files: list[Path]


def explain_speech_to_text(model: spmm.Explainable, clip: str | Path, new_tokens: int, method: str, folder: Path,
                           progress: Progress | None = None, spec: str = "model") -> TranscriptionResult:
    """Transcribe one audio file of at most :data:`PAGE_MAX_SECONDS` and explain the first
    ``new_tokens`` (1 to :data:`MAX_NEW_TOKENS`) transcript tokens with ``method``.  Downloads (HTML,
    WAV when it can be played back, JSON) are named ``<clip>-<spec>-<method>-generate<N>``; each
    token's WAV lies under ``folder/tokens``."""
    count = int(new_tokens)
    if not 1 <= count <= MAX_NEW_TOKENS:
        raise SpmmInputError(f"transcribe between 1 and {MAX_NEW_TOKENS} tokens, not {new_tokens}")
    _check_clip_length(clip)
    with _reporting(progress, model, method):
        explanation = model.explain(str(clip), target=spmm.Continuation(max_new_tokens=count), method=method, seed=0,
                                    prepare_options={"max_seconds": PAGE_MAX_SECONDS})
    stem = download_stem(clip, spec, method, f"generate{count}")
    labels = [f"{r + 1}. {token}" for r, token in enumerate(explanation.row_tokens)]
    tokens = {label: explanation.token_html(r, ENLARGED_SPECTROGRAM_WIDTH) for r, label in enumerate(labels)}
    wavs = {}
    if ".wav" in explanation.renderings:
        wavs = {label: explanation.per_token([r]).save(folder / "tokens" / f"{stem}-token{r + 1}.wav")
                for r, label in enumerate(labels)}
    files = _save(explanation, folder, stem, only=SPEECH_DOWNLOADS)
    return TranscriptionResult(explanation.html(), tokens, wavs, explanation.transcript, files)


def sample_units(method: str) -> int:
    """How many model evaluations per input a sampling method makes by default (the product of its
    ``*samples`` and ``steps`` parameters in the method registry); 0 for one-pass methods."""
    from spmm.methods.registry import get_method

    counts = [value for name, value in get_method(method).defaults.items()
              if (name.endswith("samples") or name == "steps") and isinstance(value, int)]
    return int(np.prod(counts)) if counts else 0


@contextlib.contextmanager
def forward_progress(model: Any, inputs: int, units: int, report: Callable[[int, int], None]) -> Iterator[None]:
    """Count the rows ``model`` (an ``nn.Module``) evaluates inside the block and call
    ``report(done, total)`` after each forward, with total = ``inputs × units`` rows; the forward
    hook is removed on exit, whatever happens.  Nothing is counted for a non-module or ``units`` 0."""
    if units <= 0 or not hasattr(model, "register_forward_hook"):
        yield
        return
    total, seen = inputs * units, 0

    def count(module: Any, args: tuple[Any, ...], output: Any) -> None:
        nonlocal seen
        first = args[0] if args else None
        seen += int(first.shape[0]) if getattr(first, "ndim", 0) else 1
        report(min(seen, total), total)

    handle = model.register_forward_hook(count)
    try:
        yield
    finally:
        handle.remove()
