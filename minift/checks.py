"""Exercise checkers: run your code on small known cases and tell you what, specifically, went wrong.

    from minift import checks
    checks.check_count_attention_params(count_attention_params)
    ✅ passed: count_attention_params gives 4*d*d + 4*d on all 3 cases tried

Every checker prints one verdict and returns it (a ``Verdict``), and never lets an exception escape
into your notebook:

* your function still raises NotImplementedError  ->  "⏳ not implemented yet"
* it raises anything else                          ->  "❌ your code raised <Type>: <message>" + a hint
* it returns a wrong result                        ->  "❌ <the specific mistake>. Hint: ..."

Each checker compares with a reference computed here, and recognises the usual wrong answers so it
can name the mistake rather than just say "wrong".
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import numbers
import os
import reprlib
import sysconfig
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

PASSED, NOT_IMPLEMENTED, MISTAKE = "passed", "not implemented", "mistake"
STATUSES = (PASSED, NOT_IMPLEMENTED, MISTAKE)


@dataclass
class Verdict:
    """The outcome of a check: status is "passed", "not implemented" or "mistake"."""

    status: str
    message: str
    hint: str = ""
    printed: bool = field(default=False, repr=False, compare=False)   # already shown by the checker

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} is unknown; allowed: {STATUSES}")

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self):
        if self.status == PASSED:
            return f"✅ passed: {self.message}"
        if self.status == NOT_IMPLEMENTED:
            return f"⏳ not implemented yet: {self.message}"
        text = f"❌ {self.message.rstrip('.')}."
        return f"{text} Hint: {self.hint}" if self.hint else text

    def _ipython_display_(self):
        # the checker already printed the verdict; showing it again as the cell's value would repeat it
        if not self.printed:
            print(self)


def passed(message: str) -> Verdict:
    return Verdict(PASSED, message)


def mistake(message: str, hint: str = "") -> Verdict:
    return Verdict(MISTAKE, message, hint)


class _StudentRaised(Exception):
    """Your code raised: carries the original exception out of the checker's body."""

    def __init__(self, error: BaseException, what: str):
        super().__init__(str(error))
        self.error, self.what = error, what


class _NotImplementedYet(Exception):
    pass


def call(fn, *args, what: str | None = None, **kwargs):
    """Call the student's ``fn``. Exceptions are wrapped so the checker can tell "your code raised"
    apart from a bug in the checker itself."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise _NotImplementedYet() from None
    except Exception as error:   # noqa: BLE001 - anything the student's code raises is reported
        raise _StudentRaised(error, what or _name(fn)) from None


def _name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


_LIBRARY_DIRS = tuple(str(Path(p).resolve()) + os.sep for p in
                      {Path(__file__).parent, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                       sysconfig.get_paths()["platlib"]})


def _where(error: BaseException) -> str:
    """"(in f, line 3: ...)" for the deepest frame of the student's own code, if there is one."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(_LIBRARY_DIRS)]
    if not frames:
        return ""
    frame = frames[-1]
    code = f": {frame.line.strip()}" if frame.line else ""
    return f" (in {frame.name}, line {frame.lineno}{code})"


@contextlib.contextmanager
def _one_thread():
    """Checkers run tiny models: one CPU thread is many times faster than several that must
    synchronise on every small matrix product (dramatically so on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def checker(body):
    """Turn a checker body into a safe checker: it prints its verdict, returns it, never raises.

    ``quiet=True`` skips the printing (for tests and for code that uses the Verdict itself).
    """

    @functools.wraps(body)
    def safe_checker(student, *args, quiet: bool = False, **kwargs) -> Verdict:
        name = _name(student)
        try:
            if student is None or not callable(student):
                verdict = mistake(f"expected your function or class, got {reprlib.repr(student)}",
                                  "pass the function itself (without calling it): check_x(my_function)")
            else:
                with _one_thread():
                    verdict = body(student, *args, **kwargs)
        except _NotImplementedYet:
            verdict = Verdict(NOT_IMPLEMENTED, f"{name} still raises NotImplementedError; "
                                               "replace that line with your code")
        except _StudentRaised as raised:
            error = raised.error
            verdict = mistake(f"your code raised {type(error).__name__}: {error}{_where(error)}",
                              f"{raised.what} must run on these inputs without an error; call it "
                              "yourself on a small example and read the traceback")
        except Exception as error:   # noqa: BLE001 - a checker must never crash a notebook
            verdict = mistake(f"checking {name} failed with {type(error).__name__}: {error}",
                              "this usually means your code returned something of an unexpected type; "
                              "if you think your code is right, please report it as a minift bug")
        if not quiet:
            print(verdict)
            verdict.printed = True
        return verdict

    return safe_checker


# --- parameter counts -------------------------------------------------------------------------------

def _as_count(value, what: str) -> int | Verdict:
    """An integer count, or a mistake Verdict explaining what type was returned instead."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return mistake(f"{what} returned {value!r} (a {type(value).__name__}); expected a whole number",
                       "return the count, e.g. `return 4 * d_model * d_model + ...`, not print it")
    if not math.isfinite(value) or float(value) != int(value):
        return mistake(f"{what} returned {value}, which is not a whole number",
                       "parameter counts are integers; did you divide somewhere?")
    return int(value)


