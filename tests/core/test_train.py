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


# ---------------------------------------------------------------------------------------------------
# Bad arguments, bad labels, diverging and interrupted runs

def test_ignore_index_is_defined_once():
    from minift import train
    assert train.IGNORE_INDEX is data.IGNORE_INDEX == -100


@pytest.mark.parametrize("kwargs, message", [
    (dict(clip=-1.0), r"clip must be > 0 \(the largest gradient norm; None turns clipping off\), got -1.0"),
    (dict(clip=0), r"clip must be > 0 .*, got 0"),
    (dict(clip=float("nan")), r"clip must be a finite number .*, got nan"),
    (dict(min_lr_ratio=-0.1), r"min_lr_ratio must be in \[0, 1\] \(the final learning rate as a fraction of "
                              r"lr\), got -0.1"),
    (dict(min_lr_ratio=1.5), r"min_lr_ratio must be in \[0, 1\] .*, got 1.5"),
    (dict(weight_decay=-0.01), r"weight_decay must be >= 0, got -0.01"),
    (dict(weight_decay=float("inf")), r"weight_decay must be a finite number, got inf"),
    (dict(lr=float("nan")), r"lr must be a finite number, got nan"),
    (dict(lr=0), r"lr must be > 0, got 0"),
    (dict(warmup=-1), r"warmup must be >= 0 .*, got -1"),
    (dict(steps=True), r"steps must be a positive integer, got True"),
    (dict(steps=2.5), r"steps must be a positive integer, got 2.5"),
    (dict(batch_size=0), r"batch_size must be a positive integer, got 0"),
    (dict(eval_every=0), r"eval_every must be a positive integer or None, got 0"),
    (dict(eval_batch_size=-1), r"eval_batch_size must be a positive integer, got -1"),
    (dict(seed=-1), r"seed must be an integer >= 0, got -1"),
    (dict(progress="no"), r"progress must be True or False, got 'no'"),
])
def test_bad_training_arguments_are_named_before_anything_changes(task, kwargs, message):
    model = fresh_classifier().train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match=message):
        fit(model, task.train, **{"steps": 2, "progress": False, "device": "cpu", **kwargs})
    assert model.training
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_numpy_numbers_are_accepted(task):
    import numpy as np
    a = fit(fresh_classifier(), task.train, steps=np.int64(3), batch_size=np.int32(8), lr=np.float32(1e-3),
            seed=np.int64(1), device="cpu", progress=False)
    b = fit(fresh_classifier(), task.train, steps=3, batch_size=8, lr=float(np.float32(1e-3)), seed=1,
            device="cpu", progress=False)
    assert a.train_loss == b.train_loss


def with_labels(split, labels):
    return data.Split(split.input_ids, split.attention_mask, labels, split.texts)


def test_a_training_set_whose_labels_are_all_ignored_is_refused(task):
    model = fresh_classifier()
    nothing = with_labels(task.train, torch.full_like(task.train.labels, -100))
    with pytest.raises(ValueError, match=r"every label of the training set is -100 \(ignored\): there is "
                                         r"nothing to learn from"):
        fit(model, nothing, steps=2, device="cpu", progress=False)


def test_a_data_set_without_a_labels_tensor_and_no_label_at_all_still_stops(task):
    """Any object with __len__ and batches() can be trained on; without labels fit() must not loop forever."""
    nothing = with_labels(task.train[:20], torch.full((20,), -100))

    class Batches:
        def __len__(self):
            return len(nothing)

        def batches(self, batch_size, shuffle=False, seed=0):
            return nothing.batches(batch_size, shuffle=shuffle, seed=seed)

    with pytest.raises(ValueError, match=r"every label of the training set is -100"):
        fit(fresh_classifier(), Batches(), steps=2, batch_size=8, device="cpu", progress=False)


def test_batches_whose_labels_are_all_ignored_are_skipped_with_a_warning(task):
    """Before: such a batch's mean loss is 0/0 = NaN, which stopped the run as if it had diverged."""
    small = task.train[:40]
    labels = small.labels.clone()
    labels[::2] = -100                                   # half the examples have nothing to learn
    model = fresh_classifier()
    with pytest.warns(RuntimeWarning, match=r"fit\(\) skipped \d+ batch\(es\) in which every label was -100"):
        history = fit(model, with_labels(small, labels), steps=12, batch_size=1, device="cpu", progress=False)
    assert len(history.train_loss) == 12 and all(math.isfinite(x) for x in history.train_loss)


