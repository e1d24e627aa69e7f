#!/usr/bin/python3
"""PyTorch peer for `Nabla.Bench gpt2`: the same GPT-2 work as the C# harness, on request, so both sides are
timed side by side on the same (noisy, shared) machine. Run with Debian's /usr/bin/python3 (python3-torch 1.13
with libopenblas0-pthread).

GPT-2 is bench/gpt2_model.py's, in plain PyTorch (shared with the GPU peer bench/gpu/torch_peer.py): pre-norm
blocks, causal attention, GELU-tanh MLP, tied LM head; generation with a preallocated KV cache.

Line protocol on stdin/stdout, one request per line, one answer line each:
  threads T                      -> "ok <torch threads> <torch version>"
  model L H C V CTX              -> "ok <parameters>"       builds a randomly initialised GPT-2
  train B T REPS [cpu]           -> "<ms> <ms> ..."         REPS timed steps (forward, backward, AdamW) after 2 warm-ups;
                                                            with "cpu", the calling thread's CPU time (valid on 1 thread)
  generate PROMPT NEW REPS       -> "<tokens/s> ..."        REPS greedy generations of NEW tokens after a PROMPT-token prompt
  quit
"""
import time

import torch
import torch.nn.functional as F

from gpt2_model import Gpt2, adamw
from peer_common import serve


model = None


def build(layers, heads, channels, vocab, context):
    global model
    torch.manual_seed(0)
    model = Gpt2(layers, heads, channels, vocab, context)
    return sum(p.numel() for p in model.parameters())


def train(b, t, reps, clock=time.perf_counter):
    opt = adamw(model, lr=1e-4)
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
        cache = model.new_cache(1, prompt_len + new_tokens)
        idx = torch.randint(0, model.wte.weight.shape[0], (1, prompt_len))
        logits = model(idx, cache, last_only=True)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        start = time.perf_counter()
        for _ in range(new_tokens):
            logits = model(nxt, cache, last_only=True)
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
