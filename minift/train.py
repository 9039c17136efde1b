"""fit(): the one training loop every notebook and method uses.

AdamW over the trainable parameters only (frozen ones get no optimizer state, which is where much of
parameter-efficient fine-tuning's memory saving comes from), linear warm-up then cosine decay,
gradient clipping, evaluation every k steps, a progress bar, and a history of what happened.

Every task is trained with the same loss: cross-entropy between logits (..., C) and integer labels
(...), ignoring label -100. Sequence classification (logits (B, C), labels (B,)), token tagging and
language modelling (logits (B, T, C), labels (B, T), already shifted for causal LM) all fit that form.

What fit() promises when things go wrong: bad arguments and bad labels (wrong shape, class ids out of
range) fail before or at the first step with a message naming the value and what is allowed; a run
whose loss becomes NaN or infinite, or any other error, gives the trainable parameters back the values
they had before fit() (so you can retry with a lower learning rate); an error or Ctrl-C leaves the
model in the train/eval mode it had. A batch in which every label is -100 has nothing to learn from:
it is skipped (with a warning); a training set in which every label is -100 is an error.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import IGNORE_INDEX          # the one definition; also importable from here, as before
from .validate import boolean, finite_number, positive_int, positive_number, probability

__all__ = ["fit", "evaluate", "History", "loss_and_accuracy", "check_labels", "learning_rate_at",
           "make_optimizer", "default_device", "IGNORE_INDEX"]


def default_device() -> torch.device:
    """cuda > mps > cpu: the fastest device this machine has."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class History:
    """What fit() measured. Lists are indexed by training step (train_*) or by evaluation (eval_*)."""

    train_step: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    learning_rate: list = field(default_factory=list)
    eval_step: list = field(default_factory=list)
    eval_loss: list = field(default_factory=list)
    eval_accuracy: list = field(default_factory=list)
    seconds_per_step: float = float("nan")
    tokens_per_second: float = float("nan")
    total_seconds: float = float("nan")

    @property
    def final(self) -> dict:
        """The last evaluation (or the last training loss if there was no evaluation)."""
        if self.eval_step:
            return {"step": self.eval_step[-1], "loss": self.eval_loss[-1], "accuracy": self.eval_accuracy[-1]}
        return {"step": self.train_step[-1], "loss": self.train_loss[-1], "accuracy": float("nan")}

    def to_dict(self) -> dict:
        return asdict(self)


