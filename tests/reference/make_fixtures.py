#!/usr/bin/python3
"""PyTorch reference fixtures for Nabla's op, optimizer and printing parity tests.

What: every op Nabla exposes is run here in PyTorch on fixed random inputs (broadcast shapes, non-contiguous
views, edge sizes 0, 1, 7, 15, 17, 33, 100), with a random upstream gradient (never ones), and the forward
output and the gradient of every float input are stored. The C# tests (tests/Nabla.Tests/*/*ParityTests.cs)
replay each case in Nabla and compare.

How to re-run (Debian's python3-torch 1.13 + numpy, nothing else; see shared/DATA.md):
    /usr/bin/python3 tests/reference/make_fixtures.py
It rewrites tests/Nabla.Tests/Fixtures/{ops_*,optim,format}.safetensors. Every case draws its data from its
own generator seeded with crc32(case name), so the files are identical run to run and adding a case does not
change the others. The files are committed: `dotnet test` needs no Python.

Precision: inputs are float32 numbers; references are computed in float64 on exactly those numbers and
rounded to float32 once at the end. The stored value is then (nearly) the correctly rounded true answer, so
the difference a test sees is Nabla's own float32 error, not a mix of two libraries' rounding. Cases whose
float32 error grows with their size (long sums, dot products of length 33..100) carry a looser "atol" in their
metadata, with the reason beside them.

File layout (all safetensors, written by hand below; F32 floats, I32 indices):
  ops_elementwise / ops_reductions / ops_matmul / ops_nn / ops_indexing / ops_views .safetensors
      One entry per case in "__metadata__": case name -> JSON {"op", "args", "inputs": [{"int", "grad",
      "views"}], optional "rtol"/"atol"}. Tensors "<case>/x<i>" (the base inputs; "views" is a list of view
      steps applied to the base before the op, e.g. ["t", 0, 1] = transpose, ["s", dim, start, end, step] =
      slice, so gradients flow back through the views to the base), "<case>/y" (output; ops with two
      outputs store y0 and y1), "<case>/gy" (the random upstream gradient of y or y0) and "<case>/gx<i>"
      (gradient of the base input i, for inputs with "grad": true).
  optim.safetensors
      "<case>" metadata for optimizers: JSON {"type", hyper-parameters, "steps", "params"}; tensors
      "<case>/p<i>/init", "<case>/p<i>/grad<s>" (gradient given at step s) and "<case>/p<i>/step<s>" (the
      parameter after step s). "sched/<name>" metadata + "sched/<name>/lr" (learning rate after 0..n-1
      scheduler steps); "sched/groups" also "sched/groups/p<i>/..." as for an optimizer (one parameter per
      group) and "sched/groups/lr" (steps, groups). "clip/<case>" metadata + grads before/after and the returned total norm.
  format.safetensors
      "fmt/<case>" metadata: JSON {"repr": str(torch tensor), "requires_grad", "int"}; tensor "fmt/<case>" holds
      the values to print.
"""
import json
import math
import os
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from safetensors_io import write_safetensors

torch.set_num_threads(2)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Nabla.Tests", "Fixtures")
EDGE = [0, 1, 7, 15, 17, 33, 100]
D = torch.float64


# ---------------------------------------------------------------------------------------------- writer

def f32(t):
    return t.detach().to(torch.float32).numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float32)


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


# ---------------------------------------------------------------------------------------------- data

def normal(r, shape, scale=1.0):
    return (r.standard_normal(shape) * scale).astype(np.float32)


def uniform(r, shape, lo, hi):
    return r.uniform(lo, hi, shape).astype(np.float32)


def ties(r, shape, k=3):
    """Small integers: many exact ties (max/min/comparisons)."""
    return r.integers(-k, k + 1, shape).astype(np.float32)


def with_zeros(r, shape):
    """Normal values with every fourth element exactly 0 (relu/abs/sign at the kink)."""
    a = normal(r, shape)
    a.reshape(-1)[::4] = 0
    return a


# ---------------------------------------------------------------------------------------------- views

def apply_views(t, views):
    for v in views:
        k = v[0]
        if k == "t":
            t = t.transpose(v[1], v[2])
        elif k == "p":
            t = t.permute(*v[1:])
        elif k == "s":
            dim, start, end, step = v[1:]
            idx = [slice(None)] * t.dim()
            idx[dim] = slice(start, end, step)
            t = t[tuple(idx)]
        elif k == "n":
            t = t.narrow(v[1], v[2], v[3])
        elif k == "e":
            t = t.expand(*v[1:])
        elif k == "r":
            t = t.reshape(*v[1:])
        elif k == "v":
            t = t.view(*v[1:])
        elif k == "u":
            t = t.unfold(v[1], v[2], v[3])
        elif k == "as":
            t = torch.as_strided(t, v[1], v[2], v[3])
        elif k == "c":
            t = t.contiguous()
        elif k == "sel":
            t = t.select(v[1], v[2])
        elif k == "sq":
            t = t.squeeze(v[1])
        elif k == "usq":
            t = t.unsqueeze(v[1])
        elif k == "f":
            t = t.flatten(v[1], v[2])
        elif k == "split":
            t = t.split(v[1], v[2])[v[3]]
        elif k == "chunk":
            t = t.chunk(v[1], v[2])[v[3]]
        elif k == "T":
            t = t.t()
        else:
            raise ValueError(k)
    return t


# ---------------------------------------------------------------------------------------------- ops

def _red(a):
    return a.get("reduction", "mean")


