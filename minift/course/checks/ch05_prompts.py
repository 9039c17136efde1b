"""Checkers for chapter 05 (prompts as trainable vectors): prefix attention and prompt insertion.

    from minift.course.checks import ch05_prompts as checks
    checks.check_prefix_mask(prefix_mask)
    checks.check_prefix_attention(prefix_attention)
    checks.check_forward_with_prefix(forward_with_prefix)
    checks.check_insert_prompts(insert_prompts)

Exercise 1, prefix-tuning's attention (what ``model.prefix`` does inside minift's attention):

    prefix_mask(attention_mask, n_prefix, causal) -> bool (B, T, P + T), True = "query may look at key".
        Keys are [prefix ; tokens]: the P prefix keys are visible to every query (padding never hides
        them), a real key is visible if it is not padding and (bidirectional, or not in the future).
    prefix_attention(attn, x, prefix_keys, prefix_values, attention_mask, causal) -> (B, T, d)
        attn is a minift Attention (attn.q, attn.k, attn.v, attn.o, attn.n_heads, attn.d_head); the
        prefix keys/values (B, P, d) go in front of attn.k(x), attn.v(x) as they are.
    forward_with_prefix(model, input_ids, attention_mask, prefix) -> logits (B, T, vocab)
        prefix[l] = (keys, values), each (P, d), for layer l; the real tokens' positions start at P.

Exercise 2, P-tuning v1 / prompt tuning's input (what ``model.prompt`` does):

    insert_prompts(embeddings, attention_mask, prompts, before) -> (x, mask, real_positions)
        x = [h_0 .. h_{before-1}, e(x), h_before .. h_{m-1}] (the after-prompts behind the padded
        batch), mask 1 on every prompt, real_positions the T positions of the real tokens, so the
        model can cut its outputs back to one per input token.

Every checker tries several shapes, padded and unpadded rows, causal and bidirectional models, train and
eval mode; it detects changes to your inputs and names the usual mistakes: padding that masks the
prefix, a causal mask not offset by the prefix, a triangle without its diagonal or upside down, keys and
values swapped, scores scaled by sqrt(d_model), masked scores set to 0, heads split or merged by a bare
reshape, attn.o forgotten, positions not shifted by the prefix, one prefix shared by every layer, the
final LayerNorm, the causal flag or the attention_mask left out, the model called with a borrowed hook
instead of a forward pass of one's own, prompt outputs not cut back, prompts masked as padding, and a
causal model's prompt placed after the input (where no token sees it: zero gradient).
"""

from __future__ import annotations

import math
import traceback
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .framework import _LIBRARY_DIRS, NOT_IMPLEMENTED, Rejected, Verdict, call, checker, mistake, name_of, passed
from .helpers import FixedPrefix, close, padding_mask, same_state, state_copy, tiny_model, watch_model_calls


# --------------------------------------------------------------------------------------- plumbing

class _Stub:
    def __init__(self, name: str):
        self.name = name


def _raiser(error: BaseException, default: str) -> str:
    """The student's function that raised ``error`` (the deepest frame outside minift and packages)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(_LIBRARY_DIRS)]
    return frames[-1].name if frames else default


def _call(fn, *args, what: str):
    """call() from the framework, but a NotImplementedError is blamed on the function that raised it:
    a blank prefix_attention called by forward_with_prefix is reported as prefix_attention's."""
    def guarded():
        try:
            return fn(*args)
        except NotImplementedError as error:
            return _Stub(_raiser(error, name_of(fn)))

    result = call(guarded, what=what)
    if isinstance(result, _Stub):
        own = name_of(fn)
        if result.name in (own, "guarded", "<module>"):
            message = f"{own} still raises NotImplementedError; replace that line with your code"
        else:
            message = (f"{result.name} still raises NotImplementedError ({own} calls it): "
                       f"write {result.name} first")
        raise Rejected(Verdict(NOT_IMPLEMENTED, message))
    return result


def _snapshot(*tensors):
    return [t.detach().clone() for t in tensors]


def _unchanged(tensors, copies, names, fn_name):
    for tensor, copy, name in zip(tensors, copies, names):
        if tensor.shape != copy.shape or not torch.equal(tensor, copy):
            raise Rejected(mistake(f"{fn_name} changed its input {name} in place",
                                   "build new tensors (torch.cat, .clone()) instead of writing into the "
                                   "ones you were given: the caller still needs them"))


