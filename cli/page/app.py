"""The Gradio page of ``spmm serve``: image, text and audio tabs over :mod:`.results`, a
vision-language tab when ``--model`` names a vision-language model (``spmm serve --model ./llava_dir``)
and a speech-to-text tab when it names a speech-to-text model (``spmm serve --model ./whisper_dir``).

Uploads arrive as plain files (pictures through ``gr.File``, clips through ``gr.Audio`` without
format conversion), so Gradio never decodes them and every decoding error reaches a handler.
Every handler returns a status line instead of raising: a bad upload shows its message in the
tab's status box, the outputs are cleared, and the server keeps serving.

Building the page loads no model and imports no method: models load on their first use (with a
progress message, then cached), the method lists fill in when a browser opens the page.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr

import spmm

from . import results
from .results import Models, friendly_message

DEFAULT_MODELS = {"image": ["efficientnet-lite0"], "text": ["minilm-sst2", "minilm-zero-shot"],
                  "audio": ["kws-res8", "crepe-tiny"]}
"""The models each tab offers (first: its default); none is loaded before its first use."""
DEFAULT_METHOD = "soft_pullback"
ZERO_SHOT_MODEL = "minilm-zero-shot"
DEFAULT_ZERO_SHOT_LABELS = "sports, politics, business, science"
DEFAULT_TEXT = "a gripping , funny and beautifully acted film"
DEFAULT_PROMPT = "What is in the picture?"
DEFAULT_NEW_TOKENS = 8
VISION_LANGUAGE = "vision-language"
"""The modality name of vision-language models: their tab appears when one is offered."""
SPEECH_TO_TEXT = "speech-to-text"
"""The modality name of speech-to-text models (Whisper, CTC): their tab appears when one is offered."""
COUNTERFACTUAL_STEPS = 5
MAX_UPLOAD = "200mb"
"""Larger uploads are refused by Gradio before they reach a handler."""

logger = logging.getLogger(__name__)


def _progress(progress: gr.Progress) -> results.Progress:
    """Method loops and sample counts shown as the page's progress bar."""
    return results.Progress(
        loop=lambda iterable, description, total: progress.tqdm(iterable, desc=description, total=total),
        count=lambda done, total, description: progress((done, total), desc=description, unit="samples"),
    )


def method_hint(method: str) -> str:
    """One line on what ``method`` does: its summary in the method registry."""
    from spmm.methods.registry import get_method

    try:
        return f"*{get_method(method).summary}*"
    except spmm.SpmmInputError:
        return ""


def _method_catalogue(tabs: int) -> list[Any]:
    """For each of ``tabs`` method dropdowns: every registered method, and the default's hint.  Run
    when a browser opens the page, so that building the page imports no method (torch, Captum)."""
    methods = spmm.list_methods()
    return [gr.update(choices=methods), method_hint(DEFAULT_METHOD)] * tabs


def _failed(error: Exception, upload: str | None = None) -> str:
    """The status line of a failed request (an upload's server path shortened to its file name)."""
    logger.warning("request failed: %s", error, exc_info=not isinstance(error, spmm.SpmmInputError))
    message = friendly_message(error)
    if upload:
        message = message.replace(str(upload), Path(upload).name)
    return f"**Error:** {message}"


def _example_files(folder: Path) -> tuple[list[str], list[str]]:
    """Example pictures (scikit-image's chelsea and coffee) and clips (a spoken "stop" from the
    Speech Commands test list, CC BY 4.0, shipped with the page; a 1 s 440 Hz tone), written under ``folder``."""
    import shutil
    from importlib import resources

    import numpy as np
    import soundfile
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for name in ("chelsea", "coffee"):
        path = folder / f"{name}.png"
        Image.fromarray(getattr(data, name)()).save(path)
        images.append(str(path))
    spoken = folder / "stop.wav"
    with resources.as_file(resources.files(__package__) / "stop-speech-commands.wav") as shipped:
        shutil.copyfile(shipped, spoken)
    tone = folder / "tone-440hz.wav"
    soundfile.write(str(tone), (0.5 * np.sin(2 * np.pi * 440.0 * np.arange(16000) / 16000)).astype(np.float32), 16000)
    return images, [str(spoken), str(tone)]


