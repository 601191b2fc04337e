"""Audio benchmark: accuracy, TF-patch faithfulness metrics and Focus on audio mosaics.

    python benchmarks/audio/benchmark_audio.py --data ../shared/data --model honk-res8 \
        --clips 300 --mosaics 100 --out benchmarks/audio/results
    python benchmarks/audio/benchmark_audio.py --data ../shared/data --model musicnn-vgg --clips 20 \
        --mosaics 0 --out benchmarks/audio/results
    python benchmarks/audio/benchmark_audio.py --summarise --out benchmarks/audio/results

Per-clip and per-mosaic rows go to ``<out>/<model>.clips.jsonl`` / ``.mosaics.jsonl``;
a rerun skips rows already there (resume).  ``--summarise`` prints the tables
(mean ± std and the paired 95% bootstrap CI of each method minus SoftPullback).
Metrics: ``tf_metrics.py`` (a stand-in for spmm.metrics, which had not landed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import spmm
from spmm.adapters.audio.pipelines import HONK_LABELS, build_pipeline as load_audio_model
from spmm.modalities.audio.groups import tf_patches
from spmm.modalities.audio.io import load_audio, pad_or_crop
from spmm.modalities.audio.modality import audio_method_params
from spmm.modalities.audio.mosaic import audio_mosaic, focus, frame_slots

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tf_metrics as M  # noqa: E402

WEIGHTS = {"honk-res8": "honk_res8.pt", "honk-cnn-trad-pool2": "honk_cnn_trad_pool2.pt",
           "musicnn-vgg": "musicnn_mtt_vgg.pt"}
METHODS = ("SoftPullback", "PullbackAscent", "SmoothPullback", "Gradient", "Gradient×Input", "SmoothGrad",
           "IntegratedGradients", "Occlusion")
METRICS = {  # name -> higher is better?
    "deletion_auc": False, "infidelity": False, "faithfulness_corr": True, "max_sensitivity": False,
    "random_logit": False,
}
KEYWORDS = HONK_LABELS[2:]


def make_explainer(name: str, model, patch_groups: torch.Tensor, params: dict):
    """(N, T, F) inputs, (N,) targets -> (N, T, F) attributions for benchmark method ``name``."""
    spmm_names = {"SoftPullback": "soft_pullback", "PullbackAscent": "pullback_ascent",
                  "SmoothPullback": "smooth_pullback", "Gradient": "gradient", "SmoothGrad": "smoothgrad",
                  "IntegratedGradients": "integrated_gradients"}

    def explain(x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if name == "Gradient×Input":
            return spmm.explain(model, x, targets, "gradient").attributions * x
        if name == "Occlusion":
            return torch.stack([M.occlusion_attribution(
                M.occlusion_drops(model, xi, int(t), patch_groups, torch.zeros_like(xi)), patch_groups)
                for xi, t in zip(x, targets)])
        method = spmm_names[name]
        extra = {**audio_method_params(method, x), **params.get(method, {})}
        return spmm.explain(model, x, targets, method, seed=0, **extra).attributions

    return explain


def load_speech_commands(data: Path, count: int, seed: int = 0):
    folder = data / "audio" / "speech_commands"
    files = sorted(folder.glob("*/*.wav"))
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed)).tolist()
    chosen = [files[i] for i in order[:count]]
    labels = [HONK_LABELS.index(f.parent.name) if f.parent.name in HONK_LABELS else 1 for f in chosen]
    return [(f"{f.parent.name}/{f.name}", pad_or_crop(load_audio(f, 16000), 16000), y) for f, y in zip(chosen, labels)]


def load_music_patches(data: Path, pipeline, count: int):
    samples = []
    for file in sorted((data / "audio" / "music").glob("*.mp3")):
        clip = load_audio(file, 16000)
        for i in range(clip.shape[0] // pipeline.clip_samples):
            samples.append((f"{file.stem}#{i}", pad_or_crop(clip, pipeline.clip_samples, i * pipeline.clip_samples), None))
    step = max(1, len(samples) // count)
    return samples[::step][:count]


def done_keys(path: Path) -> set:
    if not path.is_file():
        return set()
    return {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}


def run_clips(args, pipeline, samples, out: Path) -> None:
    path = out / f"{pipeline.name}.clips.jsonl"
    done = done_keys(path)
    model = pipeline.model
    x_all = pipeline.inputs(torch.stack([s[1] for s in samples]))
    patch = tuple(args.patch)
    groups = tf_patches(tuple(x_all.shape[1:]), *patch)
    coarse = tf_patches(tuple(x_all.shape[1:]), patch[0] * 2, patch[1] * 2)
    params = {"smoothgrad": {"samples": args.smooth_samples}, "smooth_pullback": {"samples": args.smooth_samples},
              "integrated_gradients": {"steps": args.ig_steps}}
    explainers = {name: make_explainer(name, model, groups, params) for name in METHODS}
    classes = len(pipeline.labels)
    for index, (key, _, label) in enumerate(tqdm(samples, desc=f"{pipeline.name} clips")):
        if key in done:
            continue
        x = x_all[index]
        with torch.no_grad():
            logits = model(x[None])[0]
        target = int(logits.argmax()) if label is None else label
        generator = torch.Generator().manual_seed(index)
        low, high = float(x.min()), float(x.max())
        baseline = torch.zeros_like(x)  # silence for honk and musicnn log-mel
        drops = M.occlusion_drops(model, x, target, groups, baseline)
        differences, b = M.infidelity_perturbations(model, x, target, [groups, coarse], args.infidelity_draws,
                                                    low, high, generator)
        row = {"id": key, "target": target, "label": label, "predicted": int(logits.argmax()), "methods": {}}
        for name, explain in explainers.items():
            start = time.perf_counter()
            attribution = explain(x[None], torch.tensor([target]))[0]
            seconds = time.perf_counter() - start
            row["methods"][name] = {
                "deletion_auc": M.deletion_auc(model, pipeline.probabilities, x, target, attribution, groups, baseline),
                "infidelity": M.infidelity(attribution, differences, b),
                "faithfulness_corr": M.faithfulness_correlation(attribution, groups, drops),
                "max_sensitivity": M.max_sensitivity(explain, x, target, attribution, 0.01 * (high - low),
                                                     args.sensitivity_samples, generator),
                "random_logit": M.random_logit(explain, x, target, attribution, classes, generator),
                "seconds": seconds,
            }
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def mosaic_specs(samples, pipeline, count: int, seed: int = 0):
    """Target clip (a correctly classified keyword) in 2 random slots of 4, two clips of other keywords elsewhere."""
    with torch.no_grad():
        predicted = pipeline.logits(torch.stack([s[1] for s in samples])).argmax(1).tolist()
    keyword = [i for i, (s, p) in enumerate(zip(samples, predicted)) if s[2] >= 2 and p == s[2]]
    generator = torch.Generator().manual_seed(seed)
    specs = []
    while len(specs) < count:
        target = keyword[int(torch.randint(len(keyword), (1,), generator=generator))]
        others = [i for i in keyword if samples[i][2] != samples[target][2]]
        picks = torch.randperm(len(others), generator=generator)[:2].tolist()
        slots = sorted(torch.randperm(4, generator=generator)[:2].tolist())
        specs.append((target, [others[p] for p in picks], slots))
    return specs


def run_mosaics(args, pipeline, samples, out: Path) -> None:
    path = out / f"{pipeline.name}.mosaics.jsonl"
    done = done_keys(path)
    specs = mosaic_specs(samples, pipeline, args.mosaics)
    params = {"smoothgrad": {"samples": args.smooth_samples}, "smooth_pullback": {"samples": args.smooth_samples},
              "integrated_gradients": {"steps": args.ig_steps}}
    for index, (target, distractors, slots) in enumerate(tqdm(specs, desc=f"{pipeline.name} mosaics")):
        if index in done:
            continue
        wave = audio_mosaic(samples[target][1], [samples[d][1] for d in distractors], slots)
        x = pipeline.inputs(wave[None])
        slot_of_frame = frame_slots(x.shape[1], pipeline.front_end.hop, 16000, 4)
        groups = tf_patches(tuple(x.shape[1:]), *args.patch)
        label = samples[target][2]
        row = {"id": index, "target": samples[target][0], "label": label, "slots": slots, "focus": {}}
        with torch.no_grad():
            row["predicted"] = int(pipeline.model(x)[0].argmax())
        for name in METHODS:
            attribution = make_explainer(name, pipeline.model, groups, params)(x, torch.tensor([label]))[0]
            row["focus"][name] = float(focus(attribution, slot_of_frame, slots))
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def bootstrap_ci(differences: np.ndarray, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = rng.choice(differences, (draws, len(differences))).mean(1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def summarise(out: Path) -> str:
    lines = []
    for path in sorted(out.glob("*.clips.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        model = path.name.removesuffix(".clips.jsonl")
        lines += [f"\n### {model}: {len(rows)} clips (mean ± std; arrows: better direction)\n",
                  "| method | " + " | ".join(f"{m} {'↑' if up else '↓'}" for m, up in METRICS.items()) + " | s/clip |",
                  "|---" * (len(METRICS) + 2) + "|"]
        for method in METHODS:
            cells = []
            for metric in METRICS:
                values = np.array([r["methods"][method][metric] for r in rows])
                cells.append(f"{values.mean():.4g} ± {values.std():.3g}")
            seconds = np.mean([r["methods"][method]["seconds"] for r in rows])
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {seconds:.2f} |")
        lines += ["", f"Paired 95% bootstrap CI of (method − SoftPullback), {model}:", "",
                  "| method | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
        for method in METHODS[1:]:
            cells = []
            for metric in METRICS:
                diff = np.array([r["methods"][method][metric] - r["methods"]["SoftPullback"][metric] for r in rows])
                low, high = bootstrap_ci(diff)
                cells.append(f"[{low:.3g}, {high:.3g}]")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    for path in sorted(out.glob("*.mosaics.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        model = path.name.removesuffix(".mosaics.jsonl")
        correct = np.mean([r["predicted"] == r["label"] for r in rows])
        lines += [f"\n### {model}: Focus on {len(rows)} audio mosaics (4 × 1 s slots, target in 2; "
                  f"mosaic top-1 = target in {correct:.0%})\n", "| method | Focus ↑ | CI of (method − SoftPullback) |",
                  "|---|---|---|"]
        for method in METHODS:
            values = np.array([r["focus"][method] for r in rows])
            diff = values - np.array([r["focus"]["SoftPullback"] for r in rows])
            ci = "—" if method == "SoftPullback" else "[{:.3g}, {:.3g}]".format(*bootstrap_ci(diff))
            lines.append(f"| {method} | {values.mean():.3f} ± {values.std():.3f} | {ci} |")
    return "\n".join(lines)


def accuracy_report(pipeline, samples, data: Path) -> str:
    with torch.no_grad():
        predicted = pipeline.logits(torch.stack([s[1] for s in samples])).argmax(1)
    correct = predicted == torch.tensor([s[2] for s in samples])
    test_list = set((data / "audio" / "speech_commands" / "testing_list.txt").read_text().split())
    in_test = torch.tensor([s[0] in test_list for s in samples])
    return (f"{pipeline.name} accuracy on {len(samples)} Speech Commands clips: {correct.float().mean():.4f}; "
            f"on the {int(in_test.sum())} test-list clips: {correct[in_test].float().mean():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--model", default="honk-res8", choices=list(WEIGHTS))
    parser.add_argument("--clips", type=int, default=300, help="clips scored with the metrics")
    parser.add_argument("--mosaics", type=int, default=100)
    parser.add_argument("--patch", type=int, nargs=2, default=(10, 8), help="TF patch: frames bins")
    parser.add_argument("--smooth-samples", type=int, default=50)
    parser.add_argument("--ig-steps", type=int, default=50)
    parser.add_argument("--sensitivity-samples", type=int, default=10)
    parser.add_argument("--infidelity-draws", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/audio/results")
    parser.add_argument("--summarise", action="store_true", help="only print the tables of what is in --out")
    parser.add_argument("--accuracy-only", action="store_true", help="only print the accuracy (honk models)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.summarise:
        print(summarise(out))
        return
    torch.manual_seed(0)
    data = Path(args.data)
    pipeline = load_audio_model(args.model, data / "audio" / "models" / WEIGHTS[args.model])
    if args.model.startswith("honk"):
        everything = load_speech_commands(data, 300)
        print(accuracy_report(pipeline, everything, data))
        if args.accuracy_only:
            return
        samples = everything[: args.clips]
    else:
        samples = load_music_patches(data, pipeline, args.clips)
    (out / "config.json").write_text(json.dumps(vars(args), indent=1))
    run_clips(args, pipeline, samples, out)
    if args.mosaics and args.model == "honk-res8":
        run_mosaics(args, pipeline, everything, out)
    print(summarise(out))


if __name__ == "__main__":
    main()