def _check_counts(student, cases, reference, known_mistakes, formula: str, hint: str) -> Verdict:
    """Shared logic of the counting checkers.

    cases: argument tuples; reference(*args) -> right count; known_mistakes: [(wrong_formula, message,
    hint)]. A known mistake is named when it explains the student's answer on EVERY case.
    """
    name = _name(student)
    answers = []
    for args in cases:
        result = _as_count(call(student, *args), f"{name}{args}")
        if isinstance(result, Verdict):
            return result
        answers.append(result)
    expected = [reference(*args) for args in cases]
    if answers == expected:
        return passed(f"{name} gives {formula} on all {len(cases)} cases tried")
    for wrong_formula, message, mistake_hint in known_mistakes:
        if answers == [wrong_formula(*args) for args in cases]:
            return mistake(message, mistake_hint)
    i = next(i for i, (a, e) in enumerate(zip(answers, expected)) if a != e)
    return mistake(f"{name}{cases[i]} returned {answers[i]:,}, expected {expected[i]:,}", hint)


def attention_params(d_model: int) -> int:
    """Reference: q, k, v, o are each a d x d weight plus a bias of d."""
    return 4 * d_model * d_model + 4 * d_model


def ffn_params(d_model: int, d_ff: int) -> int:
    """Reference: w1 (d_ff x d) + bias d_ff, w2 (d x d_ff) + bias d."""
    return 2 * d_model * d_ff + d_ff + d_model


def block_params(d_model: int, d_ff: int) -> int:
    """Reference: attention + FFN + two LayerNorms (weight and bias of d each)."""
    return attention_params(d_model) + ffn_params(d_model, d_ff) + 4 * d_model


@checker
def check_count_attention_params(fn) -> Verdict:
    """fn(d_model) -> parameters of one attention layer (q, k, v, o with biases) = 4 d^2 + 4 d."""
    cases = [(8,), (64,), (768,)]
    known = [
        (lambda d: 4 * d * d, "you forgot the biases: each of q, k, v, o also has a bias of d_model numbers",
         "nn.Linear(d, d) has d*d weights plus d biases"),
        (lambda d: 3 * d * d + 3 * d, "you counted only 3 matrices (q, k, v)",
         "attention has a 4th projection, o, that mixes the heads' outputs back to d_model"),
        (lambda d: 3 * d * d, "you counted only 3 matrices (q, k, v) and forgot the biases",
         "there are 4 projections (q, k, v, o), each with a d x d weight and a bias of d"),
        (lambda d: 16 * d * d + 16 * d, "you used d_ff (= 4 * d_model) instead of d_model",
         "every attention projection maps d_model -> d_model; d_ff only appears in the FFN"),
        (lambda d: 16 * d * d + 4 * d, "you used d_ff (= 4 * d_model) in the weights instead of d_model",
         "every attention projection maps d_model -> d_model; d_ff only appears in the FFN"),
        (lambda d: 16 * d * d, "you used d_ff (= 4 * d_model) instead of d_model and forgot the biases",
         "every attention projection is d_model x d_model, plus a bias of d_model"),
        (lambda d: 4 * d * d + d, "you counted one bias of d_model in total",
         "each of the 4 projections has its own bias of d_model numbers"),
    ]
    return _check_counts(fn, cases, attention_params, known, "4*d*d + 4*d",
                         "count q, k, v and o: each is a d_model x d_model weight plus a bias of d_model")


