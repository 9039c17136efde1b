"""fit(): the one training loop every notebook and method uses.

AdamW over the trainable parameters only (frozen ones get no optimizer state, which is where much of
parameter-efficient fine-tuning's memory saving comes from), linear warm-up then cosine decay,
gradient clipping, evaluation every k steps, a progress bar, and a history of what happened.

Every task is trained with the same loss: cross-entropy between logits (..., C) and integer labels
(...), ignoring label -100. Sequence classification (logits (B, C), labels (B,)), token tagging and
language modelling (logits (B, T, C), labels (B, T), already shifted for causal LM) all fit that form.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

IGNORE_INDEX = -100


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


def loss_and_accuracy(logits, labels):
    """Mean cross-entropy over labels != -100, and (number correct, number counted)."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)
    counted = flat_labels != IGNORE_INDEX
    correct = (flat_logits.argmax(dim=-1) == flat_labels) & counted
    return loss, int(correct.sum()), int(counted.sum())


def model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(model, split, batch_size: int = 256) -> dict:
    """Loss and accuracy of ``model`` on a whole split (labels -100 ignored), in eval mode."""
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty data set (0 examples)")
    was_training = model.training
    model.eval()
    device = model_device(model)
    total_loss, correct, counted = 0.0, 0, 0
    for batch in split.batches(batch_size, shuffle=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss, batch_correct, batch_counted = loss_and_accuracy(logits, batch["labels"])
        total_loss += float(loss) * batch_counted
        correct += batch_correct
        counted += batch_counted
    model.train(was_training)
    if counted == 0:
        raise ValueError("the evaluation split has no labelled positions (every label is -100)")
    return {"loss": total_loss / counted, "accuracy": correct / counted}


def learning_rate_at(step: int, steps: int, lr: float, warmup_steps: int, min_lr_ratio: float) -> float:
    """Linear warm-up to lr, then cosine decay to lr * min_lr_ratio at the last step."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)


def make_optimizer(model, lr: float, weight_decay: float):
    """AdamW over trainable parameters only; matrices decay, biases and norm weights (1-D) do not."""
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


def fit(model, train, val=None, *, steps: int = 200, batch_size: int = 32, lr: float = 1e-3,
        weight_decay: float = 0.01, warmup: float = 0.1, min_lr_ratio: float = 0.1,
        clip: float | None = 1.0, eval_every: int | None = None, eval_batch_size: int = 256,
        seed: int = 0, device=None, progress: bool = True, desc: str = "training") -> History:
    """Train ``model`` on ``train`` (a minift.data.Split) for ``steps`` optimizer steps.

    warmup: a fraction of steps (< 1) or a number of steps. eval_every: evaluate on ``val`` every k
    steps (default: only at the end, if val is given). device: None = keep the model where it is if it
    is already on an accelerator, else the best available. Same seed on the same CPU -> same history.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if eval_every is not None and (not isinstance(eval_every, int) or eval_every <= 0):
        raise ValueError(f"eval_every must be a positive integer or None, got {eval_every!r}")
    if len(train) == 0:
        raise ValueError("the training set is empty (0 examples)")
    if val is not None and len(val) == 0:
        raise ValueError("the validation set is empty (0 examples)")
    warmup_steps = int(round(warmup * steps)) if warmup < 1 else int(warmup)
    warmup_steps = max(1, min(warmup_steps, steps))

    torch.manual_seed(seed)                     # dropout and any other randomness inside the model
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    model.train()
    optimizer = make_optimizer(model, lr, weight_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    history = History()
    batches = _infinite_batches(train, batch_size, seed)
    n_tokens, eval_seconds = 0, 0.0
    start = time.perf_counter()

    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        rate = learning_rate_at(step, steps, lr, warmup_steps, min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = rate
        batch = {k: v.to(device) for k, v in next(batches).items()}
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss, _, _ = loss_and_accuracy(logits, batch["labels"])
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(
                f"the training loss became {loss.detach().item()} at step {step} (learning rate {rate:.3g}); "
                "lower the learning rate or check the data")
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

    if device.type == "cuda":
        torch.cuda.synchronize()
    history.total_seconds = time.perf_counter() - start
    train_seconds = history.total_seconds - eval_seconds     # step time excludes evaluation
    history.seconds_per_step = train_seconds / steps
    history.tokens_per_second = n_tokens / train_seconds
    model.eval()
    return history
