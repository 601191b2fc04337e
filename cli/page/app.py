"""The Gradio page of ``spmm serve``: image, text and audio tabs over :mod:`.results`.

Uploads arrive as plain files (pictures through ``gr.File``, clips through ``gr.Audio`` without
format conversion), so Gradio never decodes them and every decoding error reaches a handler.
Every handler returns a status line instead of raising: a bad upload shows its message in the
tab's status box, the outputs are cleared, and the server keeps serving.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr

import spmm

from . import results
from .results import Models, friendly_message

DEFAULT_MODELS = {"image": ["efficientnet-lite0"], "text": ["minilm-sst2", "minilm-zero-shot"], "audio": ["crepe-tiny"]}
ZERO_SHOT_MODEL = "minilm-zero-shot"
DEFAULT_ZERO_SHOT_LABELS = "sports, politics, business, science"
DEFAULT_TEXT = "a gripping , funny and beautifully acted film"
COUNTERFACTUAL_STEPS = 5
MAX_UPLOAD = "200mb"
"""Larger uploads are refused by Gradio before they reach a handler."""

logger = logging.getLogger(__name__)


def _reporter(progress: gr.Progress) -> results.Reporter:
    """Long method loops (ascent steps, model samples) shown as the page's progress bar."""
    return lambda iterable, description, total: progress.tqdm(iterable, desc=description, total=total)


def _failed(error: Exception, upload: str | None = None) -> str:
    """The status line of a failed request (an upload's server path shortened to its file name)."""
    logger.warning("request failed: %s", error, exc_info=not isinstance(error, spmm.SpmmInputError))
    message = friendly_message(error)
    if upload:
        message = message.replace(str(upload), Path(upload).name)
    return f"**Error:** {message}"


def _example_files(folder: Path) -> tuple[list[str], list[str]]:
    """Example pictures (scikit-image's chelsea and coffee) and a 1 s 440 Hz tone, written under ``folder``."""
    import torch
    from PIL import Image
    from skimage import data

    from spmm.modalities.audio.io import save_wav

    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for name in ("chelsea", "coffee"):
        path = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(path)
        images.append(str(path))
    tone = 0.5 * torch.sin(2 * torch.pi * 440.0 * torch.arange(16000) / 16000)
    return images, [str(save_wav(folder / "tone-440hz.wav", tone, 16000))]


