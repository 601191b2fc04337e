"""Gradient checkpointing: regions recomputed in the backward pass get the same rules, so a
checkpointed model has the SoftPullback of the same model without checkpointing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torch.utils.checkpoint as checkpoint_module
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

import spmm


class _Block(nn.Module):
    """x + W2·gelu(W1·layer_norm(x)), optionally through torch.utils.checkpoint."""

    def __init__(self, checkpointed: bool) -> None:
        super().__init__()
        self.up, self.down, self.checkpointed = nn.Linear(8, 16), nn.Linear(16, 8), checkpointed

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(F.layer_norm(x, (8,)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = checkpoint_module.checkpoint(self.branch, x, use_reentrant=False) if self.checkpointed else self.branch(x)
        return x + branch


def _net(checkpointed: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(_Block(checkpointed), nn.ReLU(), _Block(checkpointed), nn.Linear(8, 3)).eval()


def test_torch_checkpoint_gives_the_pullback_of_the_plain_model():
    x = torch.randn(4, 8)
    plain = spmm.explain(_net(False), x, 1, temperatures={"gelu": 0.3}).attributions
    checkpointed = spmm.explain(_net(True), x, 1, temperatures={"gelu": 0.3}).attributions
    torch.testing.assert_close(checkpointed, plain, rtol=1e-6, atol=1e-7)
    gradient = spmm.explain(_net(True), x, 1, "gradient").attributions
    assert (checkpointed - gradient).norm() > 0.05 * gradient.norm()


def test_checkpoint_is_restored_when_the_mode_is_left():
    original = checkpoint_module._checkpoint_without_reentrant_generator
    with pytest.raises(ZeroDivisionError):
        with spmm.pullback_mode():
            assert checkpoint_module._checkpoint_without_reentrant_generator is not original
            1 / 0
    assert checkpoint_module._checkpoint_without_reentrant_generator is original


class _LastTokenLogits(nn.Module):
    """A causal LM on input embeddings (B, L, E) -> next-token logits (B, V)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=embeds).logits[:, -1]


def test_hugging_face_gradient_checkpointing_gives_the_pullback_of_the_plain_model():
    torch.manual_seed(1)
    config = LlamaConfig(
        vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32, attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config).train()  # Hugging Face checkpoints only in training mode (no dropout here)
    x = torch.randn(2, 6, 32)
    with pytest.warns(UserWarning, match="training mode"):
        plain = spmm.explain(_LastTokenLogits(model), x, 7).attributions
    model.gradient_checkpointing_enable()
    calls = []
    model.model.layers[0].mlp.register_forward_pre_hook(lambda module, args: calls.append(1))  # inside the checkpoint
    with pytest.warns(UserWarning, match="training mode"):
        checkpointed = spmm.explain(_LastTokenLogits(model), x, 7).attributions
    assert len(calls) == 3, "one forward for the output, one for the pullback, one recomputation"
    torch.testing.assert_close(checkpointed, plain, rtol=1e-5, atol=1e-7)
