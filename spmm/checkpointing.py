"""Gradient checkpointing under the pullback mode.

``torch.utils.checkpoint`` (non-reentrant, what Hugging Face's ``gradient_checkpointing_enable()``
uses) drops a region's activations in the forward pass and runs the region again during the
backward pass, after the ``with pullback_mode():`` block has been left.  Recomputed without the
rules, the region saves other tensors than it did the first time, and checkpoint stops with
"Recomputed values ... have different metadata".  While a pullback mode is active, checkpointed
regions started in its thread recompute inside a copy of that mode, so the backward pass sees
the same rules as the forward pass.  Leaving the last mode restores ``torch.utils.checkpoint``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, ContextManager

import torch.utils.checkpoint as checkpoint_module

_lock = threading.Lock()
_users = 0
_current_mode: Callable[[], object | None] = lambda: None
_original = checkpoint_module._checkpoint_without_reentrant_generator


def _recompute_in_mode(context_fn: Callable[[], tuple[ContextManager, ContextManager]], mode_copy: Callable):
    def contexts() -> tuple[ContextManager, ContextManager]:
        forward_context, recompute_context = context_fn()

        @contextlib.contextmanager
        def recompute_with_rules():
            with recompute_context, mode_copy():
                yield

        return forward_context, recompute_with_rules()

    return contexts


def _generator_with_rules(function, preserve_rng_state, context_fn, *args, **kwargs):
    mode = _current_mode()
    if mode is not None:
        context_fn = _recompute_in_mode(context_fn, mode.copy)
    return _original(function, preserve_rng_state, context_fn, *args, **kwargs)


def acquire(current_mode: Callable[[], object | None]) -> None:
    """Route checkpoint recomputation through the mode ``current_mode()`` returns in the recomputing
    thread (counted; see :func:`release`)."""
    global _users, _current_mode
    with _lock:
        if _users == 0:
            _current_mode = current_mode
            checkpoint_module._checkpoint_without_reentrant_generator = _generator_with_rules
        _users += 1


def release() -> None:
    global _users
    with _lock:
        _users -= 1
        if _users == 0:
            checkpoint_module._checkpoint_without_reentrant_generator = _original
