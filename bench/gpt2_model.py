"""GPT-2 in plain PyTorch for the benchmark peers (bench/gpt2_peer.py on the CPU, bench/gpu/torch_peer.py on a GPU),
computing what Nabla's Gpt2Model does: token and learned position embeddings, pre-norm blocks with causal
self-attention and a GELU (tanh) MLP, a final layer norm, and a head tied to the token embedding; GPT-2's
initialisation (N(0, 0.02), residual projections scaled by 1/sqrt(2 layers), zero biases).

Attention uses F.scaled_dot_product_attention where torch has it (torch >= 2) and the math path otherwise
(softmax(QKᵀ/√d) V under the causal mask). Generation uses a preallocated KV cache, as Nabla's KvCache.
Hugging Face's transformers is not installed here, so this is written by hand."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


class KvCache:
    """Keys and values (B, H, capacity, D) of every layer; the model fills positions [length, length + T) per call."""

    def __init__(self, layers, batch, heads, capacity, head_dim, device):
        shape = (batch, heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, device=device) for _ in range(layers)]
        self.length = 0

    def append(self, layer, k, v):
        """Stores k, v (B, H, T, D) after the cached positions; returns all keys and values so far."""
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


def causal_attention(q, k, v):
    """q (B, H, Tq, D) are the last Tq of the Tk positions of k, v (B, H, Tk, D); each sees itself and those before."""
    tq, tk = q.shape[2], k.shape[2]
    if HAS_SDPA and tq in (tk, 1):
        return F.scaled_dot_product_attention(q, k, v, is_causal=tq == tk)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    future = torch.ones(tq, tk, dtype=torch.bool, device=q.device).triu(diagonal=tk - tq + 1)
    return att.masked_fill(future, float("-inf")).softmax(-1) @ v


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.attn_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x, cache=None, layer=0):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        y = causal_attention(q, k, v).transpose(1, 2).reshape(b, t, c)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, layers, heads, channels, vocab, context):
        super().__init__()
        self.heads = heads
        self.wte, self.wpe = nn.Embedding(vocab, channels), nn.Embedding(context, channels)
        self.h = nn.ModuleList(Block(channels, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(channels)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02)

    def forward(self, idx, cache=None, last_only=False):
        """Logits (B, T, V) of token ids (B, T); with a cache, idx follows the cached positions. With last_only, the
        last position's logits alone, (B, 1, V), as generation needs."""
        start = 0 if cache is None else cache.length
        x = self.wte(idx) + self.wpe(torch.arange(start, start + idx.shape[1], device=idx.device))  # (B, T, C)
        for i, block in enumerate(self.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += idx.shape[1]
        if last_only:
            x = x[:, -1:]
        return F.linear(self.ln_f(x), self.wte.weight)

    def new_cache(self, batch, capacity):
        c = self.wte.weight.shape[1]
        return KvCache(len(self.h), batch, self.heads, capacity, c // self.heads, self.wte.weight.device)


def adamw(model, **options):
    """AdamW with weight decay on matrices and embeddings only (as Nabla's Gpt2Model.WeightDecayGroups)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    weight_decay = options.pop("weight_decay", 0.1)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], **options)
