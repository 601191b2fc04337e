"""Plugins: the outer rings (model families, modalities) register themselves with the core when
their ``spmm.plugins`` entry point is imported; the core finds them here without importing them by name."""

from __future__ import annotations

import importlib.metadata

PLUGIN_GROUP = "spmm.plugins"

_loaded = False


def load_plugins() -> None:
    """Import every ``spmm.plugins`` entry point once (they fill the core's registries)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        entry.load()
