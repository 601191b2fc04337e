"""Architectures of the pretrained audio models spmm ships input pipelines for.

Each class takes the time-frequency tensor its checkpoint was trained on and
returns LOGITS (never probabilities: SP explains logits, SPEC §2).  Layer
names follow the checkpoints, so ``load_state_dict(strict=True)`` works.

- :class:`HonkRes8`: honk "res8" keyword spotter (MFCC input (B, 101, 40), 12 classes).
- :class:`KeywordSpotter`: standardised MFCCs -> a res8 (``examples/train_keyword_spotter.py``).
- :class:`HonkCNNTradPool2`: honk "cnn-trad-pool2" (same input, max-pool).
- :class:`MusicnnVGG`: musicnn MTT "vgg" tagger (log-mel (B, 187, 96), 50 tag logits).
- :class:`CrepeLogits`: a ``torchcrepe.Crepe`` network without its final sigmoid, fed
  with a waveform and framed/normalised like ``torchcrepe.preprocess``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ChannelScale(nn.Module):
    """Learned per-channel factor (honk's "network slimming" scale): (B, C, H, W) -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale.view(1, -1, 1, 1)


class HonkRes8(nn.Module):
    """honk "res8": residual keyword spotter on MFCCs.

    Input (B, T, 40) MFCC frames (T = 101 for 1 s at 16 kHz; any T >= 4 works because
    the head averages over time and frequency); output (B, n_labels) logits.
    """

    def __init__(self, n_labels: int = 12, n_maps: int = 45, n_layers: int = 6, pool: tuple[int, int] = (4, 3),
                 scaled_layers: tuple[int, ...] = (1, 3, 5)) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.scaled_layers = scaled_layers
        self.conv0 = nn.Conv2d(1, n_maps, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d(pool)
        for i in range(1, n_layers + 1):
            setattr(self, f"conv{i}", nn.Conv2d(n_maps, n_maps, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(n_maps, affine=False))
            if i in scaled_layers:
                setattr(self, f"scale{i}", ChannelScale(n_maps))
        self.output = nn.Linear(n_maps, n_labels)

    def forward(self, mfcc: Tensor) -> Tensor:
        x = self.pool(F.relu(self.conv0(mfcc.unsqueeze(1))))
        residual = x
        for i in range(1, self.n_layers + 1):
            y = F.relu(getattr(self, f"conv{i}")(x))
            if i % 2 == 0:
                x = y + residual
                residual = x
            else:
                x = y
            x = getattr(self, f"bn{i}")(x)
            if i in self.scaled_layers:
                x = getattr(self, f"scale{i}")(x)
        return self.output(x.flatten(2).mean(dim=2))


class KeywordSpotter(nn.Module):
    """A keyword spotter to train from scratch: per-coefficient standardisation of the MFCCs (a batch norm
    without affine parameters; in eval mode a fixed affine map) followed by a honk res8 without
    the network-slimming scales.  Input (B, T, coefficients), output (B, n_labels) logits."""

    def __init__(self, n_labels: int = 12, coefficients: int = 40, n_maps: int = 45) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm1d(coefficients, affine=False)
        self.res8 = HonkRes8(n_labels, n_maps, scaled_layers=())

    def forward(self, mfcc: Tensor) -> Tensor:
        return self.res8(self.input_norm(mfcc.transpose(1, 2)).transpose(1, 2))


class HonkCNNTradPool2(nn.Module):
    """honk "cnn-trad-pool2": conv 20×8 → ReLU → max-pool 2×2 → conv 10×4 → ReLU → linear.

    Input (B, 101, 40) MFCC frames (fixed size: the head is a dense layer); output (B, 12) logits.
    """

    def __init__(self, n_labels: int = 12, n_maps: int = 64, frames: int = 101, coefficients: int = 40) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, n_maps, (20, 8))
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(n_maps, n_maps, (10, 4))
        height = (frames - 19) // 2 - 9
        width = (coefficients - 7) // 2 - 3
        self.output = nn.Linear(n_maps * height * width, n_labels)

    def forward(self, mfcc: Tensor) -> Tensor:
        x = self.pool1(F.relu(self.conv1(mfcc.unsqueeze(1))))
        x = F.relu(self.conv2(x))
        return self.output(x.flatten(1))


class MusicnnVGG(nn.Module):
    """musicnn MTT "vgg" tagger: input (B, 187, 96) log-mel patches, output (B, 50) tag LOGITS.

    The original model applies a sigmoid; here it is left out so that explanations
    target logits; apply ``torch.sigmoid`` for tag probabilities.
    """

    POOLS = (((4, 1), (2, 2)), (2, 2), (2, 2), (2, 2), (4, 4))

    def __init__(self, n_labels: int = 50, n_maps: int = 128, frames: int = 187, bands: int = 96) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(1, eps=1e-3)
        self.convs = nn.ModuleList(nn.Conv2d(1 if i == 0 else n_maps, n_maps, 3, padding=1) for i in range(5))
        self.bns = nn.ModuleList(nn.BatchNorm2d(n_maps, eps=1e-3) for _ in range(5))
        self.pools = nn.ModuleList(
            nn.MaxPool2d(*pool) if isinstance(pool[0], tuple) else nn.MaxPool2d(pool) for pool in self.POOLS
        )
        height, width = frames, bands
        for pool in self.pools:
            (kh, kw), (sh, sw) = pool.kernel_size, pool.stride
            height, width = (height - kh) // sh + 1, (width - kw) // sw + 1
        self.dense = nn.Linear(n_maps * height * width, n_labels)

    def forward(self, log_mel: Tensor) -> Tensor:
        x = self.bn0(log_mel.unsqueeze(1))
        for conv, bn, pool in zip(self.convs, self.bns, self.pools):
            x = pool(bn(F.relu(conv(x))))
        return self.dense(x.permute(0, 2, 3, 1).flatten(1))


class CrepeLogits(nn.Module):
    """CREPE on waveforms: (B, N) at 16 kHz -> per-frame pitch LOGITS (B, frames, 360).

    Framing follows ``torchcrepe.preprocess(pad=True)``: zero-pad 512 samples on each
    side, frames of 1024 samples every ``hop`` samples (1 + N // hop frames).  Each
    frame is centred and scaled to unit (unbiased) standard deviation, written as a
    ``layer_norm`` so that the SP norm rule (constant statistics) handles it.  The
    network is a ``torchcrepe.Crepe`` whose final sigmoid is left out.
    """

    WINDOW = 1024

    def __init__(self, crepe: nn.Module, hop: int = 160) -> None:
        super().__init__()
        self.crepe = crepe
        self.hop = hop

    def frames(self, waveform: Tensor) -> Tensor:
        """(B, N) -> (B, 1 + N // hop, 1024) normalised frames."""
        padded = F.pad(waveform, (self.WINDOW // 2, self.WINDOW // 2))
        count = 1 + waveform.shape[-1] // self.hop
        frames = padded.unfold(-1, self.WINDOW, self.hop)[:, :count]
        unbiased = (self.WINDOW / (self.WINDOW - 1)) ** 0.5
        return F.layer_norm(frames, (self.WINDOW,), eps=1e-20) / unbiased

    def forward(self, waveform: Tensor) -> Tensor:
        frames = self.frames(waveform)
        batch, count = frames.shape[:2]
        embedding = self.crepe.embed(frames.reshape(batch * count, self.WINDOW))
        x = self.crepe.layer(embedding, self.crepe.conv6, self.crepe.conv6_BN)
        x = x.permute(0, 2, 1, 3).reshape(batch * count, -1)
        return self.crepe.classifier(x).view(batch, count, -1)
