#!/usr/bin/python3
"""LoRA fixtures for tests/Nabla.Tests/NN/LoraTests.cs, following PEFT's LoRA (peft/tuners/lora/layer.py, model.py,
config.py and utils/save_and_load.py) by hand, since PyPI's peft is not installable here:

  Fixtures/lora/linear.safetensors  one wrapped nn.Linear: x, the base weight and bias, lora_A (r, in), lora_B
                                    (out, r), scaling α/√r (use_rslora), the output y = base(x) + lora_B(lora_A(x))·s
                                    and the gradients of sum(y·dy) w.r.t. x, lora_A and lora_B
  Fixtures/lora/gpt2_adapter/       an adapter for the tiny GPT-2 of Fixtures/hf_gpt2/base, laid out as PEFT's
                                    save_pretrained writes it: adapter_model.safetensors (names
                                    "base_model.model.transformer.h.N.attn.c_attn.lora_A.weight": PEFT wraps the
                                    GPT2LMHeadModel as base_model.model and drops the adapter name "default" when
                                    saving; lora_A stored (r, in) and lora_B (out, r) although GPT-2's Conv1D base
                                    weights are (in, out): PEFT's lora_A/lora_B are nn.Linear layers whatever the base,
                                    and fan_in_fan_out only transposes B·A when merging into a Conv1D weight) and
                                    adapter_config.json with the keys PEFT 0.10's LoraConfig writes
  Fixtures/lora/gpt2_expected.safetensors  token ids and the logits of base + adapter (unmerged)
  Fixtures/lora/gpt2_adapter_bias/  an adapter with bias="all" and modules_to_save=["ln_f"]: besides A and B it holds
                                    every bias of the model (a wrapped layer's as "<layer>.base_layer.bias") and ln_f's
                                    weight and bias, named as get_peft_model_state_dict names them
  Fixtures/lora/gpt2_bias_expected.safetensors  token ids and the logits of base + that adapter
  Fixtures/lora/gpt2_adapter_tied/  an adapter on the tied token embedding and head with ensure_weight_tying (PEFT
                                    0.18: lora.Embedding on transformer.wte, whose lora_embedding_A (r, V) and
                                    lora_embedding_B (C, r) the lm_head's lora.Linear shares as lora_A = Bᵀ, lora_B = Aᵀ;
                                    save_pretrained writes both names, the head's as clones) plus c_attn adapters
  Fixtures/lora/gpt2_adapter_tokens/ c_attn adapters plus trainable_token_indices (PEFT 0.15's TrainableTokensLayer
                                    on transformer.wte, tied to lm_head as PEFT ties it: both read the table whose
                                    rows token_indices are trainable_tokens_delta), saved as
                                    "...wte.token_adapter.trainable_tokens_delta"
  Fixtures/lora/gpt2_tokens_expected.safetensors  token ids, targets, logits, loss and the gradient of the delta
  Fixtures/lora/gpt2_tied_expected.safetensors  token ids, targets, the logits of base + that adapter, the loss and
                                    its gradients w.r.t. the embedding's A and B (the sums of what PEFT's two tied
                                    leaves receive: the embedding's own and the head's, transposed)
  Fixtures/lora/dora_linear.safetensors  one nn.Linear wrapped as PEFT's DoRA layer (lora/dora.py DoraLinearLayer:
                                    magnitude m = ‖W + s·B·A‖ per output row at first, the norm detached), with m, A
                                    and B moved from their start: x, W, b, A, B, m, y, the gradients of sum(y·dy)
                                    w.r.t. x, A, B and m, and the merged weight m ⊙ (W + s·B·A) / ‖W + s·B·A‖
  Fixtures/lora/gpt2_adapter_dora/  a DoRA adapter (use_dora) on c_attn and mlp.c_proj, the Conv1D layers with
                                    fan_in_fan_out; the magnitudes saved as "...lora_magnitude_vector", as
                                    get_peft_model_state_dict renames PEFT's lora_magnitude_vector.default.weight
  Fixtures/lora/gpt2_dora_expected.safetensors  token ids, targets, the logits of base + that adapter, the loss and
                                    its gradient w.r.t. the first block's c_attn magnitude

Run with Debian's python3-torch:  /usr/bin/python3 tests/reference/make_lora_fixture.py
"""
import copy
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn

