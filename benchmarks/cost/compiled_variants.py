"""What makes compiled SoftPullback slower than a compiled gradient on a CNN: ResNet18 compiled as
torchvision builds it, without its max-pool, with out-of-place ReLUs, and both; then the soft ReLU
gate's kernel (erfc) eager vs compiled, next to the same kernel with exp; with ``--kernel-profile``,
the slowest inductor kernels of one compiled SP explanation of the model as torchvision builds it.

    OMP_NUM_THREADS=1 python benchmarks/cost/compiled_variants.py [--threads 1] [--batch 4] [--kernel-profile]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

import spmm


def best_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def resnet18(without_pool: bool, out_of_place: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    if without_pool:
        model.maxpool = torch.nn.Identity()
    for module in model.modules():
        if out_of_place and isinstance(module, torch.nn.ReLU):
            module.inplace = False
    return model


def input_gradient(model: torch.nn.Module, x: torch.Tensor, mode) -> torch.Tensor:
    inputs = x.clone().requires_grad_()
    with mode() if mode is not None else torch.enable_grad():
        logits = model(inputs)
    return torch.autograd.grad(logits[:, 1].sum(), inputs)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernel-profile", action="store_true", help="only the inductor kernel profile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(args.batch, 3, 224, 224) * 2 - 1
    if args.kernel_profile:
        print_kernel_profile(x)
        return
    print(f"ResNet18, batch {args.batch}, {args.threads} thread(s), torch {torch.__version__}, "
          f"best of {args.repeats}, CPU s\n")
    print("| variant | compiled gradient | compiled SP | ratio | ‖compiled SP − eager SP‖ / ‖eager SP‖ |")
    print("|---|---|---|---|---|")
    for label, without_pool, out_of_place in (("as torchvision builds it", False, False),
                                              ("max-pool replaced by identity", True, False),
                                              ("ReLUs made out-of-place", False, True), ("both", True, True)):
        model = resnet18(without_pool, out_of_place)
        mode = spmm.get_ruleset("vision").for_model(model).mode
        torch._dynamo.reset()
        compiled = torch.compile(model)
        eager_sp = input_gradient(model, x, mode)
        error = ((input_gradient(compiled, x, mode) - eager_sp).norm() / eager_sp.norm()).item()
        input_gradient(compiled, x, None)
        grad = best_seconds(lambda: input_gradient(compiled, x, None), args.repeats)
        sp = best_seconds(lambda: input_gradient(compiled, x, mode), args.repeats)
        print(f"| {label} | {grad:.2f} | {sp:.2f} | {sp / grad:.2f}× | {error:.1e} |", flush=True)

    values, grad_out = torch.randn(args.batch, 64, 56, 56), torch.randn(args.batch, 64, 56, 56)
    kernels = {"erfc(−0.7x)·0.5·g (the ReLU gate at T = 0.6)": lambda v, g: (v * -0.7).erfc() * 0.5 * g,
               "exp(−0.7x)·g": lambda v, g: (v * -0.7).exp() * g}
    print(f"\nOne gate kernel on {values.numel()} floats, ms (best of 20)\n\n| kernel | eager | compiled |\n|---|---|---|")
    for label, kernel in kernels.items():
        compiled_kernel = torch.compile(kernel)
        compiled_kernel(values, grad_out)
        eager_ms, compiled_ms = (best_seconds(lambda k=k: k(values, grad_out), 20) * 1e3 for k in (kernel, compiled_kernel))
        print(f"| {label} | {eager_ms:.2f} | {compiled_ms:.2f} |")


def print_kernel_profile(x: torch.Tensor, rows: int = 5) -> None:
    """The ``rows`` slowest inductor-generated kernels of one compiled SP explanation (CPU self ms)."""
    import torch._inductor.config as inductor_config
    from torch.profiler import profile

    inductor_config.cpp.enable_kernel_profile = True
    model = resnet18(without_pool=False, out_of_place=False)
    mode = spmm.get_ruleset("vision").for_model(model).mode
    compiled = torch.compile(model)
    input_gradient(compiled, x, mode)
    with profile() as prof:
        input_gradient(compiled, x, mode)
    kernels = sorted((e for e in prof.key_averages() if e.key.startswith("graph_")),
                     key=lambda e: e.self_cpu_time_total, reverse=True)
    print("| inductor kernel (one compiled SP explanation, ResNet18 as built) | self ms |\n|---|---|")
    for event in kernels[:rows]:
        print(f"| `{event.key}` | {event.self_cpu_time_total / 1e3:.1f} |")


if __name__ == "__main__":
    main()
