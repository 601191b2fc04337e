"""Cross-modal models: dual encoders (an image tower and a text tower in one embedding space)
explained on both sides, and ``lite0-minilm``, an open-vocabulary image classifier built here
from the embedded EfficientNet-Lite0 and the MiniLM sentence encoder.

>>> m = spmm.load("lite0-minilm")                                          # 1000 ImageNet prompts
>>> ex = m.explain("cat.jpg", target="a photo of a sleeping cat")           # which pixels
>>> ex = m.explain_text("a photo of a sleeping cat", image="cat.jpg")       # which words
"""

from .dual import DualEncoder, DualEncoderExplainable, ImageTextLogits, TextImageLogits

__all__ = ["DualEncoder", "DualEncoderExplainable", "ImageTextLogits", "TextImageLogits"]
