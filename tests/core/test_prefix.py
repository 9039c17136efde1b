"""Prefix-tuning and P-tuning v2: one shared module that feeds per-layer keys/values to model.prefix."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from minift import ModelConfig, Transformer, make_target_model
from minift.methods import prefix, ptuning, ptuning_v2
from minift.methods.prefix_module import PrefixKeyValues

METHODS = {"prefix": prefix.apply, "ptuning_v2": ptuning_v2.apply}


def lm_model(causal=True, n_layers=2, attention="sdpa", seed=0):
    """A small Transformer with its LM head: one output per token, handy for comparing positions."""
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=61, d_model=32, n_layers=n_layers, n_heads=4, max_len=24,
                         causal=causal, attention=attention)
    return Transformer(config).eval()


def target_model(seed=0):
    return make_target_model(lm_model(seed=seed), task="sequence", num_classes=3, seed=seed).eval()


def random_ids(batch=3, length=10, seed=1):
    return torch.randint(1, 61, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method, reparam, expected", [
    (prefix.apply, True, {"prefix.embedding.weight", "prefix.mlp.0.weight", "prefix.mlp.0.bias",
                          "prefix.mlp.2.weight", "prefix.mlp.2.bias"}),
    (prefix.apply, False, {"prefix.table"}),
    (ptuning_v2.apply, False, {"prefix.table"}),
    (ptuning_v2.apply, True, {"prefix.embedding.weight", "prefix.mlp.0.weight", "prefix.mlp.0.bias",
                              "prefix.mlp.2.weight", "prefix.mlp.2.bias"}),
])
def test_only_the_prefix_and_the_head_train(method, reparam, expected):
    model = method(target_model(), length=5, reparam=reparam)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected | {"head.classifier.weight", "head.classifier.bias"}


def test_both_methods_share_one_module_with_their_own_defaults():
    a = prefix.apply(target_model(), length=6)
    b = ptuning_v2.apply(target_model(), length=6)
    assert type(a.prefix) is type(b.prefix) is PrefixKeyValues
    assert a.prefix.reparam and not b.prefix.reparam
    assert a.prefix.mlp[0].out_features == 32                       # hidden defaults to d_model
    assert prefix.apply(target_model(), length=6, hidden=7).prefix.mlp[0].out_features == 7
    layer0, layer1 = ptuning_v2.key_values(b)
    assert not torch.allclose(layer0[0], layer1[0]) and not torch.allclose(layer0[0], layer0[1])


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("reparam", [True, False])
def test_key_values_shapes(name, reparam):
    model = METHODS[name](lm_model(n_layers=3), length=5, reparam=reparam)
    pairs = prefix.key_values(model)
    assert len(pairs) == 3
    assert all(k.shape == v.shape == (5, 32) for k, v in pairs)
    per_batch = model.prefix(4)
    assert len(per_batch) == 3 and all(k.shape == v.shape == (4, 5, 32) for k, v in per_batch)
    assert torch.equal(per_batch[2][1][3], pairs[2][1])


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("causal", [True, False])
def test_right_padding_does_not_change_real_tokens_and_never_masks_the_prefix(name, causal):
    model = METHODS[name](lm_model(causal=causal), length=4)
    ids = random_ids()
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    padded = model(ids, attention_mask=mask).logits
    for row, n in ((0, 10), (1, 6), (2, 3)):
        alone = model(ids[row:row + 1, :n]).logits
        assert torch.allclose(padded[row:row + 1, :n], alone, atol=1e-5)
    assert torch.isfinite(padded).all()


@pytest.mark.parametrize("name", METHODS)
def test_every_position_of_a_causal_model_sees_the_prefix(name):
    model = METHODS[name](lm_model(causal=True), length=4, reparam=False)
    ids = random_ids()
    before = model(ids).logits
    with torch.no_grad():
        model.prefix.table[:, :, 2] += 1.0           # change one prefix position, in every layer
    after = model(ids).logits
    assert (after[:, 0] - before[:, 0]).abs().max() > 1e-4    # even the first token sees it
    assert (after - before).abs().amax(dim=-1).min() > 1e-5   # and so does every other


def manual_forward(model, ids, pairs):
    """Reference: the forward pass written out for a 1-layer model, with the prefix keys and values
    concatenated in front of the layer's own, and positions starting after the prefix."""
    (prefix_keys, prefix_values), = pairs
    config, block = model.config, model.blocks[0]
    batch, length, n_prefix = ids.shape[0], ids.shape[1], prefix_keys.shape[0]
    x = model.tok_emb(ids) + model.pos_emb(torch.arange(n_prefix, n_prefix + length))
    h = block.ln1(x)
    q = block.attn.q(h)
    k = torch.cat([prefix_keys.expand(batch, -1, -1), block.attn.k(h)], dim=1)
    v = torch.cat([prefix_values.expand(batch, -1, -1), block.attn.v(h)], dim=1)
    heads = []
    for head in range(config.n_heads):
        cols = slice(head * config.d_head, (head + 1) * config.d_head)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(config.d_head)
        future = torch.ones(length, length).triu(1).bool()
        scores[:, :, n_prefix:] = scores[:, :, n_prefix:].masked_fill(future, float("-inf"))
        heads.append(scores.softmax(-1) @ v[..., cols])
    x = x + block.attn.o(torch.cat(heads, dim=-1))
    x = x + block.ffn.w2(F.gelu(block.ffn.w1(block.ln2(x))))
    return model.lm_head(model.ln_f(x))


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
@pytest.mark.parametrize("reparam", [True, False])
def test_the_hook_equals_concatenating_keys_values_by_hand(attention, reparam):
    model = prefix.apply(lm_model(n_layers=1, attention=attention), length=5, reparam=reparam)
    ids = random_ids(length=9)
    expected = manual_forward(model, ids, prefix.key_values(model))
    assert torch.allclose(model(ids).logits, expected, atol=1e-5)


