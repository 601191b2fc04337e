"""The preprocessor of a Hugging Face model (tokenizer, image processor, feature extractor): the
one the user passed, or the one saved next to the model in its folder (read as data only:
no custom code, and a tokenizer without its vocabulary files is refused)."""

from __future__ import annotations

from typing import Any

from torch import nn

from spmm.adapters.checkpoints import first_line
from spmm.errors import SpmmInputError

from .folder import OFFLINE_NO_CODE, refuse_custom_code


def saved_preprocessor(source: str | None, given: Any, model: nn.Module, option: str, what: str,
                       auto_class: str, **kwargs: Any) -> Any:
    """``given`` (the user's ``option=``), else the ``what`` saved in ``source``, loaded offline by
    ``transformers.<auto_class>`` with ``kwargs`` and without running code from the folder; a
    one-line error when neither exists (a tokenizer that knows nothing but its special tokens
    counts as missing: every word would be unknown)."""
    if given is not None:
        return given
    if source is None:
        raise SpmmInputError(
            f"spmm.load({type(model).__name__} model) needs {option}=<its {what}> "
            "(a model loaded from a folder reads the one saved there)"
        )
    import transformers

    missing = f"{source}: no {what} saved with the model ({option}.save_pretrained(folder), or pass {option}=)"
    refuse_custom_code(source, source)
    try:
        loaded = getattr(transformers, auto_class).from_pretrained(source, **OFFLINE_NO_CODE, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SpmmInputError(f"{missing}: {first_line(error)}") from None
    if _knows_only_special_tokens(loaded):
        raise SpmmInputError(f"{missing}: it holds no vocabulary files, only {len(loaded)} special tokens")
    return loaded


def saved_processor(source: str | None, given: Any, model: nn.Module, parts: tuple[str, ...], kind: str) -> Any:
    """The processor given (``processor=``) or saved with the model (:func:`saved_preprocessor`); a
    one-line error naming what it lacks of ``parts`` (attribute names), which a ``kind`` model needs."""
    processor = saved_preprocessor(source, given, model, "processor", "processor", "AutoProcessor")
    missing = [part for part in parts if getattr(processor, part, None) is None]
    if missing:
        raise SpmmInputError(f"{type(processor).__name__} has no {', '.join(missing)}; a {kind} model needs its "
                             "processor (processor.save_pretrained(folder), or pass processor=)")
    return processor


def _knows_only_special_tokens(preprocessor: Any) -> bool:
    """A tokenizer whose vocabulary is its special tokens alone (what transformers builds for a
    folder without vocabulary files); False for other preprocessors."""
    special = getattr(preprocessor, "all_special_ids", None)
    return special is not None and len(preprocessor) <= len(set(special))
