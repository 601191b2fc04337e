"""Sub-commands of the ``spmm`` CLI; each module exposes ``register(subparsers)``."""