@checker
def check_count_ffn_params(fn) -> Verdict:
    """fn(d_model, d_ff) -> parameters of one FFN = 2 d d_ff + d_ff + d."""
    cases = [(8, 32), (64, 100), (768, 3072)]
    known = [
        (lambda d, f: 2 * d * f, "you forgot the biases: w1 has a bias of d_ff numbers and w2 one of d_model",
         "nn.Linear(a, b) has a*b weights plus b biases"),
        (lambda d, f: d * f + f, "you counted only one matrix (w1)",
         "the FFN has two linear layers: w1 (d_model -> d_ff) and w2 (d_ff -> d_model)"),
        (lambda d, f: d * f + d, "you counted only one matrix (w2)",
         "the FFN has two linear layers: w1 (d_model -> d_ff) and w2 (d_ff -> d_model)"),
        (lambda d, f: d * f, "you counted only one matrix and no biases",
         "the FFN has two linear layers, w1 (d_model -> d_ff) and w2 (d_ff -> d_model), each with a bias"),
        (lambda d, f: 2 * d * d + 2 * d, "you assumed d_ff = d_model",
         "w1 maps d_model -> d_ff; use the d_ff argument"),
        (lambda d, f: 8 * d * d + 5 * d, "you assumed d_ff = 4 * d_model instead of using the d_ff argument",
         "4 * d_model is only the usual default; some models use other widths"),
        (lambda d, f: 2 * d * f + 2 * f, "w2's bias has d_model numbers, not d_ff",
         "a linear layer's bias has one number per OUTPUT; w2 outputs d_model"),
        (lambda d, f: 2 * d * f + 2 * d, "w1's bias has d_ff numbers, not d_model",
         "a linear layer's bias has one number per OUTPUT; w1 outputs d_ff"),
    ]
    return _check_counts(fn, cases, ffn_params, known, "2*d*d_ff + d_ff + d",
                         "w1: d_model x d_ff weights + d_ff biases; w2: d_ff x d_model weights + d_model biases")


@checker
def check_count_block_params(fn) -> Verdict:
    """fn(d_model, d_ff) -> parameters of one Transformer block = attention + FFN + 2 LayerNorms."""
    cases = [(8, 32), (64, 100), (768, 3072)]
    known = [
        (lambda d, f: attention_params(d) + ffn_params(d, f),
         "you forgot the layer norms",
         "a block has two LayerNorms (ln1, ln2), each with a weight and a bias of d_model"),
        (lambda d, f: attention_params(d) + ffn_params(d, f) + 2 * d,
         "you counted only 2*d_model for the layer norms",
         "a block has TWO LayerNorms and each has a weight AND a bias of d_model numbers: 4*d_model"),
        (lambda d, f: 4 * d * d + 2 * d * f, "you forgot all biases and layer norms",
         "count the bias of every linear layer and the two LayerNorms' weights and biases"),
        (lambda d, f: 4 * d * d + 2 * d * f + 4 * d, "you forgot the biases of the linear layers",
         "q, k, v, o each have a bias of d_model; w1 one of d_ff; w2 one of d_model"),
        (lambda d, f: attention_params(d) + ffn_params(d, 4 * d) + 4 * d,
         "you assumed d_ff = 4 * d_model instead of using the d_ff argument",
         "4 * d_model is only the usual default; use the d_ff you are given"),
        (lambda d, f: attention_params(d) + ffn_params(d, f) + 6 * d,
         "you counted three layer norms", "a pre-LN block has two (ln1 before attention, ln2 before the FFN); "
                                         "the final LayerNorm belongs to the model, not the block"),
    ]
    return _check_counts(fn, cases, block_params, known, "attention + FFN + 4*d",
                         "block = attention (4d^2 + 4d) + FFN (2 d d_ff + d_ff + d) + two LayerNorms (4d)")


def lora_params(d_in: int, d_out: int, r: int) -> int:
    """Reference: A (r x d_in) + B (d_out x r)."""
    return r * (d_in + d_out)


