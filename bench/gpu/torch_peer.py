#!/usr/bin/env python3
"""PyTorch's side of the GPU benchmark (bench/gpu/run.sh): cuBLAS SGEMM through torch.matmul on the same GPT-2
shapes and layouts as nabla-gpubench, and torch's scaled_dot_product_attention (default backend and the math path)
on the same causal attention, written as JSON that nabla-gpubench --peer puts next to its own numbers.

fp32 throughout: TF32 is switched off for the fp32 column and measured separately (cuBLAS TF32) for reference.
With --smoke it runs tiny sizes on whatever device exists (the CPU here), to exercise the script, not to measure.
"""
import argparse
import json
import statistics
import sys
import time

GPT2_WEIGHTS = [(768, 2304), (768, 768), (768, 3072), (3072, 768), (768, 50304)]  # (K, N), as GemmBench.cs
LAYOUTS = ["NN", "NT", "TN"]


def median_ms(torch, device, run, seconds, min_runs=3):
    """Median wall time of run() in ms, synchronised with the device, after one warm-up call."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    run()
    sync()
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < seconds and len(times) < 50):
        t0 = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


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


def gpt2(torch, device, smoke, seconds):
    # ======== PLACE FOR THE MODEL-LEVEL ROWS ========
    # PyTorch's GPT-2 124M training step (B = 8, T = 1024: forward, backward, AdamW; "training_step_ms") and
    # generation ("generation_tokens_per_s") go here, next to Nabla's in bench/Nabla.GpuBench/ModelBench.cs, once
    # Nabla's models run on the device.
    return {"measured": False, "reason": "added with Nabla's model-level device support"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device: exercise the script")
    parser.add_argument("--seconds", type=float, default=0.3, help="time spent repeating each case")
    args = parser.parse_args()
    try:
        import torch
    except ImportError as e:
        json.dump({"available": False, "reason": f"no PyTorch: {e}"}, open(args.out, "w"))
        print(f"torch_peer: no PyTorch ({e}); Nabla's numbers only", file=sys.stderr)
        return 0
    if torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(0)
    elif args.smoke:
        device, name = torch.device("cpu"), "cpu"
    else:
        json.dump({"available": False, "reason": "PyTorch sees no CUDA device"}, open(args.out, "w"))
        print("torch_peer: PyTorch sees no CUDA device; Nabla's numbers only", file=sys.stderr)
        return 0
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch_peer: torch {torch.__version__} on {name}{' (smoke sizes)' if args.smoke else ''}")
    seconds = 0 if args.smoke else args.seconds
    result = {
        "available": True, "torch": torch.__version__, "device": name,
        "cuda": torch.version.cuda, "smoke": args.smoke,
        "sgemm": sgemm(torch, device, args.smoke, seconds),
        "attention": attention(torch, device, args.smoke, seconds),
        "gpt2": gpt2(torch, device, args.smoke, seconds),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