OPS = {
    # binary, broadcasting
    "add": lambda v, a: v[0] + v[1],
    "sub": lambda v, a: v[0] - v[1],
    "mul": lambda v, a: v[0] * v[1],
    "div": lambda v, a: v[0] / v[1],
    "pow": lambda v, a: torch.pow(v[0], v[1]),
    "maximum": lambda v, a: torch.maximum(v[0], v[1]),
    "minimum": lambda v, a: torch.minimum(v[0], v[1]),
    "gt": lambda v, a: (v[0] > v[1]).to(D),
    "lt": lambda v, a: (v[0] < v[1]).to(D),
    "eq": lambda v, a: (v[0] == v[1]).to(D),
    # with a Python number
    "add_s": lambda v, a: v[0] + a["s"],
    "sub_s": lambda v, a: v[0] - a["s"],
    "mul_s": lambda v, a: v[0] * a["s"],
    "div_s": lambda v, a: v[0] / a["s"],
    "rsub_s": lambda v, a: a["s"] - v[0],
    "rdiv_s": lambda v, a: a["s"] / v[0],
    "pow_s": lambda v, a: v[0] ** a["p"],
    "clamp": lambda v, a: v[0].clamp(a["min"], a["max"]),
    # unary
    "neg": lambda v, a: -v[0],
    "exp": lambda v, a: v[0].exp(),
    "log": lambda v, a: v[0].log(),
    "sqrt": lambda v, a: v[0].sqrt(),
    "abs": lambda v, a: v[0].abs(),
    "square": lambda v, a: v[0].square(),
    "relu": lambda v, a: F.relu(v[0]),
    "leaky_relu": lambda v, a: F.leaky_relu(v[0], a["slope"]),
    "gelu": lambda v, a: F.gelu(v[0], approximate=a["approximate"]),
    "silu": lambda v, a: F.silu(v[0]),
    "sigmoid": lambda v, a: torch.sigmoid(v[0]),
    "tanh": lambda v, a: torch.tanh(v[0]),
    "softplus": lambda v, a: F.softplus(v[0]),
    # reductions
    "sum": lambda v, a: v[0].sum(dim=a["dims"], keepdim=a["keepdim"]),
    "sum_all": lambda v, a: v[0].sum(),
    "mean": lambda v, a: v[0].mean(dim=a["dims"], keepdim=a["keepdim"]),
    "mean_all": lambda v, a: v[0].mean(),
    "var": lambda v, a: torch.var(v[0], dim=a["dims"], unbiased=a["unbiased"], keepdim=a["keepdim"]),
    "max_dim": lambda v, a: torch.max(v[0], a["dim"], keepdim=a["keepdim"]),
    "min_dim": lambda v, a: torch.min(v[0], a["dim"], keepdim=a["keepdim"]),
    "argmax": lambda v, a: torch.argmax(v[0], a["dim"], keepdim=a["keepdim"]),
    "max_all": lambda v, a: v[0].max(),
    "min_all": lambda v, a: v[0].min(),
    "softmax": lambda v, a: F.softmax(v[0], a["dim"]),
    "log_softmax": lambda v, a: F.log_softmax(v[0], a["dim"]),
    # products
    "matmul": lambda v, a: torch.matmul(v[0], v[1]),
    "linear": lambda v, a: F.linear(v[0], v[1], v[2] if len(v) > 2 else None),
    # nn
    "cross_entropy": lambda v, a: F.cross_entropy(v[0], v[1].long(), reduction=_red(a), ignore_index=a.get("ignore_index", -100),
                                                  label_smoothing=a.get("label_smoothing", 0.0)),
    "mse_loss": lambda v, a: F.mse_loss(v[0], v[1], reduction=_red(a)),
    "bce_logits": lambda v, a: F.binary_cross_entropy_with_logits(v[0], v[1], reduction=_red(a)),
    "layer_norm": lambda v, a: F.layer_norm(v[0], a["shape"], v[1] if len(v) > 1 else None, v[2] if len(v) > 2 else None, a.get("eps", 1e-5)),
    "embedding": lambda v, a: F.embedding(v[0].long(), v[1]),
    # indexing
    "cat": lambda v, a: torch.cat(v, a["dim"]),
    "stack": lambda v, a: torch.stack(v, a["dim"]),
    "gather": lambda v, a: torch.gather(v[0], a["dim"], v[1].long()),
    "index_select": lambda v, a: torch.index_select(v[0], a["dim"], v[1].long()),
    "index_copy": lambda v, a: v[0].index_copy(0, v[1].long(), v[2]),
    "where": lambda v, a: torch.where(v[0] != 0, v[1], v[2]),
    # views only
    "id": lambda v, a: v[0],
}


class Fixture:
    def __init__(self, name):
        self.name, self.tensors, self.meta = name, {}, {}

    def case(self, name, op, inputs, args=None, rtol=None, atol=None):
        """inputs: list of (numpy array, spec) or numpy arrays; spec keys: views (list), grad (bool)."""
        assert name not in self.meta, name
        args = args or {}
        specs, leaves, viewed = [], [], []
        for i, item in enumerate(inputs):
            arr, spec = item if isinstance(item, tuple) else (item, {})
            is_int = arr.dtype == np.int32
            grad = spec.get("grad", not is_int)
            views = spec.get("views", [])
            leaf = torch.tensor(arr.astype(np.int64) if is_int else arr.astype(np.float64), requires_grad=grad)
            self.tensors[f"{name}/x{i}"] = arr
            leaves.append(leaf)
            viewed.append(apply_views(leaf, views))
            specs.append({"int": bool(is_int), "grad": bool(grad), "views": views})
        out = OPS[op](viewed, args)
        r = rng_for(name + "/gy")
        if isinstance(out, tuple):  # (values, indices)
            y, idx = out
            self.tensors[f"{name}/y0"] = f32(y)
            self.tensors[f"{name}/y1"] = idx.numpy().astype(np.int32)
        else:
            y = out
            if y.dtype == torch.int64:
                self.tensors[f"{name}/y"] = y.numpy().astype(np.int32)
            else:
                self.tensors[f"{name}/y"] = f32(y)
        if y.requires_grad:
            gy = normal(r, tuple(y.shape))
            self.tensors[f"{name}/gy"] = gy
            y.backward(torch.tensor(gy.astype(np.float64)))
            for i, leaf in enumerate(leaves):
                if specs[i]["grad"]:
                    g = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
                    self.tensors[f"{name}/gx{i}"] = f32(g)
        meta = {"op": op, "args": args, "inputs": specs}
        if rtol is not None:
            meta["rtol"] = rtol
        if atol is not None:
            meta["atol"] = atol
        self.meta[name] = json.dumps(meta)

    def write(self):
        size = write_safetensors(os.path.join(OUT, self.name + ".safetensors"), self.tensors,
                                 {k: self.meta[k] for k in sorted(self.meta)})
        print(f"{self.name}.safetensors: {len(self.meta)} cases, {size / 1024:.0f} KiB")
        return size


# ---------------------------------------------------------------------------------------------- elementwise