@checker
def check_lora_param_count(fn) -> Verdict:
    """fn(d_in, d_out, r) -> trainable parameters LoRA adds to one linear layer = r (d_in + d_out)."""
    cases = [(768, 768, 4), (64, 32, 2), (100, 300, 8)]
    known = [
        (lambda i, o, r: r * i * o, "you computed r * d_in * d_out",
         "the update B @ A is never stored as a d_out x d_in matrix; count A (r x d_in) and B (d_out x r)"),
        (lambda i, o, r: i * o, "you counted the full d_out x d_in weight",
         "that is the frozen base weight (or full fine-tuning); LoRA trains only A (r x d_in) and B (d_out x r)"),
        (lambda i, o, r: i * o + r * (i + o), "you counted the frozen base weight as well",
         "only A and B are trainable; the base weight is frozen"),
        (lambda i, o, r: r * i, "you counted only A (r x d_in)", "B (d_out x r) is trainable too"),
        (lambda i, o, r: r * o, "you counted only B (d_out x r)", "A (r x d_in) is trainable too"),
        (lambda i, o, r: 2 * r * i, "you counted A twice (assumed d_out = d_in)",
         "B has shape (d_out x r); use d_out"),
        (lambda i, o, r: r * r, "you counted an r x r matrix", "A is r x d_in and B is d_out x r"),
    ]
    return _check_counts(fn, cases, lora_params, known, "r * (d_in + d_out)",
                         "A has shape (r, d_in) and B has shape (d_out, r)")


def prefix_params(n_layers: int, length: int, d_model: int) -> int:
    """Reference: every layer gets `length` key vectors and `length` value vectors of d_model."""
    return n_layers * 2 * length * d_model


@checker
def check_prefix_param_count(fn) -> Verdict:
    """fn(n_layers, length, d_model) -> prefix-tuning parameters without reparameterisation."""
    cases = [(2, 4, 16), (12, 10, 768), (6, 3, 64)]
    known = [
        (lambda n, p, d: n * p * d, "you forgot the 2: each layer's prefix has keys AND values",
         "attention uses the prefix as extra keys and extra values, two separate sets of vectors"),
        (lambda n, p, d: 2 * p * d, "you forgot the layers: there is a prefix in every layer",
         "multiply by n_layers"),
        (lambda n, p, d: p * d, "you counted one set of prompt vectors at the input",
         "that is prompt tuning / P-tuning v1; prefix-tuning has keys and values in every layer"),
        (lambda n, p, d: n * 2 * p * d * d, "you multiplied by d_model twice",
         "each prefix vector has d_model numbers: n_layers * 2 * length * d_model"),
        (lambda n, p, d: n * 3 * p * d, "you counted queries too",
         "prefix positions are only attended to (keys and values); they ask no queries"),
    ]
    return _check_counts(fn, cases, prefix_params, known, "n_layers * 2 * length * d_model",
                         "count, for every layer, `length` key vectors and `length` value vectors of d_model")


# --- SFT: build the target model ---------------------------------------------------------------------

