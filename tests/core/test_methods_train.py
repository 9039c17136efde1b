"""Every method trains: a few hundred steps on the sentiment task clearly beat the untrained head,
and no frozen tensor moves by a single bit while the trainable ones do."""

import copy

import pytest
import torch

from minift import ModelConfig, Transformer, evaluate, fit, make_target_model
from minift.data import classification_task, get_tokenizer
from minift.methods import freeze, full, lora, prefix, ptuning, ptuning_v2

# method name -> (apply, learning rate). Prompt-style methods like a larger learning rate.
METHODS = {
    "full": (full.apply, 1e-3),
    "freeze": (lambda m: freeze.apply(m, layers=1, modules=("ffn",)), 1e-2),
    "lora": (lambda m: lora.apply(m, r=8, targets=("q", "v")), 1e-2),
    "prefix": (lambda m: prefix.apply(m, length=8), 1e-2),
    "ptuning_v2": (lambda m: ptuning_v2.apply(m, length=8), 3e-2),
    "ptuning": (lambda m: ptuning.apply(m, length=8, encoder="lstm"), 3e-2),
    "prompt_tuning": (lambda m: ptuning.apply(m, length=8, encoder=None), 3e-2),
}


pytestmark = pytest.mark.usefixtures("one_thread")   # see conftest.py


@pytest.fixture(scope="module")
def task():
    return classification_task(n_train=800, n_val=300, n_test=50, seed=0, max_len=24)


@pytest.fixture(scope="module")
def untrained(task):
    """A small random-init causal Transformer with a new 3-class head (mean pooling), and its score."""
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=get_tokenizer().vocab_size, d_model=64, n_layers=2, n_heads=4,
                         max_len=48)
    model = make_target_model(Transformer(config), task="sequence", num_classes=task.num_classes,
                              pool="mean", seed=0)
    return model, evaluate(model, task.val)


@pytest.mark.parametrize("name", METHODS)
def test_each_method_trains_and_leaves_frozen_tensors_untouched(name, task, untrained):
    apply, lr = METHODS[name]
    base, before_training = untrained
    model = apply(copy.deepcopy(base))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    history = fit(model, task.train, task.val, steps=200, batch_size=32, lr=lr, seed=0, progress=False)

    for param_name, p in model.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, before[param_name]), f"{name}: {param_name} did not train"
        else:
            assert torch.equal(p, before[param_name]), f"{name}: frozen {param_name} changed"
    result = history.final
    assert result["accuracy"] >= before_training["accuracy"] + 0.12, (name, result, before_training)
    assert result["loss"] <= before_training["loss"] - 0.10, (name, result, before_training)


COMBINATIONS = {
    "lora then prefix": lambda m: prefix.apply(lora.apply(m, r=4, targets=("q", "v")), length=4),
    "prefix then lora": lambda m: lora.apply(prefix.apply(m, length=4), r=4, targets=("q", "v")),
    "prompt then prefix": lambda m: ptuning_v2.apply(ptuning.apply(m, length=4, encoder=None), length=4),
}


@pytest.mark.parametrize("name", COMBINATIONS)
def test_combined_methods_train_both_parts(name, task, untrained):
    """Article 2.3.4: methods combine. Whatever the order, fit() moves both methods' parameters."""
    model = COMBINATIONS[name](copy.deepcopy(untrained[0]))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    parts = {"lora": [n for n in before if "lora_" in n], "prefix": [n for n in before if n.startswith("prefix.")],
             "prompt": [n for n in before if n.startswith("prompt.")]}
    fit(model, task.train, steps=20, batch_size=32, lr=1e-2, seed=0, progress=False)
    for part, names in parts.items():
        if part in name:
            assert names, f"{name}: no {part} parameters"
            for param_name in names:
                p = dict(model.named_parameters())[param_name]
                assert p.requires_grad and not torch.equal(p, before[param_name]), f"{name}: {param_name} did not train"
    for param_name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, before[param_name]), f"{name}: frozen {param_name} changed"
