"""Audio models: honk keyword spotters, the musicnn tagger and CREPE, explained on the
time-frequency bins they see (SPEC §5).

>>> m = spmm.load("honk-res8", weights="honk_res8.pt")
>>> ex = m.explain("yes.wav", target="yes")
>>> ex.save("yes.png"); ex.save("yes.wav")

Submodules: :mod:`.registry` (the ``audio`` rule set and the named models, imported by the
plugin), :mod:`.pipelines` (front-end + explained model per model, weights), :mod:`.frontends`
(log-mel, STFT, the phase-locked inverse STFT) and :mod:`.architectures`.  Importing this package
loads nothing beyond torch.
"""

from .registry import AUDIO_RULES, list_audio_models, load_audio_model

__all__ = ["AUDIO_RULES", "list_audio_models", "load_audio_model"]