def _tiny_source_model(seed: int = 0):
    """A small pre-trained-looking causal model, built without touching the global random state."""
    from .config import ModelConfig
    from .model import Transformer

    config = ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Transformer(config)
        with torch.no_grad():     # make the LayerNorms and biases non-trivial so "changed" is visible
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def _state_copy(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _head_linear(head):
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if isinstance(head, nn.Module) else []
    return linears[-1] if linears else None


@checker
def check_target_model(fn) -> Verdict:
    """fn(source_model, num_classes) -> an SFT target model: a copy of the source without its LM head,
    with a new randomly initialised classification head in ``model.head``."""
    from .model import Transformer

    name = _name(fn)
    source = _tiny_source_model()
    before = _state_copy(source)
    source_ptrs = {p.data_ptr() for p in source.state_dict().values()}
    tokens = torch.randint(0, source.config.vocab_size, (4, 6), generator=torch.Generator().manual_seed(1))

    for num_classes in (3, 5):
        target = call(fn, source, num_classes)
        if target is source:
            return mistake("returned the source model itself (not a copy)",
                           "copy it first, e.g. target = copy.deepcopy(source_model), then change the copy")
        if not isinstance(target, Transformer):
            return mistake(f"{name} returned {type(target).__name__}, expected a minift Transformer",
                           "return the target model you built")
        after = source.state_dict()
        if set(after) != set(before) or any(not torch.equal(before[k], after[k]) for k in before) \
                or source.lm_head is None or source.head is not None:
            return mistake("changed the source model", "work on a copy; the source model must stay as it was "
                                                        "(you may want to fine-tune it again for another task)")
        shared = [k for k, v in target.state_dict().items() if v.data_ptr() in source_ptrs]
        if shared:
            return mistake(f"shares tensors with the source ({', '.join(shared[:3])})",
                           "training the target would change the source too; use copy.deepcopy(source_model)")

        if target.lm_head is not None:
            out = getattr(target.lm_head, "out_features", None)
            if target.head is None and out == num_classes:
                return mistake("put the new layer in model.lm_head",
                               "set target.lm_head = None and put the classifier in target.head")
            return mistake("kept the LM head as output layer",
                           "the source output layer predicts words, not your classes: set target.lm_head = None")
        if target.head is None:
            return mistake("the target model has no head", "add a classification head: target.head = ...")
        linear = _head_linear(target.head)
        if linear is not None and linear.out_features == source.config.vocab_size:
            return mistake("kept the LM head as output layer (it now sits in model.head)",
                           "the source output layer predicts words, not your classes: build a new head")
        if isinstance(target.head, nn.Linear):
            return mistake("model.head is a bare nn.Linear",
                           "the model calls head(hidden_states, attention_mask) and the head must pick one "
                           "position per sentence: use minift.heads.SequenceClassificationHead(d_model, num_classes)")
        linear = _head_linear(target.head)
        if linear is None:
            return mistake("model.head has no nn.Linear output layer",
                           "use e.g. minift.heads.SequenceClassificationHead(d_model, num_classes)")
        if linear.out_features != num_classes:
            return mistake(f"head has wrong number of classes: {linear.out_features} outputs for "
                           f"num_classes={num_classes}", "size the new output layer with num_classes")
        lm_weight = source.lm_head.weight.detach()
        if linear.weight.shape[1] == lm_weight.shape[1] and any(
                torch.equal(linear.weight.detach(), lm_weight[i:i + num_classes])
                for i in range(lm_weight.shape[0] - num_classes + 1)):
            return mistake("the head is a copy of rows of the LM head",
                           "the new output layer must be randomly initialised, not copied from the LM head")

        target_state = target.state_dict()
        body = [k for k in before if not k.startswith(("lm_head.", "head."))]
        missing = [k for k in body if k not in target_state]
        if missing:
            return mistake(f"the target model lacks source parameters ({', '.join(missing[:3])})",
                           "copy every layer except the output layer")
        changed = [k for k in body if not torch.equal(target_state[k].cpu(), before[k])]
        if changed:
            return mistake(f"copied weights changed ({', '.join(changed[:3])})",
                           "every layer except the output layer keeps the source values; did you re-initialise it?")

        target.eval()
        with torch.no_grad():
            logits = call(target, tokens, what="the target model's forward").logits
        if tuple(logits.shape) != (4, num_classes):
            return mistake(f"the target model gives logits of shape {tuple(logits.shape)}, expected (4, {num_classes})",
                           "a sequence head pools the hidden states to one vector per sentence")

        with torch.no_grad():            # last check: a change to the target must not reach the source
            for parameter in target.parameters():
                parameter.add_(1.0)
        if any(not torch.equal(before[k], v) for k, v in source.state_dict().items()):
            return mistake("shares tensors with the source",
                           "changing the target changed the source; use copy.deepcopy(source_model)")
    return passed(f"{name} copies the body, drops the LM head and adds a new random head "
                  "(tried 3 and 5 classes); the source model is untouched")


# --- one training step -------------------------------------------------------------------------------

def _training_setup():
    """A tiny classifier, and two batches whose labels include -100 (an unlabelled example)."""
    from .heads import make_target_model

    model = make_target_model(_tiny_source_model(), task="sequence", num_classes=3, seed=0)
    generator = torch.Generator().manual_seed(2)
    batches = []
    for _ in range(2):
        input_ids = torch.randint(0, model.config.vocab_size, (4, 6), generator=generator)
        attention_mask = torch.ones(4, 6, dtype=torch.long)
        attention_mask[1, 4:] = 0
        labels = torch.randint(0, 3, (4,), generator=generator)
        labels[2] = -100
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels})
    return model, batches


