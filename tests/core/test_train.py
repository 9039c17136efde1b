"""fit(): determinism, what it optimises, its schedule, and its errors."""

import math

import pytest
import torch

from minift import ModelConfig, Transformer, evaluate, fit, make_target_model
from minift import data
from minift.train import learning_rate_at, make_optimizer


@pytest.fixture(scope="module")
def task():
    return data.classification_task(n_train=200, n_val=100, n_test=100, seed=0)


def fresh_classifier(seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=data.get_tokenizer().vocab_size, d_model=32, n_layers=2,
                         n_heads=4, max_len=48)
    return make_target_model(Transformer(config), "sequence", 3, seed=seed)


def test_fit_is_deterministic_on_cpu(task):
    histories = []
    for _ in range(2):
        model = fresh_classifier()
        histories.append(fit(model, task.train, task.val, steps=25, batch_size=16, lr=3e-3,
                             eval_every=10, seed=7, device="cpu", progress=False))
    a, b = histories
    assert a.train_loss == b.train_loss
    assert a.eval_accuracy == b.eval_accuracy and a.eval_step == [10, 20, 25]


def test_different_seeds_give_different_runs(task):
    a = fit(fresh_classifier(), task.train, steps=10, seed=1, device="cpu", progress=False)
    b = fit(fresh_classifier(), task.train, steps=10, seed=2, device="cpu", progress=False)
    assert a.train_loss != b.train_loss


def test_training_lowers_the_loss_and_reports_speed(task):
    model = fresh_classifier()
    before = evaluate(model, task.train)
    history = fit(model, task.train, task.val, steps=80, batch_size=32, lr=3e-3, seed=0,
                  device="cpu", progress=False)
    assert evaluate(model, task.train)["loss"] < before["loss"] - 0.05   # fit what it was shown
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.seconds_per_step > 0 and history.tokens_per_second > 0
    assert len(history.train_loss) == len(history.learning_rate) == 80


def test_only_trainable_parameters_move_and_get_optimizer_state(task):
    model = fresh_classifier()
    for p in model.parameters():
        p.requires_grad = False
    for p in model.head.parameters():
        p.requires_grad = True
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    fit(model, task.train, steps=5, seed=0, device="cpu", progress=False)
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
    optimizer = make_optimizer(model, 1e-3, 0.01)
    n_optimized = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert n_optimized == sum(p.numel() for p in model.head.parameters())


def test_no_weight_decay_on_biases_and_norms():
    model = fresh_classifier()
    optimizer = make_optimizer(model, 1e-3, 0.1)
    decayed, not_decayed = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and all(p.dim() >= 2 for p in decayed["params"])
    assert not_decayed["weight_decay"] == 0.0 and all(p.dim() == 1 for p in not_decayed["params"])


def test_warmup_then_cosine_schedule():
    rates = [learning_rate_at(s, 100, 1.0, 10, 0.1) for s in range(100)]
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert rates[-1] == pytest.approx(0.1, abs=0.01)
    assert rates[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)), abs=0.01)


def test_nan_loss_raises_a_clear_error(task):
    model = fresh_classifier()
    with torch.no_grad():
        model.head.classifier.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="loss became nan at step 0"):
        fit(model, task.train, steps=3, device="cpu", progress=False)


def test_bad_arguments_are_named(task):
    model = fresh_classifier()
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        fit(model, task.train, steps=0, progress=False)
    with pytest.raises(ValueError, match="lr must be > 0, got -1"):
        fit(model, task.train, lr=-1, progress=False)
    class NoExamples:
        def __len__(self):
            return 0
    with pytest.raises(ValueError, match="the training set is empty"):
        fit(model, NoExamples(), progress=False)
    with pytest.raises(ValueError, match="the validation set is empty"):
        fit(model, task.train, NoExamples(), progress=False)
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(model, task.train, steps=2, progress=False)