from gpt2_torch import GPT2LMHeadModel
from safetensors_io import write_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Nabla.Tests", "Fixtures")
OUT = os.path.join(FIXTURES, "lora")
BASE = os.path.join(FIXTURES, "hf_gpt2", "base")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "I32": np.int32, "I64": np.int64, "U8": np.uint8}
    return {name: torch.from_numpy(np.frombuffer(data[e["data_offsets"][0]:e["data_offsets"][1]],
                                                 dtype=dtypes[e["dtype"]]).reshape(e["shape"]).copy())
            for name, e in header.items() if name != "__metadata__"}


class LoraLayer(nn.Module):
    """PEFT's lora.Linear for one adapter: base_layer, lora_A = Linear(in, r, bias=False) initialised
    kaiming_uniform_(a=√5), lora_B = Linear(r, out, bias=False) initialised to zeros, scaling α/r or α/√r
    (use_rslora), result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling. For a Conv1D base
    (fan_in_fan_out) in_features, out_features come from its (in, out) weight."""

    def __init__(self, base_layer, r, alpha, use_rslora, fan_in_fan_out):
        super().__init__()
        self.base_layer = base_layer
        in_features, out_features = base_layer.weight.shape if fan_in_fan_out else base_layer.weight.shape[::-1]
        self.lora_A = nn.Linear(in_features, r, bias=False)
        self.lora_B = nn.Linear(r, out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / math.sqrt(r) if use_rslora else alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling


def matches(name, targets):
    """PEFT's check_target_module_exists for a list of targets: the name equals one or ends with "." + one."""
    return any(name == t or name.endswith("." + t) for t in targets)


def wrapped_linear_tensors(layer, gen, n_in):
    """A random input x (2, 4, in), the layer's output y and the gradients of sum(y·dy) for a random dy, with the
    layer's weights: what both wrapped-linear fixtures hold."""
    x = torch.randn(2, 4, n_in, generator=gen, requires_grad=True)
    y = layer(x)
    dy = torch.randn(y.shape, generator=gen)
    (y * dy).sum().backward()
    return {
        "x": x.detach().numpy(), "weight": layer.base_layer.weight.detach().numpy(),
        "bias": layer.base_layer.bias.detach().numpy(),
        "lora_A": layer.lora_A.weight.detach().numpy(), "lora_B": layer.lora_B.weight.detach().numpy(),
        "y": y.detach().numpy(), "dy": dy.numpy(), "dx": x.grad.numpy(),
        "dlora_A": layer.lora_A.weight.grad.numpy(), "dlora_B": layer.lora_B.weight.grad.numpy(),
    }


def linear_case(gen):
    r, alpha, n_in, n_out = 3, 5.0, 7, 6
    layer = LoraLayer(nn.Linear(n_in, n_out), r, alpha, use_rslora=True, fan_in_fan_out=False)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))  # B nonzero, so that every gradient is
    write_safetensors(os.path.join(OUT, "linear.safetensors"), wrapped_linear_tensors(layer, gen, n_in),
                      {"r": str(r), "lora_alpha": str(alpha), "use_rslora": "true"})


def load_base():
    config = json.load(open(os.path.join(BASE, "config.json")))
    model = GPT2LMHeadModel(vocab_size=config["vocab_size"], n_positions=config["n_positions"], n_embd=config["n_embd"],
                            n_layer=config["n_layer"], n_head=config["n_head"], eps=config["layer_norm_epsilon"])
    missing, unexpected = model.transformer.load_state_dict(read_safetensors(os.path.join(BASE, "model.safetensors")), strict=False)
    assert not unexpected and all(m.endswith("masked_bias") for m in missing), (missing, unexpected)
    return config, model.eval()


def wrap(model, r, alpha, targets, use_rslora, modules_to_save=(), layer=LoraLayer):
    """PeftModel.base_model (LoraModel).model = the GPT2LMHeadModel, its targets wrapped in LoRA layers (or the given
    layer class: DoraLayer) and its modules to save in ModulesToSaveWrapper."""
    peft_model = nn.Module()
    peft_model.base_model = nn.Module()
    peft_model.base_model.model = model
    for name, module in list(model.named_modules()):
        parent, _, child = name.rpartition(".")
        if matches(name, targets):
            setattr(model.get_submodule(parent), child, layer(module, r, alpha, use_rslora=use_rslora, fan_in_fan_out=True))
        elif matches(name, modules_to_save):
            setattr(model.get_submodule(parent), child, ModulesToSaveWrapper(module))
    return peft_model


