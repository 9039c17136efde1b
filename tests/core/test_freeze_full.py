"""Freeze (train chosen modules of the last / first N layers) and full fine-tuning (train everything)."""

import pytest
import torch

from minift import ModelConfig, Transformer, make_target_model
from minift.methods import freeze, full, lora

HEAD = {"head.classifier.weight", "head.classifier.bias"}


def target_model(n_layers=3, seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=61, d_model=32, n_layers=n_layers, n_heads=4, max_len=24)
    return make_target_model(Transformer(config), task="sequence", num_classes=3, seed=seed)


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def names(layers, parts):
    """Parameter names of the given parts (e.g. "ffn.w1") in the given layers."""
    return {f"blocks.{i}.{part}.{kind}" for i in layers for part in parts for kind in ("weight", "bias")}


FFN = ("ffn.w1", "ffn.w2")
ATTN = ("attn.q", "attn.k", "attn.v", "attn.o")
NORM = ("ln1", "ln2")


@pytest.mark.parametrize("layers, modules, expected", [
    (2, ("ffn",), names([1, 2], FFN)),                      # the default: last 2 layers' FFN
    (1, ("attn",), names([2], ATTN)),
    (-1, ("ffn",), names([0], FFN)),                        # negative: the first layers
    (-2, ("attn", "norm"), names([0, 1], ATTN + NORM)),
    (3, ("norm",), names([0, 1, 2], NORM)),
    (1, ("all",), names([2], FFN + ATTN + NORM)),
    (1, "ffn", names([2], FFN)),                            # a single module name as a string
    (0, ("ffn",), set()),                                   # linear probing: only the head
])
def test_only_the_chosen_modules_and_the_head_train(layers, modules, expected):
    model = freeze.apply(target_model(), layers=layers, modules=modules)
    assert trainable(model) == expected | HEAD


def test_defaults_and_the_head_less_language_model():
    model = freeze.apply(target_model())
    assert trainable(model) == names([1, 2], FFN) | HEAD
    torch.manual_seed(0)
    lm = Transformer(ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, max_len=24))
    assert trainable(freeze.apply(lm, layers=1)) == names([1], FFN)


def test_full_makes_every_parameter_trainable_even_after_another_method():
    model = freeze.apply(target_model(), layers=1)
    full.apply(model)
    assert all(p.requires_grad for p in model.parameters())
    adapted = full.apply(lora.apply(target_model(), r=2))
    assert all(p.requires_grad for p in adapted.parameters())
    assert any("lora_A" in n for n in trainable(adapted))


def test_freeze_after_another_method_refreezes_it():
    model = freeze.apply(full.apply(target_model()), layers=1, modules=("attn",))
    assert trainable(model) == names([2], ATTN) | HEAD


@pytest.mark.parametrize("kwargs, message", [
    (dict(layers=4), r"layers must be an integer in \[-3, 3\] \(N > 0: last N layers, N < 0: first \|N\|, "
                     r"0: only the task head\), got 4"),
    (dict(layers=-4), r"layers must be an integer in \[-3, 3\] .*, got -4"),
    (dict(layers=1.5), r"layers must be an integer in \[-3, 3\] .*, got 1.5"),
    (dict(layers=True), r"layers must be an integer in \[-3, 3\] .*, got True"),
    (dict(modules=("mlp",)), r"modules item='mlp' is not allowed; choose from \('ffn', 'attn', 'norm', 'all'\)"),
    (dict(modules=()), r"modules is empty"),
    (dict(modules=("ffn", "ffn")), r"modules has repeated items"),
])
def test_bad_arguments_raise_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        freeze.apply(target_model(), **kwargs)
