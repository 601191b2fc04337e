"""Audio: clips in, time-frequency explanations out.

Submodules (import what you need; importing this package loads nothing heavy):
:mod:`.io` (reading, checking, cutting and writing waveforms), :mod:`.frontends` (log-mel, fbank,
STFT, the phase-locked inverse STFT), :mod:`.pipeline` (a model with its front-end), :mod:`.groups` (time-frequency
patches and baselines), :mod:`.render` (spectrogram PNGs, sonification), :mod:`.mosaic`
(audio mosaics and Focus), :mod:`.modality` (:class:`AudioModality`, ``spmm.load(module,
modality="audio")``) and :mod:`.explanation` (:class:`AudioExplanation`).
"""