def _preview(upload: str | None) -> str | None:
    """The uploaded picture for the preview, or nothing when it is not a picture PIL can read."""
    from PIL import Image

    if not upload:
        return None
    try:
        with Image.open(upload) as picture:
            picture.verify()
    except Exception:  # noqa: BLE001 — any unreadable upload just has no preview; Explain says why
        return None
    return upload


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

    def _model(self, spec: str, progress: gr.Progress, labels: tuple[str, ...] = ()) -> spmm.Explainable:
        """The model ``spec``, loaded on its first use with a progress message."""
        if not self.models.is_loaded(spec, labels):
            progress(0, desc=f"loading {spec} (first use)")
        return self.models.get(spec, labels)

    def image(self, image: str | None, spec: str, method: str, target: str, temperature: float, opacity: float,
              cmap: str, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """-> status, overlay, heatmap, probabilities, target choices, downloads, overlay data (state)."""
        try:
            if not image:
                raise spmm.SpmmInputError("upload a picture or pick an example first")
            result = results.explain_image(self._model(spec, progress), image, method, target, temperature,
                                           self._request_folder(), _progress(progress), spec, opacity, cmap)
        except Exception as error:  # noqa: BLE001 — every failure becomes a message on the page
            return _failed(error, image), None, None, None, gr.update(), None, None
        choices = ["top1", *result.probabilities]
        status = f"Explained **{result.target}** with `{method}` (temperature {temperature:g})."
        return (status, result.overlay, result.heatmap, result.probabilities,
                gr.update(choices=choices), [str(p) for p in result.files], (result.pixels, result.heat))

    @staticmethod
    def redraw_overlay(shown: tuple[Any, Any] | None, opacity: float, cmap: str) -> Any:
        """The last overlay redrawn at another opacity or colour map (no new explanation)."""
        if not shown:
            return gr.update()
        return results.render_overlay(shown[0], shown[1], opacity, cmap)

    def counterfactual(self, image: str | None, spec: str, target: str, steps: int,
                       progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """-> status, frames (state), captions (state), slider, first frame, first caption, downloads."""
        try:
            if not image:
                raise spmm.SpmmInputError("upload a picture or pick an example first")
            result = results.counterfactual(self._model(spec, progress), image, target, steps,
                                            self._request_folder(), _progress(progress), spec)
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
            model = self._model(spec, progress, zero_shot if spec == ZERO_SHOT_MODEL else ())
            result = results.explain_text(model, text, method, self._request_folder(), _progress(progress), spec)
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
                raise spmm.SpmmInputError("upload a clip or pick an example clip first")
            result = results.explain_audio(self._model(spec, progress), clip, method, target,
                                           self._request_folder(), _progress(progress), spec)
        except Exception as error:  # noqa: BLE001
            return _failed(error, clip), None, None, None, None
        wav = str(result.wav) if result.wav is not None else None
        note = "" if wav else " (this model's front-end cannot be played back)"
        return (f"Explained with `{method}`{note}.", str(result.spectrogram), wav, result.probabilities,
                [str(p) for p in result.files])

    def vision_language(self, image: str | None, spec: str, prompt: str, new_tokens: float, method: str,
                        progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """-> status, strip and matrix (HTML), token figures (state), token choice, chosen token's figure, downloads."""
        try:
            if not image:
                raise spmm.SpmmInputError("upload a picture or pick an example first")
            result = results.explain_vision_language(self._model(spec, progress), image, prompt, int(new_tokens), method,
                                                     self._request_folder(), _progress(progress), spec)
        except Exception as error:  # noqa: BLE001
            return _failed(error, image), "", {}, gr.update(choices=[], value=None), "", None
        first = next(iter(result.tokens))
        status = f"Generated **{result.continuation or '(no text)'}**; pick a token to see its heatmap over the image."
        return (status, result.html, result.tokens, gr.update(choices=list(result.tokens), value=first),
                result.tokens[first], [str(p) for p in result.files])

    def speech_to_text(self, clip: str | None, spec: str, new_tokens: float, method: str,
                       progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        """-> status, strip (HTML), token figures and WAVs (states), token choice, chosen token's
        figure and WAV, downloads."""
        try:
            if not clip:
                raise spmm.SpmmInputError("upload or record a clip, or pick an example clip first")
            result = results.explain_speech_to_text(self._model(spec, progress), clip, int(new_tokens), method,
                                                    self._request_folder(), _progress(progress), spec)
        except Exception as error:  # noqa: BLE001
            return _failed(error, clip), "", {}, {}, gr.update(choices=[], value=None), "", None, None
        first = next(iter(result.tokens))
        wav = result.wavs.get(first)
        note = "" if wav else " (this model's front-end cannot be played back)"
        status = (f"Transcribed **{result.transcript or '(no text)'}**; explained {len(result.tokens)} token(s): "
                  f"pick one to see its map over the spectrogram{note}.")
        return (status, result.html, result.tokens, {label: str(path) for label, path in result.wavs.items()},
                gr.update(choices=list(result.tokens), value=first), result.tokens[first],
                str(wav) if wav else None, [str(p) for p in result.files])


def _frame(frames: list[Any], captions: list[str], step: float) -> tuple[Any, str]:
    """The ascent's x_k and its caption at slider position ``step``."""
    if not frames:
        return None, ""
    index = min(int(step), len(frames) - 1)
    return frames[index], captions[index]


def _method_choice(tab: str, controls: list[Any]) -> gr.Dropdown:
    """The method dropdown and, under it, the chosen method's one-line hint (kept in step); both are
    appended to ``controls`` for :func:`_method_catalogue` to fill when the page opens."""
    method = gr.Dropdown([DEFAULT_METHOD], value=DEFAULT_METHOD, label="Method", elem_id=f"{tab}-method")
    hint = gr.Markdown(elem_id=f"{tab}-method-hint")
    method.change(method_hint, [method], [hint], queue=False)
    controls.extend([method, hint])
    return method


def _image_tab(page: Page, examples: Sequence[str], controls: list[Any]) -> None:
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Picture", file_types=["image"], type="filepath", elem_id="image-input")
            preview = gr.Image(label="Preview", type="filepath", interactive=False, height=180,
                               elem_id="image-preview")
            gr.Examples([[path] for path in examples], inputs=[image], label="Example pictures")
            spec = gr.Dropdown(page.choices["image"], value=page.choices["image"][0], label="Model")
            method = _method_choice("image", controls)
            target = gr.Dropdown(["top1"], value="top1", allow_custom_value=True, label="Target",
                                 info="top1, one of the top classes, or type a label or class index")
            temperature = gr.Slider(0.0, 2.0, value=0.6, step=0.05, label="ReLU temperature")
            with gr.Row():
                opacity = gr.Slider(0.0, 1.0, value=0.6, step=0.05, label="Overlay opacity", elem_id="image-opacity")
                cmap = gr.Dropdown(list(results.OVERLAY_COLOUR_MAPS), value=results.OVERLAY_COLOUR_MAPS[0],
                                   label="Overlay colour map", elem_id="image-cmap")
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
    shown = gr.State(None)
    image.change(_preview, [image], [preview], queue=False)
    run.click(page.image, [image, spec, method, target, temperature, opacity, cmap],
              [status, overlay, heatmap, probabilities, target, downloads, shown])
    for control in (opacity, cmap):
        control.change(page.redraw_overlay, [shown, opacity, cmap], [overlay])
    ascend.click(page.counterfactual, [image, spec, target, steps],
                 [ascent_status, frames, captions, step, frame, caption, ascent_files])
    step.change(_frame, [frames, captions, step], [frame, caption], queue=False)


def _text_tab(page: Page, controls: list[Any]) -> None:
    with gr.Row():
        with gr.Column():
            text = gr.Textbox(DEFAULT_TEXT, lines=4, label="Text", elem_id="text-input")
            spec = gr.Dropdown(page.choices["text"], value=page.choices["text"][0], label="Model",
                               info=f"{ZERO_SHOT_MODEL}: classified over the labels below", elem_id="text-model")
            labels = gr.Textbox(DEFAULT_ZERO_SHOT_LABELS, label="Zero-shot labels (comma-separated)",
                                elem_id="text-labels")
            method = _method_choice("text", controls)
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


def _audio_tab(page: Page, examples: Sequence[str], controls: list[Any]) -> None:
    with gr.Row():
        with gr.Column():
            clip = gr.Audio(type="filepath", format=None, sources=["upload", "microphone"], label="Clip",
                            elem_id="audio-input")
            gr.Examples([[path] for path in examples], inputs=[clip], label="Example clip")
            spec = gr.Dropdown(page.choices["audio"], value=page.choices["audio"][0], label="Model", elem_id="audio-model")
            method = _method_choice("audio", controls)
            target = gr.Textbox("top1", label="Target",
                                info="top1, a label, a class index (CREPE: a pitch in Hz)")
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


def _vision_language_tab(page: Page, examples: Sequence[str], controls: list[Any]) -> None:
    with gr.Row():
        with gr.Column():
            image = gr.File(label="Picture", file_types=["image"], type="filepath", elem_id="vlm-input")
            preview = gr.Image(label="Preview", type="filepath", interactive=False, height=180, elem_id="vlm-preview")
            gr.Examples([[path] for path in examples], inputs=[image], label="Example pictures")
            prompt = gr.Textbox(DEFAULT_PROMPT, lines=2, label="Prompt", elem_id="vlm-prompt")
            new_tokens = gr.Slider(1, results.MAX_NEW_TOKENS, value=DEFAULT_NEW_TOKENS, step=1,
                                   label="Tokens to generate", elem_id="vlm-tokens")
            spec = gr.Dropdown(page.choices[VISION_LANGUAGE], value=page.choices[VISION_LANGUAGE][0], label="Model",
                               elem_id="vlm-model")
            method = _method_choice("vlm", controls)
            run = gr.Button("Generate and explain", variant="primary", elem_id="vlm-explain")
        with gr.Column():
            status = gr.Markdown(elem_id="vlm-status")
            figures = gr.State({})
            token = gr.Radio([], label="Token", elem_id="vlm-token")
            chosen = gr.HTML(elem_id="vlm-chosen")
            downloads = gr.File(file_count="multiple", label="Downloads (HTML, JSON)", elem_id="vlm-files")
    strip = gr.HTML(elem_id="vlm-strip")
    image.change(_preview, [image], [preview], queue=False)
    run.click(page.vision_language, [image, spec, prompt, new_tokens, method],
              [status, strip, figures, token, chosen, downloads])
    token.change(lambda shown, name: shown.get(name, ""), [figures, token], [chosen], queue=False)


def _speech_to_text_tab(page: Page, examples: Sequence[str], controls: list[Any]) -> None:
    with gr.Row():
        with gr.Column():
            clip = gr.Audio(type="filepath", format=None, sources=["upload", "microphone"], label="Clip",
                            elem_id="asr-input")
            gr.Examples([[path] for path in examples], inputs=[clip], label="Example clip")
            new_tokens = gr.Slider(1, results.MAX_NEW_TOKENS, value=DEFAULT_NEW_TOKENS, step=1,
                                   label="Tokens to transcribe", elem_id="asr-tokens")
            spec = gr.Dropdown(page.choices[SPEECH_TO_TEXT], value=page.choices[SPEECH_TO_TEXT][0], label="Model",
                               elem_id="asr-model")
            method = _method_choice("asr", controls)
            run = gr.Button("Transcribe and explain", variant="primary", elem_id="asr-explain")
        with gr.Column():
            status = gr.Markdown(elem_id="asr-status")
            figures, wavs = gr.State({}), gr.State({})
            token = gr.Radio([], label="Token", elem_id="asr-token")
            chosen = gr.HTML(elem_id="asr-chosen")
            sonified = gr.Audio(type="filepath", label="What mattered for this token (sonified)", interactive=False,
                                elem_id="asr-sonified")
            downloads = gr.File(file_count="multiple", label="Downloads (HTML, WAV, JSON)", elem_id="asr-files")
    strip = gr.HTML(elem_id="asr-strip")
    run.click(page.speech_to_text, [clip, spec, new_tokens, method],
              [status, strip, figures, wavs, token, chosen, sonified, downloads])
    token.change(lambda shown, played, name: (shown.get(name, ""), played.get(name)), [figures, wavs, token],
                 [chosen, sonified], queue=False)


def _registered_modality(spec: str) -> str | None:
    """The modality of a registered model name (known without loading it), else None."""
    from spmm.load import NAMED_MODELS, load_plugins

    load_plugins()
    model = NAMED_MODELS.get(spec)
    return model.modality if model is not None else None


def build_app(folder: Path, extra_models: Sequence[str] = (), options: dict[str, dict[str, Any]] | None = None
              ) -> gr.Blocks:
    """The page: the default models of each modality plus ``extra_models``, with ``options`` per spec
    for ``spmm.load``; downloads go under ``folder``.  No model is loaded here: each loads on its first
    use, except an extra spec that is not a registered name (a path, a Hugging Face folder), which
    loads now so that a bad spec fails at start-up and its modality is known."""
    models = Models(options)
    choices = {modality: list(specs) for modality, specs in DEFAULT_MODELS.items()}
    for spec in extra_models:
        modality = _registered_modality(spec) or models.get(spec).modality.name
        if spec not in choices.setdefault(modality, []):
            choices[modality].append(spec)
    images, clips = _example_files(folder / "examples")
    page = Page(models, choices, folder)
    controls: list[Any] = []
    with gr.Blocks(title="spmm — Semantic Pullbacks") as app:
        gr.Markdown("# spmm — Semantic Pullbacks\nUpload an input, pick a model and a method, and see what mattered.")
        with gr.Tab("Image", elem_id="tab-image"):
            _image_tab(page, images, controls)
        with gr.Tab("Text", elem_id="tab-text"):
            _text_tab(page, controls)
        with gr.Tab("Audio", elem_id="tab-audio"):
            _audio_tab(page, clips, controls)
        if choices.get(VISION_LANGUAGE):
            with gr.Tab("Vision-language", elem_id="tab-vlm"):
                _vision_language_tab(page, images, controls)
        if choices.get(SPEECH_TO_TEXT):
            with gr.Tab("Speech-to-text", elem_id="tab-asr"):
                _speech_to_text_tab(page, clips, controls)
        app.load(functools.partial(_method_catalogue, len(controls) // 2), None, controls, queue=False)
    return app


def launch(app: gr.Blocks, host: str, port: int, concurrency: int = 2, share: bool = False,
           auth: Callable[[str, str], bool] | None = None) -> str:
    """Queue requests (``concurrency`` explanations at a time, the rest wait their turn) and start
    serving ``app`` on ``host``:``port`` in the background; returns the page's URL.  ``share``
    is passed explicitly (``GRADIO_SHARE`` in the environment has no effect); ``auth``: a login
    check ``(user name, password) -> bool``, None for an open page.  Once the page is served, a
    background thread imports the methods (torch, Captum) the first request needs."""
    app.queue(default_concurrency_limit=concurrency)
    app.launch(server_name=host, server_port=port, share=share, auth=auth, prevent_thread_lock=True, quiet=True,
               show_error=False, max_file_size=MAX_UPLOAD)
    threading.Thread(target=spmm.list_methods, name="spmm-warm-up", daemon=True).start()
    return app.local_url
