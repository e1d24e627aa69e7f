#!/usr/bin/python3
"""PyTorch peer for `Nabla.Bench gpt2`: the same GPT-2 work as the C# harness, on request, so both sides are
timed side by side on the same (noisy, shared) machine. Run with Debian's /usr/bin/python3 (python3-torch 1.13
with libopenblas0-pthread).

GPT-2 is written here in plain PyTorch exactly as tests/reference/make_gpt2_fixture.py defines it (Hugging Face's
transformers is not installed): pre-norm blocks, causal attention, GELU-tanh MLP, tied LM head. Generation uses
a KV cache written the straightforward way (concatenate keys and values each step).

Line protocol on stdin/stdout, one request per line, one answer line each:
  threads T                      -> "ok <torch threads> <torch version>"
  model L H C V CTX              -> "ok <parameters>"       builds a randomly initialised GPT-2
  train B T REPS [cpu]           -> "<ms> <ms> ..."         REPS timed steps (forward, backward, AdamW) after 2 warm-ups;
                                                            with "cpu", the calling thread's CPU time (valid on 1 thread)
  generate PROMPT NEW REPS       -> "<tokens/s> ..."        REPS greedy generations of NEW tokens after a PROMPT-token prompt
  quit
"""
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from peer_common import serve


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.attn_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x, cache=None):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        tk = k.shape[2]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.h)
        mask = torch.ones(t, tk, dtype=torch.bool).triu(diagonal=tk - t + 1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, layers, heads, channels, vocab, context):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, channels), nn.Embedding(context, channels)
        self.h = nn.ModuleList(Block(channels, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(channels)
        for name, p in self.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, caches=None, start=0):
        x = self.wte(idx) + self.wpe(torch.arange(start, start + idx.shape[1]))
        for i, block in enumerate(self.h):
            x = block(x, None if caches is None else caches[i])
        return F.linear(self.ln_f(x), self.wte.weight)


model = None


def build(layers, heads, channels, vocab, context):
    global model
    torch.manual_seed(0)
    model = Gpt2(layers, heads, channels, vocab, context)
    return sum(p.numel() for p in model.parameters())


def train(b, t, reps, clock=time.perf_counter):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    vocab = model.wte.weight.shape[0]
    x = torch.randint(0, vocab, (b, t))
    y = torch.randint(0, vocab, (b, t))
    times = []
    for rep in range(reps + 2):
        start = clock()
        loss = F.cross_entropy(model(x).view(-1, vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if rep >= 2:
            times.append((clock() - start) * 1000)
    return times


@torch.no_grad()
def generate(prompt_len, new_tokens, reps):
    rates = []
    for _ in range(reps):
        caches = [{} for _ in model.h]
        idx = torch.randint(0, model.wte.weight.shape[0], (1, prompt_len))
        logits = model(idx, caches, 0)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for i in range(new_tokens):
            logits = model(nxt, caches, prompt_len + i)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
        rates.append(new_tokens / (time.perf_counter() - start))
    return rates


def answer(words):
    if words[0] == "model":
        return f"ok {build(*map(int, words[1:6]))}"
    if words[0] == "train":  # "train B T REPS [cpu]": cpu times by the thread's CPU time
        clock = time.thread_time if words[4:5] == ["cpu"] else time.perf_counter
        return " ".join(f"{ms:.3f}" for ms in train(*map(int, words[1:4]), clock=clock))
    if words[0] == "generate":
        return " ".join(f"{r:.3f}" for r in generate(*map(int, words[1:4])))
    return None


def main():
    serve(answer, lambda torch_threads, _, __: (torch_threads, torch.__version__))


if __name__ == "__main__":
    main()