def reference_training_step(model, batch, optimizer) -> float:
    """The reference: zero_grad, forward, cross-entropy ignoring -100, backward, step."""
    optimizer.zero_grad()
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"].reshape(-1), ignore_index=-100)
    loss.backward()
    optimizer.step()
    return loss.item()


LEARNING_RATE = 0.5      # plain SGD with a large step: every mistake changes the weights visibly


def _run_steps(model, batches, step) -> tuple[list, list]:
    """Run ``step`` on each batch with a fresh SGD optimizer; the losses and the state after each step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    losses, states = [], []
    for batch in batches:
        losses.append(step(model, batch, optimizer))
        states.append(_state_copy(model))
    return losses, states


def _same_state(a: dict, b: dict) -> bool:
    return all(torch.allclose(a[k], b[k], atol=1e-6, rtol=1e-5) for k in a)


def _accumulating_step(model, batch, optimizer) -> float:
    """The reference without zero_grad(): what "forgot zero_grad" looks like."""
    logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = F.cross_entropy(logits, batch["labels"], ignore_index=-100)
    loss.backward()
    optimizer.step()
    return loss.item()


class _WatchedSGD(torch.optim.SGD):
    """SGD that remembers, for each step() call, whether any gradient was there to apply."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.steps_with_gradients = []

    def step(self, closure=None):
        has_gradient = any(p.grad is not None and bool(p.grad.any())
                           for group in self.param_groups for p in group["params"])
        self.steps_with_gradients.append(has_gradient)
        return super().step(closure)


