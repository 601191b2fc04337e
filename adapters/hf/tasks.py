"""Which task loader explains which ``transformers`` architecture.

A task registers the architecture-name suffixes it serves (``"ForSequenceClassification"``)
and a loader ``load(model, source, **options) -> Explainable``: ``model`` is the instantiated
eval-mode ``PreTrainedModel``, ``source`` the folder or cache id it came from (None for a model
the user passed in; its preprocessor then comes from an option such as ``tokenizer=``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from torch import nn

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable

TaskLoader = Callable[..., Explainable]


@dataclasses.dataclass(frozen=True)
class HFTask:
    """A task: its name, the architecture-name suffixes (or exact names) it serves, its loader."""

    name: str
    architectures: tuple[str, ...]
    load: TaskLoader


HF_TASKS: list[HFTask] = []


def register_hf_task(name: str, architectures: tuple[str, ...]) -> Callable[[TaskLoader], TaskLoader]:
    """Decorator registering ``load(model, source, **options) -> Explainable`` for ``architectures``
    (class-name suffixes such as ``"ForCausalLM"``, or exact names such as ``"CLIPModel"``)."""

    def register(load: TaskLoader) -> TaskLoader:
        if all(task.name != name for task in HF_TASKS):
            HF_TASKS.append(HFTask(name, architectures, load))
        return load

    return register


def task_for(architecture: str) -> HFTask:
    """The task serving ``architecture`` (an exact name wins over a suffix), or a one-line error
    naming the supported tasks."""
    for task in HF_TASKS:
        if architecture in task.architectures:
            return task
    for task in HF_TASKS:
        if any(architecture.endswith(suffix) for suffix in task.architectures):
            return task
    supported = ", ".join(task.name for task in HF_TASKS) or "none installed"
    raise SpmmInputError(
        f"no spmm task explains {architecture} (bare encoders, segmentation… are not tasks); supported tasks: "
        f"{supported} (their architectures: spmm.adapters.hf.tasks.HF_TASKS)"
    )


def source_name(source: str | Path | None, model: nn.Module) -> str:
    """A display name: the folder's name or cache id, else the model class."""
    return Path(str(source)).name if source is not None else type(model).__name__