def test_freeze_to_table_keeps_the_outputs_and_drops_the_mlp():
    model = prefix.apply(target_model(), length=5, hidden=16)
    ids = random_ids()
    before = model(ids).logits
    pairs = prefix.key_values(model)
    prefix.freeze_to_table(model)
    assert model.prefix.mlp is None and model.prefix.embedding is None
    assert model.prefix.table.shape == (2, 2, 5, 32)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == \
        {"prefix.table", "head.classifier.weight", "head.classifier.bias"}
    assert torch.allclose(model(ids).logits, before, atol=1e-6)
    assert all(torch.equal(k, k2) and torch.equal(v, v2)
               for (k, v), (k2, v2) in zip(pairs, prefix.key_values(model)))
    prefix.freeze_to_table(model)                        # already a table: nothing to do
    assert torch.allclose(model(ids).logits, before, atol=1e-6)


@pytest.mark.parametrize("name", METHODS)
def test_too_long_for_max_len(name):
    model = METHODS[name](lm_model(), length=8)          # max_len = 24: 16 tokens still fit
    model(random_ids(length=16))
    with pytest.raises(ValueError, match="exceeds max_len=24"):
        model(random_ids(length=17))
    with pytest.raises(ValueError, match=r"length must be an integer in \[1, 23\] \(length \+ at least one token "
                                         r"must fit in max_len=24\), got 24"):
        METHODS[name](lm_model(), length=24)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("kwargs, message", [
    (dict(length=0), r"length must be an integer in \[1, 23\] .*, got 0"),
    (dict(length=-2), r"length must be an integer in \[1, 23\] .*, got -2"),
    (dict(length=3.0), r"length must be an integer in \[1, 23\] .*, got 3.0"),
    (dict(length=True), r"length must be an integer in \[1, 23\] .*, got True"),
    (dict(length=30), r"length must be an integer in \[1, 23\] .*, got 30"),
    (dict(reparam="yes"), "reparam must be True or False, got 'yes'"),
    (dict(reparam=True, hidden=0), "hidden must be a positive integer or None .*, got 0"),
])
def test_bad_arguments_raise_value_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        METHODS[name](lm_model(), **kwargs)