def check_labels(logits, labels) -> None:
    """Labels must be integer class ids 0..C-1 (or -100), one per row of logits (..., C).

    Without this check a wrong shape can be silently broadcast or mis-read (float labels of shape
    (B, C) are taken as probabilities by cross_entropy), and an id >= C is a bare IndexError on the
    CPU and a device-side assert on a GPU.
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a tensor of class ids, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must hold integer class ids (or {IGNORE_INDEX} to ignore a position), "
                         f"got dtype {labels.dtype}")
    expected = tuple(logits.shape[:-1])
    if tuple(labels.shape) != expected:
        per = "sequence" if logits.dim() == 2 else "position"
        raise ValueError(f"labels have shape {tuple(labels.shape)}, but logits of shape {tuple(logits.shape)} "
                         f"need labels of shape {expected}: one class id per {per} "
                         f"({IGNORE_INDEX} to ignore it)")
    num_classes = logits.shape[-1]
    bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        value = int(labels[bad][0])
        raise ValueError(f"label {value} is out of range: class ids are 0..{num_classes - 1} "
                         f"(the model has {num_classes} outputs), or {IGNORE_INDEX} to ignore a position")


def loss_and_accuracy(logits, labels):
    """Mean cross-entropy over labels != -100, and (number correct, number counted).

    When every label is -100 nothing is counted and the mean is NaN (0 / 0): callers skip such batches.
    """
    check_labels(logits, labels)
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1).long()
    loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)
    counted = flat_labels != IGNORE_INDEX
    correct = (flat_logits.argmax(dim=-1) == flat_labels) & counted
    return loss, int(correct.sum()), int(counted.sum())


def model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model, split, batch_size: int = 256) -> dict:
    """Loss and accuracy of ``model`` on a whole split (labels -100 ignored), in eval mode.

    The model's train/eval mode is given back afterwards, even if evaluation fails. A NaN or infinite
    loss (weights that diverged, outputs that overflow) comes back as it is, with a warning.
    """
    batch_size = positive_int("batch_size", batch_size)
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty data set (0 examples)")
    was_training = model.training
    model.eval()
    device = model_device(model)
    total_loss, correct, counted = 0.0, 0, 0
    try:
        for batch in split.batches(batch_size, shuffle=False):
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss, batch_correct, batch_counted = loss_and_accuracy(logits, batch["labels"])
            if batch_counted:             # a batch with no labelled position adds nothing (not NaN * 0)
                total_loss += float(loss) * batch_counted
                correct += batch_correct
                counted += batch_counted
    finally:
        model.train(was_training)
    if counted == 0:
        raise ValueError(f"the evaluation split has no labelled positions (every label is {IGNORE_INDEX})")
    result = {"loss": total_loss / counted, "accuracy": correct / counted}
    if not math.isfinite(result["loss"]):
        warnings.warn(f"evaluate(): the loss is {result['loss']} (not a finite number): the model's "
                      "weights or outputs hold NaN or infinity (a diverged run?); its accuracy means "
                      "little", RuntimeWarning, stacklevel=2)
    return result


def learning_rate_at(step: int, steps: int, lr: float, warmup_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up to lr, then cosine decay to lr * min_lr_ratio at the last step."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)


def make_optimizer(model, lr: float, weight_decay: float):
    """AdamW over trainable parameters only; matrices decay, biases and norm weights (1-D) do not."""
    lr = positive_number("lr", lr)
    weight_decay = finite_number("weight_decay", weight_decay, minimum=0.0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters (every requires_grad is False)")
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def _infinite_batches(split, batch_size, seed):
    epoch = 0
    while True:
        yield from split.batches(batch_size, shuffle=True, seed=seed + epoch)
        epoch += 1


def _has_labels(labels) -> bool:
    return bool((labels != IGNORE_INDEX).any())


def _check_training_labels(train) -> None:
    """Fail at once, before any step, if no example of the training set has a label to learn from."""
    labels = getattr(train, "labels", None)
    if isinstance(labels, torch.Tensor) and not _has_labels(labels):
        raise ValueError(f"every label of the training set is {IGNORE_INDEX} (ignored): there is nothing "
                         "to learn from. Check how the labels were built (e.g. a prompt mask that covers "
                         "the answer too)")


def fit(model, train, val=None, *, steps: int = 200, batch_size: int = 32, lr: float = 1e-3,
        weight_decay: float = 0.01, warmup: float = 0.1, min_lr_ratio: float = 0.1,
        clip: float | None = 1.0, eval_every: int | None = None, eval_batch_size: int = 256,
        seed: int = 0, device=None, progress: bool = True, desc: str = "training") -> History:
    """Train ``model`` on ``train`` (a minift.data.Split) for ``steps`` optimizer steps.

    warmup: a fraction of steps (< 1) or a number of steps. min_lr_ratio: the final learning rate as a
    fraction of lr, in [0, 1]. clip: the largest gradient norm (> 0), or None for no clipping.
    eval_every: evaluate on ``val`` every k steps (default: only at the end, if val is given).
    device: None = the best available. Same seed on the same CPU -> same history.

    Afterwards the model is in eval mode. If fit() fails, the trainable parameters get back the values
    they had before it started (a NaN/inf loss raises FloatingPointError) and the model keeps the
    train/eval mode it had; if you interrupt it (Ctrl-C), it keeps what it has learnt so far.
    """
    steps = positive_int("steps", steps)
    batch_size = positive_int("batch_size", batch_size)
    lr = positive_number("lr", lr)
    weight_decay = finite_number("weight_decay", weight_decay, minimum=0.0)
    warmup = finite_number("warmup", warmup, minimum=0.0,
                           hint="a fraction of steps below 1, or a number of steps")
    min_lr_ratio = probability("min_lr_ratio", min_lr_ratio, include_one=True,
                               hint="the final learning rate as a fraction of lr")
    if clip is not None:
        clip = positive_number("clip", clip, hint="the largest gradient norm; None turns clipping off")
    eval_every = positive_int("eval_every", eval_every, allow_none=True)
    eval_batch_size = positive_int("eval_batch_size", eval_batch_size)
    seed = positive_int("seed", seed, minimum=0)
    progress = boolean("progress", progress)
    if len(train) == 0:
        raise ValueError("the training set is empty (0 examples)")
    if val is not None and len(val) == 0:
        raise ValueError("the validation set is empty (0 examples)")
    _check_training_labels(train)
    warmup_steps = int(round(warmup * steps)) if warmup < 1 else int(warmup)
    warmup_steps = max(1, min(warmup_steps, steps))

    was_training = model.training
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    optimizer = make_optimizer(model, lr, weight_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    # the values to give back if the run fails (on the CPU: no extra accelerator memory)
    start_values = [p.detach().to("cpu", copy=True) for p in trainable]
    try:
        history = _train_steps(model, train, val, optimizer, trainable, steps=steps, batch_size=batch_size,
                               lr=lr, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio, clip=clip,
                               eval_every=eval_every, eval_batch_size=eval_batch_size, seed=seed,
                               device=device, progress=progress, desc=desc)
    except Exception:
        with torch.no_grad():
            for p, value in zip(trainable, start_values):
                p.copy_(value)
        model.train(was_training)
        raise
    except BaseException:                 # Ctrl-C: keep the progress, give back the mode
        model.train(was_training)
        raise
    model.eval()
    return history


def _train_steps(model, train, val, optimizer, trainable, *, steps, batch_size, lr, warmup_steps,
                 min_lr_ratio, clip, eval_every, eval_batch_size, seed, device, progress, desc) -> History:
    """fit()'s loop, on validated arguments."""
    torch.manual_seed(seed)                     # dropout and any other randomness inside the model
    model.train()
    history = History()
    batches = _infinite_batches(train, batch_size, seed)
    batches_per_epoch = math.ceil(len(train) / batch_size)
    n_tokens, eval_seconds, skipped = 0, 0.0, 0
    start = time.perf_counter()

    with tqdm(range(steps), desc=desc, disable=not progress, leave=False) as bar:
        for step in bar:
            rate = learning_rate_at(step, steps, lr, warmup_steps, min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = rate
            batch, empty_in_a_row = next(batches), 0
            while not _has_labels(batch["labels"]):        # nothing to learn from: draw the next one
                skipped, empty_in_a_row = skipped + 1, empty_in_a_row + 1
                if empty_in_a_row > 2 * batches_per_epoch:      # 2 epochs in a row: no label anywhere
                    raise ValueError(f"every label of the training set is {IGNORE_INDEX} (ignored): "
                                     "there is nothing to learn from")
                batch = next(batches)
            batch = {k: v.to(device) for k, v in batch.items()}
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss, _, _ = loss_and_accuracy(logits, batch["labels"])
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(
                    f"the training loss became {loss.detach().item()} at step {step} (learning rate "
                    f"{rate:.3g}): the run diverged. The trainable parameters were given back the values "
                    f"they had before fit(); lower the learning rate (e.g. lr={lr / 10:.3g}), turn on "
                    "gradient clipping, or check the data, and run fit() again")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(trainable, clip)
            optimizer.step()

            n_tokens += int(batch["attention_mask"].sum())
            loss_value = loss.item()
            history.train_step.append(step)
            history.train_loss.append(loss_value)
            history.learning_rate.append(rate)
            last = step == steps - 1
            if val is not None and ((eval_every and (step + 1) % eval_every == 0) or last):
                if not history.eval_step or history.eval_step[-1] != step + 1:
                    eval_start = time.perf_counter()
                    result = evaluate(model, val, eval_batch_size)
                    eval_seconds += time.perf_counter() - eval_start
                    history.eval_step.append(step + 1)
                    history.eval_loss.append(result["loss"])
                    history.eval_accuracy.append(result["accuracy"])
                    bar.set_postfix(loss=f"{loss_value:.3f}", val_acc=f"{result['accuracy']:.3f}")
            elif step % 10 == 0:
                bar.set_postfix(loss=f"{loss_value:.3f}")

    # the last step may itself have produced NaN/inf weights, which no later loss would reveal
    if not bool(torch.stack([torch.isfinite(p).all() for p in trainable]).all()):
        raise FloatingPointError(
            f"the last optimizer step left NaN or infinite parameters (learning rate {lr:.3g}): the run "
            "diverged. The trainable parameters were given back the values they had before fit(); lower "
            "the learning rate or turn on gradient clipping, and run fit() again")
    if skipped:
        warnings.warn(f"fit() skipped {skipped} batch(es) in which every label was {IGNORE_INDEX}: they "
                      "have nothing to learn from (each step used the next batch instead)",
                      RuntimeWarning, stacklevel=3)
    if device.type == "cuda":
        torch.cuda.synchronize()
    history.total_seconds = time.perf_counter() - start
    train_seconds = history.total_seconds - eval_seconds     # step time excludes evaluation
    history.seconds_per_step = train_seconds / steps
    history.tokens_per_second = n_tokens / train_seconds
    return history
