"""The preprocessor of a Hugging Face model (tokenizer, image processor, feature extractor): the
one the user passed, or the one saved next to the model in its folder."""

from __future__ import annotations

from typing import Any

from torch import nn

from spmm.errors import SpmmInputError


def saved_preprocessor(source: str | None, given: Any, model: nn.Module, option: str, what: str,
                       auto_class: str, **kwargs: Any) -> Any:
    """``given`` (the user's ``option=``), else the ``what`` saved in ``source``, loaded offline by
    ``transformers.<auto_class>`` with ``kwargs``; a one-line error when neither exists."""
    if given is not None:
        return given
    if source is None:
        raise SpmmInputError(
            f"spmm.load({type(model).__name__} model) needs {option}=<its {what}> "
            "(a model loaded from a folder reads the one saved there)"
        )
    import transformers

    try:
        return getattr(transformers, auto_class).from_pretrained(source, local_files_only=True, **kwargs)
    except (OSError, ValueError) as error:
        raise SpmmInputError(
            f"{source}: no {what} saved with the model ({option}.save_pretrained(folder), or pass {option}=): {error}"
        ) from error