def test_incompatible_methods_are_refused():
    model = prefix.apply(target_model(), length=4)
    with pytest.raises(ValueError, match=r"model.prefix is already set \(by prefix-tuning\)"):
        ptuning_v2.apply(model)
    with pytest.raises(ValueError, match=r"already set \(by P-tuning v2\)"):
        prefix.apply(ptuning_v2.apply(target_model(), length=4))
    with pytest.raises(ValueError, match=r"already set"):
        prefix.apply(model)
    with pytest.raises(ValueError, match="no prefix"):
        prefix.key_values(target_model())


def test_prefix_and_input_prompt_share_max_len():
    model = ptuning.apply(lm_model(), length=20, encoder=None)
    with pytest.raises(ValueError, match=r"length must be an integer in \[1, 3\] .*prompt of 20"):
        prefix.apply(model, length=4)
    prefix.apply(model, length=3)
    assert model(random_ids(length=1)).logits.shape == (3, 1, 61)


def test_a_deep_copy_keeps_working():
    model = ptuning_v2.apply(target_model(), length=4)
    twin = copy.deepcopy(model)
    ids = random_ids()
    assert torch.equal(model(ids).logits, twin(ids).logits)


# ---------------------------------------------------------------------------------------------------
# Combining methods (article 2.3.4): each apply leaves what an earlier method added trainable

HEAD = {"head.classifier.weight", "head.classifier.bias"}


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def lora_names(model):
    return {n for n, _ in model.named_parameters() if any(part.startswith("lora_") for part in n.split("."))}


def prefix_names(model):
    return {n for n, _ in model.named_parameters() if n.startswith("prefix.")}


@pytest.mark.parametrize("order", ["lora then prefix", "prefix then lora"])
@pytest.mark.parametrize("second", [prefix.apply, ptuning_v2.apply])
def test_lora_and_a_prefix_combine_and_both_stay_trainable(order, second):
    from minift.methods import lora
    first = (lambda m: lora.apply(m, r=2, targets=("q", "v"))) if order == "lora then prefix" else \
        (lambda m: second(m, length=4))
    then = (lambda m: second(m, length=4)) if order == "lora then prefix" else \
        (lambda m: lora.apply(m, r=2, targets=("q", "v")))
    model = then(first(target_model()))
    lora_part, prefix_part = lora_names(model), prefix_names(model)
    assert any("lora_A" in n for n in lora_part) and any("lora_B" in n for n in lora_part)
    assert prefix_part
    assert trainable(model) == lora_part | prefix_part | HEAD


def test_an_input_prompt_and_a_prefix_combine_and_both_stay_trainable():
    for model in (ptuning.apply(prefix.apply(target_model(), length=3), length=2, encoder=None),
                  prefix.apply(ptuning.apply(target_model(), length=2, encoder=None), length=3)):
        assert trainable(model) == prefix_names(model) | {"prompt.embedding"} | HEAD


def test_freeze_after_a_prefix_keeps_the_prefix_trainable():
    from minift.methods import freeze
    model = freeze.apply(prefix.apply(target_model(), length=3, reparam=False), layers=1, modules=("attn",))
    assert {"prefix.table", "blocks.1.attn.q.weight"} <= trainable(model)
    assert "blocks.0.attn.q.weight" not in trainable(model)


def test_what_an_earlier_method_left_frozen_stays_frozen():
    """Only the pre-trained weights are frozen by apply(); an addition the user froze is not thawed."""
    model = prefix.apply(target_model(), length=3, reparam=False)
    model.prefix.requires_grad_(False)
    ptuning.apply(model, length=2, encoder=None)
    assert "prefix.table" not in trainable(model)


def test_a_refused_second_prefix_leaves_the_first_one_in_place():
    model = prefix.apply(target_model(), length=4)
    first = model.prefix
    states = {n: p.requires_grad for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match=r"already set \(by prefix-tuning\); P-tuning v2 would replace it"):
        ptuning_v2.apply(model, length=2)
    assert model.prefix is first
    assert {n: p.requires_grad for n, p in model.named_parameters()} == states
