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
