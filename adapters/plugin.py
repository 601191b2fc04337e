"""The ``spmm.plugins`` entry point of the model families: importing it registers every family's
models, resolvers and rule sets with the core (``spmm.load``, ``spmm.rulesets``).  Loaders import
their heavy dependencies only when called."""

from spmm.adapters.vision import registry as _vision  # noqa: F401
from spmm.adapters.text import registry as _text  # noqa: F401
from spmm.adapters.audio import registry as _audio  # noqa: F401
from spmm.adapters.hf import resolver as _hf  # noqa: F401
from spmm.adapters.hf import text as _hf_text  # noqa: F401
from spmm.adapters.hf import question_answering as _hf_question_answering  # noqa: F401
from spmm.adapters.hf import vision as _hf_vision  # noqa: F401
from spmm.adapters.hf import audio as _hf_audio  # noqa: F401
from spmm.adapters.crossmodal import registry as _crossmodal  # noqa: F401
from spmm.adapters.hf import dual as _hf_dual  # noqa: F401
from spmm.adapters.hf import generation as _hf_generation  # noqa: F401
from spmm.adapters.hf import vlm as _hf_vlm  # noqa: F401
from spmm.adapters.hf import speech as _hf_speech  # noqa: F401
from spmm.adapters.peers import registry as _peers  # noqa: F401
from spmm.adapters.vision import shapes as _vision_shapes  # noqa: F401
from spmm.adapters.hf import shapes_captioner as _hf_shapes_captioner  # noqa: F401
from spmm.adapters.hf import vlm_attention as _hf_vlm_attention  # noqa: F401
