"""Reading a Hugging Face model folder (or a cached id) as data only: never its code, never a
partial model.

- Code: a folder whose configuration names an ``auto_map`` (config.json, tokenizer_config.json,
  preprocessor_config.json, processor_config.json…) ships Python that transformers would import.
  spmm refuses such a folder before transformers reads it, and every ``from_pretrained`` passes
  ``trust_remote_code=False`` (:data:`OFFLINE_NO_CODE`), so transformers neither asks on a
  terminal nor runs anything.
- Weights: a file that cannot be read (truncated, corrupt, pickled objects other than tensors),
  a weight missing from the checkpoint (a classifier head would be drawn at random) or of
  another shape is refused with one line naming the file or the weights.

Every refusal is one :class:`SpmmInputError` line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import warnings
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from spmm.adapters.checkpoints import PICKLED_OBJECTS, first_line, refused_pickle
from spmm.errors import SpmmInputError

OFFLINE_NO_CODE: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
"""Keyword arguments of every ``from_pretrained`` call: local files only, no code from the folder."""

CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json",
                "feature_extractor_config.json", "image_processor_config.json", "video_preprocessor_config.json")
"""The configuration files whose ``auto_map`` would make transformers import the folder's code."""

SHOWN_KEYS = 5


def saved_file(source: str, name: str) -> Path | None:
    """The file ``name`` of ``source`` (a folder, or a model id in the local Hugging Face cache),
    None when it has none."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / name
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source, name)
    return Path(found) if isinstance(found, str) else None


def read_config_file(path: Path, spec: str) -> dict[str, Any]:
    """A JSON configuration file as a dict; a damaged one is a one-line error."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SpmmInputError(
            f"{spec}: {path.name} is damaged ({first_line(error)}); save the model again with save_pretrained"
        ) from None
    if not isinstance(content, dict):
        raise SpmmInputError(f"{spec}: {path.name} holds a JSON {type(content).__name__}, not an object; "
                             "save the model again with save_pretrained")
    return content


def refuse_custom_code(source: str, spec: str) -> None:
    """One-line refusal when a configuration file of ``source`` names an ``auto_map`` (custom code)."""
    for name in CONFIG_FILES:
        path = saved_file(source, name)
        if path is not None and "auto_map" in read_config_file(path, spec):
            raise SpmmInputError(
                f"{spec} holds custom code ({name} names an auto_map); spmm never runs code from a model folder: "
                "use a model whose architecture is part of transformers"
            )


def load_config(source: str, spec: str) -> Any:
    """The ``PretrainedConfig`` of ``source`` (checked for custom code first)."""
    import transformers

    refuse_custom_code(source, spec)
    try:
        return transformers.AutoConfig.from_pretrained(source, **OFFLINE_NO_CODE)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SpmmInputError(f"{spec}: cannot read its config.json ({first_line(error)})") from None


def load_weights(model_class: type, source: str, spec: str, **kwargs: Any) -> nn.Module:
    """``model_class.from_pretrained(source, **kwargs)`` with every weight of the checkpoint
    present and of the model's shape; otherwise a one-line error naming the weights or the file."""
    from safetensors import SafetensorError

    try:
        with _no_load_report():
            model, info = model_class.from_pretrained(source, output_loading_info=True, ignore_mismatched_sizes=True,
                                                      **OFFLINE_NO_CODE, **kwargs)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError) as error:
        if refused_pickle(error):
            raise SpmmInputError(f"{spec}: {PICKLED_OBJECTS}") from None
        raise SpmmInputError(
            f"{spec}: cannot read its weights ({type(error).__name__}: {first_line(error)}); "
            "is the weights file complete? save the model again with save_pretrained"
        ) from None
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        shown = ", ".join(f"{key} {tuple(saved)} vs {tuple(expected)}" for key, saved, expected in mismatched[:SHOWN_KEYS])
        raise SpmmInputError(
            f"{spec}: {len(mismatched)} weight(s) in the checkpoint do not fit the config's shapes ({shown}); "
            "does config.json (num_labels, id2label…) belong to these weights?"
        )
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise SpmmInputError(
            f"{spec}: {len(missing)} weight(s) are missing from the checkpoint ({_listed(missing)}) and would be "
            "drawn at random; save the complete model with save_pretrained"
        )
    unexpected = sorted(info.get("unexpected_keys") or ())
    if unexpected:
        warnings.warn(f"{spec}: the checkpoint holds {len(unexpected)} weight(s) the model does not use "
                      f"({_listed(unexpected)})", stacklevel=2)
    return model


@contextlib.contextmanager
def _no_load_report() -> Iterator[None]:
    """transformers' load-report table stays unprinted (spmm states the problem itself): a filter
    on its logger drops the report for the duration of the block."""
    logger = logging.getLogger("transformers.modeling_utils")
    report = _LoadReportFilter()
    logger.addFilter(report)
    try:
        yield
    finally:
        logger.removeFilter(report)


class _LoadReportFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


def _listed(keys: list[str]) -> str:
    more = f", … {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return ", ".join(keys[:SHOWN_KEYS]) + more
