#!/usr/bin/env python3
"""PyTorch's side of the GPU benchmark (bench/gpu/run.sh): cuBLAS SGEMM through torch.matmul on the same GPT-2
shapes and layouts as nabla-gpubench, torch's scaled_dot_product_attention (default backend and the math path)
on the same causal attention, and GPT-2 124M (bench/gpt2_model.py) training and generating as nabla-gpubench's
ModelBench does, written as JSON that nabla-gpubench --peer puts next to its own numbers. The JSON file is
rewritten after each part, so a run cut short by run.sh's time cap keeps the parts it finished.

fp32 throughout: TF32 is switched off for the fp32 column and measured separately (cuBLAS TF32) for reference.
GPT-2 runs eager, then (torch >= 2 on CUDA, unless --no-compile) with torch.compile, reported separately.
With --smoke it runs tiny sizes on whatever device exists (the CPU here), to exercise the script, not to measure.
"""
import argparse
import json
import os
import statistics
import sys
import time
from collections import namedtuple

GPT2_WEIGHTS = [(768, 2304), (768, 768), (768, 3072), (3072, 768), (768, 50304)]  # (K, N), as GemmBench.cs
LAYOUTS = ["NN", "NT", "TN"]
PARTS = ["gemm", "attention", "gpt2"]  # as nabla-gpubench --only

# The GPT-2 rows' model and work: bench/Nabla.GpuBench/ModelBench.cs's Gpt2Sizes.Full and .Smoke.
Gpt2Sizes = namedtuple("Gpt2Sizes", "layers channels heads vocab context batch t warm_up_steps min_steps max_steps training_seconds "
                                    "prompt new_tokens warm_up_rounds min_rounds max_rounds generation_seconds")
GPT2_SIZES = Gpt2Sizes(12, 768, 12, 50257, 1024, batch=8, t=1024, warm_up_steps=2, min_steps=3, max_steps=10, training_seconds=15,
                       prompt=64, new_tokens=128, warm_up_rounds=1, min_rounds=3, max_rounds=5, generation_seconds=10)
GPT2_SMOKE_SIZES = Gpt2Sizes(1, 16, 2, 32, 16, batch=1, t=8, warm_up_steps=1, min_steps=1, max_steps=1, training_seconds=0,
                             prompt=3, new_tokens=2, warm_up_rounds=0, min_rounds=1, max_rounds=1, generation_seconds=0)


