"""Tasks: which loader explains which model architecture (``transformers`` class names).

A task registers the architecture-name suffixes it serves (``"ForSequenceClassification"``) or
exact names (``"CLIPModel"``), and a loader ``load(model, source, **options) -> Explainable``:
``model`` is the instantiated eval-mode model, ``source`` the folder or cache id it came from (None
for a model the user passed in; its preprocessor then comes from an option such as ``tokenizer=``).
The Hugging Face resolver (``spmm.adapters.hf``) looks the architecture up here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from spmm.errors import SpmmInputError
from spmm.explainable import Explainable

TaskLoader = Callable[..., Explainable]


@dataclasses.dataclass(frozen=True)
class Task:
    """A task: its name, the architecture-name suffixes (or exact names) it serves, its loader."""

    name: str
    architectures: tuple[str, ...]
    load: TaskLoader


TASKS: list[Task] = []
"""Registered tasks, in registration order (an earlier suffix match wins)."""


def register_task(name: str, architectures: tuple[str, ...]) -> Callable[[TaskLoader], TaskLoader]:
    """Decorator registering ``load(model, source, **options) -> Explainable`` for ``architectures``
    (class-name suffixes such as ``"ForCausalLM"``, or exact names such as ``"CLIPModel"``); a name
    already registered is kept."""

    def register(load: TaskLoader) -> TaskLoader:
        if all(task.name != name for task in TASKS):
            TASKS.append(Task(name, tuple(architectures), load))
        return load

    return register


def task_for(architecture: str) -> Task:
    """The task serving ``architecture`` (an exact name wins over a suffix), or a one-line error
    naming the supported tasks."""
    for task in TASKS:
        if architecture in task.architectures:
            return task
    for task in TASKS:
        if any(architecture.endswith(suffix) for suffix in task.architectures):
            return task
    supported = ", ".join(task.name for task in TASKS) or "none installed"
    raise SpmmInputError(
        f"no spmm task explains {architecture} (bare encoders, segmentation… are not tasks); supported tasks: "
        f"{supported} (their architectures: spmm.tasks.list_tasks())"
    )


def list_tasks() -> dict[str, tuple[str, ...]]:
    """Task name -> the architectures it serves."""
    return {task.name: task.architectures for task in TASKS}
