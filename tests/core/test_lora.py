"""LoRA: starts at the base model, merges exactly, saves only the adapter, switches adapters, takes a
hand-written layer class, and refuses what would otherwise fail silently (dropout in eval mode, training
a merged adapter, bad adapter files)."""

import copy
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from minift import ModelConfig, Transformer, make_target_model
from minift.model import TARGETS, model_targets, target_linear
from minift.methods import lora, lora_adapters, prefix
from minift.methods.lora import LoRALinear


pytestmark = pytest.mark.usefixtures("one_thread")   # see conftest.py


def target_model(d_model=32, n_layers=2, seed=0, causal=True):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=61, d_model=d_model, n_layers=n_layers, n_heads=4, max_len=24,
                         causal=causal)
    return make_target_model(Transformer(config), task="sequence", num_classes=3, seed=seed).eval()


def random_ids(batch=3, length=10, seed=1):
    return torch.randint(0, 61, (batch, length), generator=torch.Generator().manual_seed(seed))


def randomize_B(model, name="default", seed=2, scale=0.5):
    """Stand-in for training: give every B of the active adapter ``name`` nonzero values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora.lora_layers(model):
            if getattr(layer, "adapter_name", None) == name:
                layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * scale)


def train_steps(model, steps=5, seed=0):
    """A few AdamW steps on random labels, over the trainable parameters only."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, 61, (8, 10))
        loss = F.cross_entropy(model(ids).logits, torch.randint(0, 3, (8,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def snapshot(model):
    """Everything a failed load must leave alone: every tensor, the adapters and which one is active."""
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    active = [getattr(layer, "adapter_name", None) for _, layer in lora.lora_layers(model)]
    grads = [p.requires_grad for p in model.parameters()]
    return state, lora.adapters(model), active, grads


def assert_same(before, after):
    (state, names, active, grads), (state2, names2, active2, grads2) = before, after
    assert state.keys() == state2.keys()
    for key in state:
        assert torch.equal(state[key], state2[key]), key
    assert (names, active, grads) == (names2, active2, grads2)


class MyLoRALinear(nn.Module):
    """The chapter-04 exercise's solution, as a student writes it (no r, no alpha attribute)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base
        for parameter in self.base.parameters():
            parameter.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / base.in_features ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout)
        self.merged = False

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + self.scaling * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)

    def merge(self):
        if not self.merged:
            with torch.no_grad():
                self.base.weight += self.scaling * self.lora_B @ self.lora_A
            self.merged = True

    def unmerge(self):
        if self.merged:
            with torch.no_grad():
                self.base.weight -= self.scaling * self.lora_B @ self.lora_A
            self.merged = False


# ----------------------------------------------------------------------------------------------------
# The layer and apply

def test_lora_linear_has_the_exercise_interface():
    base = nn.Linear(12, 7)
    layer = LoRALinear(base, 3, 6.0)                       # the exercise's MyLoRALinear(base, r, alpha)
    assert layer.base is base and not any(p.requires_grad for p in base.parameters())
    assert isinstance(layer.lora_A, nn.Parameter) and layer.lora_A.shape == (3, 12)
    assert isinstance(layer.lora_B, nn.Parameter) and layer.lora_B.shape == (7, 3) and not layer.lora_B.any()
    assert (layer.r, layer.alpha, layer.scaling, layer.merged) == (3, 6.0, 2.0, False)
    assert isinstance(layer.dropout, nn.Dropout)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 12)
    assert torch.allclose(layer(x), base(x) + 2.0 * x @ layer.lora_A.T @ layer.lora_B.T, atol=1e-6)
    assert torch.allclose(layer.delta_weight(), 2.0 * layer.lora_B @ layer.lora_A)


def test_only_A_B_of_the_targets_and_the_head_train():
    model = lora.apply(target_model(), r=4, targets=("q", "v"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {f"blocks.{i}.attn.{t}.lora_{m}" for i in range(2) for t in "qv" for m in "AB"}
    assert trainable == expected | {"head.classifier.weight", "head.classifier.bias"}
    q = model.blocks[0].attn.q
    assert isinstance(q, LoRALinear) and not isinstance(model.blocks[0].attn.k, LoRALinear)
    assert q.lora_A.shape == (4, 32) and q.lora_B.shape == (32, 4)
    assert q.scaling == 16 / 4 and q.adapter_name == "default"


def test_frozen_tensors_are_bit_identical_after_training():
    model = lora.apply(target_model(), r=4, targets=("q", "k", "v", "o", "w1", "w2"))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, before[name]), f"{name} did not train"
        else:
            assert torch.equal(p, before[name]), f"frozen {name} changed"


def test_zero_B_gives_exactly_the_base_model():
    base = target_model()
    model = lora.apply(copy.deepcopy(base), r=8, targets=("q", "k", "v", "o", "w1", "w2"))
    ids = random_ids()
    assert torch.equal(model(ids).logits, base(ids).logits)


def test_merged_equals_unmerged_and_unmerge_restores_the_base_weights():
    model = lora.apply(target_model(), r=4, targets=("q", "v", "w1"))
    train_steps(model)
    assert any(m.lora_B.abs().max() > 0 for _, m in lora.lora_layers(model))
    randomize_B(model)     # make dW large, so merge mistakes cannot hide
    originals = {n: m.base.weight.detach().clone() for n, m in lora.lora_layers(model)}
    ids = random_ids()
    unmerged = model(ids).logits

    lora.merge(model)
    merged_weights = {n: m.base.weight.detach().clone() for n, m in lora.lora_layers(model)}
    assert (model(ids).logits - unmerged).abs().max() <= 1e-5
    for name, module in lora.lora_layers(model):           # e.g. "blocks.1.ffn.w1"
        _, layer, _, target = name.split(".")
        expected = originals[name] + lora.delta_weight(model, int(layer), target)
        assert torch.allclose(module.base.weight, expected, atol=1e-6)

    lora.merge(model)      # merging twice is a no-op
    for name, module in lora.lora_layers(model):
        assert torch.equal(module.base.weight, merged_weights[name])
    assert (model(ids).logits - unmerged).abs().max() <= 1e-5

    lora.unmerge(model)
    lora.unmerge(model)    # and so is unmerging twice
    for name, module in lora.lora_layers(model):
        assert torch.allclose(module.base.weight, originals[name], atol=1e-6)
    assert (model(ids).logits - unmerged).abs().max() <= 1e-5


def test_delta_weight_is_scaled_B_times_A_with_the_shape_of_the_weight():
    model = lora.apply(target_model(), r=4, alpha=8, targets=("q", "w1", "w2"))
    randomize_B(model)
    w1 = model.blocks[1].ffn.w1
    delta = lora.delta_weight(model, 1, "w1")
    assert delta.shape == w1.base.weight.shape == (128, 32)
    assert torch.allclose(delta, 2.0 * w1.lora_B @ w1.lora_A)
    assert lora.delta_weight(model, 0, "w2").shape == (32, 128)
    assert torch.linalg.matrix_rank(delta) <= 4
    with pytest.raises(ValueError, match="no LoRA adapter"):
        lora.delta_weight(model, 0, "k")
    with pytest.raises(ValueError, match=r"layer must be an integer in \[0, 1\]"):
        lora.delta_weight(model, 2, "q")


def test_dropout_is_applied_to_the_lora_branch_only():
    torch.manual_seed(0)
    linear = LoRALinear(nn.Linear(16, 8), r=4, alpha=4, dropout=0.5).train()
    x = torch.randn(5, 16)
    assert torch.equal(linear(x), linear.base(x))        # B = 0: the frozen path is never dropped
    with torch.no_grad():
        linear.lora_B.normal_()
    A, B = linear.lora_A, linear.lora_B
    torch.manual_seed(1)
    out = linear(x)
    torch.manual_seed(1)
    kept = F.dropout(x, 0.5, training=True)
    assert torch.allclose(out, linear.base(x) + kept @ A.T @ B.T, atol=1e-5)
    assert not torch.allclose(linear(x), out)              # dropout is live in training
    linear.eval()
    assert torch.allclose(linear(x), linear.base(x) + x @ A.T @ B.T, atol=1e-5)


def test_lora_dropout_is_off_in_a_model_that_is_in_eval_mode():
    # before the fix, the new dropout modules were in training mode inside an eval-mode model
    model = lora.apply(target_model(), r=4, dropout=0.5)          # target_model() is in eval mode
    assert not any(m.training for m in model.modules())
    randomize_B(model)
    ids = random_ids()
    first, second = model(ids).logits, model(ids).logits
    assert torch.equal(first, second)
    assert (lora.merge(model)(ids).logits - first).abs().max() <= 1e-5   # no dropout: merged = unmerged
    assert lora.apply(target_model().train(), r=4).blocks[0].attn.q.training   # train mode is kept too


def test_initialisations():
    torch.manual_seed(0)
    model = lora.apply(target_model(d_model=64), r=16, targets=("q", "k", "v", "o"))
    A = torch.cat([m.lora_A.flatten() for _, m in lora.lora_layers(model)])
    assert abs(A.std().item() - 1 / math.sqrt(64)) < 0.01          # Gaussian, std 1/sqrt(in)
    assert all(torch.count_nonzero(m.lora_B) == 0 for _, m in lora.lora_layers(model))
    model = lora.apply(target_model(d_model=64), r=16, targets=("w2",), init="kaiming")
    A = model.blocks[0].ffn.w2.lora_A
    assert A.abs().max() <= 1 / math.sqrt(256) and A.std() > 0.5 / math.sqrt(3 * 256)


def test_seed_makes_A_reproducible_without_touching_the_global_random_state():
    models = {}
    for key, seed in (("a", 7), ("b", 7), ("c", 8)):
        model = target_model()
        state = torch.get_rng_state()
        models[key] = lora.apply(model, r=4, seed=seed)
        assert torch.equal(torch.get_rng_state(), state)      # the global stream did not move
    A = {key: [layer.lora_A for _, layer in lora.lora_layers(m)] for key, m in models.items()}
    assert all(torch.equal(x, y) for x, y in zip(A["a"], A["b"]))
    assert not any(torch.equal(x, z) for x, z in zip(A["a"], A["c"]))
    # without a seed the global stream decides, as before: torch.manual_seed, then apply
    unseeded = []
    for _ in range(2):
        model = target_model()
        torch.manual_seed(5)
        unseeded.append([layer.lora_A for _, layer in lora.lora_layers(lora.apply(model, r=4))])
    assert all(torch.equal(x, y) for x, y in zip(*unseeded))


@pytest.mark.parametrize("kwargs, message", [
    (dict(r=0), "r must be a positive integer"),
    (dict(r=-3), "r must be a positive integer"),
    (dict(r=2.5), "r must be a positive integer"),
    (dict(r=True), "r must be a positive integer"),
    (dict(r=33), r"allowed 1..32"),
    (dict(targets=("q", "query")), r"targets item='query' is not allowed; choose from \('q', 'k', 'v', 'o', 'w1', 'w2', 'w3'\)"),
    (dict(targets=()), "targets is empty"),
    (dict(targets=("q", "q")), "repeated"),
    (dict(layers=[0, 2]), r"layers item=2 is not allowed; choose from \(0, 1\)"),
    (dict(layers=[-1]), r"layers item=-1 is not allowed"),
    (dict(layers=1), "must be a list of layer indices"),
    (dict(alpha=0), "alpha must be > 0"),
    (dict(alpha=-2), "alpha must be > 0"),
    (dict(alpha=float("inf")), "alpha must be a finite number"),
    (dict(alpha=float("nan")), "alpha must be a finite number"),
    (dict(alpha="16"), "alpha must be a finite number"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(init="xavier"), r"init='xavier' is not allowed; choose from \('gaussian', 'kaiming'\)"),
    (dict(name="a.b"), "adapter name"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(seed=1.5), "seed must be an integer >= 0"),
])
def test_bad_arguments_raise_value_errors(kwargs, message):
    model = target_model()
    before = snapshot(model)
    with pytest.raises(ValueError, match=message):
        lora.apply(model, **kwargs)
    assert_same(before, snapshot(model))


def test_applying_the_same_adapter_name_twice_is_an_error():
    model = lora.apply(target_model())
    with pytest.raises(ValueError, match="already has a LoRA adapter named 'default'"):
        lora.apply(model)


# ----------------------------------------------------------------------------------------------------
# A hand-written layer class, remove, training a merged adapter, combining with prefix-tuning

def test_a_hand_written_layer_plugs_in_trains_merges_and_saves(tmp_path):
    base = target_model()
    model = lora.apply(copy.deepcopy(base), r=4, alpha=8, targets=("q", "v"), layer=MyLoRALinear, seed=0)
    layers = lora.lora_layers(model)
    assert len(layers) == 4 and all(isinstance(m, MyLoRALinear) for _, m in layers)
    ids = random_ids()
    assert torch.equal(model(ids).logits, base(ids).logits)            # B = 0
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model)
    trained = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert trained == {f"blocks.{i}.attn.{t}.lora_{m}" for i in range(2) for t in "qv" for m in "AB"} \
        | {"head.classifier.weight", "head.classifier.bias"}
    randomize_B(model)
    expected = model(ids).logits
    assert (lora.merge(copy.deepcopy(model))(ids).logits - expected).abs().max() <= 1e-5
    lora.save(model, tmp_path / "mine.safetensors")
    plain = lora.remove(copy.deepcopy(model))                               # the trained head, no adapter
    assert all(type(target) is nn.Linear for target in (plain.blocks[0].attn.q, plain.blocks[1].attn.v))
    again = lora.load(copy.deepcopy(plain), tmp_path / "mine.safetensors")  # into minift's own LoRALinear
    assert isinstance(again.blocks[0].attn.q, LoRALinear)
    assert (again(ids).logits - expected).abs().max() <= 1e-5


def test_a_wrong_layer_class_is_refused_before_the_model_changes():
    class NoB(nn.Module):
        def __init__(self, base, r, alpha):
            super().__init__()
            self.base, self.lora_A = base, nn.Parameter(torch.zeros(r, base.in_features))

    model = target_model()
    before = snapshot(model)
    with pytest.raises(TypeError, match=r"NoB must have self.lora_B, an nn.Parameter of shape \(32, 4\)"):
        lora.apply(model, r=4, layer=NoB)
    with pytest.raises(TypeError, match="to choose which blocks to adapt, use layers="):
        lora.apply(model, r=4, layer=[0, 1])
    with pytest.raises(ValueError, match="init="):
        lora.apply(model, r=4, layer=MyLoRALinear, init="kaiming")
    assert_same(before, snapshot(model))


def test_remove_gives_back_the_base_model():
    base = target_model()
    ids = random_ids()
    model = lora.apply(copy.deepcopy(base), r=4, targets=("q", "v", "w2"), name="a")
    randomize_B(model, "a")
    lora.apply(model, r=2, targets=("k",), name="b")
    randomize_B(model, "b", seed=5)
    adapted = model(ids).logits
    baked = lora.remove(copy.deepcopy(model), merge=True)                 # b merged in, then stripped
    assert not lora.lora_layers(baked) and (baked(ids).logits - adapted).abs().max() <= 1e-5
    lora.use(model, "a")
    lora.merge(model)                                                     # remove unmerges first
    plain = lora.remove(model)
    assert not lora.lora_layers(plain) and lora.adapters(plain) == []
    for block in plain.blocks:
        assert all(type(target_linear(block, t)) is nn.Linear for t in model_targets(plain.config))
    assert (plain(ids).logits - base(ids).logits).abs().max() <= 1e-5
    base_state = base.state_dict()
    assert plain.state_dict().keys() == base_state.keys()
    assert all(torch.allclose(t, base_state[k], atol=1e-6) for k, t in plain.state_dict().items())


def test_training_a_merged_adapter_is_refused():
    # before the fix, training went on silently: forward skipped the branch, A and B never moved
    model = lora.apply(target_model(), r=4)
    randomize_B(model)
    lora.merge(model)
    ids = random_ids()
    with torch.no_grad():
        inference = model(ids).logits                     # inference on a merged model is fine
    model.train()
    with pytest.raises(RuntimeError, match=r"merged.*lora.unmerge\(model\)"):
        model(ids)
    with torch.no_grad():                                 # also fine in training mode without gradients
        assert (model(ids).logits - inference).abs().max() <= 1e-6
    lora.unmerge(model)
    train_steps(model, steps=1)                           # unmerged: trains again


@pytest.mark.parametrize("order", ["lora then prefix", "prefix then lora"])
def test_lora_and_prefix_tuning_combine_in_either_order(order):
    model = target_model()
    if order == "lora then prefix":
        prefix.apply(lora.apply(model, r=4), length=3)
    else:
        lora.apply(prefix.apply(model, length=3), r=4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lora_names = {f"blocks.{i}.attn.{t}.lora_{m}" for i in range(2) for t in "qv" for m in "AB"}
    prefix_names = {n for n, _ in model.named_parameters() if n.startswith("prefix.")}
    assert prefix_names and lora_names | prefix_names <= trainable
    assert trainable - lora_names - prefix_names == {"head.classifier.weight", "head.classifier.bias"}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, steps=2)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert lora_names <= moved and moved & prefix_names


# ----------------------------------------------------------------------------------------------------
# Named adapters and files

def test_two_adapters_switch_and_each_gives_its_own_outputs(tmp_path):
    base = target_model()
    ids = random_ids()
    model = lora.apply(copy.deepcopy(base), r=4, targets=("q", "v"), name="a")
    randomize_B(model, "a", seed=3)
    out_a = model(ids).logits
    lora.apply(model, r=2, targets=("v", "o"), name="b")
    assert lora.adapters(model) == ["a", "b"]
    assert torch.equal(model(ids).logits, base(ids).logits)        # b is active, its B is still zero
    randomize_B(model, "b", seed=4)
    out_b = model(ids).logits
    assert not torch.allclose(out_a, out_b, atol=1e-3)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"blocks.{i}.attn.{t}.lora_{m}" for i in range(2) for t in "vo" for m in "AB"} \
        | {"head.classifier.weight", "head.classifier.bias"}
    q = model.blocks[0].attn.q                                     # a is parked there: no active adapter
    assert q.lora_A is None and q.lora_B is None and q.adapter_name is None

    assert torch.equal(lora.use(model, "a")(ids).logits, out_a)
    assert q.adapter_name == "a" and q.lora_A.requires_grad and q.r == 4
    assert torch.equal(lora.use(model, "b")(ids).logits, out_b)
    assert torch.equal(lora.use(model, None)(ids).logits, base(ids).logits)
    assert lora.adapters(model) == ["a", "b"]                       # switching keeps the order
    lora.use(model, "a")
    lora.merge(model)
    lora.use(model, "b")          # switching while merged: unmerge a, merge b
    assert all(layer.merged for _, layer in lora.lora_layers(model) if layer.lora_A is not None)
    assert (model(ids).logits - out_b).abs().max() <= 1e-5
    lora.use(model, "a")
    assert (model(ids).logits - out_a).abs().max() <= 1e-5
    lora.unmerge(model)
    assert torch.allclose(lora.delta_weight(model, 0, "v", name="b"),
                          8.0 * model.blocks[0].attn.v.adapter_slots["b"].lora_B
                          @ model.blocks[0].attn.v.adapter_slots["b"].lora_A)

    lora.save(model, tmp_path / "b.safetensors", name="b")          # a parked adapter saves too
    again = lora.load(copy.deepcopy(base), tmp_path / "b.safetensors")
    assert lora.adapters(again) == ["b"] and (again(ids).logits - out_b).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="no LoRA adapter named 'c'"):
        lora.use(model, "c")


def test_save_then_load_into_a_fresh_model_gives_identical_outputs(tmp_path):
    base = target_model()
    model = lora.apply(copy.deepcopy(base), r=4, alpha=8, targets=("q", "v"), layers=[1])
    randomize_B(model)
    ids = random_ids()
    expected = model(ids).logits
    path = tmp_path / "adapter.safetensors"
    lora.save(model, path)
    assert os.listdir(tmp_path) == ["adapter.safetensors"]          # no temporary file left behind
    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == ["blocks.1.attn.q.lora_A", "blocks.1.attn.q.lora_B",
                                    "blocks.1.attn.v.lora_A", "blocks.1.attn.v.lora_B"]
        assert '"r": 4' in f.metadata()["minift_lora"]

    adapted = lora.apply(copy.deepcopy(base), r=4, alpha=8, targets=("q", "v"), layers=[1])
    assert torch.equal(lora.load(adapted, path)(ids).logits, expected)
    plain = lora.load(copy.deepcopy(base), path)                   # the adapter is created from the file
    assert torch.equal(plain(ids).logits, expected)
    assert {n for n, p in plain.named_parameters() if p.requires_grad} == \
        {n for n, p in model.named_parameters() if p.requires_grad}
    assert not plain.blocks[1].attn.q.training                    # eval mode kept


def test_save_of_a_merged_model_still_saves_A_and_B(tmp_path):
    base = target_model()
    model = lora.apply(copy.deepcopy(base), r=4)
    randomize_B(model)
    ids = random_ids()
    lora.merge(model)
    expected = model(ids).logits
    lora.save(model, tmp_path / "a.safetensors")
    assert torch.allclose(lora.load(copy.deepcopy(base), tmp_path / "a.safetensors")(ids).logits,
                          expected, atol=1e-5)


@pytest.mark.parametrize("other, message", [
    (dict(r=4, targets=("q", "k")), r"adapter 'default' has 'blocks\.0\.attn\.k\.lora_A', which .* lacks"),
    (dict(r=2, targets=("q", "v")), r"'blocks\.0\.attn\.q\.lora_A' .* r=4, the model's adapter 'default' has r=2"),
])
def test_loading_an_incompatible_adapter_names_the_tensor(tmp_path, other, message):
    model = lora.apply(target_model(), r=4, targets=("q", "v"))
    lora.save(model, tmp_path / "a.safetensors")
    fresh = lora.apply(target_model(), **other)
    before = snapshot(fresh)
    with pytest.raises(ValueError, match=message):
        lora.load(fresh, tmp_path / "a.safetensors")
    assert_same(before, snapshot(fresh))


def test_loading_an_adapter_for_another_model_shape_says_so(tmp_path):
    model = lora.apply(target_model(d_model=32), r=4, targets=("q", "v"))
    lora.save(model, tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match=r"a\.safetensors was saved from a model with d_model=32; this model has d_model=48"):
        lora.load(target_model(d_model=48), tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match=r"n_layers=2; this model has n_layers=3"):
        lora.load(lora.apply(target_model(n_layers=3), r=4), tmp_path / "a.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a minift LoRA adapter"):
        lora.load(target_model(), tmp_path / "other.safetensors")


def rewrite(path, drop=(), metadata=None, tensors=None):
    """Write the adapter file at ``path`` again with some tensors dropped or the metadata edited."""
    with safe_open(str(path), framework="pt") as f:
        saved = {key: f.get_tensor(key) for key in f.keys()}
        config = json.loads(f.metadata()["minift_lora"])
    saved = {key: value for key, value in saved.items() if key not in drop}
    saved.update(tensors or {})
    for key, value in (metadata or {}).items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    save_file(saved, str(path), metadata={"minift_lora": json.dumps(config)})


def damage(path, how):
    if how == "missing tensor":
        rewrite(path, drop=("blocks.1.attn.v.lora_B",))
    elif how == "n_layers differs":
        rewrite(path, metadata={"n_layers": 3})
    elif how == "r missing":
        rewrite(path, metadata={"r": None})
    elif how == "r differs from the tensors":
        rewrite(path, metadata={"r": 2})
    elif how == "alpha infinite":
        rewrite(path, metadata={"alpha": float("inf")})
    elif how == "NaN tensor":
        rewrite(path, tensors={"blocks.0.attn.q.lora_A": torch.full((4, 32), float("nan"))})
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:-40])
    elif how == "corrupt":
        data = bytearray(path.read_bytes())
        data[:8] = b"\xff" * 8
        path.write_bytes(bytes(data))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "a directory":
        path.unlink()
        path.mkdir()


DAMAGE = {"missing tensor": "lacks tensor 'blocks.1.attn.v.lora_B'",
          "n_layers differs": "saved from a model with n_layers=3",
          "r missing": r"metadata lacks \['r'\]",
          "r differs from the tensors": r"has shape \(4, 32\), but r=2",
          "alpha infinite": "alpha must be a finite number",
          "NaN tensor": "not a finite floating-point tensor",
          "truncated": "empty, truncated or corrupt",
          "corrupt": "empty, truncated or corrupt",
          "empty": "empty, truncated or corrupt",
          "a directory": "is a directory"}


@pytest.mark.parametrize("into", ["base model", "model with the adapter", "model with another adapter"])
@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_bad_adapter_file_is_refused_and_the_model_is_unchanged(tmp_path, how, into):
    # before the fix: bare SafetensorError / KeyError, or a silent partial load (random A, zero B left
    # wherever the file lacked a tensor)
    source = lora.apply(target_model(), r=4, targets=("q", "v"))
    randomize_B(source)
    path = tmp_path / "adapter.safetensors"
    lora.save(source, path)
    damage(path, how)
    model = target_model()
    if into == "model with the adapter":
        lora.apply(model, r=4, targets=("q", "v"))
    elif into == "model with another adapter":
        lora.apply(model, r=2, targets=("k",), name="other")
        randomize_B(model, "other")
        lora.merge(model)
    before = snapshot(model)
    with pytest.raises(ValueError, match=DAMAGE[how]) as error:
        lora.load(model, path)
    assert str(path) in str(error.value)
    assert_same(before, snapshot(model))


def test_a_missing_adapter_file_is_a_clear_file_not_found_error(tmp_path):
    model = target_model()
    before = snapshot(model)
    with pytest.raises(FileNotFoundError, match=r"no LoRA adapter file at .*nothing\.safetensors"):
        lora.load(model, tmp_path / "nothing.safetensors")
    assert_same(before, snapshot(model))


def test_an_interrupted_save_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    model = lora.apply(target_model(), r=4)
    path = tmp_path / "adapter.safetensors"
    lora.save(model, path)
    old = path.read_bytes()
    randomize_B(model)

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half an adapter")
        raise KeyboardInterrupt

    monkeypatch.setattr(lora_adapters, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        lora.save(model, path)
    assert os.listdir(tmp_path) == ["adapter.safetensors"] and path.read_bytes() == old


def test_the_named_adapter_module_imports_on_its_own():
    code = "import minift.methods.lora_adapters as a; import minift.methods.lora as l; assert l.save is a.save"
    subprocess.run([sys.executable, "-c", code], check=True)