def timed_ms(torch, device, run, seconds, min_runs=3, max_runs=50, warm_ups=1):
    """Wall time in ms of each timed run() (the clock read after synchronising with the device), after warm_ups
    untimed calls; repeated for about `seconds`, at least min_runs and at most max_runs times."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    for _ in range(warm_ups):
        run()
        sync()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < seconds and len(times) < max_runs):
        t0 = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def first_line(error):
    """An exception in one line for the report (CUDA's out-of-memory message runs on for several)."""
    return (str(error).splitlines() or [type(error).__name__])[0][:200]


def median_ms(torch, device, run, seconds, min_runs=3):
    """Median wall time of run() in ms, synchronised with the device, after one warm-up call."""
    return statistics.median(timed_ms(torch, device, run, seconds, min_runs))


def sgemm(torch, device, smoke, seconds):
    m = 16 if smoke else 8192
    weights = [(k // 64, min(n // 64, 100)) for k, n in GPT2_WEIGHTS] if smoke else GPT2_WEIGHTS
    rows = []
    for k, n in weights:
        for layout in LAYOUTS:
            trans_a, trans_b = layout[0] == "T", layout[1] == "T"
            a = torch.randn((k, m) if trans_a else (m, k), device=device)
            b = torch.randn((n, k) if trans_b else (k, n), device=device)
            op_a, op_b = (a.t() if trans_a else a), (b.t() if trans_b else b)
            out = torch.empty((m, n), device=device)
            flops = 2.0 * m * n * k
            row = {"m": m, "n": n, "k": k, "layout": layout}
            for key, tf32 in (("gflops", False), ("tf32_gflops", True)):
                if tf32 and device.type != "cuda":
                    continue
                torch.backends.cuda.matmul.allow_tf32 = tf32
                ms = median_ms(torch, device, lambda: torch.matmul(op_a, op_b, out=out), seconds)
                row[key] = round(flops / ms / 1e6, 1)
                if not tf32:
                    row["ms"] = round(ms, 4)
            torch.backends.cuda.matmul.allow_tf32 = False
            print(f"  torch sgemm {layout} m={m} n={n} k={k} {row['gflops']:9.1f} GFLOP/s"
                  + (f" (TF32 {row['tf32_gflops']:.1f})" if "tf32_gflops" in row else ""))
            rows.append(row)
            del a, b, out
    return rows


def attention(torch, device, smoke, seconds):
    import torch.nn.functional as F
    B, H, T, D = (1, 2, 40, 16) if smoke else (8, 12, 1024, 64)
    q, k, v, dout = (torch.randn(B, H, T, D, device=device) for _ in range(4))
    for t in (q, k, v):
        t.requires_grad_(True)
    has_sdpa = hasattr(F, "scaled_dot_product_attention")

    def manual(q, k, v):
        mask = torch.ones(T, T, dtype=torch.bool, device=device).tril()
        s = (q @ k.transpose(-2, -1)) / D ** 0.5
        return torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) @ v

    def math_context():
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3
            return sdpa_kernel(SDPBackend.MATH)
        except ImportError:
            return torch.backends.cuda.sdp_kernel(enable_flash=False, enable_math=True, enable_mem_efficient=False)

    results = {"batch": B, "heads": H, "t": T, "head_dim": D}
    for key in ("sdpa_default", "sdpa_math"):
        if has_sdpa:
            attend = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
        else:
            attend = lambda: manual(q, k, v)  # noqa: E731

        def forward():
            with torch.no_grad():
                attend()

        def forward_backward():
            q.grad = k.grad = v.grad = None
            attend().backward(dout)

        import contextlib
        context = math_context() if (has_sdpa and key == "sdpa_math") else contextlib.nullcontext()
        with context:
            entry = {"forward_ms": round(median_ms(torch, device, forward, seconds), 4),
                     "forward_backward_ms": round(median_ms(torch, device, forward_backward, seconds), 4)}
        if not has_sdpa:
            entry["note"] = f"torch {torch.__version__} has no SDPA: manual softmax(QKᵀ)V"
        print(f"  torch attention {key:13s} forward {entry['forward_ms']:9.3f} ms, forward+backward {entry['forward_backward_ms']:9.3f} ms")
        results[key] = entry
    return results


def gpt2(torch, device, smoke, compile_too, write):
    """GPT-2's training step (forward, cross-entropy, backward, AdamW with the CLI's defaults) on one fixed random
    batch, and greedy generation with a KV cache (prefill, then one forward per new token, arg-max on the device),
    as ModelBench.cs; then the training step under torch.compile. write(partial) saves what is done so far."""
    import torch.nn.functional as F
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, os.path.dirname(here)]  # gpt2_model.py: beside this file in dist/, in bench/ otherwise
    from gpt2_model import Gpt2, adamw

    s = GPT2_SMOKE_SIZES if smoke else GPT2_SIZES
    torch.manual_seed(0)
    model = Gpt2(s.layers, s.heads, s.channels, s.vocab, s.context).to(device)
    result = {"config": {"layers": s.layers, "channels": s.channels, "heads": s.heads, "vocab": s.vocab, "context": s.context},
              "parameters": sum(p.numel() for p in model.parameters())}
    opt = adamw(model, lr=6e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    tokens = torch.randint(0, s.vocab, (s.batch, s.t + 1), generator=torch.Generator().manual_seed(1)).to(device)
    x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()  # (B, T) each

    def training_step(forward):
        losses = []

        def step():
            loss = F.cross_entropy(forward(x).view(-1, s.vocab), y.view(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.train()
        times = timed_ms(torch, device, step, s.training_seconds, s.min_steps, s.max_steps, s.warm_up_steps)
        ms = statistics.median(times)
        return {"batch": s.batch, "t": s.t, "warm_up_steps": s.warm_up_steps, "timed_steps": len(times), "ms": round(ms, 3),
                "tokens_per_s": round(s.batch * s.t / (ms / 1e3), 1), "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4)}

    result["training_step"] = training_step(model)
    print(f"  torch gpt2 training step B={s.batch} T={s.t}: {result['training_step']['ms']:9.1f} ms")
    generation = {"batch": 1, "prompt_tokens": s.prompt, "new_tokens": s.new_tokens, "warm_up_rounds": s.warm_up_rounds}
    result["generation"] = dict(generation)  # the rates follow
    write(result)

    prompt = torch.tensor([[i * 31 % s.vocab for i in range(s.prompt)]], device=device)
    prefill, decode = [], []

    @torch.no_grad()
    def generate():
        cache = model.new_cache(1, s.prompt + s.new_tokens)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        t0 = time.perf_counter()
        token = model(prompt, cache, last_only=True)[:, -1].argmax(-1, keepdim=True)
        sync()
        prefill.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        for _ in range(s.new_tokens):
            token = model(token, cache, last_only=True)[:, -1].argmax(-1, keepdim=True)
        sync()
        decode.append((time.perf_counter() - t0) * 1e3)
    model.eval()
    rounds = timed_ms(torch, device, generate, s.generation_seconds, s.min_rounds, s.max_rounds, s.warm_up_rounds)
    prefill_ms, decode_ms = statistics.median(prefill[s.warm_up_rounds:]), statistics.median(decode[s.warm_up_rounds:])
    result["generation"] = {**generation, "rounds": len(rounds),
                            "prefill_ms": round(prefill_ms, 3), "prefill_tokens_per_s": round(s.prompt / (prefill_ms / 1e3), 1),
                            "decode_ms": round(decode_ms, 3), "decode_tokens_per_s": round(s.new_tokens / (decode_ms / 1e3), 1)}
    print(f"  torch gpt2 generation: prefill {prefill_ms:9.1f} ms, decode {s.new_tokens} tokens {decode_ms:9.1f} ms")

    if not hasattr(torch, "compile") or device.type != "cuda" or not compile_too:
        reason = ("not asked (--no-compile)" if not compile_too else f"torch {torch.__version__} has no torch.compile"
                  if not hasattr(torch, "compile") else "CUDA only here")
        result["training_step_compiled"] = {"note": reason}
        return result
    # Compilation takes a minute or more: save the eager rows first, with a note that stays if run.sh's cap stops it.
    result["training_step_compiled"] = {"note": "did not finish within run.sh's time cap"}
    write(result)
    try:
        result["training_step_compiled"] = training_step(torch.compile(model))
        print(f"  torch gpt2 training step, torch.compile: {result['training_step_compiled']['ms']:9.1f} ms")
    except Exception as e:  # noqa: BLE001 (no compiler, no Triton, ...: the eager rows stand)
        result["training_step_compiled"] = {"note": f"torch.compile failed: {first_line(e)}"}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device: exercise the script")
    parser.add_argument("--seconds", type=float, default=0.3, help="time spent repeating each kernel case")
    parser.add_argument("--only", default=",".join(PARTS), help=f"parts to run, comma-separated ({', '.join(PARTS)})")
    parser.add_argument("--no-compile", action="store_true", help="skip GPT-2's torch.compile training step")
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    if not parts or any(p not in PARTS for p in parts):
        parser.error(f"--only: parts are {', '.join(PARTS)}, got '{args.only}'")

    def write(result):  # whole or not at all: run.sh's time cap may stop this process at any point
        with open(args.out + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(args.out + ".tmp", args.out)
    try:
        import torch
    except ImportError as e:
        write({"available": False, "reason": f"no PyTorch: {e}"})
        print(f"torch_peer: no PyTorch ({e}); Nabla's numbers only", file=sys.stderr)
        return 0
    if torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(0)
    elif args.smoke:
        device, name = torch.device("cpu"), "cpu"
    else:
        write({"available": False, "reason": "PyTorch sees no CUDA device"})
        print("torch_peer: PyTorch sees no CUDA device; Nabla's numbers only", file=sys.stderr)
        return 0
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch_peer: torch {torch.__version__} on {name}{' (smoke sizes)' if args.smoke else ''}")
    seconds = 0 if args.smoke else args.seconds
    result = {"available": True, "torch": torch.__version__, "device": name, "cuda": torch.version.cuda, "smoke": args.smoke}
    if "gemm" in parts:
        result["sgemm"] = sgemm(torch, device, args.smoke, seconds)
        write(result)
    if "attention" in parts:
        result["attention"] = attention(torch, device, args.smoke, seconds)
        write(result)
    if "gpt2" in parts:
        def write_gpt2(partial):
            write({**result, "gpt2": partial})
        try:
            result["gpt2"] = gpt2(torch, device, args.smoke, not args.no_compile, write_gpt2)
        except RuntimeError as e:  # out of memory, say: the kernel rows stand
            result["gpt2"] = {"error": first_line(e)}
            print(f"torch_peer: gpt2 failed: {e}", file=sys.stderr)
        write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
