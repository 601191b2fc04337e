"""Audio models: honk keyword spotters, the musicnn tagger and CREPE, explained on the
time-frequency bins they see (SPEC §5).

>>> m = spmm.load("honk-res8", weights="honk_res8.pt")
>>> ex = m.explain("yes.wav", target="yes")
>>> ex.save("yes.png"); ex.save("yes.wav")

Submodules: :mod:`.registry` (the ``audio`` rule set and the named models, imported by the
plugin), :mod:`.pipelines` (front-end + explained model per model, weights) and :mod:`.architectures`;
the front-ends and the generic pipelines they build are the audio modality's
(:mod:`spmm.modalities.audio.frontends`, :mod:`spmm.modalities.audio.pipeline`).  Importing this package
loads nothing beyond torch.
"""

from .registry import AUDIO_RULES, list_audio_models, load_audio_model

__all__ = ["AUDIO_RULES", "list_audio_models", "load_audio_model"]