class Page:
    """The handlers of the page, sharing one model cache and one output folder.

    models: the model cache; choices: per modality, the model specs offered (first is the default);
    folder: where each request's downloads go (one sub-folder per request).
    """

    def __init__(self, models: Models, choices: dict[str, list[str]], folder: Path) -> None:
        self.models = models
        self.choices = choices
        self.folder = folder

    def _request_folder(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="request-", dir=self.folder))

    def image(self, image: str | None, spec: str, method: str, target: str, temperature: float,
              progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """-> status, overlay, heatmap, probabilities, target choices, downloads."""
        try:
            if not image:
                raise spmm.SpmmInputError("upload a picture or pick an example first")
            result = results.explain_image(self.models.get(spec), image, method, target, temperature,
                                           self._request_folder(), _reporter(progress))
        except Exception as error:  # noqa: BLE001 — every failure becomes a message on the page
            return _failed(error, image), None, None, None, gr.update(), None
        choices = ["top1", *result.probabilities]
        status = f"Explained **{result.target}** with `{method}` (temperature {temperature:g})."
        return (status, result.overlay, result.heatmap, result.probabilities,
                gr.update(choices=choices), [str(p) for p in result.files])

    def counterfactual(self, image: str | None, spec: str, target: str, steps: int,
                       progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """-> status, frames (state), captions (state), slider, first frame, first caption, downloads."""
        try:
            if not image:
                raise spmm.SpmmInputError("upload a picture or pick an example first")
            result = results.counterfactual(self.models.get(spec), image, target, steps, self._request_folder(),
                                            _reporter(progress))
        except Exception as error:  # noqa: BLE001
            return _failed(error, image), [], [], gr.update(maximum=0, value=0), None, "", None
        last = len(result.frames) - 1
        return ("PullbackAscent done: slide through the steps.", result.frames, result.captions,
                gr.update(maximum=last, value=last), result.frames[-1], result.captions[-1],
                [str(p) for p in result.files])

    def text(self, text: str, spec: str, labels: str, method: str,
             progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """-> status, html per label (state), label switch, coloured words, probabilities, downloads."""
        try:
            zero_shot = tuple(part.strip() for part in (labels or "").split(",") if part.strip())
            if spec == ZERO_SHOT_MODEL and len(zero_shot) < 2:
                raise spmm.SpmmInputError("zero-shot needs at least two comma-separated labels")
            model = self.models.get(spec, zero_shot if spec == ZERO_SHOT_MODEL else ())
            result = results.explain_text(model, text, method, self._request_folder(), _reporter(progress))
        except Exception as error:  # noqa: BLE001
            return _failed(error), {}, gr.update(choices=[], value=None), "", None, None
        status = f"Predicted **{result.predicted}**; pick a label to see what speaks for it."
        return (status, result.html, gr.update(choices=list(result.html), value=result.predicted),
                result.html[result.predicted], result.probabilities, [str(p) for p in result.files])

    def audio(self, clip: str | None, spec: str, method: str, target: str,
              progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """-> status, spectrogram, sonified WAV, probabilities, downloads."""
        try:
            if not clip:
                raise spmm.SpmmInputError("upload a clip or pick the example tone first")
            result = results.explain_audio(self.models.get(spec), clip, method, target, self._request_folder(),
                                           _reporter(progress))
        except Exception as error:  # noqa: BLE001
            return _failed(error, clip), None, None, None, None
        wav = str(result.wav) if result.wav is not None else None
        note = "" if wav else " (this model's front-end cannot be played back)"
        return (f"Explained with `{method}`{note}.", str(result.spectrogram), wav, result.probabilities,
                [str(p) for p in result.files])


def _frame(frames: list[Any], captions: list[str], step: float) -> tuple[Any, str]:
    """The ascent's x_k and its caption at slider position ``step``."""
    if not frames:
        return None, ""
    index = min(int(step), len(frames) - 1)
    return frames[index], captions[index]


def _image_tab(page: Page, examples: Sequence[str]) -> None:
    methods = spmm.list_methods()
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Picture", file_types=["image"], type="filepath", elem_id="image-input")
            gr.Examples([[path] for path in examples], inputs=[image], label="Example pictures")
            spec = gr.Dropdown(page.choices["image"], value=page.choices["image"][0], label="Model")
            method = gr.Dropdown(methods, value="soft_pullback", label="Method")
            target = gr.Dropdown(["top1"], value="top1", allow_custom_value=True, label="Target",
                                 info="top1, one of the top classes, or type a label or class index")
            temperature = gr.Slider(0.0, 2.0, value=0.6, step=0.05, label="ReLU temperature")
            run = gr.Button("Explain", variant="primary", elem_id="image-explain")
        with gr.Column():
            status = gr.Markdown(elem_id="image-status")
            with gr.Row():
                overlay = gr.Image(label="Overlay (|relevance|)", elem_id="image-overlay", interactive=False)
                heatmap = gr.Image(label="Heatmap (red +, blue −)", elem_id="image-heatmap", interactive=False)
            probabilities = gr.Label(num_top_classes=results.TOP_K, label="Top classes", elem_id="image-top")
            downloads = gr.File(file_count="multiple", label="Downloads (PNG, JSON)", elem_id="image-files")
    with gr.Accordion("Counterfactual: PullbackAscent towards the target", open=False):
        with gr.Row():
            steps = gr.Slider(1, 10, value=COUNTERFACTUAL_STEPS, step=1, label="Ascent steps")
            ascend = gr.Button("Run PullbackAscent", elem_id="image-ascent")
        ascent_status = gr.Markdown(elem_id="ascent-status")
        frames, captions = gr.State([]), gr.State([])
        step = gr.Slider(0, COUNTERFACTUAL_STEPS, value=0, step=1, label="Step k", elem_id="ascent-step")
        frame = gr.Image(label="x_k", interactive=False, elem_id="ascent-frame")
        caption = gr.Markdown(elem_id="ascent-caption")
        ascent_files = gr.File(file_count="multiple", label="Downloads (PNG, JSON)")
    run.click(page.image, [image, spec, method, target, temperature],
              [status, overlay, heatmap, probabilities, target, downloads])
    ascend.click(page.counterfactual, [image, spec, target, steps],
                 [ascent_status, frames, captions, step, frame, caption, ascent_files])
    step.change(_frame, [frames, captions, step], [frame, caption], queue=False)


def _text_tab(page: Page) -> None:
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(DEFAULT_TEXT, lines=4, label="Text", elem_id="text-input")
            spec = gr.Dropdown(page.choices["text"], value=page.choices["text"][0], label="Model",
                               info=f"{ZERO_SHOT_MODEL}: classified over the labels below", elem_id="text-model")
            labels = gr.Textbox(DEFAULT_ZERO_SHOT_LABELS, label="Zero-shot labels (comma-separated)",
                                elem_id="text-labels")
            method = gr.Dropdown(spmm.list_methods(), value="soft_pullback", label="Method")
            run = gr.Button("Explain", variant="primary", elem_id="text-explain")
        with gr.Column():
            status = gr.Markdown(elem_id="text-status")
            fragments = gr.State({})
            label = gr.Radio([], label="Explain label", elem_id="text-label")
            words = gr.HTML(elem_id="text-words")
            probabilities = gr.Label(num_top_classes=results.TOP_K, label="Top labels")
            downloads = gr.File(file_count="multiple", label="Downloads (HTML, JSON)", elem_id="text-files")
    run.click(page.text, [text, spec, labels, method], [status, fragments, label, words, probabilities, downloads])
    label.change(lambda shown, name: shown.get(name, ""), [fragments, label], [words], queue=False)


def _audio_tab(page: Page, examples: Sequence[str]) -> None:
    with gr.Row():
        with gr.Column():
            clip = gr.Audio(type="filepath", format=None, sources=["upload", "microphone"], label="Clip",
                            elem_id="audio-input")
            gr.Examples([[path] for path in examples], inputs=[clip], label="Example clip")
            spec = gr.Dropdown(page.choices["audio"], value=page.choices["audio"][0], label="Model")
            method = gr.Dropdown(spmm.list_methods(), value="soft_pullback", label="Method")
            target = gr.Textbox("top1", label="Target", info="top1, a label, a class index (CREPE: a pitch in Hz)")
            run = gr.Button("Explain", variant="primary", elem_id="audio-explain")
        with gr.Column():
            status = gr.Markdown(elem_id="audio-status")
            spectrogram = gr.Image(type="filepath", label="Spectrogram and attribution", interactive=False,
                                   elem_id="audio-spectrogram")
            sonified = gr.Audio(type="filepath", label="What mattered (sonified)", interactive=False,
                                elem_id="audio-sonified")
            probabilities = gr.Label(num_top_classes=results.TOP_K, label="Top classes")
            downloads = gr.File(file_count="multiple", label="Downloads (PNG, WAV, JSON)", elem_id="audio-files")
    run.click(page.audio, [clip, spec, method, target], [status, spectrogram, sonified, probabilities, downloads])


def build_app(folder: Path, extra_models: Sequence[str] = (), options: dict[str, dict[str, Any]] | None = None
              ) -> gr.Blocks:
    """The page: the default model of each modality plus ``extra_models`` (loaded now, so a bad spec
    fails at start-up), with ``options`` per spec for ``spmm.load``; downloads go under ``folder``."""
    models = Models(options)
    choices = {modality: list(specs) for modality, specs in DEFAULT_MODELS.items()}
    for spec in extra_models:
        modality = models.get(spec).modality.name
        if spec not in choices.setdefault(modality, []):
            choices[modality].append(spec)
    images, clips = _example_files(folder / "examples")
    page = Page(models, choices, folder)
    with gr.Blocks(title="spmm — Semantic Pullbacks") as app:
        gr.Markdown("# spmm — Semantic Pullbacks\nUpload an input, pick a model and a method, and see what mattered.")
        with gr.Tab("Image", elem_id="tab-image"):
            _image_tab(page, images)
        with gr.Tab("Text", elem_id="tab-text"):
            _text_tab(page)
        with gr.Tab("Audio", elem_id="tab-audio"):
            _audio_tab(page, clips)
    return app


def launch(app: gr.Blocks, host: str, port: int, concurrency: int = 2, share: bool = False,
           auth: Callable[[str, str], bool] | None = None) -> str:
    """Queue requests (``concurrency`` explanations at a time, the rest wait their turn) and start
    serving ``app`` on ``host``:``port`` in the background; returns the page's URL.  ``share``
    is passed explicitly (``GRADIO_SHARE`` in the environment has no effect); ``auth``: a login
    check ``(user name, password) -> bool``, None for an open page."""
    app.queue(default_concurrency_limit=concurrency)
    app.launch(server_name=host, server_port=port, share=share, auth=auth, prevent_thread_lock=True, quiet=True,
               show_error=False, max_file_size=MAX_UPLOAD)
    return app.local_url
