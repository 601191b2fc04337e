"""The Hugging Face tasks: loaders registered in the core's task registry (:mod:`spmm.tasks`) under
the architectures they serve; ``register_hf_task`` is :func:`spmm.tasks.register_task`."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from spmm.tasks import Task as HFTask, TaskLoader, register_task as register_hf_task, task_for

__all__ = ["HFTask", "TaskLoader", "register_hf_task", "source_name", "task_for"]


def source_name(source: str | Path | None, model: nn.Module) -> str:
    """A display name: the folder's name or cache id, else the model class."""
    return Path(str(source)).name if source is not None else type(model).__name__