def elementwise():
    fx = Fixture("ops_elementwise")
    T = {"views": [["t", 0, 1]]}
    for op in ["add", "sub", "mul", "div"]:
        def b(name, sa, sb, va=None, vb=None, pos_b=op == "div"):
            r = rng_for(f"{op}/{name}")
            xb = uniform(r, sb, 0.5, 2.0) * np.where(r.random(sb) < 0.5, -1, 1).astype(np.float32) if pos_b else normal(r, sb)
            fx.case(f"{op}/{name}", op, [(normal(r, sa), va or {}), (xb, vb or {})])
        for n in EDGE:
            b(f"same_{n}", (n,), (n,))
        b("row_bcast", (3, 4), (4,))
        b("outer_bcast", (3, 1), (1, 4))
        b("mid_bcast", (2, 3, 4), (3, 1))
        b("scalar_rhs", (5,), ())
        b("scalar_lhs", (), (5,))
        b("both_scalar", (), ())
        b("empty_bcast", (0, 3), (3,))
        b("lead_bcast_17", (2, 1, 17), (3, 17))
        b("transposed_lhs", (4, 3), (3, 4), T)
        b("transposed_both_bcast", (5, 3), (5, 1), T, T)  # (3,5) ∘ (1,5)
        b("sliced_step", (6, 7), (3, 7), {"views": [["s", 0, 0, 6, 2]]})
        b("expanded_lhs", (1, 33), (4, 33), {"views": [["e", 4, 33]]})
    for name, sa, sb in [("same_17", (17,), (17,)), ("bcast", (3, 4), (4,)), ("scalar_exp", (7,), ())]:
        r = rng_for(f"pow/{name}")
        fx.case(f"pow/{name}", "pow", [uniform(r, sa, 0.5, 2.0), normal(r, sb)])
    r = rng_for("pow/negative_base_int_exp")
    fx.case("pow/negative_base_int_exp", "pow", [(normal(r, (9,)), {}), (np.array([2, 3, 1, 0, 2, 3, 4, 1, 2], np.float32), {"grad": False})])
    for op in ["maximum", "minimum"]:
        for name, sa, sb in [("ties_17", (17,), (17,)), ("bcast_ties", (3, 5), (5,)), ("normal_100", (100,), (100,)), ("scalar", (4, 3), ())]:
            r = rng_for(f"{op}/{name}")
            gen = normal if name.startswith("normal") else ties
            fx.case(f"{op}/{name}", op, [gen(r, sa), gen(r, sb)])
    for op in ["maximum", "minimum"]:
        r = rng_for(f"{op}/nan")
        a, b = normal(r, (9,)), normal(r, (9,))
        a[2], b[5], a[7], b[7] = np.nan, np.nan, np.nan, np.nan
        fx.case(f"{op}/nan_propagates", op, [(a, {"grad": False}), (b, {"grad": False})])
    for op in ["gt", "lt", "eq"]:
        for name, sa, sb in [("ties_33", (33,), (33,)), ("bcast", (3, 4), (3, 1)), ("scalar", (7,), ())]:
            r = rng_for(f"{op}/{name}")
            fx.case(f"{op}/{name}", op, [(ties(r, sa), {"grad": False}), (ties(r, sb), {"grad": False})])
    for op, s in [("add_s", 1.5), ("sub_s", -0.75), ("mul_s", -2.5), ("div_s", 4.0), ("rsub_s", 3.0), ("rdiv_s", 2.0)]:
        for n in [0, 1, 17, 100]:
            r = rng_for(f"{op}/{n}")
            x = uniform(r, (n,), 0.5, 2.0) if op == "rdiv_s" else normal(r, (n,))
            fx.case(f"{op}/n{n}", op, [x], {"s": s})
        r = rng_for(f"{op}/transposed")
        x = uniform(r, (5, 3), 0.5, 2.0) if op == "rdiv_s" else normal(r, (5, 3))
        fx.case(f"{op}/transposed", op, [(x, T)], {"s": s})
    for p in [2.0, 3.0, 0.5, -1.0, 0.0, 1.0, 1.5, -2.5]:
        for n in [1, 17, 100]:
            r = rng_for(f"pow_s/{p}/{n}")
            fx.case(f"pow_s/p{p}_pos_n{n}", "pow_s", [uniform(r, (n,), 0.25, 3.0)], {"p": p})
    for p in [2.0, 3.0, 4.0, -1.0]:
        for n in [7, 33]:
            r = rng_for(f"pow_s/{p}/mixed{n}")
            x = normal(r, (n,))
            x[0] = 0 if p > 0 else x[0]
            fx.case(f"pow_s/p{p}_mixed_sign_n{n}", "pow_s", [x], {"p": p})
    r = rng_for("clamp")
    x = np.array([-2, -1, -0.5, 0, 0.25, 0.5, 0.75, 1, 1.5], np.float32)
    fx.case("clamp/boundaries", "clamp", [x], {"min": -0.5, "max": 1.0})
    fx.case("clamp/normal_33", "clamp", [normal(r, (33,))], {"min": -0.3, "max": 0.6})

    unary = {
        "neg": lambda r, s: normal(r, s),
        "exp": lambda r, s: uniform(r, s, -10, 10),
        "log": lambda r, s: uniform(r, s, 1e-3, 50),
        "sqrt": lambda r, s: uniform(r, s, 1e-3, 50),
        "abs": with_zeros,
        "square": lambda r, s: normal(r, s),
        "relu": with_zeros,
        "leaky_relu": with_zeros,
        "gelu": lambda r, s: normal(r, s, 3.0),
        "gelu_tanh": lambda r, s: normal(r, s, 3.0),
        "silu": lambda r, s: normal(r, s, 4.0),
        "sigmoid": lambda r, s: normal(r, s, 6.0),
        "tanh": lambda r, s: normal(r, s, 3.0),
        "softplus": lambda r, s: normal(r, s, 8.0),
    }
    for key, gen in unary.items():
        op, args = key, {}
        if key == "leaky_relu":
            args = {"slope": 0.1}
        if key == "gelu":
            args = {"approximate": "none"}
        if key == "gelu_tanh":
            op, args = "gelu", {"approximate": "tanh"}
        for n in EDGE:
            r = rng_for(f"{key}/{n}")
            fx.case(f"{key}/n{n}", op, [gen(r, (n,))], args)
        r = rng_for(f"{key}/transposed")
        fx.case(f"{key}/transposed", op, [(gen(r, (6, 5)), T)], args)
    # far tails: saturation and stability
    tails = np.array([-40, -20, -9, -5, -1e-3, 0, 1e-3, 5, 9, 20, 40], np.float32)
    for key in ["sigmoid", "tanh", "silu", "gelu", "gelu_tanh", "softplus"]:
        op = "gelu" if key.startswith("gelu") else key
        args = {"approximate": "tanh" if key == "gelu_tanh" else "none"} if op == "gelu" else {}
        fx.case(f"{key}/tails", op, [tails.copy()], args)
    fx.case("exp/tails", "exp", [np.array([-100, -80, -20, 0, 20, 80], np.float32)], rtol=2e-5)
    return fx


