"""The ``spmm.plugins`` entry point of the model families: importing it registers every family's
models, resolvers and rule sets with the core (``spmm.load``, ``spmm.rulesets``).  Loaders import
their heavy dependencies only when called."""

from spmm.adapters.vision import registry as _vision  # noqa: F401
from spmm.adapters.text import registry as _text  # noqa: F401
from spmm.adapters.audio import registry as _audio  # noqa: F401
from spmm.adapters.vision import shapes as _vision_shapes  # noqa: F401
