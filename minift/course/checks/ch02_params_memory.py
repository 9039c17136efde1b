"""Checkers for chapter 02 (counting parameters and memory): closed-form parameter counts.

    from minift.course.checks import ch02_params_memory as checks
    checks.check_count_attention_params(count_attention_params)
    ✅ passed: count_attention_params gives 4*d*d + 4*d on all 3 cases tried

Each counting checker runs your formula on a few shapes (a tiny one, a middle one, GPT-2 small's) and,
when the answer is wrong, tries the usual wrong formulas (biases forgotten, d_ff used for d_model, one
matrix counted, ...) to name the mistake. The references below are the closed forms.
"""

from __future__ import annotations

import math
import reprlib

import torch

from .framework import Verdict, as_number, call, checker, mistake, name_of, passed


# --- parameter counts -------------------------------------------------------------------------------

def _as_count(value, what: str) -> int | Verdict:
    """An integer count (from an int, a float, a numpy scalar or a one-number tensor), or a mistake
    Verdict explaining what was returned instead."""
    number = as_number(value)
    if number is None:
        if value is None:
            return mistake(f"{what} returned None; expected a whole number",
                           "end the function with `return ...`: printing the count is not returning it")
        return mistake(f"{what} returned {reprlib.repr(value)} (a {type(value).__name__}); expected a whole number",
                       "return the count, e.g. `return 4 * d_model * d_model + ...`, not print it")
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float64 \
            and abs(number) > 2 ** 24:
        number = float(round(number))       # float32 cannot hold every large count exactly
    value = number
    if not math.isfinite(value) or float(value) != int(value):
        return mistake(f"{what} returned {value}, which is not a whole number",
                       "parameter counts are integers; did you divide somewhere?")
    return int(value)


def _check_counts(student, cases, reference, known_mistakes, formula: str, hint: str) -> Verdict:
    """Shared logic of the counting checkers.

    cases: argument tuples; reference(*args) -> right count; known_mistakes: [(wrong_formula, message,
    hint)]. A known mistake is named when it explains the student's answer on EVERY case.
    """
    name = name_of(student)
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
    cases = [(8,), (64,), (768,), (100,)]
    known = [
        (lambda d: 3 * d * d + 3 * d + d * d, "you counted the output projection o without its bias",
         "each of the 4 projections (q, k, v, o) has a bias of d_model numbers"),
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
    cases = [(8, 32), (64, 100), (768, 3072), (20, 50)]
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
    cases = [(8, 32), (64, 100), (768, 3072), (20, 50)]
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
        (lambda d, f: 3 * d * d + 3 * d + ffn_params(d, f) + 4 * d,
         "you counted only 3 attention matrices (q, k, v)",
         "attention has a 4th projection, o (d_model x d_model plus a bias)"),
        (lambda d, f: attention_params(d) + d * f + f + 4 * d, "you counted only one FFN matrix (w1)",
         "the FFN has two linear layers: w1 (d_model -> d_ff) and w2 (d_ff -> d_model)"),
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
    cases = [(768, 768, 4), (64, 32, 2), (100, 300, 8), (10, 6, 3)]
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
        (lambda i, o, r: r + i + o, "you added r, d_in and d_out",
         "A has r x d_in numbers and B has d_out x r: multiply, then add the two"),
        (lambda i, o, r: 2 * r * o, "you counted B twice (assumed d_in = d_out)", "A has shape (r x d_in); use d_in"),
    ]
    return _check_counts(fn, cases, lora_params, known, "r * (d_in + d_out)",
                         "A has shape (r, d_in) and B has shape (d_out, r)")


def prefix_params(n_layers: int, length: int, d_model: int) -> int:
    """Reference: every layer gets `length` key vectors and `length` value vectors of d_model."""
    return n_layers * 2 * length * d_model


@checker
def check_prefix_param_count(fn) -> Verdict:
    """fn(n_layers, length, d_model) -> prefix-tuning parameters without reparameterisation."""
    cases = [(2, 4, 16), (12, 10, 768), (6, 3, 64), (3, 7, 10)]
    known = [
        (lambda n, p, d: n * p * d, "you forgot the 2: each layer's prefix has keys AND values",
         "attention uses the prefix as extra keys and extra values, two separate sets of vectors"),
        (lambda n, p, d: 2 * p * d, "you forgot the layers: there is a prefix in every layer",
         "multiply by n_layers"),
        (lambda n, p, d: p * d, "you counted one set of prompt vectors at the input",
         "that is prompt tuning / P-tuning v1; prefix-tuning has keys and values in every layer"),
        (lambda n, p, d: n * 2 * p * d * d, "you multiplied by d_model twice",
         "each prefix vector has d_model numbers: n_layers * 2 * length * d_model"),
        (lambda n, p, d: n * 2 * d, "you forgot the prefix length: each layer has `length` key and value vectors",
         "multiply by length"),
        (lambda n, p, d: (n + 1) * 2 * p * d, "you counted one layer too many (n_layers + 1)",
         "there is one prefix per Transformer layer: n_layers of them"),
        (lambda n, p, d: n * 3 * p * d, "you counted queries too",
         "prefix positions are only attended to (keys and values); they ask no queries"),
    ]
    return _check_counts(fn, cases, prefix_params, known, "n_layers * 2 * length * d_model",
                         "count, for every layer, `length` key vectors and `length` value vectors of d_model")


__all__ = ["check_count_attention_params", "check_count_ffn_params", "check_count_block_params",
           "check_lora_param_count", "check_prefix_param_count",
           "attention_params", "ffn_params", "block_params", "lora_params", "prefix_params"]