# ---------------------------------------------------------------------------------------------- reductions

def reductions():
    fx = Fixture("ops_reductions")
    r = rng_for("reductions")
    x345 = normal(r, (3, 4, 5))
    for op in ["sum", "mean"]:
        for dims in [[0], [1], [2], [-1], [0, 2], [1, 2], [0, 1], [0, 1, 2]]:
            for keep in [False, True]:
                fx.case(f"{op}/345_dims{dims}_keep{int(keep)}", op, [x345], {"dims": dims, "keepdim": keep})
        for n in EDGE:
            rr = rng_for(f"{op}/n{n}")
            # long rows: float32 accumulation in a different order; the error grows like √n·eps·|x|
            fx.case(f"{op}/n{n}", op, [normal(rr, (n,))], {"dims": [0], "keepdim": False}, atol=1e-5)
            fx.case(f"{op}/rows_n{n}", op, [normal(rr, (3, n))], {"dims": [1], "keepdim": True}, atol=1e-5)
            fx.case(f"{op}/cols_n{n}", op, [normal(rr, (n, 5))], {"dims": [0], "keepdim": False}, atol=1e-5)
        fx.case(f"{op}/all_345", op + "_all", [x345])
        fx.case(f"{op}/all_transposed", op + "_all", [(normal(r, (7, 9)), {"views": [["t", 0, 1]]})])
        fx.case(f"{op}/transposed_dim1", op, [(normal(r, (7, 9)), {"views": [["t", 0, 1]]})], {"dims": [1], "keepdim": False})
        fx.case(f"{op}/permuted_dims02", op, [(x345, {"views": [["p", 2, 0, 1]]})], {"dims": [0, 2], "keepdim": True})
        fx.case(f"{op}/empty_dim", op, [np.zeros((3, 0), np.float32)], {"dims": [1], "keepdim": False})
        fx.case(f"{op}/scalar_input", op + "_all", [np.array(2.5, np.float32)])
    for dims, unbiased, keep in [([1], True, False), ([1], False, True), ([0, 2], True, True), ([0, 1, 2], False, False),
                                 ([2], True, False), ([-1], False, False)]:
        fx.case(f"var/345_dims{dims}_unb{int(unbiased)}_keep{int(keep)}", "var", [x345], {"dims": dims, "unbiased": unbiased, "keepdim": keep})
    for n in [1, 7, 17, 100]:
        rr = rng_for(f"var/n{n}")
        # n = 1 with unbiased=True divides by zero: PyTorch gives NaN
        fx.case(f"var/rows_n{n}", "var", [normal(rr, (4, n), 2.0) + 3], {"dims": [1], "unbiased": True, "keepdim": False}, atol=1e-5)
    for op in ["max_dim", "min_dim"]:
        for dim in [0, 1, 2, -1]:
            for keep in [False, True]:
                fx.case(f"{op}/345_dim{dim}_keep{int(keep)}", op, [x345], {"dim": dim, "keepdim": keep})
        for n in [1, 7, 17, 100]:
            rr = rng_for(f"{op}/ties{n}")
            fx.case(f"{op}/ties_last_n{n}", op, [ties(rr, (3, n), 2)], {"dim": 1, "keepdim": False})
            fx.case(f"{op}/ties_first_n{n}", op, [ties(rr, (n, 6), 2)], {"dim": 0, "keepdim": False})
        fx.case(f"{op}/transposed", op, [(normal(r, (5, 8)), {"views": [["t", 0, 1]]})], {"dim": 1, "keepdim": True})
    for dim in [0, 1, -1]:
        rr = rng_for(f"argmax/{dim}")
        fx.case(f"argmax/ties_dim{dim}", "argmax", [(ties(rr, (6, 17), 2), {"grad": False})], {"dim": dim, "keepdim": False})
    fx.case("argmax/keepdim", "argmax", [(x345, {"grad": False})], {"dim": 1, "keepdim": True})
    for op in ["max_all", "min_all"]:
        rr = rng_for(op)
        fx.case(f"{op}/ties", op, [ties(rr, (4, 5), 1)])
        fx.case(f"{op}/normal_100", op, [normal(rr, (100,))])
        fx.case(f"{op}/single", op, [np.array([1.5], np.float32)])
    s0 = np.array(-1.25, np.float32)
    fx.case("sum/scalar_dim0", "sum", [s0], {"dims": [0], "keepdim": False})
    fx.case("mean/scalar_dim_neg1_keep", "mean", [s0], {"dims": [-1], "keepdim": True})
    fx.case("max_dim/scalar", "max_dim", [s0], {"dim": 0, "keepdim": False})
    fx.case("argmax/scalar", "argmax", [(s0, {"grad": False})], {"dim": 0, "keepdim": False})
    rr = rng_for("max_dim/nan")
    xn = normal(rr, (4, 6))
    xn[1, 2] = np.nan
    xn[3, 0] = np.nan
    fx.case("max_dim/nan", "max_dim", [xn], {"dim": 1, "keepdim": False})
    fx.case("argmax/nan", "argmax", [(xn, {"grad": False})], {"dim": 1, "keepdim": False})
    for op in ["softmax", "log_softmax"]:
        rr = rng_for(f"{op}/masked")
        xm = normal(rr, (4, 9))
        xm[0, 3:] = -np.inf  # causal-mask style
        xm[2, ::2] = -np.inf
        fx.case(f"{op}/masked", op, [xm], {"dim": -1})
        fx.case(f"{op}/scalar", op, [s0], {"dim": 0})
        fx.case(f"{op}/empty_rows", op, [np.zeros((0, 5), np.float32)], {"dim": 1})
        fx.case(f"{op}/empty_cols", op, [np.zeros((3, 0), np.float32)], {"dim": 1})
    for op in ["softmax", "log_softmax"]:
        for dim in [0, 1, 2, -1]:
            fx.case(f"{op}/345_dim{dim}", op, [x345], {"dim": dim})
        for n in EDGE:
            rr = rng_for(f"{op}/n{n}")
            fx.case(f"{op}/rows_n{n}", op, [normal(rr, (3, n), 2.0)], {"dim": -1})
        rr = rng_for(f"{op}/large")
        fx.case(f"{op}/large_logits", op, [normal(rr, (4, 17), 50.0)], {"dim": 1})
        fx.case(f"{op}/transposed", op, [(normal(rr, (6, 5)), {"views": [["t", 0, 1]]})], {"dim": 1})
        fx.case(f"{op}/size1_dim", op, [normal(rr, (4, 1))], {"dim": 1})
    return fx