def write_adapter(folder, tensors, r, alpha, targets, use_rslora, bias="none", modules_to_save=None, ensure_weight_tying=None,
                  trainable_token_indices=None, use_dora=False):
    """adapter_model.safetensors and adapter_config.json with the keys PEFT 0.10's LoraConfig writes (and PEFT 0.18's
    ensure_weight_tying and 0.15's trainable_token_indices when given)."""
    directory = os.path.join(OUT, folder)
    os.makedirs(directory, exist_ok=True)
    write_safetensors(os.path.join(directory, "adapter_model.safetensors"), tensors, {"format": "pt"})
    adapter_config = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "hf_gpt2/base", "bias": bias,
        "fan_in_fan_out": True, "inference_mode": True, "init_lora_weights": True, "layer_replication": None,
        "layers_pattern": None, "layers_to_transform": None, "loftq_config": {}, "lora_alpha": alpha,
        "lora_dropout": 0.0, "megatron_config": None, "megatron_core": "megatron.core", "modules_to_save": modules_to_save,
        "peft_type": "LORA", "r": r, "rank_pattern": {}, "revision": None, "target_modules": targets,
        "task_type": "CAUSAL_LM", "use_dora": use_dora, "use_rslora": use_rslora,
    }
    if ensure_weight_tying is not None:
        adapter_config["ensure_weight_tying"] = ensure_weight_tying
    if trainable_token_indices is not None:
        adapter_config["trainable_token_indices"] = trainable_token_indices
    with open(os.path.join(directory, "adapter_config.json"), "w") as f:
        json.dump(adapter_config, f, indent=2, sort_keys=True)


def write_expected(name, model, vocab_size, gen):
    """Token ids and the logits the wrapped model gives for them."""
    ids = torch.randint(0, vocab_size, (2, 9), generator=gen)
    with torch.no_grad():
        logits = model(ids)
    write_safetensors(os.path.join(OUT, name), {"ids": ids.to(torch.int32).numpy(), "logits": logits.numpy()}, {})


def gpt2_case(gen):
    config, model = load_base()
    r, alpha, targets = 4, 8, ["c_attn", "attn.c_proj", "mlp.c_fc"]
    peft_model = wrap(model, r, alpha, targets, use_rslora=False)
    adapter = {}
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if ".lora_" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))  # a trained-looking adapter: B no longer zero
                adapter[name] = p.detach().numpy().copy()
    assert len(adapter) == 2 * 3 * config["n_layer"]
    write_adapter("gpt2_adapter", adapter, r, alpha, targets, use_rslora=False)
    write_expected("gpt2_expected.safetensors", model, config["vocab_size"], gen)


class ModulesToSaveWrapper(nn.Module):
    """PeftModel's ModulesToSaveWrapper for one adapter: the frozen original and a trained copy, which the forward uses."""

    def __init__(self, module):
        super().__init__()
        self.original_module = module
        self.modules_to_save = nn.ModuleDict({"default": copy.deepcopy(module)})

    def forward(self, x):
        return self.modules_to_save["default"](x)


