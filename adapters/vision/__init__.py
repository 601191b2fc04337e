"""Vision models (torchvision, timm): loaders, the [−1, 1] input convention (SPEC §3), the
``vision`` rule set (squeeze-excitation gates) and Grad-CAM layers per architecture.

>>> m = spmm.load("resnet50", weights="resnet50.pth")      # any torchvision/timm name
>>> ex = m.explain(["cat.jpg"], target="tabby")
"""

from .cam import TokenGridTap, gradcam_layer
from .models import UnitRangeInput, class_index, imagenet_class_names, load_efficientnet_lite0, load_model
from .registry import VISION_RULES, load_classifier
from .rules import VISION_MODULE_RULES

__all__ = [
    "VISION_MODULE_RULES", "VISION_RULES", "TokenGridTap", "UnitRangeInput", "class_index", "gradcam_layer",
    "imagenet_class_names", "load_classifier", "load_efficientnet_lite0", "load_model",
]