# ---------------------------------------------------------------------------------------------- matmul

def matmul():
    fx = Fixture("ops_matmul")
    T = ["t", -2, -1]

    def mm(name, sa, sb, va=None, vb=None, **tol):
        r = rng_for(f"matmul/{name}")
        fx.case(f"matmul/{name}", "matmul", [(normal(r, sa), {"views": va or []}), (normal(r, sb), {"views": vb or []})], **tol)

    mm("dot_7", (7,), (7,))
    mm("dot_0", (0,), (0,))
    mm("vec_mat", (5,), (5, 3))
    mm("mat_vec", (4, 5), (5,))
    mm("2d_3x4x5", (3, 4), (4, 5))
    mm("2d_1x1x1", (1, 1), (1, 1))
    # k = 33, 100: float32 dot products of that length; error ~ √k·eps·|a||b|
    mm("2d_17x33x15", (17, 33), (33, 15), atol=1e-5)
    mm("2d_7x100x8", (7, 100), (100, 8), atol=2e-5)
    mm("2d_odd_sizes", (15, 17), (17, 7), atol=1e-5)
    mm("transposed_a", (4, 3), (4, 5), [T])
    mm("transposed_b", (3, 4), (5, 4), None, [T])
    mm("transposed_both", (17, 9), (7, 17), [T], [T], atol=1e-5)
    mm("batched", (2, 3, 4), (2, 4, 5))
    mm("batched_bcast", (2, 1, 3, 4), (3, 4, 5))
    mm("mat_batched", (3, 4), (2, 4, 5))
    mm("batched_mat", (2, 3, 4), (4, 5))
    mm("vec_batched", (4,), (2, 4, 5))
    mm("batched_vec", (2, 3, 4), (4,))
    mm("batched_transposed_b", (2, 3, 4), (2, 5, 4), None, [T])
    mm("sliced_step_cols", (3, 8), (4, 5), [["s", 1, 0, 8, 2]])
    mm("permuted_batch", (3, 2, 4, 5), (2, 3, 5, 6), [["p", 1, 0, 2, 3]])
    mm("expanded_b", (3, 4, 5), (1, 5, 2), None, [["e", 3, 5, 2]])
    mm("empty_m", (0, 4), (4, 5))
    mm("empty_k", (3, 0), (0, 5))
    mm("empty_n", (3, 4), (4, 0))
    mm("attention_like", (2, 2, 7, 8), (2, 2, 7, 8), None, [T])
    # bigger than one register/cache block of the GEMM in every dimension; k = 96 (see above for the tolerance)
    mm("2d_65x96x129", (65, 96), (96, 129), atol=3e-5)
    mm("batched_transposed_a_33x40x17", (3, 40, 33), (3, 40, 17), [T], atol=2e-5)

    def lin(name, sx, out, bias=True, vx=None, **tol):
        r = rng_for(f"linear/{name}")
        inputs = [(normal(r, sx), {"views": vx or []}), normal(r, (out, sx[-1] if not vx else sx[0])) * 0.3]
        if bias:
            inputs.append(normal(r, (out,)))
        fx.case(f"linear/{name}", "linear", inputs, **tol)

    lin("2d", (4, 5), 3)
    lin("2d_nobias", (4, 5), 3, bias=False)
    lin("3d", (2, 3, 5), 7)
    lin("1d", (5,), 3)
    lin("1d_nobias", (5,), 3, bias=False)
    lin("17x33_to_15", (17, 33), 15, atol=1e-5)
    lin("transposed_x", (5, 4), 3, vx=[["t", 0, 1]])
    lin("rows_1", (1, 100), 1, atol=1e-5)
    r = rng_for("linear/transposed_weight_sliced_bias")
    # a tied / transposed weight (out, in) seen through .t(), and a bias read with a step
    fx.case("linear/transposed_weight_sliced_bias", "linear",
            [normal(r, (6, 5)), (normal(r, (5, 4)), {"views": [["t", 0, 1]]}), (normal(r, (8,)), {"views": [["s", 0, 0, 8, 2]]})])
    return fx


# ---------------------------------------------------------------------------------------------- nn

def nn_ops():
    fx = Fixture("ops_nn")

    def ce(name, shape, targets_shape, ignore=None, ignore_index=-100, smoothing=0.0, reduction="mean", views=None):
        r = rng_for(f"ce/{name}")
        logits = normal(r, shape, 2.0)
        logical = apply_views(torch.tensor(logits), views or []).shape
        c = logical[0] if len(logical) == 1 else logical[1]
        t = r.integers(0, max(c, 1), targets_shape).astype(np.int32)
        if ignore:
            t.reshape(-1)[ignore] = ignore_index
        args = {"reduction": reduction, "ignore_index": ignore_index, "label_smoothing": smoothing}
        fx.case(f"cross_entropy/{name}", "cross_entropy", [(logits, {"views": views or []}), t], args)

    for red in ["mean", "sum", "none"]:
        ce(f"4x5_{red}", (4, 5), (4,), reduction=red)
        ce(f"7x17_ignore_{red}", (7, 17), (7,), ignore=[1, 4], reduction=red)
        ce(f"6x33_smooth_{red}", (6, 33), (6,), smoothing=0.1, reduction=red)
        ce(f"6x7_smooth_ignore_{red}", (6, 7), (6,), ignore=[0, 5], smoothing=0.2, reduction=red)
        ce(f"ncd_2x5x3_{red}", (2, 5, 3), (2, 3), reduction=red)
        ce(f"ncdd_2x4x3x2_smooth_ignore_{red}", (2, 4, 3, 2), (2, 3, 2), ignore=[3], smoothing=0.1, reduction=red)
        ce(f"empty_{red}", (0, 5), (0,), reduction=red)
    ce("ignore_valid_class", (8, 3), (8,), ignore=[2, 3], ignore_index=2)
    ce("single_class", (4, 1), (4,))
    ce("100_classes", (3, 100), (3,))
    ce("1d_logits", (5,), ())
    ce("transposed_logits", (5, 4), (4,), views=[["t", 0, 1]])
    ce("all_ignored_sum", (3, 4), (3,), ignore=[0, 1, 2], reduction="sum")
    for red in ["mean", "sum", "none"]:
        for name, shape in [("7", (7,)), ("3x5", (3, 5)), ("0", (0,))]:
            r = rng_for(f"mse/{name}/{red}")
            fx.case(f"mse_loss/{name}_{red}", "mse_loss", [normal(r, shape), normal(r, shape)], {"reduction": red})
            fx.case(f"bce_logits/{name}_{red}", "bce_logits", [normal(r, shape, 3.0), uniform(r, shape, 0, 1)], {"reduction": red})
    r = rng_for("bce/large")
    fx.case("bce_logits/large_logits", "bce_logits", [np.array([-60, -20, -3, 0, 3, 20, 60], np.float32), uniform(r, (7,), 0, 1)], {"reduction": "sum"})
    r = rng_for("mse/transposed")
    fx.case("mse_loss/transposed", "mse_loss", [(normal(r, (4, 3)), {"views": [["t", 0, 1]]}), normal(r, (3, 4))], {"reduction": "mean"})

    def ln(name, xshape, nshape, affine=True, eps=1e-5, views=None, **tol):
        r = rng_for(f"ln/{name}")
        inputs = [(normal(r, xshape, 2.0) + 1, {"views": views or []})]
        if affine:
            inputs += [normal(r, nshape) * 0.5 + 1, normal(r, nshape) * 0.5]
        fx.case(f"layer_norm/{name}", "layer_norm", inputs, {"shape": list(nshape), "eps": eps}, **tol)

    ln("4x7", (4, 7), (7,))
    ln("3x17_noaffine", (3, 17), (17,), affine=False)
    ln("2x3x100", (2, 3, 100), (100,), atol=1e-5)
    ln("2x3x4_2d_shape", (2, 3, 4), (3, 4))
    ln("5x1", (5, 1), (1,))
    ln("6x33_eps", (6, 33), (33,), eps=1e-3)
    ln("transposed_input", (5, 3), (5,), views=[["t", 0, 1]])
    ln("0x8", (0, 8), (8,))

    def emb(name, idx_shape, rows, dim):
        r = rng_for(f"emb/{name}")
        idx = r.integers(0, rows, idx_shape).astype(np.int32)
        fx.case(f"embedding/{name}", "embedding", [idx, normal(r, (rows, dim))])

    emb("5_repeats", (12,), 5, 3)
    emb("2x3_17dim", (2, 3), 10, 17)
    emb("empty", (0,), 4, 5)
    emb("scalar_index", (), 4, 7)
    return fx


