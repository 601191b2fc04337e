"""CPU seconds of each call of eager and compiled SoftPullback and gradient on a ResNet18.

The first compiled call compiles; the later ones show whether the compiled model is reused
(before the fix in ``spmm/mode.py: _acquire_module_hook`` every SP call recompiled).

    OMP_NUM_THREADS=1 python benchmarks/cost/compiled_calls.py [--calls 4] [--backend inductor]
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

import spmm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--backend", default="inductor")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(2, 3, 64, 64)
    mode = spmm.get_ruleset("vision").for_model(model).mode
    compiled = torch.compile(model, backend=args.backend)

    def explain(module: torch.nn.Module, pullback: bool) -> torch.Tensor:
        inputs = x.clone().requires_grad_()
        with mode() if pullback else torch.enable_grad():
            logits = module(inputs)
        return torch.autograd.grad(logits[:, 1].sum(), inputs)[0]

    for label, module, pullback in (("eager SP", model, True), ("compiled SP", compiled, True),
                                    ("eager gradient", model, False), ("compiled gradient", compiled, False)):
        seconds = []
        for _ in range(args.calls):
            start = time.process_time()
            explain(module, pullback)
            seconds.append(time.process_time() - start)
        print(f"{label}: " + ", ".join(f"{s:.3f}" for s in seconds) + " CPU s per call")


if __name__ == "__main__":
    main()
