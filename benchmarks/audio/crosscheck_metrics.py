"""Cross-check the stand-in TF metrics (tf_metrics.py) against spmm.metrics on a few honk clips.

    python benchmarks/audio/crosscheck_metrics.py --data ../shared/data --clips 5

Deletion AUC (one patch per step, baseline 0, softmax) and faithfulness correlation
(Σ|attr| per patch vs. logit drop, baseline 0) are deterministic and must agree; both
use the 10×8 TF patches of the benchmark.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import spmm
from spmm.adapters.audio.pipelines import build_pipeline as load_audio_model
from spmm.metrics import DeletionAUC, FaithfulnessCorrelation
from spmm.modalities.audio.groups import as_feature_groups, tf_patches

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tf_metrics as M  # noqa: E402
from benchmark_audio import load_speech_commands  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--clips", type=int, default=5)
    args = parser.parse_args()
    data = Path(args.data)
    pipeline = load_audio_model("honk-res8", data / "audio" / "models" / "honk_res8.pt")
    samples = load_speech_commands(data, args.clips)
    x = pipeline.inputs(torch.stack([s[1] for s in samples]))
    targets = torch.tensor([s[2] for s in samples])
    groups = tf_patches(tuple(x.shape[1:]), 10, 8)
    print("| method | metric | tf_metrics (stand-in) | spmm.metrics | max abs difference |")
    print("|---|---|---|---|---|")
    for method in ("soft_pullback", "gradient"):
        attributions = spmm.explain(pipeline.model, x, targets, method).attributions
        ours_deletion = torch.tensor([
            M.deletion_auc(pipeline.model, pipeline.probabilities, x[i], int(targets[i]), attributions[i], groups,
                           torch.zeros_like(x[i])) for i in range(len(samples))])
        ours_corr = torch.tensor([
            M.faithfulness_correlation(attributions[i], groups, M.occlusion_drops(
                pipeline.model, x[i], int(targets[i]), groups, torch.zeros_like(x[i]))) for i in range(len(samples))])
        feature_groups = as_feature_groups(groups)
        theirs_deletion = DeletionAUC(groups_per_step=1)(pipeline.model, x, targets, attributions,
                                                                  groups=feature_groups).scores.cpu()
        theirs_corr = FaithfulnessCorrelation()(pipeline.model, x, targets, attributions,
                                                         groups=feature_groups).scores.cpu()
        for metric, ours, theirs in (("deletion_auc", ours_deletion, theirs_deletion),
                                     ("faithfulness_corr", ours_corr, theirs_corr)):
            gap = float((ours.double() - theirs.double()).abs().max())
            print(f"| {method} | {metric} | {ours.mean():.4f} | {theirs.double().mean():.4f} | {gap:.2e} |")


if __name__ == "__main__":
    main()