# ---------------------------------------------------------------------------------------------- indexing

def indexing():
    fx = Fixture("ops_indexing")
    r = rng_for("indexing")
    fx.case("cat/dim0", "cat", [normal(r, (2, 3)), normal(r, (4, 3)), normal(r, (1, 3))], {"dim": 0})
    fx.case("cat/dim1", "cat", [normal(r, (2, 3)), normal(r, (2, 17))], {"dim": 1})
    fx.case("cat/dim_neg1_3d", "cat", [normal(r, (2, 3, 1)), normal(r, (2, 3, 7))], {"dim": -1})
    fx.case("cat/empty_piece", "cat", [normal(r, (2, 3)), normal(r, (0, 3)), normal(r, (1, 3))], {"dim": 0})
    fx.case("cat/transposed_piece", "cat", [(normal(r, (3, 2)), {"views": [["t", 0, 1]]}), normal(r, (2, 5))], {"dim": 1})
    fx.case("cat/single", "cat", [normal(r, (3, 4))], {"dim": 1})
    for dim in [0, 1, 2, -1]:
        fx.case(f"stack/dim{dim}", "stack", [normal(r, (3, 4)), normal(r, (3, 4)), normal(r, (3, 4))], {"dim": dim})
    fx.case("stack/1d", "stack", [normal(r, (7,)), normal(r, (7,))], {"dim": 0})
    fx.case("stack/scalars", "stack", [np.array(1.5, np.float32), np.array(-2.0, np.float32)], {"dim": 0})

    def gather(name, xshape, ishape, dim, views=None):
        rr = rng_for(f"gather/{name}")
        x = normal(rr, xshape)
        xs = apply_views(torch.tensor(x), views or []).shape
        idx = rr.integers(0, xs[dim], ishape).astype(np.int32)
        fx.case(f"gather/{name}", "gather", [(x, {"views": views or []}), idx], {"dim": dim})

    gather("dim0", (4, 5), (6, 5), 0)
    gather("dim1_smaller", (4, 5), (3, 2), 1)
    gather("dim_neg1_3d", (2, 3, 17), (2, 3, 4), -1)
    gather("transposed", (5, 4), (4, 3), 1, [["t", 0, 1]])
    gather("empty", (3, 4), (3, 0), 1)

    def isel(name, xshape, n, dim, views=None):
        rr = rng_for(f"isel/{name}")
        x = normal(rr, xshape)
        xs = apply_views(torch.tensor(x), views or []).shape
        idx = rr.integers(0, xs[dim], (n,)).astype(np.int32)
        fx.case(f"index_select/{name}", "index_select", [(x, {"views": views or []}), idx], {"dim": dim})

    isel("dim0_repeats", (5, 3), 8, 0)
    isel("dim1", (4, 6), 3, 1)
    isel("dim2_3d", (2, 3, 7), 5, 2)
    isel("empty_index", (4, 3), 0, 0)
    isel("transposed", (6, 4), 4, 0, [["t", 0, 1]])

    def icopy(name, xshape, n, views=None):
        rr = rng_for(f"icopy/{name}")
        x = normal(rr, xshape)
        rows = apply_views(torch.tensor(x), views or []).shape
        idx = rr.permutation(rows[0])[:n].astype(np.int32)  # distinct rows, in no order
        fx.case(f"index_copy/{name}", "index_copy", [(x, {"views": views or []}), idx, normal(rr, (n, rows[1]))])

    icopy("rows", (7, 5), 3)
    icopy("all_rows", (4, 3), 4)
    icopy("transposed", (6, 9), 4, [["t", 0, 1]])
    icopy("empty_index", (4, 3), 0)

    def where(name, sc, sa, sb):
        rr = rng_for(f"where/{name}")
        cond = (rr.random(sc) < 0.5).astype(np.float32)
        fx.case(f"where/{name}", "where", [(cond, {"grad": False}), normal(rr, sa), normal(rr, sb)])

    where("same", (17,), (17,), (17,))
    where("bcast", (3, 1), (3, 4), (4,))
    where("scalar_b", (2, 5), (2, 5), ())
    return fx


# ---------------------------------------------------------------------------------------------- views