def peft_state_dict(peft_model, bias):
    """get_peft_model_state_dict for LoRA (peft/utils/save_and_load.py): the lora_ tensors, with bias="all" every
    key holding "bias", then each ModulesToSaveWrapper's keys replaced by its trained copy's under the module's own
    name, and the adapter name removed."""
    state = {k: v for k, v in peft_model.state_dict().items()
             # transformers' GPT-2 registers its attention masks ("attn.bias", "attn.masked_bias") as non-persistent
             # buffers, absent from the state dict; this script's model keeps them for its older checkpoints
             if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    assert bias in ("none", "all")
    out = {k: v for k, v in state.items() if "lora_" in k or (bias == "all" and "bias" in k)}
    for name, module in peft_model.named_modules():
        if isinstance(module, ModulesToSaveWrapper):
            for stale in [k for k in out if k.startswith(name + ".")]:
                del out[stale]
            for k in module.modules_to_save["default"].state_dict():
                out[f"{name}.{k}"] = state[f"{name}.modules_to_save.default.{k}"]
    assert all(".default" not in k for k in out)  # the adapter name: this script's LoRA layers do not use it
    return {k: v.detach().numpy().copy() for k, v in out.items()}


class LoraEmbeddingLayer(nn.Module):
    """PEFT's lora.Embedding for one adapter: lora_embedding_A (r, V) initialised to zeros, lora_embedding_B (C, r)
    drawn N(0, 1), both in ParameterDicts keyed by the adapter name; result = base_layer(x) + (embedding(x, Aᵀ) @ Bᵀ) *
    scaling (no dropout on an embedding's adapter)."""

    def __init__(self, base_layer, r, alpha):
        super().__init__()
        self.base_layer = base_layer
        vocab, dim = base_layer.weight.shape
        self.lora_embedding_A = nn.ParameterDict({"default": nn.Parameter(torch.randn(r, vocab))})
        self.lora_embedding_B = nn.ParameterDict({"default": nn.Parameter(torch.randn(dim, r))})
        nn.init.zeros_(self.lora_embedding_A["default"])
        nn.init.normal_(self.lora_embedding_B["default"])
        self.scaling = alpha / r

    def forward(self, x):
        after_a = nn.functional.embedding(x, self.lora_embedding_A["default"].T)
        return self.base_layer(x) + (after_a @ self.lora_embedding_B["default"].T) * self.scaling


def gpt2_tied_case(gen):
    """ensure_weight_tying with the head targeted (LoraModel._add_targets_to_tie): the embedding takes the adapter and
    the head's lora.Linear is built on it (_create_and_replace's tied_adapter: lora_A = Parameter(Bᵀ), lora_B =
    Parameter(Aᵀ), views of the same storage)."""
    config, model = load_base()
    r, alpha = 2, 4
    peft_model = wrap(model, r, alpha, ["c_attn"], use_rslora=False)
    wte = LoraEmbeddingLayer(model.transformer.wte, r, alpha)
    model.transformer.wte = wte
    head = LoraLayer(model.lm_head, r, alpha, use_rslora=False, fan_in_fan_out=False)
    head.lora_A.weight = nn.Parameter(wte.lora_embedding_B["default"].t())
    head.lora_B.weight = nn.Parameter(wte.lora_embedding_A["default"].t())
    model.lm_head = head
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if ".lora_" in name and not name.startswith("base_model.model.lm_head."):  # the head's are views of wte's
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    assert torch.equal(head.lora_B.weight, wte.lora_embedding_A["default"].t())
    state = {k.replace(".default", ""): v.detach().numpy().copy() for k, v in peft_model.state_dict().items() if "lora_" in k}
    assert sorted(k for k in state if "wte" in k or "lm_head" in k) == [
        "base_model.model.lm_head.lora_A.weight", "base_model.model.lm_head.lora_B.weight",
        "base_model.model.transformer.wte.lora_embedding_A", "base_model.model.transformer.wte.lora_embedding_B"]
    # What PEFT 0.18 saves after _add_targets_to_tie: the head's name replaced by the embedding's full name.
    write_adapter("gpt2_adapter_tied", state, r, alpha, ["c_attn", "transformer.wte"], use_rslora=False,
                  ensure_weight_tying=True)
    ids = torch.randint(0, config["vocab_size"], (2, 9), generator=gen)
    targets = torch.randint(0, config["vocab_size"], (2, 9), generator=gen)
    logits = model(ids)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    grad_a = wte.lora_embedding_A["default"].grad + head.lora_B.weight.grad.t()
    grad_b = wte.lora_embedding_B["default"].grad + head.lora_A.weight.grad.t()
    write_safetensors(os.path.join(OUT, "gpt2_tied_expected.safetensors"), {
        "ids": ids.to(torch.int32).numpy(), "targets": targets.to(torch.int32).numpy(), "logits": logits.detach().numpy(),
        "loss": loss.detach().reshape(1).numpy(), "grad_lora_embedding_A": grad_a.numpy(), "grad_lora_embedding_B": grad_b.numpy()}, {})


class TrainableTokensLayer(nn.Module):
    """PEFT's TrainableTokensLayer for one adapter: trainable_tokens_delta (n, C), initialised to the base's rows
    token_indices (values, not differences), in a ParameterDict keyed by the adapter name; the layer reads
    base_layer.weight.index_copy(0, token_indices, delta), by F.embedding for an embedding, F.linear for the tied head."""

    def __init__(self, base_layer, token_indices, tied_adapter=None):
        super().__init__()
        self.base_layer = base_layer
        self.token_indices = token_indices
        if tied_adapter is None:
            self.trainable_tokens_delta = nn.ParameterDict(
                {"default": nn.Parameter(base_layer.weight[token_indices].detach().clone())})
        else:
            self.tied = [tied_adapter]  # shares the embedding's delta; a list, so the parameter is not registered twice

    def delta(self):
        return self.tied[0].trainable_tokens_delta["default"] if hasattr(self, "tied") else self.trainable_tokens_delta["default"]

    def forward(self, x):
        weight = self.base_layer.weight.index_copy(0, torch.tensor(self.token_indices), self.delta())
        return nn.functional.embedding(x, weight) if isinstance(self.base_layer, nn.Embedding) else nn.functional.linear(x, weight)


class TrainableTokensWrapper(nn.Module):
    """PEFT's TrainableTokensWrapper: the layer under "token_adapter" (its tensor saves as token_adapter.trainable_tokens_delta)."""

    def __init__(self, module, token_indices, tied_adapter=None):
        super().__init__()
        self.token_adapter = TrainableTokensLayer(module, token_indices, tied_adapter)

    def forward(self, x):
        return self.token_adapter(x)


def gpt2_tokens_case(gen):
    config, model = load_base()
    r, alpha, tokens = 2, 4, [17, 3, 200, 42, 334]  # not sorted: the order of the rows is the list's
    peft_model = wrap(model, r, alpha, ["c_attn"], use_rslora=False)
    wte = TrainableTokensWrapper(model.transformer.wte, tokens)
    model.transformer.wte = wte
    model.lm_head = TrainableTokensWrapper(model.lm_head, tokens, tied_adapter=wte.token_adapter)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if ".lora_" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif "trainable_tokens_delta" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))  # moved from the base's rows, as training would
    state = {k.replace(".default", ""): v.detach().numpy().copy() for k, v in peft_model.state_dict().items()
             if "lora_" in k or "trainable_tokens_delta" in k}
    assert "base_model.model.transformer.wte.token_adapter.trainable_tokens_delta" in state and not any("lm_head" in k for k in state)
    write_adapter("gpt2_adapter_tokens", state, r, alpha, ["c_attn"], use_rslora=False, trainable_token_indices=tokens)
    ids = torch.randint(0, config["vocab_size"], (2, 9), generator=gen)
    ids[0, :5] = torch.tensor(tokens)  # the trained rows are read by the embedding, not only by the head
    targets = torch.randint(0, config["vocab_size"], (2, 9), generator=gen)
    targets[1, :5] = torch.tensor(tokens)
    logits = model(ids)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    write_safetensors(os.path.join(OUT, "gpt2_tokens_expected.safetensors"), {
        "ids": ids.to(torch.int32).numpy(), "targets": targets.to(torch.int32).numpy(), "logits": logits.detach().numpy(),
        "loss": loss.detach().reshape(1).numpy(),
        "grad_trainable_tokens_delta": wte.token_adapter.trainable_tokens_delta["default"].grad.numpy()}, {})