def _as_tensor(value, what: str, fn_name: str) -> torch.Tensor:
    """Accept a tensor, a NumPy array, a list or tuple of numbers; anything else is a mistake."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (np.ndarray, list, tuple, range, np.generic)):
        try:
            return torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError):
            pass
    raise Rejected(mistake(f"{fn_name} returned {type(value).__name__} as {what}; expected a tensor",
                           f"return {what} as a torch tensor"))


def _random(shape, generator, scale=1.0):
    return torch.randn(*shape, generator=generator) * scale


# ------------------------------------------------------------------------------ reference solutions

def reference_prefix_mask(attention_mask, n_prefix, causal):
    """True where query i may look at key j; keys are [P prefix ; T tokens]."""
    batch, length = attention_mask.shape
    real = attention_mask.bool()
    allowed = real[:, None, :].expand(batch, length, length)             # padding keys hidden
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool).tril()
    prefix = torch.ones(batch, length, int(n_prefix), dtype=torch.bool)  # the prefix: always visible
    return torch.cat([prefix, allowed], dim=-1)


def _attend(attn, q, k, v, allowed, scale=True, split=True):
    """softmax(q k^T / sqrt(d_head), masked) v with heads, then attn.o."""
    batch, length, d = q.shape
    heads = attn.n_heads if split else 1
    d_head = d // heads

    def heads_of(t):
        return t.reshape(t.shape[0], t.shape[1], heads, d_head).transpose(1, 2)

    q, k, v = heads_of(q), heads_of(k), heads_of(v)
    scores = q @ k.transpose(-2, -1)
    if scale:
        scores = scores / math.sqrt(d_head)
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    out = scores.softmax(dim=-1) @ v
    return attn.o(out.transpose(1, 2).reshape(batch, length, d))


def reference_prefix_attention(attn, x, prefix_keys, prefix_values, attention_mask, causal):
    """One attention layer whose keys and values are [prefix ; own], masked by reference_prefix_mask."""
    if attention_mask is None:
        attention_mask = torch.ones(x.shape[:2], dtype=torch.long)
    keys = torch.cat([prefix_keys, attn.k(x)], dim=1)
    values = torch.cat([prefix_values, attn.v(x)], dim=1)
    allowed = reference_prefix_mask(attention_mask, prefix_keys.shape[1], causal)
    return _attend(attn, attn.q(x), keys, values, allowed)


def reference_forward_with_prefix(model, input_ids, attention_mask, prefix, attention=None):
    """The LM logits of ``model`` with prefix[l] = (keys (P, d), values (P, d)) at layer l."""
    attention = attention or reference_prefix_attention
    batch, length = input_ids.shape
    n_prefix = prefix[0][0].shape[0]
    positions = torch.arange(n_prefix, n_prefix + length)                 # after the prefix
    x = model.tok_emb(input_ids) + model.pos_emb(positions)
    for block, (keys, values) in zip(model.blocks, prefix):
        keys, values = keys.expand(batch, -1, -1), values.expand(batch, -1, -1)
        x = x + attention(block.attn, block.ln1(x), keys, values, attention_mask, model.config.causal)
        x = x + block.ffn(block.ln2(x))
    return model.lm_head(model.ln_f(x))


def reference_insert_prompts(embeddings, attention_mask, prompts, before):
    """[h_0..h_{before-1}, e(x), h_before..h_{m-1}]; prompts are never padding; where the tokens went."""
    batch, length, _ = embeddings.shape
    before = int(before)
    h = prompts.to(embeddings.dtype).unsqueeze(0).expand(batch, -1, -1)
    x = torch.cat([h[:, :before], embeddings, h[:, before:]], dim=1)
    ones = torch.ones(batch, prompts.shape[0], dtype=attention_mask.dtype)
    mask = torch.cat([ones[:, :before], attention_mask, ones[:, before:]], dim=1)
    return x, mask, torch.arange(before, before + length)


# ------------------------------------------------------------------------------------ prefix_mask

def _mask_cases():
    """(B, T, P, causal, padding per row): padded and unpadded, causal and bidirectional, P = 1..4."""
    return [(2, 5, 4, False, {1: 3}), (2, 5, 3, True, {1: 2}), (3, 4, 1, False, {2: 1}),
            (1, 6, 4, True, {}), (2, 3, 2, False, {}), (3, 6, 2, True, {0: 3, 2: 1})]


def _as_mask(value, shape, fn_name) -> torch.Tensor:
    mask = _as_tensor(value, "the mask", fn_name)
    if mask.dim() == 4 and mask.shape[1] == 1:               # (B, 1, T, P + T): the attention's shape
        mask = mask[:, 0]
    if tuple(mask.shape) != shape:
        batch, length, total = shape
        if tuple(mask.shape[-2:]) == (length, length):
            raise Rejected(mistake(f"{fn_name} returned a mask of shape {tuple(mask.shape)}: it has no columns "
                                   "for the prefix keys", f"the keys are [prefix ; tokens], so the mask is "
                                   f"(B, T, P + T) = {shape}; put P always-visible columns in front"))
        raise Rejected(mistake(f"{fn_name} returned a mask of shape {tuple(mask.shape)}, expected (B, T, P + T) "
                               f"= {shape}", "one row per query token, one column per key: P prefix keys, "
                               "then the T tokens"))
    if mask.dtype != torch.bool:
        if mask.is_floating_point() and bool((mask < 0).any()):
            raise Rejected(mistake(f"{fn_name} returned an additive mask (0 / -inf); this exercise asks for a "
                                   "boolean one", "return True where the query may look at the key, False "
                                   "elsewhere (masked_fill(~mask, -inf) turns it into scores later)"))
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise Rejected(mistake(f"{fn_name} returned values other than True/False (or 1/0)",
                                   "return a boolean tensor: True = may attend"))
        mask = mask != 0
    return mask


def wrong_masks(attention_mask, n_prefix, causal):
    """The masks the usual mistakes build, each with (message, hint): shared by the mask and attention checks."""
    batch, length = attention_mask.shape
    real = attention_mask.bool()
    ones = torch.ones(batch, n_prefix, dtype=torch.bool)
    triangle = torch.ones(length, length, dtype=torch.bool).tril()
    tokens = real[:, None, :].expand(batch, length, length) & (triangle if causal else True)
    rows = lambda keys: keys[:, None, :].expand(batch, length, keys.shape[1])      # noqa: E731
    wrong = [
        ("padding masks the prefix: the prefix columns got the padding value 0, so no token sees the prefix",
         "padding never hides the prefix (it is not part of the input): its P columns are all True",
         torch.cat([torch.zeros_like(ones[:, None].expand(batch, length, n_prefix)), tokens], -1)),
        ("padding masks the prefix: the attention_mask was extended at the wrong end ([mask ; ones] instead of "
         "[ones ; mask]), so padding lands on prefix columns and the tokens' columns are shifted",
         "the keys are [prefix ; tokens]: key_mask = cat([ones(B, P), attention_mask], dim=1)",
         rows(torch.cat([real, ones], 1)) & (torch.cat([ones[0, None].expand(length, -1), triangle], 1)
                                             if causal else True)),
        ("the causal triangle starts at the prefix: query i sees only keys 0..i of [prefix ; tokens], so "
         "later prefix keys are hidden and the real tokens are shifted",
         "the prefix is always visible; offset the triangle by P (query i sees prefix keys and tokens 0..i)",
         rows(torch.cat([ones, real], 1)) & torch.ones(length, n_prefix + length, dtype=torch.bool).tril()),
        ("the prefix columns are at the end: the keys are [prefix ; tokens], so the P prefix columns come first",
         "torch.cat([prefix_visible, token_mask], dim=-1)", torch.cat([tokens, rows(ones)], -1)),
    ]
    if causal:
        wrong.append(("the causal triangle leaves out the diagonal: a token cannot see itself (tril(diagonal=-1)?)",
                      "query i sees tokens 0..i, itself included: torch.ones(T, T).tril() (diagonal=0)",
                      torch.cat([rows(ones), real[:, None, :].expand(batch, length, length)
                                 & torch.ones(length, length, dtype=torch.bool).tril(-1)], -1)))
        wrong.append(("the causal triangle is upside down: a token sees the tokens after it, not those before "
                      "(triu instead of tril)", "query i (row) sees keys j <= i: the LOWER triangle, .tril()",
                      torch.cat([rows(ones), real[:, None, :].expand(batch, length, length)
                                 & torch.ones(length, length, dtype=torch.bool).triu()], -1)))
        wrong.append(("a causal model's token sees tokens after it (no causal triangle on the token part)",
                      "for causal=True the token part is lower-triangular: query i sees tokens 0..i",
                      torch.cat([rows(ones), rows(real)], -1)))
    else:
        wrong.append(("a bidirectional model (causal=False) got a causal triangle",
                      "apply the triangle only when causal is True",
                      torch.cat([rows(ones), rows(real) & triangle], -1)))
    wrong.append(("padding keys are visible: real tokens may attend to padding",
                  "the token columns take the attention_mask: a padding key is False for every query",
                  torch.cat([rows(ones), (triangle if causal else torch.ones_like(triangle))
                             .expand(batch, length, length)], -1)))
    return wrong


def _diagnose_mask(got, want, real, n_prefix, causal, padded_rows, fn_name) -> Verdict | None:
    """got, want: (B, T, P + T) bool; real: (B, T) bool. Compare on real query rows only (a padding
    query's output is never used)."""
    rows = real[:, :, None].expand_as(want)
    if torch.equal(got[rows], want[rows]):
        return None
    if torch.equal(got[rows], ~want[rows]):
        return mistake(f"{fn_name} returns True where attention is NOT allowed (the mask is inverted)",
                       "True must mean 'this query may look at this key'")
    for message, hint, wrong in wrong_masks(real.long(), n_prefix, causal):
        if torch.equal(got[rows], wrong[rows]):
            return mistake(message, hint)
    got_prefix = got[..., :n_prefix]
    rows_p = real[:, :, None].expand_as(got_prefix)
    if not bool(got_prefix[rows_p].all()):
        unpadded = [i for i in range(real.shape[0]) if i not in padded_rows]
        if padded_rows and all(bool(got_prefix[i][real[i]].all()) for i in unpadded):
            return mistake("padding masks the prefix: in rows with padding some real tokens cannot see the "
                           "prefix keys", "padding never hides the prefix: only the T token columns take the "
                           "attention_mask, the P prefix columns are all True")
        return mistake("some real tokens cannot see some prefix keys", "the P prefix columns are all True")
    return mistake("the token part of the mask is wrong",
                   "token columns: key j visible to query i if j is not padding and (not causal or j <= i)")


@checker
def check_prefix_mask(fn) -> Verdict:
    """fn(attention_mask (B, T), n_prefix, causal) -> bool (B, T, P + T)."""
    name = name_of(fn)
    for number, (batch, length, n_prefix, causal, pad) in enumerate(_mask_cases()):
        attention_mask = padding_mask(batch, length, pad)
        if number == 1:
            attention_mask = attention_mask.bool()             # any 0/1 dtype is a valid mask
        prefix_count = np.int64(n_prefix) if number == 2 else n_prefix   # any integer type
        copy = _snapshot(attention_mask)
        got = _call(fn, attention_mask, prefix_count, causal, what=f"{name}(attention_mask, n_prefix, causal)")
        _unchanged([attention_mask], copy, ["attention_mask"], name)
        got = _as_mask(got, (batch, length, n_prefix + length), name)
        want = reference_prefix_mask(attention_mask, n_prefix, causal)
        verdict = _diagnose_mask(got, want, attention_mask.bool(), n_prefix, causal, set(pad), name)
        if verdict is not None:
            where = f" (case {number + 1}: B={batch}, T={length}, P={n_prefix}, causal={causal})"
            verdict.message += where
            return verdict
    return passed(f"{name} lets every query see the prefix, hides padding keys, and keeps the causal "
                  f"triangle on the tokens, on {len(_mask_cases())} cases (P = 1..4, padded rows, causal "
                  "and bidirectional)")


# ------------------------------------------------------------------------------ prefix_attention

def _attention_cases():
    """(seed, d_model, n_heads, B, T, P, causal, padding)."""
    return [(0, 12, 3, 2, 5, 3, True, {1: 2}), (1, 12, 3, 3, 4, 2, False, {0: 1}),
            (2, 8, 2, 1, 6, 1, True, {}), (3, 16, 4, 2, 3, 4, False, {})]


def _attention_inputs(seed, d_model, n_heads, batch, length, n_prefix, pad):
    model = tiny_model(seed, True, d_model=d_model, n_layers=1, n_heads=n_heads)
    attn = model.blocks[0].attn
    generator = torch.Generator().manual_seed(100 + seed)
    x = _random((batch, length, d_model), generator)
    keys = _random((batch, n_prefix, d_model), generator, 1.5)
    values = _random((batch, n_prefix, d_model), generator, 1.5)
    return attn, x, keys, values, padding_mask(batch, length, pad)


def _output(value, shape, fn_name, what="the output"):
    out = _as_tensor(value, what, fn_name)
    if tuple(out.shape) != shape:
        raise Rejected(mistake(f"{fn_name} returned shape {tuple(out.shape)}, expected {shape}",
                               "one output vector per real token: (B, T, d) after attn.o; the prefix "
                               "positions are keys and values only, they produce no output"))
    return out


def _attention_variants(attn, x, keys, values, mask, causal):
    """What the usual mistakes compute, by name."""
    n_prefix = keys.shape[1]
    allowed = reference_prefix_mask(mask, n_prefix, causal)
    q, k, v = attn.q(x), attn.k(x), attn.v(x)
    batch, length = mask.shape
    tokens_only = allowed[..., n_prefix:]
    keys_all, values_all = torch.cat([keys, k], 1), torch.cat([values, v], 1)
    heads, d_head = attn.n_heads, attn.d_head
    q_h = q.reshape(batch, length, heads, d_head).transpose(1, 2)
    k_h = keys_all.reshape(batch, -1, heads, d_head).transpose(1, 2)
    v_h = values_all.reshape(batch, -1, heads, d_head).transpose(1, 2)
    scores = (q_h @ k_h.transpose(-2, -1)) / math.sqrt(d_head)
    masked = scores.masked_fill(~allowed[:, None], float("-inf"))
    merged = masked.softmax(-1) @ v_h                                        # (B, heads, T, d_head)

    def no_transpose(t):                                                     # heads split by a bare reshape
        return t.reshape(batch, heads, t.shape[1], d_head)
    bare = (no_transpose(q) @ no_transpose(keys_all).transpose(-2, -1)) / math.sqrt(d_head)
    bare = bare.masked_fill(~allowed[:, None], float("-inf")).softmax(-1) @ no_transpose(values_all)
    return [
        ("the scores are divided by sqrt(d_model), not by sqrt(d_head)",
         f"each head's dot products have d_head = {d_head} terms: scores = q @ k^T / sqrt(attn.d_head)",
         _attend(attn, q * math.sqrt(d_head / (heads * d_head)), keys_all, values_all, allowed)),
        ("attn.o was not applied: the heads were merged but not projected",
         "the last step is attn.o(merged heads), the output projection",
         merged.transpose(1, 2).reshape(batch, length, heads * d_head)),
        ("the masked scores were set to 0 instead of -inf: a score of 0 still gets weight exp(0) after the "
         "softmax, so the hidden keys are still seen", "scores.masked_fill(~mask, float('-inf'))",
         attn.o((scores.masked_fill(~allowed[:, None], 0.0).softmax(-1) @ v_h).transpose(1, 2)
                .reshape(batch, length, heads * d_head))),
        ("the heads were merged back by a bare reshape (B, heads, T, d_head) -> (B, T, d) without moving the "
         "head axis back first, which mixes tokens and heads", "out.transpose(1, 2).reshape(B, T, d)",
         attn.o(merged.reshape(batch, length, heads * d_head))),
        ("the heads were split by a bare reshape (B, T, d) -> (B, heads, T, d_head), which mixes tokens and "
         "heads", "t.reshape(B, T, heads, d_head).transpose(1, 2)",
         attn.o(bare.transpose(1, 2).reshape(batch, length, heads * d_head))),
        ("keys and values swapped: the prefix keys were used as values and the values as keys",
         "keys = cat([prefix_keys, attn.k(x)]), values = cat([prefix_values, attn.v(x)])",
         _attend(attn, q, torch.cat([values, k], 1), torch.cat([keys, v], 1), allowed)),
        ("the prefix keys and values were passed through attn.k / attn.v again",
         "the prefix already holds keys and values (what attn.k and attn.v would output): concatenate "
         "them as they are",
         _attend(attn, q, torch.cat([attn.k(keys), k], 1), torch.cat([attn.v(values), v], 1), allowed)),
        ("the prefix has no effect on the output: it was left out of the keys and values, or every prefix "
         "column of the mask is False (padding masks the prefix? check your prefix_mask)",
         "concatenate the prefix in front of this layer's own keys and values; its mask columns are all True",
         _attend(attn, q, k, v, tokens_only)),
        ("the scores are not divided by sqrt(d_head)", "scores = q @ k^T / sqrt(attn.d_head)",
         _attend(attn, q, torch.cat([keys, k], 1), torch.cat([values, v], 1), allowed, scale=False)),
        ("attention over the whole width d with one head: the heads were not split",
         f"reshape q, k, v to (B, heads, length, d_head) with attn.n_heads = {attn.n_heads}",
         _attend(attn, q, torch.cat([keys, k], 1), torch.cat([values, v], 1), allowed, split=False)),
        ("the prefix is concatenated after the tokens, but the mask puts its columns first",
         "keys and values are [prefix ; tokens], in that order, like the mask's columns",
         _attend(attn, q, torch.cat([k, keys], 1), torch.cat([v, values], 1), allowed)),
    ] + [(message + " (check your prefix_mask)", hint, _attend(attn, q, torch.cat([keys, k], 1),
                                                                torch.cat([values, v], 1), wrong))
         for message, hint, wrong in wrong_masks(mask, n_prefix, causal)]


@checker
def check_prefix_attention(fn) -> Verdict:
    """fn(attn, x, prefix_keys, prefix_values, attention_mask, causal) -> (B, T, d)."""
    name = name_of(fn)
    for number, (seed, d_model, n_heads, batch, length, n_prefix, causal, pad) in enumerate(_attention_cases()):
        attn, x, keys, values, mask = _attention_inputs(seed, d_model, n_heads, batch, length, n_prefix, pad)
        real = mask.bool()
        for mode in ("train", "eval"):
            attn.train(mode == "train")
            inputs = [x, keys, values, mask]
            copies = _snapshot(*inputs)
            weights = _snapshot(*attn.parameters())
            got = _call(fn, attn, x, keys, values, mask, causal,
                        what=f"{name}(attn, x, prefix_keys, prefix_values, attention_mask, causal)")
            _unchanged(inputs, copies, ["x", "prefix_keys", "prefix_values", "attention_mask"], name)
            _unchanged(list(attn.parameters()), weights, ["attn's weights"] * len(weights), name)
            if attn.training != (mode == "train"):
                return mistake(f"{name} switched the layer to {'train' if attn.training else 'eval'} mode",
                               "leave attn's mode as it was (do not call .train() or .eval() on it)")
            got = _output(got, (batch, length, d_model), name)
            if not bool(torch.isfinite(got[real]).all()):
                return mistake(f"{name} gives NaN or inf for real tokens (case {number + 1}, {mode} mode): a softmax "
                               "over entries that are all -inf gives NaN", "take the softmax over the keys "
                               "(dim=-1): every query sees the prefix, so no such row is all -inf; a softmax over "
                               "the queries (dim=-2) meets a padding key's all -inf column")
            with torch.no_grad():
                want = reference_prefix_attention(attn, x, keys, values, mask, causal)
                # the library's own attention with its prefix hook: the reference is the library
                library = attn(x, reference_prefix_mask(mask, n_prefix, causal)[:, None], False, (keys, values))
            assert close(want[real], library[real]), "reference and minift's attention disagree"
            if close(got[real], want[real]):
                continue
            where = f" (case {number + 1}: d={d_model}, heads={n_heads}, B={batch}, T={length}, P={n_prefix}, " \
                    f"causal={causal}, {mode} mode)"
            with torch.no_grad():
                variants = _attention_variants(attn, x, keys, values, mask, causal)
            for message, hint, output in variants:
                if close(got[real], output[real]):
                    return mistake(message + where, hint)
            return mistake("the output differs from softmax(Q [K_prefix ; K]^T / sqrt(d_head), masked) "
                           f"[V_prefix ; V], heads merged and projected by attn.o{where}",
                           "check prefix_mask first, then: q = attn.q(x), keys = cat([prefix_keys, attn.k(x)]), "
                           "values = cat([prefix_values, attn.v(x)]), split heads, mask, softmax, merge, attn.o")
    return passed(f"{name} equals minift's attention with a prefix on {len(_attention_cases())} cases "
                  "(2-4 heads, P = 1..4, padded rows, causal and bidirectional, train and eval mode)")


# --------------------------------------------------------------------------- forward_with_prefix

def _forward_cases():
    """(seed, causal, n_layers, B, T, P, padding)."""
    return [(0, True, 2, 2, 5, 3, {1: 2}), (1, False, 3, 3, 4, 2, {0: 1}), (2, True, 3, 1, 6, 1, {})]


def _forward_inputs(seed, causal, n_layers, batch, length, n_prefix, pad):
    model = tiny_model(10 + seed, causal, n_layers=n_layers)
    generator = torch.Generator().manual_seed(200 + seed)
    ids = torch.randint(0, model.config.vocab_size, (batch, length), generator=generator)
    d = model.config.d_model
    prefix = [(_random((n_prefix, d), generator, 1.5), _random((n_prefix, d), generator, 1.5))
              for _ in range(n_layers)]
    return model, ids, padding_mask(batch, length, pad), prefix


def _forward_variants(model, ids, mask, prefix):
    """Logits of the usual mistakes, by name."""
    n_prefix = prefix[0][0].shape[0]
    variants = []
    moved = model.pos_emb.weight.detach().clone()
    # positions 0..T-1: the same as shifting the position table by P
    with torch.no_grad():
        model.pos_emb.weight[n_prefix:] = moved[:-n_prefix]
        unshifted = reference_forward_with_prefix(model, ids, mask, prefix)
        model.pos_emb.weight.copy_(moved)
    variants.append(("positions not shifted by the prefix: the real tokens must be numbered P..P+T-1, "
                     "as if the prefix were P earlier tokens", "positions = torch.arange(P, P + T)",
                     unshifted))
    variants.append(("one prefix shared by every layer: each layer must use its own prefix[l]",
                     "loop over zip(model.blocks, prefix) so that layer l gets prefix[l]",
                     reference_forward_with_prefix(model, ids, mask, [prefix[0]] * len(prefix))))
    variants.append(("keys and values swapped: prefix[l] is (keys, values)",
                     "keys, values = prefix[l]; pass them to prefix_attention in that order",
                     reference_forward_with_prefix(model, ids, mask, [(v, k) for k, v in prefix])))
    final_norm = model.ln_f
    model.ln_f = nn.Identity()
    try:
        no_final_norm = reference_forward_with_prefix(model, ids, mask, prefix)
    finally:
        model.ln_f = final_norm
    variants.append(("the final LayerNorm (model.ln_f) is missing before the LM head",
                     "logits = model.lm_head(model.ln_f(x))", no_final_norm))
    causal = model.config.causal
    variants.append((f"the model's own causal flag was ignored: this model is "
                     f"{'causal' if causal else 'bidirectional'}, your attention was "
                     f"{'bidirectional' if causal else 'causal'}",
                     "pass model.config.causal to prefix_attention",
                     reference_forward_with_prefix(model, ids, mask, prefix, attention=_with_causal(not causal))))
    variants.append(("the attention_mask was not used: real tokens attend to padding",
                     "pass attention_mask to prefix_attention in every block",
                     reference_forward_with_prefix(model, ids, torch.ones_like(mask), prefix)))
    first_only = reference_forward_with_prefix(
        model, ids, mask, prefix,
        attention=_FirstLayerOnly(model, n_prefix))
    variants.append(("the prefix enters the first layer only: prefix-tuning puts one in EVERY layer",
                     "call prefix_attention with prefix[l] in every block", first_only))
    return variants


def _with_causal(causal):
    """reference_prefix_attention with the causal flag forced (a student who hard-codes it)."""
    def attention(attn, x, keys, values, mask, _causal):
        return reference_prefix_attention(attn, x, keys, values, mask, causal)
    return attention


class _FirstLayerOnly:
    """An attention function that uses the prefix in layer 0 and no prefix elsewhere (positions still
    shifted): what a student gets who treats the prefix like an input prompt."""

    def __init__(self, model, n_prefix):
        self.first = model.blocks[0].attn

    def __call__(self, attn, x, keys, values, mask, causal):
        if attn is self.first:
            return reference_prefix_attention(attn, x, keys, values, mask, causal)
        allowed = reference_prefix_mask(mask, 0, causal)
        return _attend(attn, attn.q(x), attn.k(x), attn.v(x), allowed)


@checker
def check_forward_with_prefix(fn) -> Verdict:
    """fn(model, input_ids, attention_mask, prefix) -> LM logits (B, T, vocab)."""
    name = name_of(fn)
    for number, (seed, causal, n_layers, batch, length, n_prefix, pad) in enumerate(_forward_cases()):
        model, ids, mask, prefix = _forward_inputs(seed, causal, n_layers, batch, length, n_prefix, pad)
        real = mask.bool()
        with torch.no_grad():
            library_model = tiny_model(10 + seed, causal, n_layers=n_layers).eval()
            library_model.prefix = FixedPrefix(prefix)
            library = library_model(ids, attention_mask=mask).logits
            want = reference_forward_with_prefix(model, ids, mask, prefix)
        assert close(want[real], library[real]), "reference and minift's prefix hook disagree"
        for mode in ("train", "eval"):
            model.train(mode == "train")
            flat = [t for pair in prefix for t in pair]
            copies = _snapshot(ids, mask, *flat)
            state = state_copy(model)
            with watch_model_calls(model) as model_calls:
                got = _call(fn, model, ids, mask, prefix, what=f"{name}(model, input_ids, attention_mask, prefix)")
            _unchanged([ids, mask, *flat], copies, ["input_ids", "attention_mask"] + ["prefix"] * len(flat), name)
            if not same_state(state, model):
                return mistake(f"{name} changed the model's weights", "the forward pass only reads the weights")
            if model.prefix is not None or model.prompt is not None:
                return mistake(f"{name} attached a hook to the model (model.prefix / model.prompt)",
                               "compute the forward pass yourself with the blocks' modules")
            if model_calls:
                return mistake(f"{name} called the model itself (model(...)), e.g. with a prefix hook attached for "
                               "the call: the exercise is to write that forward pass",
                               "compute it with model.tok_emb, model.pos_emb, the blocks' modules, model.ln_f and "
                               "model.lm_head, and your prefix_attention")
            if model.training != (mode == "train"):
                return mistake(f"{name} changed the model's train/eval mode",
                               "leave the model's mode as it was")
            got = _output(got, (batch, length, model.config.vocab_size), name, "the logits")
            if close(got[real], want[real]):
                continue
            where = f" (case {number + 1}: {'causal' if causal else 'bidirectional'}, {n_layers} layers, " \
                    f"B={batch}, T={length}, P={n_prefix}, {mode} mode)"
            with torch.no_grad():
                variants = _forward_variants(model, ids, mask, prefix)
            for message, hint, output in variants:
                if close(got[real], output[real]):
                    return mistake(message + where, hint)
            return mistake(f"the logits differ from minift's model with the same prefix{where}",
                           "x = tok_emb(ids) + pos_emb(arange(P, P + T)); per block: x += "
                           "prefix_attention(block.attn, block.ln1(x), keys, values, mask, causal); "
                           "x += block.ffn(block.ln2(x)); logits = lm_head(ln_f(x))")
    return passed(f"{name} gives the logits of minift's prefix hook on {len(_forward_cases())} models "
                  "(causal and bidirectional, 2-3 layers, each with its own prefix, positions from P on, "
                  "train and eval mode)")


# -------------------------------------------------------------------------------- insert_prompts

def _prompt_cases():
    """(seed, B, T, d, m, before, padding)."""
    return [(0, 2, 5, 8, 3, 1, {1: 2}), (1, 1, 4, 6, 2, 2, {}), (2, 3, 3, 6, 4, 0, {0: 1}),
            (3, 2, 6, 8, 5, 3, {0: 2, 1: 4}), (4, 3, 4, 8, 1, 1, {2: 1})]


def _prompt_variants(embeddings, mask, prompts, before):
    """(message, hint, x) of the usual insertion mistakes."""
    batch, length, _ = embeddings.shape
    m = prompts.shape[0]
    h = prompts.unsqueeze(0).expand(batch, -1, -1)
    variants = []
    if before != m:
        variants.append(("the template is ignored: every prompt vector went in front of the input",
                         "the first `before` prompts go in front, the other m - before behind the input",
                         torch.cat([h, embeddings], 1)))
    if before != 0:
        variants.append(("every prompt vector went after the input (the template is ignored); in a causal "
                         "model no real token can see a prompt behind it, so it gets zero gradient and never "
                         "trains", "put prompts[:before] in front of the embeddings and prompts[before:] behind",
                         torch.cat([embeddings, h], 1)))
    if 0 < before < m:
        variants.append(("the prompt vectors are split the wrong way round: prompts[before:] went in front",
                         "x = cat([prompts[:before], embeddings, prompts[before:]])",
                         torch.cat([h[:, m - before:], embeddings, h[:, :m - before]], 1)))
    if before < m:
        # the after-prompts written right after each row's last real token, before the padding
        rows = []
        for i in range(batch):
            n = int(mask[i].sum())
            rows.append(torch.cat([h[i, :before], embeddings[i, :n], h[i, before:], embeddings[i, n:]], 0))
        variants.append(("the after-prompts went right behind each row's real tokens, in front of the padding",
                         "append them behind the whole padded batch, so that the real tokens of every row "
                         "sit at the same positions (real_positions is one list for the whole batch)",
                         torch.stack(rows)))
    return variants


def _as_positions(value, fn_name):
    positions = _as_tensor(value, "real_positions", fn_name)
    if positions.dtype == torch.bool:
        raise Rejected(mistake(f"{fn_name} returned real_positions as a boolean mask",
                               "return the indices of the real tokens, e.g. torch.arange(before, before + T)"))
    if positions.is_floating_point():
        if not bool((positions == positions.round()).all()):
            raise Rejected(mistake(f"{fn_name} returned real_positions that are not whole numbers",
                                   "positions are indices: torch.arange(before, before + T)"))
    if positions.dim() > 1:
        raise Rejected(mistake(f"{fn_name} returned real_positions of shape {tuple(positions.shape)}; expected one "
                               "list of T positions for the whole batch, shape (T,)",
                               "the real tokens sit at the same positions in every row: "
                               "torch.arange(before, before + T)"))
    return positions.long()


@checker
def check_insert_prompts(fn) -> Verdict:
    """fn(embeddings (B, T, d), attention_mask (B, T), prompts (m, d), before) ->
    (x (B, m + T, d), mask (B, m + T), real_positions (T,))."""
    name = name_of(fn)
    for number, (seed, batch, length, d, m, before, pad) in enumerate(_prompt_cases()):
        generator = torch.Generator().manual_seed(300 + seed)
        embeddings = _random((batch, length, d), generator)
        mask = padding_mask(batch, length, pad)
        prompts = _random((m, d), generator, 2.0)
        where = f" (case {number + 1}: B={batch}, T={length}, m={m}, before={before})"
        given_before = np.int64(before) if number == 3 else before      # any integer type
        copies = _snapshot(embeddings, mask, prompts)
        result = _call(fn, embeddings, mask, prompts, given_before,
                       what=f"{name}(embeddings, attention_mask, prompts, before)")
        _unchanged([embeddings, mask, prompts], copies, ["embeddings", "attention_mask", "prompts"], name)
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            return mistake(f"{name} returned {type(result).__name__}"
                           + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
                           + "; expected three things: (x, mask, real_positions)",
                           "return x, mask, real_positions")
        x, new_mask, positions = result
        x = _as_tensor(x, "x", name)
        want_x, want_mask, want_positions = reference_insert_prompts(embeddings, mask, prompts, before)
        if tuple(x.shape) == (batch, length, d):
            return mistake(f"x has shape {tuple(x.shape)}: the prompts were not inserted{where}",
                           "x is (B, m + T, d): the m prompt vectors plus the T token embeddings")
        if tuple(x.shape) != tuple(want_x.shape):
            return mistake(f"x has shape {tuple(x.shape)}, expected (B, m + T, d) = {tuple(want_x.shape)}{where}",
                           "expand the prompts to the batch (prompts.expand(B, -1, -1)) and concatenate along "
                           "the sequence (dim=1)")
        if not close(x, want_x):
            for message, hint, variant in _prompt_variants(embeddings, mask, prompts, before):
                if close(x, variant):
                    return mistake(message + where, hint)
            return mistake(f"x is not [prompts[:before], embeddings, prompts[before:]]{where}",
                           "x = torch.cat([h[:, :before], embeddings, h[:, before:]], dim=1) with "
                           "h = prompts.expand(B, -1, -1)")
        new_mask = _as_tensor(new_mask, "the mask", name)
        if tuple(new_mask.shape) == (batch, length):
            return mistake(f"the attention mask was not extended: it is still (B, T){where}",
                           "the mask must cover the m prompt positions too: (B, m + T), 1 on every prompt")
        if tuple(new_mask.shape) != (batch, m + length):
            return mistake(f"the mask has shape {tuple(new_mask.shape)}, expected (B, m + T) = {(batch, m + length)}"
                           f"{where}", "concatenate ones for the prompts with the attention_mask, like x")
        prompt_columns = torch.ones(m + length, dtype=torch.bool)
        prompt_columns[before:before + length] = False
        if bool((new_mask[:, prompt_columns] == 0).any()):
            return mistake(f"the prompts are marked as padding (0 in the mask): no token would attend to them{where}",
                           "the prompt vectors are real input: their mask entries are 1")
        if not torch.equal(new_mask.bool(), want_mask.bool()):
            return mistake(f"the mask's token part is not the given attention_mask{where}",
                           "mask = cat([ones(B, before), attention_mask, ones(B, m - before)], dim=1)")
        positions = _as_positions(positions, name)
        if positions.numel() == m + length:
            return mistake(f"the prompt outputs are not cut back: real_positions lists all m + T positions, so "
                           f"the model returns outputs for the prompts too{where}",
                           "real_positions holds only the T positions of the real tokens")
        if positions.numel() == length and torch.equal(positions, torch.arange(length)) and before > 0:
            return mistake(f"real_positions is 0..T-1, but {before} prompt(s) sit in front: the model would keep "
                           f"the prompts' outputs and drop the last tokens'{where}",
                           "the real tokens start after the prompts in front: arange(before, before + T)")
        if not torch.equal(positions, want_positions):
            return mistake(f"real_positions is {positions.tolist()}, expected {want_positions.tolist()}{where}",
                           "torch.arange(before, before + T)")
    verdict = _check_in_a_model(fn, name)
    if verdict is not None:
        return verdict
    return passed(f"{name} builds [h_0..h_(before-1), e(x), h_before..h_(m-1)] with an extended mask and the real "
                  f"tokens' positions on {len(_prompt_cases())} cases; in a model it gives the logits of "
                  "minift's prompt hook, and the prompts in front of a causal model get a gradient")


class _StudentPrompt(nn.Module):
    """model.prompt built on the student's insert_prompts, with trainable prompt vectors."""

    def __init__(self, fn, prompts, before):
        super().__init__()
        self.fn, self.before = fn, before
        self.embedding = nn.Parameter(prompts.clone())
        self.length = prompts.shape[0]

    def forward(self, embeddings, attention_mask):
        x, mask, positions = self.fn(embeddings, attention_mask, self.embedding, self.before)
        if not isinstance(positions, torch.Tensor):
            positions = torch.as_tensor(np.asarray(positions))
        return x, torch.as_tensor(mask), positions.reshape(-1).long()


def _check_in_a_model(fn, name) -> Verdict | None:
    """Plug the student's function into minift's prompt hook: same logits as ptuning's PromptEncoder, and
    a gradient for the prompts in front of a causal model."""
    from minift.methods.ptuning import PromptEncoder

    for seed, causal, m, before in ((0, True, 3, 3), (1, False, 4, 2)):
        model = tiny_model(400 + seed, causal, d_model=12).eval()
        generator = torch.Generator().manual_seed(500 + seed)
        prompts = _random((m, 12), generator, 1.5)
        ids = torch.randint(0, model.config.vocab_size, (2, 5), generator=generator)
        mask = padding_mask(2, 5, {1: 2})
        real = mask.bool()
        library = PromptEncoder(12, m, encoder=None, before=before, init=prompts)
        model.prompt = library
        with torch.no_grad():
            want = model(ids, attention_mask=mask).logits
        model.prompt = _StudentPrompt(fn, prompts, before)
        logits = _call(lambda: model(ids, attention_mask=mask).logits, what=f"a model using {name}")
        if tuple(logits.shape) != tuple(want.shape) or not close(logits[real], want[real]):
            return mistake(f"plugged into a {'causal' if causal else 'bidirectional'} model, {name} gives other "
                           "logits than minift's prompt hook", "x, mask and real_positions must follow the hook's "
                           "contract: see the exercise text")
        if causal:
            loss = logits[real].pow(2).mean()
            call(loss.backward, what=f"loss.backward() through {name}")
            grad = model.prompt.embedding.grad
            if grad is None or not bool(grad.abs().sum() > 0):
                return mistake("the prompts in front of a causal model get zero gradient through your function",
                               "use the prompts tensor you are given (not a detached copy) in x")
    return None


__all__ = ["check_prefix_mask", "check_prefix_attention", "check_forward_with_prefix", "check_insert_prompts",
           "reference_prefix_mask", "reference_prefix_attention", "reference_forward_with_prefix",
           "reference_insert_prompts", "wrong_masks"]