def views():
    fx = Fixture("ops_views")

    def v(name, shape, steps, rtol=None):
        r = rng_for(f"view/{name}")
        fx.case(f"view/{name}", "id", [(normal(r, shape), {"views": steps})])

    v("reshape_contiguous", (3, 4), [["r", 4, 3]])
    v("reshape_infer", (3, 4), [["r", -1]])
    v("reshape_noncontiguous_copies", (3, 4), [["t", 0, 1], ["r", 2, 6]])
    v("view_of_sliced", (4, 6), [["s", 1, 0, 3, 1], ["v", 2, 2, 3]])
    v("permute_3d", (2, 3, 4), [["p", 2, 0, 1]])
    v("transpose_then_reshape", (2, 3, 4), [["t", 0, 2], ["r", 4, 6]])
    v("T_2d", (3, 5), [["T"]])
    v("narrow", (5, 7), [["n", 1, 2, 4]])
    v("narrow_empty", (5, 7), [["n", 0, 5, 0]])
    v("slice_step2", (9, 4), [["s", 0, 1, 9, 2]])
    v("slice_step3_cols", (4, 17), [["s", 1, 0, 17, 3]])
    v("slice_negative_start", (10,), [["s", 0, -4, 10, 1]])
    v("slice_then_transpose", (6, 8), [["s", 0, 0, 6, 2], ["t", 0, 1]])
    v("expand_cols", (3, 1), [["e", 3, 5]])
    v("expand_new_lead", (4,), [["e", 2, 3, 4]])
    v("expand_keep_minus1", (2, 1, 3), [["e", -1, 4, -1]])
    v("unfold_overlap", (10,), [["u", 0, 3, 1]])
    v("unfold_nonoverlap", (12,), [["u", 0, 3, 3]])
    v("unfold_gaps", (13,), [["u", 0, 3, 4]])
    v("unfold_conv2d", (1, 2, 6, 7), [["u", 2, 3, 1], ["u", 3, 3, 2]])
    v("unfold_vit_patches", (1, 3, 8, 8), [["u", 2, 4, 4], ["u", 3, 4, 4], ["p", 0, 2, 3, 1, 4, 5], ["r", 1, 4, 48]])
    v("unfold_then_sum_windows", (2, 17), [["u", 1, 5, 2]])
    v("as_strided_windows", (10,), [["as", [4, 3], [2, 1], 0]])
    v("as_strided_offset", (4, 5), [["as", [3, 3], [5, 1], 6]])
    v("as_strided_overlap_2d", (3, 6), [["as", [2, 4, 3], [6, 1, 1], 0]])
    v("contiguous_of_permuted", (2, 3, 4), [["p", 1, 2, 0], ["c"]])
    v("select", (3, 4, 5), [["sel", 1, 2]])
    v("select_negative", (3, 4), [["sel", 0, -1]])
    v("squeeze_unsqueeze", (3, 1, 4), [["sq", 1], ["usq", 0]])
    v("flatten", (2, 3, 4), [["f", 1, 2]])
    v("split_middle", (7, 3), [["split", 3, 0, 1]])
    v("split_last_short", (7, 3), [["split", 3, 0, 2]])
    v("chunk", (5, 6), [["chunk", 3, 1, 1]])
    v("expand_scalar", (), [["e", 3, 2]])
    v("reshape_scalar", (), [["r", 1, 1]])
    v("slice_empty", (5, 3), [["s", 0, 4, 2, 1]])
    v("slice_step_past_end", (5, 3), [["s", 0, 1, 50, 3]])
    v("unfold_whole_dim", (5,), [["u", 0, 5, 1]])
    v("unfold_of_transposed", (4, 9), [["t", 0, 1], ["u", 0, 4, 2]])
    v("narrow_permute_narrow", (3, 4, 5), [["n", 0, 1, 2], ["p", 2, 1, 0], ["n", 1, 1, 3]])
    return fx


# ---------------------------------------------------------------------------------------------- optimizers