def gpt2_bias_case(gen):
    config, model = load_base()
    r, alpha, targets, modules_to_save = 2, 4, ["c_attn", "mlp.c_proj"], ["ln_f"]
    peft_model = wrap(model, r, alpha, targets, use_rslora=True, modules_to_save=modules_to_save)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            # what training changes: A and B (drawn here: their initialisation uses torch's global generator), every
            # bias (bias="all") and ln_f's trained copy (moved from the base's values)
            if ".lora_" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias") or ".modules_to_save." in name:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    write_adapter("gpt2_adapter_bias", peft_state_dict(peft_model, "all"), r, alpha, targets, use_rslora=True,
                  bias="all", modules_to_save=modules_to_save)
    write_expected("gpt2_bias_expected.safetensors", model, config["vocab_size"], gen)


class DoraLayer(LoraLayer):
    """PEFT's lora.Linear with use_dora (peft/tuners/lora/dora.py, DoraLinearLayer): the magnitude starts as the row
    norms of W + s·B·A (W as (out, in): a Conv1D weight transposed); result = base_layer(x) + (m/‖W + s·B·A‖ − 1) ·
    x·Wᵀ + (m/‖W + s·B·A‖) · lora_B(lora_A(x)) · s, the norm detached (DoRA paper, section 4.3)."""

    def __init__(self, base_layer, r, alpha, use_rslora, fan_in_fan_out):
        super().__init__(base_layer, r, alpha, use_rslora, fan_in_fan_out)
        self.fan_in_fan_out = fan_in_fan_out
        self.lora_magnitude_vector = nn.Parameter(self.weight_norm().detach())

    def out_in_weight(self):
        return self.base_layer.weight.T if self.fan_in_fan_out else self.base_layer.weight

    def weight_norm(self):
        lora_weight = self.lora_B.weight @ self.lora_A.weight
        return torch.linalg.norm(self.out_in_weight() + self.scaling * lora_weight.detach(), dim=1)

    def forward(self, x):
        scale = (self.lora_magnitude_vector / self.weight_norm().detach()).view(1, -1)
        base = nn.functional.linear(x, self.out_in_weight())
        return self.base_layer(x) + (scale - 1) * base + scale * self.lora_B(self.lora_A(x)) * self.scaling

    def merged_weight(self):
        """PEFT's merge: dora_factor = m / ‖W + ΔW‖, W' = dora_factor.view(-1, 1) · (W + ΔW)."""
        with torch.no_grad():
            delta = self.scaling * (self.lora_B.weight @ self.lora_A.weight)
            return (self.lora_magnitude_vector / self.weight_norm()).view(-1, 1) * (self.out_in_weight() + delta)


