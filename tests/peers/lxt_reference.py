"""Stock LXT, run in a subprocess (its patches are process-wide): ``python lxt_reference.py ARCH VARIANT MODEL_DIR IO``.

Applies LXT's own patch functions to the *classes* the way ``lxt.efficient.monkey_patch`` does with
LXT's maps for Llama (``lxt.efficient.models.llama``) and BERT (the rules of its bundled BERT copy,
which cannot be imported on transformers 5); LXT's attention patch is applied to a stand-in
namespace, because its swap of transformers' attention registry breaks transformers 5.  Reads
``IO.in.pt`` (embeddings, attention mask, target), writes the relevance (B, L) to ``IO``.
"""

import sys
import types
from functools import partial

import torch

from spmm.adapters.peers.lxt_rules import lxt_patches

arch, variant, path, io = sys.argv[1:5]
patches = lxt_patches()
if arch == "llama":
    from transformers.models.llama import modeling_llama as module
    from transformers.models.llama.modeling_llama import LlamaForCausalLM, LlamaMLP, LlamaRMSNorm

    model = LlamaForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    mlp = patches.gated_mlp_forward if variant == "attnlrp" else patches.cp_gated_mlp_forward
    patch_map = {LlamaMLP: partial(patches.patch_method, mlp),
                 LlamaRMSNorm: partial(patches.patch_method, patches.rms_norm_forward),
                 torch.nn.Dropout: partial(patches.patch_method, patches.dropout_forward)}
else:
    from transformers.activations import GELUActivation
    from transformers.models.bert import modeling_bert as module
    from transformers.models.bert.modeling_bert import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(path, attn_implementation="eager").eval()
    identity = partial(patches.patch_method, patches.non_linear_forward, keep_original=True)
    patch_map = {torch.nn.LayerNorm: partial(patches.patch_method, patches.layer_norm_forward),
                 torch.nn.Dropout: partial(patches.patch_method, patches.dropout_forward),
                 GELUActivation: identity, torch.nn.Tanh: identity}
for target, patch in patch_map.items():
    assert patch(target)
stand_in = types.SimpleNamespace(eager_attention_forward=module.eager_attention_forward, ALL_ATTENTION_FUNCTIONS={})
(patches.patch_attention if variant == "attnlrp" else patches.patch_cp_attention)(stand_in)
module.eager_attention_forward = stand_in.eager_attention_forward

data = torch.load(io + ".in.pt")
embeddings = data["embeddings"].clone().requires_grad_(True)
logits = model(inputs_embeds=embeddings, attention_mask=data["mask"]).logits
if logits.dim() == 3:
    logits = logits[:, -1]
logits[torch.arange(len(logits)), data["target"]].sum().backward()
torch.save((embeddings * embeddings.grad).sum(-1), io)