def optim():
    tensors, meta = {}, {}
    shapes = [(7,), (3, 5)]
    steps = 4
    configs = {
        "sgd": ("sgd", {"lr": 0.1}),
        "sgd_momentum": ("sgd", {"lr": 0.1, "momentum": 0.9}),
        "sgd_momentum_dampening": ("sgd", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1}),
        "sgd_nesterov_wd": ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
        "sgd_wd": ("sgd", {"lr": 0.1, "weight_decay": 0.1}),
        "adam": ("adam", {"lr": 1e-2}),
        "adam_wd": ("adam", {"lr": 1e-2, "weight_decay": 0.1}),
        "adam_betas_eps": ("adam", {"lr": 3e-2, "betas": [0.8, 0.99], "eps": 1e-6}),
        "adamw": ("adamw", {"lr": 1e-2, "weight_decay": 0.1}),
        "adamw_betas": ("adamw", {"lr": 5e-2, "betas": [0.85, 0.95], "eps": 1e-6, "weight_decay": 0.5}),
        "rmsprop": ("rmsprop", {"lr": 1e-2}),
        "rmsprop_centered": ("rmsprop", {"lr": 1e-2, "centered": True}),
        "rmsprop_momentum": ("rmsprop", {"lr": 1e-2, "momentum": 0.9}),
        "rmsprop_centered_momentum_wd": ("rmsprop", {"lr": 1e-2, "alpha": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    }
    for name, (kind, hp) in configs.items():
        r = rng_for(f"optim/{name}")
        init = [normal(r, s) for s in shapes]
        params = [torch.tensor(p.astype(np.float64), requires_grad=True) for p in init]
        kw = dict(hp)
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}[kind](params, **kw)
        for i, p in enumerate(init):
            tensors[f"{name}/p{i}/init"] = p
        for s in range(steps):
            for i, p in enumerate(params):
                g = normal(r, shapes[i])
                tensors[f"{name}/p{i}/grad{s}"] = g
                p.grad = torch.tensor(g.astype(np.float64))
            opt.step()
            for i, p in enumerate(params):
                tensors[f"{name}/p{i}/step{s}"] = f32(p)
        meta[name] = json.dumps({"type": kind, "hp": hp, "steps": steps, "params": len(shapes)})

    # Learning-rate schedules: the learning rate after 0, 1, ..., n-1 scheduler steps.
    def lrs(sched, opt, n):
        out = []
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return np.array(out, np.float32)

    def dummy(lr):
        return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)

    o = dummy(0.5)
    tensors["sched/step_lr/lr"] = lrs(torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), o, 12)
    meta["sched/step_lr"] = json.dumps({"type": "step", "base_lr": 0.5, "step_size": 3, "gamma": 0.5})
    base, warm, total, low = 0.1, 5, 20, 0.01

    def cosine_warmup(step):  # the formula Nabla documents (warm-up to the base rate, then cosine to min)
        if step < warm:
            return (step + 1) / warm
        if step >= total:
            return low / base
        prog = (step - warm) / (total - warm)
        return (low + 0.5 * (base - low) * (1 + math.cos(math.pi * prog))) / base

    o = dummy(base)
    tensors["sched/cosine_warmup/lr"] = lrs(torch.optim.lr_scheduler.LambdaLR(o, cosine_warmup), o, 25)
    # Independent references for the two pieces from torch's own schedulers: LinearLR for the warm-up
    # (factor 1/W at step 0 rising to 1 at step W-1) and CosineAnnealingLR (T_max = total - warmup) after it.
    o = dummy(base)
    tensors["sched/cosine_warmup/torch_linear"] = lrs(torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / warm, end_factor=1.0, total_iters=warm - 1), o, warm)
    o = dummy(base)
    tensors["sched/cosine_warmup/torch_cosine"] = lrs(torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total - warm, eta_min=low), o, total - warm + 1)
    meta["sched/cosine_warmup"] = json.dumps({"type": "cosine_warmup", "base_lr": base, "warmup": warm, "total": total, "min_lr": low})

    # Parameter groups with their own learning rates under one schedule (discriminative learning rates for
    # fine-tuning): LambdaLR scales each group's own initial rate by the same factor. AdamW, group 0 at the
    # optimizer's rate and weight decay, group 1 at a tenth of the rate and no decay; the parameters after
    # each step and each group's rate before it.
    r = rng_for("sched/groups")
    init = [normal(r, s) for s in shapes]
    params = [torch.tensor(p.astype(np.float64), requires_grad=True) for p in init]
    group_lrs = [base, base / 10]
    o = torch.optim.AdamW([{"params": [params[0]]}, {"params": [params[1]], "lr": group_lrs[1], "weight_decay": 0.0}], lr=base, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(o, cosine_warmup)
    group_steps = 8
    rates = []
    for i, p in enumerate(init):
        tensors[f"sched/groups/p{i}/init"] = p
    for s in range(group_steps):
        rates.append([g["lr"] for g in o.param_groups])
        for i, p in enumerate(params):
            g = normal(r, shapes[i])
            tensors[f"sched/groups/p{i}/grad{s}"] = g
            p.grad = torch.tensor(g.astype(np.float64))
        o.step()
        sched.step()
        for i, p in enumerate(params):
            tensors[f"sched/groups/p{i}/step{s}"] = f32(p)
    tensors["sched/groups/lr"] = np.array(rates, np.float32)  # (steps, groups)
    meta["sched/groups"] = json.dumps({"type": "cosine_warmup", "base_lr": base, "group_lrs": group_lrs, "weight_decay": [0.1, 0.0],
                                       "warmup": warm, "total": total, "min_lr": low, "steps": group_steps, "params": len(shapes)})

    for name, max_norm in [("clips", 1.0), ("no_clip", 100.0)]:
        r = rng_for(f"clip/{name}")
        params = []
        for i, s in enumerate(shapes):
            p = torch.zeros(s, dtype=D, requires_grad=True)
            g = normal(r, s)
            p.grad = torch.tensor(g.astype(np.float64))
            tensors[f"clip/{name}/g{i}/before"] = g
            params.append(p)
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        for i, p in enumerate(params):
            tensors[f"clip/{name}/g{i}/after"] = f32(p.grad)
        tensors[f"clip/{name}/norm"] = np.array([norm.item()], np.float32)
        meta[f"clip/{name}"] = json.dumps({"max_norm": max_norm, "params": len(shapes)})
    size = write_safetensors(os.path.join(OUT, "optim.safetensors"), tensors, meta)
    print(f"optim.safetensors: {len(meta)} cases, {size / 1024:.0f} KiB")
    return size


# ---------------------------------------------------------------------------------------------- printing

def formatting():
    tensors, meta = {}, {}
    nan, inf = float("nan"), float("inf")
    cases = {
        "matrix": torch.tensor([[0.1, -2.0], [3.25, 4.0]]),
        "integral": torch.tensor([1.0, 2.0, 3.0]),
        "zeros": torch.zeros(3),
        "scalar": torch.tensor(3.5),
        "scalar_nan": torch.tensor(nan),
        "sci_small": torch.tensor([1e-5, 1.0, 123456.0]),
        "sci_ratio": torch.tensor([0.001, 1000.0]),
        "sci_large_integral": torch.tensor([1e8 + 8, 1.0]),
        "mixed_sign": torch.tensor([-1.5, 2.25]),
        "wide_fixed": torch.tensor([123.456, 0.5]),
        "nonfinite": torch.tensor([nan, inf, -inf, 1.5]),
        "nonfinite_integral": torch.tensor([nan, 1.0]),
        "negative_zero": torch.tensor([-0.0, 0.0]),
        "ties_at_5th_digit": torch.tensor([0.03125, 1.03125, -0.15625]),
        "int32": torch.tensor([1, -2, 30], dtype=torch.int32),
        "empty": torch.zeros(0, 3),
        "rank3": torch.arange(12.0).reshape(2, 2, 3),
        "rank3_fractional": torch.arange(12.0).reshape(2, 2, 3) / 4 - 1,
        "wraps_long_row": torch.arange(30.0) + 0.5,
        "wraps_matrix": torch.arange(24.0).reshape(2, 12) * 1.5,
        "summarized_vector": torch.arange(2000.0),
        "summarized_matrix": torch.arange(2000.0).reshape(40, 50) / 7,
        "summarized_int": torch.arange(3000, dtype=torch.int32).reshape(30, 100),
        "column": torch.arange(8.0).reshape(8, 1),
        "requires_grad": torch.tensor([1.0, 2.0], requires_grad=True),
    }
    for name, t in cases.items():
        is_int = t.dtype == torch.int32
        tensors[f"fmt/{name}"] = t.detach().numpy().astype(np.int32 if is_int else np.float32)
        meta[f"fmt/{name}"] = json.dumps({"repr": repr(t), "requires_grad": t.requires_grad, "int": is_int})
    size = write_safetensors(os.path.join(OUT, "format.safetensors"), tensors, meta)
    print(f"format.safetensors: {len(meta)} cases, {size / 1024:.0f} KiB")
    return size


def main():
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for build in [elementwise, reductions, matmul, nn_ops, indexing, views]:
        total += build().write()
    total += optim()
    total += formatting()
    print(f"total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
