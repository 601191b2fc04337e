"""What the commands share: the model spec, inputs, output file names and progress.

Building the parsers imports no torch: heavy modules are imported inside the functions that run
a command (``spmm --help`` and argument errors stay fast)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import spmm
from spmm.errors import SpmmInputError
from spmm.temperatures import Temperatures

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif"}
ZERO_SHOT_TEXT_MODEL = "minilm-zero-shot"
"""Texts with --labels and no model: classified zero-shot over those labels."""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model and the options spmm.load passes to the model's loader."""
    parser.add_argument("--model", default=None,
                        help="model spec: a registered name (spmm.list_models()), a torchvision/timm name, or a "
                             "path; default: the first argument when it names a model, else the embedded default "
                             "of the inputs' modality")
    parser.add_argument("--weights", default=None, help="local checkpoint for the model (nothing is downloaded)")
    parser.add_argument("--random-init", action="store_true", help="an untrained model (for trying things out)")
    parser.add_argument("--labels", default=None,
                        help="comma-separated labels (zero-shot models such as minilm-zero-shot; user models)")
    parser.add_argument("--out", default="spmm-out", help="output folder")


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """Options that shape how inputs are read (audio excerpts, long texts)."""
    parser.add_argument("--offset", type=float, default=None, help="audio: start of the excerpt in seconds")
    parser.add_argument("--duration", type=float, default=None, help="audio: excerpt length in seconds")
    parser.add_argument("--sample-rate", type=int, default=None,
                        help="audio: rate of raw waveforms (files carry their own; resampled to the model's)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="audio: refuse clips longer than this (None: the model's memory-based limit)")
    parser.add_argument("--error-on-long", action="store_true",
                        help="text: reject texts longer than the model's maximum instead of truncating them")
    parser.add_argument("--include-special", action="store_true",
                        help="text: attribute special tokens ([CLS], [SEP]) too")


TEMPERATURE_HELP = (
    "override one temperature of the model's rule set, e.g. relu=0.3 (0: the hard gate, the plain gradient); "
    "repeat for several. Rules and their SPEC defaults: "
    + ", ".join(f"{f.name}={f.default:g}" for f in dataclasses.fields(Temperatures))
    + " (a model's rule set may set its own, e.g. text models silu=1); None: the model's rule set"
)


def add_method_options(parser: argparse.ArgumentParser, *, parameters: bool = True) -> None:
    """--param (method parameters), --temperature (rule set overrides), --device and --seed."""
    if parameters:
        parser.add_argument("--param", action="append", default=None, metavar="NAME=VALUE",
                            help="a parameter of the method, e.g. steps=32, samples=20, noise=0.1, clip=last or "
                                 "bounds=[-1,1] (JSON values, else text); repeat for several; checked against the "
                                 "method's parameters (`spmm methods` lists them); None: the method's defaults, "
                                 "scaled to the input where the modality does so")
    parser.add_argument("--temperature", action="append", default=None, metavar="RULE=T", help=TEMPERATURE_HELP)
    parser.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (auto: cuda when available, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of stochastic methods (and of --random-init)")


def _assignments(items: Sequence[str] | None, option: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; malformed or repeated names are refused."""
    assigned: dict[str, str] = {}
    for item in items or ():
        name, separator, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not separator or not name or not value:
            raise SpmmInputError(f"{option} takes NAME=VALUE, got {item!r}")
        if name in assigned:
            raise SpmmInputError(f"{option} {name} is given twice")
        assigned[name] = value
    return assigned


def _parameter_value(text: str) -> Any:
    """A --param value: JSON (numbers, true/false, null, lists as tuples), ``none``, else the text itself."""
    if text.lower() == "none":
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return tuple(value) if isinstance(value, list) else value


def method_parameters(args: argparse.Namespace, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The ``--param`` values each of ``methods`` takes, checked by the method registry; a name
    no method takes is refused."""
    from spmm.methods.registry import check_parameters, get_method

    assigned = _assignments(getattr(args, "param", None), "--param")
    given = {name: _parameter_value(value) for name, value in assigned.items()}
    chosen = {}
    for name in methods:
        method = get_method(name)
        chosen[name] = {key: value for key, value in given.items() if key in method.defaults}
        check_parameters(method, chosen[name])
    taken = {key for params in chosen.values() for key in params}
    unknown = sorted(set(given) - taken)
    if unknown:
        accepted = sorted({key for name in methods for key in get_method(name).defaults})
        raise SpmmInputError(f"--param {', '.join(unknown)}: not a parameter of {', '.join(methods)}; "
                             f"its parameters: {', '.join(accepted) or 'none'}")
    return chosen


def rule_temperatures(args: argparse.Namespace) -> dict[str, float]:
    """The ``--temperature`` overrides, each a known rule name with a valid temperature."""
    temperatures = {}
    for name, value in _assignments(getattr(args, "temperature", None), "--temperature").items():
        try:
            temperatures[name] = float(value)
        except ValueError:
            raise SpmmInputError(f"--temperature {name} takes a number, got {value!r}") from None
    Temperatures().updated(temperatures)  # names and values checked before any work
    return temperatures


def resolve_device(name: str) -> "torch.device":
    """``--device``: ``auto`` is cuda when available, else cpu; a device torch cannot use is refused."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise SpmmInputError(f"--device {name!r} is not a device (use cpu, cuda or cuda:N)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpmmInputError(f"--device {name}: this torch build sees no CUDA device; use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise SpmmInputError(f"--device {name}: spmm runs on cpu or cuda")
    return device


def configured(model: spmm.Explainable, temperatures: dict[str, float], device: "torch.device") -> spmm.Explainable:
    """``model`` with the ``--temperature`` overrides, on ``device`` (models load on the CPU)."""
    if temperatures:
        model = model.with_rules(**temperatures)
    return model.to(device) if device.type != "cpu" else model


def prepare_options(args: argparse.Namespace) -> dict[str, Any]:
    """The modality options given on the command line (only those given)."""
    options: dict[str, Any] = {}
    for name in ("offset", "duration", "sample_rate", "max_seconds"):
        value = getattr(args, name, None)
        if value is not None:
            options[name] = value
    if getattr(args, "error_on_long", False):
        options["on_overflow"] = "error"
    if getattr(args, "include_special", False):
        options["include_special"] = True
    return options


def is_file(text: str) -> bool:
    """Whether ``text`` names an existing file (False for texts no file system could hold)."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def refuse_missing_input_files(items: Iterable[str]) -> None:
    """FileNotFoundError for an image or audio file name (by its suffix) that does not exist; checked
    before anything imports torch, so the answer is immediate."""
    for item in items:
        if Path(item).suffix.lower() in IMAGE_SUFFIXES | AUDIO_SUFFIXES and not _exists(item):
            raise FileNotFoundError(f"input file not found: {item}")


def _exists(text: str) -> bool:
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError):
        return False


def _names_a_model(text: str) -> bool:
    from spmm.load import NAMED_MODELS, RESOLVERS, load_plugins

    load_plugins()
    if text in NAMED_MODELS:
        return True
    if is_file(text):
        return False
    return any(resolver.accepts(text) for resolver in RESOLVERS)


def _is_folder(text: str) -> bool:
    try:
        return Path(text).expanduser().is_dir()
    except (OSError, ValueError):
        return False


def unresolved_spec(text: str) -> str | None:
    """Why ``text``, which no resolver accepts, still looks like a model spec (None: it may be an
    input): a folder, or one word shaped like a path or an ``org/name`` id that is not an image or
    audio file name."""
    if _is_folder(text):
        return "a folder without a model in it (a Hugging Face save_pretrained folder holds config.json)"
    if any(c.isspace() for c in text) or Path(text).suffix.lower() in IMAGE_SUFFIXES | AUDIO_SUFFIXES:
        return None
    if text.startswith((".", "/", "~", "\\")) or "\\" in text or text.count("/") > 1:
        return "no such folder"
    if "/" in text:
        return "no such folder, nor a model id in the local Hugging Face cache (nothing is downloaded)"
    return None


def _refuse_unresolved_spec(text: str, reason: str) -> None:
    from spmm.load import NAMED_MODELS, RESOLVERS

    accepted = "; ".join([f"a registered name ({', '.join(sorted(NAMED_MODELS))})", *(r.describe for r in RESOLVERS)])
    raise SpmmInputError(f"{text!r} looks like a model spec but does not resolve: {reason}. Accepted specs: "
                         f"{accepted}. To explain it as a text, name the model with --model")


def input_modality(item: str) -> str:
    """The modality of one command-line input: image/audio files by suffix, anything else is text."""
    suffix = Path(item).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    if is_file(item):
        raise SpmmInputError(f"cannot tell what {item} is from its suffix; name a model explicitly with --model")
    return "text"


def split_model_and_inputs(args: argparse.Namespace, items: Sequence[str], default_modality: str | None = None
                           ) -> tuple[str, list[str]]:
    """(model spec, inputs): ``--model``, else the first argument when it names a model, else the
    embedded default of the inputs' modality (``default_modality`` for the modality aliases)."""
    items = list(items)
    if args.model is not None:
        spec = args.model
    elif items and _names_a_model(items[0]):
        spec, items = items[0], items[1:]
    else:
        reason = unresolved_spec(items[0]) if items else None
        if reason is not None:
            _refuse_unresolved_spec(items[0], reason)
        modalities = {default_modality} if default_modality else {input_modality(i) for i in items}
        if len(modalities) != 1:
            raise SpmmInputError("inputs of several modalities given; explain them in separate runs")
        modality = modalities.pop()
        from spmm.load import default_model

        labelled = getattr(args, "labels", None) is not None and modality == "text"
        spec = ZERO_SHOT_TEXT_MODEL if labelled else default_model(modality)
    if not items:
        raise SpmmInputError("no inputs given")
    for item in items:
        if _is_folder(item):
            raise SpmmInputError(f"input {item} is a folder; give its files (spmm attribute --data explains a "
                                 f"whole image folder)")
        if Path(item).suffix.lower() in IMAGE_SUFFIXES | AUDIO_SUFFIXES and not is_file(item):
            raise FileNotFoundError(f"input file not found: {item}")
    return spec, items


def load_model(spec: str, args: argparse.Namespace) -> spmm.Explainable:
    """``spmm.load(spec, ...)`` with the command-line loader options that were given; a
    ``--random-init`` model is drawn from ``--seed`` (the same weights on every run)."""
    options: dict[str, Any] = {}
    if args.weights is not None:
        options["weights"] = args.weights
    if args.labels is not None:
        options["labels"] = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not args.random_init:
        return spmm.load(spec, **options)
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(getattr(args, "seed", 0))
        return spmm.load(spec, random_init=True, **options)


def check_methods(methods: Iterable[str]) -> list[str]:
    """The method names, each checked by the method registry before any work."""
    from spmm.methods.registry import get_method

    methods = list(methods)
    if not methods:
        raise SpmmInputError("no method given")
    for method in methods:
        get_method(method)
    return methods


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")
    return slug[:limit] or "input"


class OutputFiles:
    """Output names ``input-model-method-target.ext`` under one folder, never overwriting: a name
    taken by an existing file or earlier in this run gets ``-2``, ``-3``…  The folder is checked
    before any work."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise NotADirectoryError(f"--out {self.folder} exists and is not a folder")
        for parent in self.folder.parents:
            if parent.exists() and not parent.is_dir():
                raise NotADirectoryError(f"--out {self.folder} lies under the file {parent}")
        self.taken: set[Path] = set()

    def stem(self, *parts: str) -> str:
        return "-".join(_slug(Path(p).stem if i == 0 and Path(p).suffix else p) for i, p in enumerate(parts) if p)

    def path(self, stem: str, suffix: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        candidate, counter = self.folder / f"{stem}{suffix}", 1
        while candidate in self.taken or candidate.exists():
            counter += 1
            candidate = self.folder / f"{stem}-{counter}{suffix}"
        self.taken.add(candidate)
        return candidate


def save_renderings(explanation: spmm.Explanation, files: OutputFiles, stem: str) -> list[str]:
    """Write the explanation's renderings (PNG/HTML/WAV) and its JSON; returns the paths."""
    written = [explanation.save(files.path(stem, suffix)) for suffix in explanation.renderings]
    written.append(explanation.save(files.path(stem, ".json")))
    return [str(p) for p in written]


def print_record(explanation: spmm.Explanation, written: list[str], as_json: bool) -> None:
    """One JSON line in the framework's schema (scores left to the saved .json), or a summary."""
    if as_json:
        record = explanation.to_dict(include_scores=False)
        record["files"] = written
        print(json.dumps(record))
    else:
        print(explanation.summary())
        print(f"  wrote {', '.join(written)}")


def progress(items: Sequence[Any], description: str):
    """tqdm over ``items`` on stderr when there is more than one (no bar for a single step)."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, disable=len(items) < 2, file=sys.stderr)


def _method_bar(iterable: Iterable[Any], description: str, total: int) -> Iterable[Any]:
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=description, total=total, leave=False, file=sys.stderr)


def method_progress():
    """Show the long loops inside methods (ascent steps, FusionGrad model samples) as bars on stderr."""
    from spmm.progress import reporting

    return reporting(_method_bar)