def _as_loss(value, name: str, notes: list):
    """The returned loss as a float, or a mistake Verdict."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return mistake(f"{name} returned a tensor of shape {tuple(value.shape)}",
                           "return the mean loss as a single number: loss.item()")
        notes.append("you returned a tensor; return loss.item() instead, so only the number is kept "
                     "(a tensor keeps the whole computation graph alive)")
        value = value.item()
    if value is None:
        return mistake(f"{name} returned None", "return the loss as a float: return loss.item()")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return mistake(f"{name} returned {type(value).__name__}, expected a float",
                       "return the loss as a float: return loss.item()")
    return float(value)


@checker
def check_training_step(fn) -> Verdict:
    """fn(model, batch, optimizer) -> float loss, after one step: zero_grad, forward, cross-entropy
    (labels -100 ignored), backward, optimizer.step(). Two calls in a row must equal two reference steps."""
    name = _name(fn)
    model, batches = _training_setup()
    start = _state_copy(model)
    student_model = copy.deepcopy(model).train()
    optimizer = _WatchedSGD(student_model.parameters(), lr=LEARNING_RATE)
    notes, losses, states = [], [], []
    for batch in batches:
        loss = _as_loss(call(fn, student_model, batch, optimizer), name, notes)
        if isinstance(loss, Verdict):
            return loss
        losses.append(loss)
        states.append(_state_copy(student_model))

    ref_losses, ref_states = _run_steps(copy.deepcopy(model), batches, reference_training_step)
    order_hint = "order: optimizer.zero_grad(), forward, loss, loss.backward(), optimizer.step()"
    if not optimizer.steps_with_gradients:
        if not _same_state(states[-1], start):
            return mistake("the parameters changed, but not through the optimizer you were given",
                           "use the `optimizer` argument (optimizer.step()); do not create a new one")
        return mistake("forgot optimizer.step(): the parameters did not change",
                       "after loss.backward(), call optimizer.step() to apply the update")
    if not any(optimizer.steps_with_gradients):
        if all(p.grad is None for p in student_model.parameters()):
            return mistake("forgot loss.backward(): no gradients were computed, so optimizer.step() "
                           "had nothing to apply", order_hint)
        return mistake("called optimizer.step() before loss.backward(): each step applied no gradient "
                       "(or the previous batch's)", order_hint)

    expected = ref_losses[0]
    if abs(losses[0] - expected) > 1e-4 * max(1.0, abs(expected)):
        counted = int((batches[0]["labels"] != -100).sum())
        if abs(losses[0] - expected * counted) < 1e-4 * max(1.0, abs(expected * counted)):
            return mistake("wrong loss: you summed the per-example losses instead of averaging them",
                           "F.cross_entropy averages by default (reduction='mean'); keep the default")
        return mistake(f"wrong loss: {name} returned {losses[0]:.4f} on the first batch, expected "
                       f"{expected:.4f} (mean cross-entropy over labels that are not -100, before the update)",
                       "F.cross_entropy(logits, labels, ignore_index=-100) on the model's logits, "
                       "before optimizer.step()")
    if not _same_state(states[0], ref_states[0]):
        if _same_state(states[0], start):
            return mistake("called optimizer.step() before loss.backward(): the first step changed nothing",
                           order_hint)
        return mistake("the first update differs from one SGD step on the loss you returned",
                       "call loss.backward() once, on exactly the loss you return, then optimizer.step()")
    if not _same_state(states[1], ref_states[1]):
        _, accumulated = _run_steps(copy.deepcopy(model), batches, _accumulating_step)
        if _same_state(states[1], accumulated[1]):
            return mistake("forgot optimizer.zero_grad(): the gradients of the previous step were added "
                           "to this step's", "call optimizer.zero_grad() at the start of every step")
        return mistake("the second step does not match the reference (the first one did)",
                       "each call must do exactly one update from a fresh gradient: " + order_hint[7:])
    message = f"{name} does one correct optimisation step and returns the loss"
    if notes:
        message += " (note: " + notes[0] + ")"
    return passed(message)


__all__ = ["Verdict", "checker", "call", "passed", "mistake", "check_count_attention_params", "check_count_ffn_params",
           "check_count_block_params", "check_lora_param_count", "check_prefix_param_count",
           "check_target_model", "check_training_step", "reference_training_step",
           "attention_params", "ffn_params", "block_params", "lora_params", "prefix_params"]


# --- chapter 00: accuracy that ignores -100 ----------------------------------------------------------

def reference_accuracy(logits, labels) -> float:
    """Fraction of labelled positions (label != -100) where the highest logit is the label."""
    counted = labels != -100
    return float(((logits.argmax(dim=-1) == labels) & counted).sum()) / max(1, int(counted.sum()))


def _accuracy_cases():
    generator = torch.Generator().manual_seed(0)
    sequence_logits = torch.randn(12, 3, generator=generator)
    sequence_labels = torch.randint(0, 3, (12,), generator=generator)
    token_logits = torch.randn(4, 7, 5, generator=generator)
    token_labels = torch.randint(0, 5, (4, 7), generator=generator)
    token_labels[:, 0] = -100                     # [CLS]
    token_labels[1:, 5:] = -100                   # padding
    token_labels[0, 1] = token_logits[0, 1].argmax()   # at least one right answer
    return [(sequence_logits, sequence_labels), (token_logits, token_labels)]


@checker
def check_accuracy(fn) -> Verdict:
    """fn(logits, labels) -> float in [0, 1]; logits (..., C), labels (...), -100 = not counted."""
    name = _name(fn)
    for logits, labels in _accuracy_cases():
        answer = call(fn, logits.clone(), labels.clone())
        if isinstance(answer, torch.Tensor) and answer.numel() == 1:
            answer = answer.item()
        if isinstance(answer, bool) or not isinstance(answer, numbers.Real):
            return mistake(f"{name} returned {reprlib.repr(answer)}; expected a number between 0 and 1",
                           "return the fraction, e.g. `return correct / counted`")
        expected = reference_accuracy(logits, labels)
        if math.isclose(answer, expected, abs_tol=1e-6):
            continue
        counted_all = float((logits.argmax(-1) == labels).float().mean())
        if math.isclose(answer, 100 * expected, abs_tol=1e-4):
            return mistake(f"{name} returned {answer:.2f}: a percentage", "return a fraction between 0 and 1")
        if math.isclose(answer, counted_all, abs_tol=1e-6):
            return mistake(f"{name} counted the positions labelled -100 too (got {answer:.3f}, expected "
                           f"{expected:.3f})", "keep only positions where labels != -100, in the numerator "
                           "and in the denominator")
        return mistake(f"{name} returned {answer:.4f} on logits of shape {tuple(logits.shape)}, expected "
                       f"{expected:.4f}", "the prediction is logits.argmax(dim=-1); compare it with the "
                       "labels where labels != -100 and divide by the number of such positions")
    return passed(f"{name} matches the reference on a sequence task and on a token task with -100 labels")