def dora_linear_case(gen):
    r, alpha, n_in, n_out = 3, 6.0, 7, 5
    layer = DoraLayer(nn.Linear(n_in, n_out), r, alpha, use_rslora=False, fan_in_fan_out=False)
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name != "lora_magnitude_vector":
                p.copy_(torch.randn(p.shape, generator=gen))
        magnitude = layer.lora_magnitude_vector
        magnitude.copy_(layer.weight_norm() * (1 + 0.2 * torch.randn(magnitude.shape, generator=gen)))  # trained away from ‖W + ΔW‖
    tensors = wrapped_linear_tensors(layer, gen, n_in)
    tensors.update({"magnitude": layer.lora_magnitude_vector.detach().numpy(),
                    "dmagnitude": layer.lora_magnitude_vector.grad.numpy(), "merged_weight": layer.merged_weight().numpy()})
    write_safetensors(os.path.join(OUT, "dora_linear.safetensors"), tensors, {"r": str(r), "lora_alpha": str(alpha)})


def gpt2_dora_case(gen):
    config, model = load_base()
    r, alpha, targets = 2, 4, ["c_attn", "mlp.c_proj"]
    peft_model = wrap(model, r, alpha, targets, use_rslora=False, layer=DoraLayer)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if name.endswith("lora_magnitude_vector"):
                p.mul_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif ".lora_" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    state = {k: v.detach().numpy().copy() for k, v in peft_model.state_dict().items() if "lora_" in k}
    assert "base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector" in state and len(state) == 3 * 2 * config["n_layer"]
    write_adapter("gpt2_adapter_dora", state, r, alpha, targets, use_rslora=False, use_dora=True)
    ids = torch.randint(0, config["vocab_size"], (2, 9), generator=gen)
    targets = torch.randint(0, config["vocab_size"], (2, 9), generator=gen)
    logits = model(ids)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    write_safetensors(os.path.join(OUT, "gpt2_dora_expected.safetensors"), {
        "ids": ids.to(torch.int32).numpy(), "targets": targets.to(torch.int32).numpy(), "logits": logits.detach().numpy(),
        "loss": loss.detach().reshape(1).numpy(),
        "grad_magnitude_h0_c_attn": model.transformer.h[0].attn.c_attn.lora_magnitude_vector.grad.numpy()}, {})


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(20260)
    linear_case(gen)
    gpt2_case(gen)
    gpt2_bias_case(gen)
    gpt2_tied_case(gen)
    gpt2_tokens_case(gen)
    gen = torch.Generator().manual_seed(20261)  # its own seed: the fixtures above stay as they were
    dora_linear_case(gen)
    gpt2_dora_case(gen)


if __name__ == "__main__":
    main()
