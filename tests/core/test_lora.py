"""LoRA: starts at the base model, merges exactly, saves only the adapter, switches adapters."""

import copy
import math
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from minift import ModelConfig, Transformer, make_target_model
from minift.methods import lora
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
    """Stand-in for training: give every B of adapter ``name`` nonzero values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, module in lora.lora_layers(model):
            if name in module.rank:
                B = module.lora_B[name]
                B.copy_(torch.randn(B.shape, generator=generator) * scale)


def train_steps(model, steps=5, seed=0):
    """A few AdamW steps on random labels, over the trainable parameters only."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, 61, (8, 10))
        loss = torch.nn.functional.cross_entropy(model(ids).logits, torch.randint(0, 3, (8,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_only_A_B_of_the_targets_and_the_head_train():
    model = lora.apply(target_model(), r=4, targets=("q", "v"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {f"blocks.{i}.attn.{t}.lora_{m}.default" for i in range(2) for t in "qv" for m in "AB"}
    assert trainable == expected | {"head.classifier.weight", "head.classifier.bias"}
    q = model.blocks[0].attn.q
    assert isinstance(q, LoRALinear) and not isinstance(model.blocks[0].attn.k, LoRALinear)
    assert q.lora_A["default"].shape == (4, 32) and q.lora_B["default"].shape == (32, 4)
    assert q.scaling("default") == 16 / 4
    assert q.weight is q.base.weight          # code reading linear.weight keeps working


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
    assert any(m.lora_B["default"].abs().max() > 0 for _, m in lora.lora_layers(model))
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
    assert delta.shape == w1.weight.shape == (128, 32)
    assert torch.allclose(delta, 2.0 * w1.lora_B["default"] @ w1.lora_A["default"])
    assert lora.delta_weight(model, 0, "w2").shape == (32, 128)
    assert torch.linalg.matrix_rank(delta) <= 4
    with pytest.raises(ValueError, match="no LoRA adapter"):
        lora.delta_weight(model, 0, "k")
    with pytest.raises(ValueError, match="allowed 0..1"):
        lora.delta_weight(model, 2, "q")


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


@pytest.mark.parametrize("other, offending", [
    (dict(r=4, targets=("q", "k")), "blocks.0.attn.v.lora_A"),       # targets differ
    (dict(r=2, targets=("q", "v")), "blocks.0.attn.q.lora_A"),       # rank differs
])
def test_loading_an_incompatible_adapter_names_the_tensor(tmp_path, other, offending):
    model = lora.apply(target_model(), r=4, targets=("q", "v"))
    lora.save(model, tmp_path / "a.safetensors")
    fresh = lora.apply(target_model(), **other)
    with pytest.raises(ValueError, match=offending):
        lora.load(fresh, tmp_path / "a.safetensors")


def test_loading_an_adapter_for_another_model_shape_names_the_tensor(tmp_path):
    model = lora.apply(target_model(d_model=32), r=4, targets=("q", "v"))
    lora.save(model, tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.q\.lora_A.*shape \(4, 32\)"):
        lora.load(target_model(d_model=48), tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.q\.lora_A.*shape"):
        lora.load(lora.apply(target_model(d_model=48), r=4), tmp_path / "a.safetensors")
    deeper = lora.apply(target_model(n_layers=3), r=4, targets=("q", "v"))
    with pytest.raises(ValueError, match=r"blocks\.2\.attn\.q\.lora_A.*missing"):
        lora.load(deeper, tmp_path / "a.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a minift LoRA adapter"):
        lora.load(target_model(), tmp_path / "other.safetensors")


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
    assert trainable and all(n.endswith(".b") or n.startswith("head") for n in trainable)

    assert torch.equal(lora.use(model, "a")(ids).logits, out_a)
    assert torch.equal(lora.use(model, "b")(ids).logits, out_b)
    assert torch.equal(lora.use(model, None)(ids).logits, base(ids).logits)
    lora.use(model, "a")
    lora.merge(model)
    lora.use(model, "b")          # switching while merged: unmerge a, merge b
    assert (model(ids).logits - out_b).abs().max() <= 1e-5
    lora.use(model, "a")
    assert (model(ids).logits - out_a).abs().max() <= 1e-5

    lora.save(model, tmp_path / "b.safetensors", name="b")
    again = lora.load(copy.deepcopy(base), tmp_path / "b.safetensors")
    assert lora.adapters(again) == ["b"] and (again(ids).logits - out_b).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="no LoRA adapter named 'c'"):
        lora.use(model, "c")


def test_dropout_is_applied_to_the_lora_branch_only():
    torch.manual_seed(0)
    linear = LoRALinear(torch.nn.Linear(16, 8))
    linear.add_adapter("default", r=4, alpha=4, dropout=0.5, init="gaussian")
    linear.active = "default"
    linear.train()
    x = torch.randn(5, 16)
    assert torch.equal(linear(x), linear.base(x))        # B = 0: the frozen path is never dropped
    with torch.no_grad():
        linear.lora_B["default"].normal_()
    A, B = linear.lora_A["default"], linear.lora_B["default"]
    torch.manual_seed(1)
    out = linear(x)
    torch.manual_seed(1)
    kept = torch.nn.functional.dropout(x, 0.5, training=True)
    assert torch.allclose(out, linear.base(x) + kept @ A.T @ B.T, atol=1e-5)
    assert not torch.allclose(linear(x), out)              # dropout is live in training
    linear.eval()
    assert torch.allclose(linear(x), linear.base(x) + x @ A.T @ B.T, atol=1e-5)


def test_initialisations():
    torch.manual_seed(0)
    model = lora.apply(target_model(d_model=64), r=16, targets=("q", "k", "v", "o"))
    A = torch.cat([m.lora_A["default"].flatten() for _, m in lora.lora_layers(model)])
    assert abs(A.std().item() - 1 / math.sqrt(64)) < 0.01          # Gaussian, std 1/sqrt(in)
    assert all(torch.count_nonzero(m.lora_B["default"]) == 0 for _, m in lora.lora_layers(model))
    model = lora.apply(target_model(d_model=64), r=16, targets=("w2",), init="kaiming")
    A = model.blocks[0].ffn.w2.lora_A["default"]
    assert A.abs().max() <= 1 / math.sqrt(256) and A.std() > 0.5 / math.sqrt(3 * 256)


@pytest.mark.parametrize("kwargs, message", [
    (dict(r=0), "r must be a positive integer"),
    (dict(r=-3), "r must be a positive integer"),
    (dict(r=2.5), "r must be a positive integer"),
    (dict(r=33), r"allowed 1..32"),
    (dict(targets=("q", "query")), r"unknown LoRA target 'query'; valid targets: \('q', 'k', 'v', 'o', 'w1', 'w2'\)"),
    (dict(targets=()), "targets is empty"),
    (dict(layers=[0, 2]), r"layer index 2 is out of range: allowed 0..1"),
    (dict(layers=[-1]), r"layer index -1 is out of range"),
    (dict(layers=1), "must be a list of layer indices"),
    (dict(alpha=0), "alpha must be a number > 0"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
    (dict(init="xavier"), "init='xavier' is unknown"),
    (dict(name="a.b"), "adapter name"),
])
def test_bad_arguments_raise_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lora.apply(target_model(), **kwargs)


def test_applying_the_same_adapter_name_twice_is_an_error():
    model = lora.apply(target_model())
    with pytest.raises(ValueError, match="already has a LoRA adapter named 'default'"):
        lora.apply(model)


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

    monkeypatch.setattr(lora, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        lora.save(model, path)
    assert os.listdir(tmp_path) == ["adapter.safetensors"] and path.read_bytes() == old