@pytest.mark.parametrize("labels, message", [
    (lambda s: s.labels[:, None].expand(-1, s.input_ids.shape[1]).contiguous(),
     r"labels have shape \(16, 32\), but logits of shape \(16, 3\) need labels of shape \(16,\): one class "
     r"id per sequence \(-100 to ignore it\)"),
    (lambda s: torch.where(torch.arange(len(s)) == 3, 7, s.labels),
     r"label 7 is out of range: class ids are 0..2 \(the model has 3 outputs\), or -100 to ignore a position"),
    (lambda s: torch.where(torch.arange(len(s)) == 3, -1, s.labels), r"label -1 is out of range"),
    (lambda s: s.labels.float(), r"labels must hold integer class ids \(or -100 to ignore a position\), got "
                                 r"dtype torch.float32"),
])
def test_bad_labels_are_named_and_the_model_is_left_as_it_was(task, labels, message):
    small = task.train[:16]
    model = fresh_classifier()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match=message):
        fit(model, with_labels(small, labels(small)), steps=3, batch_size=16, device="cpu", progress=False)
    with pytest.raises(ValueError, match=message):
        evaluate(model, with_labels(small, labels(small)))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_token_labels_for_a_sequence_head_name_both_shapes(task):
    """The classic mix-up: labels of a token task fed to a sequence classifier (or the reverse)."""
    tagger = make_target_model(fresh_classifier(), "token", 3, seed=0)
    with pytest.raises(ValueError, match=r"labels have shape \(8,\), but logits of shape \(8, 32, 3\) need "
                                         r"labels of shape \(8, 32\): one class id per position"):
        evaluate(tagger, task.train[:8])


def test_evaluate_skips_batches_without_labels_instead_of_returning_nan(task):
    small = task.val[:8]
    labels = small.labels.clone()
    labels[4:] = -100                                     # the second batch of 4 has nothing to count
    result = evaluate(fresh_classifier(), with_labels(small, labels), batch_size=4)
    assert math.isfinite(result["loss"])
    assert result == evaluate(fresh_classifier(), small[:4], batch_size=4)


def test_evaluate_warns_on_a_nan_loss_and_keeps_the_mode(task):
    model = fresh_classifier().train()
    with torch.no_grad():
        model.head.classifier.bias.fill_(float("nan"))
    with pytest.warns(RuntimeWarning, match=r"evaluate\(\): the loss is nan \(not a finite number\)"):
        result = evaluate(model, task.val)
    assert math.isnan(result["loss"]) and model.training


class FailAt:
    """A forward hook on the head that, from call ``step`` on, makes the logits NaN or raises ``error``."""

    def __init__(self, model, step, error=None):
        self.calls, self.step, self.error = 0, step, error
        self.handle = model.head.register_forward_hook(self)

    def __call__(self, module, args, out):
        self.calls += 1
        if self.calls > self.step:
            if self.error is not None:
                raise self.error
            return out * float("nan")
        return out


def test_a_diverging_run_gives_back_the_weights_it_started_from(task):
    model = fresh_classifier()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    hook = FailAt(model, step=4)              # four good steps move the weights, then the loss is NaN
    with pytest.raises(FloatingPointError, match=r"the training loss became nan at step 4 .* the run diverged. "
                                                 r"The trainable parameters were given back the values they "
                                                 r"had before fit\(\); lower the learning rate"):
        fit(model, task.train, steps=10, lr=1e-2, device="cpu", progress=False)
    hook.handle.remove()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    fit(model, task.train, steps=3, lr=1e-3, device="cpu", progress=False)      # and can be retried


def test_a_huge_learning_rate_diverges_and_is_undone(task):
    model = fresh_classifier()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(FloatingPointError, match="diverged"):
        fit(model, task.train, steps=30, lr=1e30, clip=None, weight_decay=0.0, device="cpu", progress=False)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


def test_nan_weights_after_the_last_step_are_caught_and_undone(task):
    """The last step's update is never followed by another loss: fit() checks the weights themselves."""
    model = fresh_classifier()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    calls = []

    def poison_last_gradient(grad):
        calls.append(1)
        return grad * float("nan") if len(calls) == 3 else grad

    model.head.classifier.bias.register_hook(poison_last_gradient)
    with pytest.raises(FloatingPointError, match="the last optimizer step left NaN or infinite parameters"):
        fit(model, task.train, steps=3, clip=None, device="cpu", progress=False)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_interrupted_fit_leaves_the_train_eval_mode_as_it_was(task, training, error):
    model = fresh_classifier().train(training)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    hook = FailAt(model, step=3, error=error)
    with pytest.raises(type(error)):
        fit(model, task.train, steps=10, device="cpu", progress=False)
    hook.handle.remove()
    assert model.training == training
    assert all(m.training == training for m in model.modules())
    moved = any(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert moved == isinstance(error, KeyboardInterrupt)    # Ctrl-C keeps the progress; an error undoes it


def test_a_finished_fit_leaves_the_model_in_eval_mode(task):
    model = fresh_classifier().train()
    fit(model, task.train, steps=2, device="cpu", progress=False)
    assert not model.training
