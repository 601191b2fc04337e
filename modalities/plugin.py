"""The ``spmm.plugins`` entry point of the modalities: registers ``spmm.load(module, modality=...)``."""

from spmm.modalities.image import modality as _image  # noqa: F401
from spmm.modalities.text import modality as _text  # noqa: F401
from spmm.modalities.audio import modality as _audio  # noqa: F401
