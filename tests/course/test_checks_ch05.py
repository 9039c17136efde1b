"""Chapter 05's checkers: the references pass, blanks are "not implemented" (blamed on the right
function), correct alternatives pass, and wrong implementations a student would really write each get
a failing verdict that names the mistake."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minift.course.checks import ch05_prompts as checks
from minift.course.checks.ch05_prompts import (reference_forward_with_prefix, reference_insert_prompts,
                                               reference_prefix_attention, reference_prefix_mask)
from verdict_asserts import quiet


# ==================================================================== exercise 1: prefix attention

# --- prefix_mask: correct alternatives ---------------------------------------------------------------

def mask_square_triangle(attention_mask, n_prefix, causal):
    """Build the (P+T) x (P+T) mask of [prefix ; tokens] as one sequence and keep the last T rows."""
    batch, length = attention_mask.shape
    keys = torch.cat([torch.ones(batch, n_prefix), attention_mask.float()], dim=1).bool()
    full = keys[:, None, :].expand(batch, n_prefix + length, n_prefix + length)
    if causal:
        full = full & torch.tril(torch.ones(n_prefix + length, n_prefix + length)).bool()
    return full[:, n_prefix:]


def mask_loops(attention_mask, n_prefix, causal):
    batch, length = attention_mask.shape
    out = np.zeros((batch, 1, length, n_prefix + length), dtype=np.int64)   # 4-D, 0/1 ints: also fine
    for b in range(batch):
        for i in range(length):
            for j in range(n_prefix + length):
                if j < n_prefix:
                    out[b, 0, i, j] = 1
                else:
                    t = j - n_prefix
                    out[b, 0, i, j] = int(bool(attention_mask[b, t]) and (not causal or t <= i))
    return torch.from_numpy(out)


def mask_triangle_shifted_by_p(attention_mask, n_prefix, causal):
    """Correct: one (T, P + T) triangle with diagonal=P covers prefix and tokens at once."""
    batch, length = attention_mask.shape
    keys = torch.cat([torch.ones(batch, n_prefix, dtype=torch.bool), attention_mask.bool()], dim=1)
    allowed = keys[:, None, :].expand(batch, length, n_prefix + length)
    if causal:
        allowed = allowed & torch.ones(length, n_prefix + length, dtype=torch.bool).tril(diagonal=n_prefix)
    return allowed


def mask_from_lengths(attention_mask, n_prefix, causal):
    """Correct for right padding: key j is real if j < the row's length; returned as a NumPy array."""
    batch, length = attention_mask.shape
    lengths = np.asarray(attention_mask).sum(axis=1)
    j = np.arange(length)
    tokens = np.broadcast_to(j[None, None, :] < lengths[:, None, None], (batch, length, length))
    if causal:
        tokens = tokens & (j[None, :] <= j[:, None])
    return np.concatenate([np.ones((batch, length, int(n_prefix)), bool), tokens], axis=-1)


@pytest.mark.parametrize("fn", [reference_prefix_mask, mask_square_triangle, mask_loops, mask_triangle_shifted_by_p,
                                mask_from_lengths])
def test_correct_masks_pass(fn):
    verdict = quiet(checks.check_prefix_mask, fn)
    assert verdict.passed, str(verdict)


# --- prefix_mask: wrong ones -------------------------------------------------------------------------

def token_part(attention_mask, causal):
    batch, length = attention_mask.shape
    allowed = attention_mask.bool()[:, None, :].expand(batch, length, length)
    return allowed & torch.ones(length, length, dtype=torch.bool).tril() if causal else allowed


def mask_prefix_padded_with_zero(attention_mask, n_prefix, causal):
    keys = F.pad(attention_mask, (n_prefix, 0), value=0).bool()        # the prefix "is padding"
    batch, length = attention_mask.shape
    allowed = keys[:, None, :].expand(batch, length, n_prefix + length).clone()
    if causal:
        allowed[..., n_prefix:] &= torch.ones(length, length, dtype=torch.bool).tril()
    return allowed


def mask_extended_at_wrong_end(attention_mask, n_prefix, causal):
    batch, length = attention_mask.shape
    keys = torch.cat([attention_mask.bool(), torch.ones(batch, n_prefix, dtype=torch.bool)], dim=1)
    allowed = keys[:, None, :].expand(batch, length, n_prefix + length).clone()
    if causal:
        allowed[..., n_prefix:] &= torch.ones(length, length, dtype=torch.bool).tril()
    return allowed


def mask_triangle_not_offset(attention_mask, n_prefix, causal):
    batch, length = attention_mask.shape
    keys = torch.cat([torch.ones(batch, n_prefix, dtype=torch.bool), attention_mask.bool()], dim=1)
    allowed = keys[:, None, :].expand(batch, length, n_prefix + length)
    if causal:
        allowed = allowed & torch.ones(length, n_prefix + length, dtype=torch.bool).tril()
    return allowed


def mask_no_causal(attention_mask, n_prefix, causal):
    return reference_prefix_mask(attention_mask, n_prefix, False)


def mask_padding_ignored(attention_mask, n_prefix, causal):
    return reference_prefix_mask(torch.ones_like(attention_mask), n_prefix, causal)


def mask_prefix_last(attention_mask, n_prefix, causal):
    batch, length = attention_mask.shape
    return torch.cat([token_part(attention_mask, causal),
                      torch.ones(batch, length, n_prefix, dtype=torch.bool)], dim=-1)


def mask_prefix_hidden_in_padded_rows(attention_mask, n_prefix, causal):
    batch, length = attention_mask.shape
    row_is_full = attention_mask.bool().all(dim=1)                   # "padded rows don't get the prefix"
    prefix = row_is_full[:, None, None].expand(batch, length, n_prefix)
    return torch.cat([prefix, token_part(attention_mask, causal)], dim=-1)


def mask_inverted(attention_mask, n_prefix, causal):
    return ~reference_prefix_mask(attention_mask, n_prefix, causal)


def mask_additive(attention_mask, n_prefix, causal):
    allowed = reference_prefix_mask(attention_mask, n_prefix, causal)
    return torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))


def mask_mutates_input(attention_mask, n_prefix, causal):
    attention_mask[attention_mask == 0] = 1 if causal else 0            # "clean" the mask in place
    return reference_prefix_mask(attention_mask, n_prefix, causal)


@pytest.mark.parametrize("fn, words", [
    (mask_prefix_padded_with_zero, "padding masks the prefix"),
    (mask_extended_at_wrong_end, "padding masks the prefix"),
    (mask_prefix_hidden_in_padded_rows, "padding masks the prefix"),
    (mask_triangle_not_offset, "causal triangle starts at the prefix"),
    (mask_no_causal, "sees tokens after it"),
    (mask_padding_ignored, "padding keys are visible"),
    (mask_prefix_last, ("prefix columns are at the end", "extended at the wrong end")),
    (mask_inverted, "inverted"),
    (mask_additive, "additive mask"),
    (mask_mutates_input, "changed its input attention_mask"),
])
def test_wrong_masks_are_named(fn, words):
    """(Bidirectional, [tokens ; prefix] and [mask ; ones] are the same mask: either name is right.)"""
    verdict = quiet(checks.check_prefix_mask, fn)
    assert verdict.status == "mistake", str(verdict)
    assert any(w in verdict.message for w in ((words,) if isinstance(words, str) else words)), str(verdict)


def test_mask_without_prefix_columns_is_named():
    verdict = quiet(checks.check_prefix_mask, lambda mask, n_prefix, causal: token_part(mask, causal))
    assert verdict.status == "mistake" and "no columns for the prefix" in verdict.message, str(verdict)


# --- prefix_attention ------------------------------------------------------------------------------

def split(t, heads):
    return t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)


def merge(t):
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1)


def attention_sdpa(attn, x, prefix_keys, prefix_values, attention_mask, causal):
    """Correct, with torch's fused kernel and the square-triangle mask."""
    keys = torch.cat([prefix_keys, attn.k(x)], dim=1)
    values = torch.cat([prefix_values, attn.v(x)], dim=1)
    allowed = mask_square_triangle(attention_mask, prefix_keys.shape[1], causal)[:, None]
    h = attn.n_heads
    out = F.scaled_dot_product_attention(split(attn.q(x), h), split(keys, h), split(values, h), attn_mask=allowed)
    return attn.o(merge(out))


def attention_head_loop(attn, x, prefix_keys, prefix_values, attention_mask, causal):
    """Correct, one head at a time with an additive mask."""
    keys = torch.cat([prefix_keys, attn.k(x)], dim=1)
    values = torch.cat([prefix_values, attn.v(x)], dim=1)
    queries = attn.q(x)
    additive = torch.zeros(reference_prefix_mask(attention_mask, prefix_keys.shape[1], causal).shape)
    additive = additive.masked_fill(~reference_prefix_mask(attention_mask, prefix_keys.shape[1], causal), -1e9)
    outs = []
    for head in range(attn.n_heads):
        cols = slice(head * attn.d_head, (head + 1) * attn.d_head)
        scores = queries[..., cols] @ keys[..., cols].transpose(1, 2) / math.sqrt(attn.d_head) + additive
        outs.append(scores.softmax(-1) @ values[..., cols])
    return attn.o(torch.cat(outs, dim=-1))


def attention_with(mask_fn=reference_prefix_mask, swap=False, reproject=False, scale=True, heads=None,
                   prefix_last=False, no_prefix=False):
    def attention(attn, x, prefix_keys, prefix_values, attention_mask, causal):
        pk, pv = (prefix_values, prefix_keys) if swap else (prefix_keys, prefix_values)
        if reproject:
            pk, pv = attn.k(pk), attn.v(pv)
        n_prefix = 0 if no_prefix else pk.shape[1]
        if no_prefix:
            keys, values = attn.k(x), attn.v(x)
        elif prefix_last:
            keys, values = torch.cat([attn.k(x), pk], 1), torch.cat([attn.v(x), pv], 1)
        else:
            keys, values = torch.cat([pk, attn.k(x)], 1), torch.cat([pv, attn.v(x)], 1)
        h = heads or attn.n_heads
        q, k, v = split(attn.q(x), h), split(keys, h), split(values, h)
        scores = q @ k.transpose(-2, -1)
        if scale:
            scores = scores / math.sqrt(q.shape[-1])
        allowed = mask_fn(attention_mask, n_prefix, causal)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        return attn.o(merge(scores.softmax(-1) @ v))
    return attention


def test_reference_and_alternatives_pass_attention():
    for fn in (reference_prefix_attention, attention_sdpa, attention_head_loop):
        verdict = quiet(checks.check_prefix_attention, fn)
        assert verdict.passed, f"{fn.__name__}: {verdict}"


def attention_changes_mode(attn, x, prefix_keys, prefix_values, attention_mask, causal):
    attn.eval()
    return reference_prefix_attention(attn, x, prefix_keys, prefix_values, attention_mask, causal)


def attention_mutates_x(attn, x, prefix_keys, prefix_values, attention_mask, causal):
    x.mul_(attention_mask[..., None])                                  # zero the padding, in place
    return reference_prefix_attention(attn, x, prefix_keys, prefix_values, attention_mask, causal)


def mask_triangle_without_diagonal(attention_mask, n_prefix, causal):
    mask = reference_prefix_mask(attention_mask, n_prefix, causal).clone()
    if causal:
        length = attention_mask.shape[1]
        mask[..., n_prefix:] &= torch.ones(length, length, dtype=torch.bool).tril(-1)   # off by one
    return mask


def mask_triangle_upside_down(attention_mask, n_prefix, causal):
    batch, length = attention_mask.shape
    tokens = attention_mask.bool()[:, None, :].expand(batch, length, length)
    if causal:
        tokens = tokens & torch.ones(length, length, dtype=torch.bool).triu()
    return torch.cat([torch.ones(batch, length, n_prefix, dtype=torch.bool), tokens], -1)


@pytest.mark.parametrize("fn, words", [
    (mask_triangle_without_diagonal, "leaves out the diagonal"),
    (mask_triangle_upside_down, "upside down"),
])
def test_wrong_causal_triangles_are_named(fn, words):
    verdict = quiet(checks.check_prefix_mask, fn)
    assert verdict.status == "mistake", str(verdict)
    assert words in verdict.message, str(verdict)


def attention_library_layer(attn, x, prefix_keys, prefix_values, attention_mask, causal):
    """Correct: minift's own attention with its prefix argument, and a float64 result."""
    allowed = reference_prefix_mask(attention_mask, prefix_keys.shape[1], causal)[:, None]
    return attn(x, allowed, False, (prefix_keys, prefix_values)).double()


def test_library_layer_passes_attention():
    verdict = quiet(checks.check_prefix_attention, attention_library_layer)
    assert verdict.passed, str(verdict)


def attention_steps(scale_by=None, project=True, fill=float("-inf"), softmax_dim=-1, bare_split=False,
                    bare_merge=False):
    """The attention written out, with one step done the way students get it wrong."""
    def attention(attn, x, prefix_keys, prefix_values, attention_mask, causal):
        batch, length, d = x.shape
        heads, d_head = attn.n_heads, attn.d_head
        keys = torch.cat([prefix_keys, attn.k(x)], 1)
        values = torch.cat([prefix_values, attn.v(x)], 1)

        def heads_of(t):
            if bare_split:
                return t.reshape(batch, heads, t.shape[1], d_head)
            return t.reshape(batch, t.shape[1], heads, d_head).transpose(1, 2)

        q, k, v = heads_of(attn.q(x)), heads_of(keys), heads_of(values)
        scores = q @ k.transpose(-2, -1) / math.sqrt(scale_by or d_head)
        allowed = reference_prefix_mask(attention_mask, prefix_keys.shape[1], causal)[:, None]
        out = scores.masked_fill(~allowed, fill).softmax(softmax_dim) @ v
        out = out.reshape(batch, length, d) if bare_merge else out.transpose(1, 2).reshape(batch, length, d)
        return attn.o(out) if project else out
    return attention


@pytest.mark.parametrize("fn, words", [
    (attention_steps(scale_by=12), "divided by sqrt(d_model)"),       # the first case has d = 12
    (attention_steps(project=False), "attn.o was not applied"),
    (attention_steps(fill=0.0), "set to 0 instead of -inf"),
    (attention_steps(softmax_dim=-2), "NaN"),
    (attention_steps(bare_split=True), "heads were split by a bare reshape"),
    (attention_steps(bare_merge=True), "heads were merged back by a bare reshape"),
])
def test_wrong_attention_steps_are_named(fn, words):
    verdict = quiet(checks.check_prefix_attention, fn)
    assert verdict.status == "mistake", str(verdict)
    assert words in verdict.message, str(verdict)


@pytest.mark.parametrize("fn, words", [
    (attention_with(swap=True), "keys and values swapped"),
    (attention_with(reproject=True), "passed through attn.k"),
    (attention_with(scale=False), "not divided by sqrt(d_head)"),
    (attention_with(heads=1), "heads were not split"),
    (attention_with(prefix_last=True), "concatenated after the tokens"),
    (attention_with(no_prefix=True), "prefix has no effect"),
    (attention_with(mask_fn=mask_prefix_padded_with_zero), "padding masks the prefix"),   # = no prefix
    (attention_with(mask_fn=mask_extended_at_wrong_end), "padding masks the prefix"),
    (attention_with(mask_fn=mask_triangle_not_offset), "causal triangle starts at the prefix"),
    (attention_changes_mode, "eval mode"),
    (attention_mutates_x, "changed its input x"),
])
def test_wrong_attention_is_named(fn, words):
    verdict = quiet(checks.check_prefix_attention, fn)
    assert verdict.status == "mistake", str(verdict)
    assert words in verdict.message, str(verdict)


# --- forward_with_prefix ---------------------------------------------------------------------------

def forward_with(shift=True, share=False, swap=False, first_only=False, final_norm=True, attention=None):
    attention = attention or reference_prefix_attention

    def forward_with_prefix(model, input_ids, attention_mask, prefix):
        batch, length = input_ids.shape
        n_prefix = prefix[0][0].shape[0]
        start = n_prefix if shift else 0
        x = model.tok_emb(input_ids) + model.pos_emb(torch.arange(start, start + length))
        for layer, block in enumerate(model.blocks):
            keys, values = prefix[0 if share else layer]
            if swap:
                keys, values = values, keys
            keys, values = keys.expand(batch, -1, -1), values.expand(batch, -1, -1)
            if first_only and layer > 0:
                keys, values = keys[:, :0], values[:, :0]
            x = x + attention(block.attn, block.ln1(x), keys, values, attention_mask, model.config.causal)
            x = x + block.ffn(block.ln2(x))
        return model.lm_head(model.ln_f(x) if final_norm else x)
    return forward_with_prefix


def forward_by_rows(model, input_ids, attention_mask, prefix):
    """Correct, one sequence at a time (and positions via index_select)."""
    rows = []
    n_prefix = prefix[0][0].shape[0]
    for b in range(input_ids.shape[0]):
        ids, mask = input_ids[b:b + 1], attention_mask[b:b + 1]
        positions = torch.arange(input_ids.shape[1]) + n_prefix
        x = model.tok_emb(ids) + model.pos_emb.weight.index_select(0, positions)[None]
        for block, (keys, values) in zip(model.blocks, prefix):
            x = x + attention_sdpa(block.attn, block.ln1(x), keys[None], values[None], mask, model.config.causal)
            x = x + block.ffn(block.ln2(x))
        rows.append(model.lm_head(model.ln_f(x)))
    return torch.cat(rows)


def test_reference_and_alternatives_pass_forward():
    for fn in (reference_forward_with_prefix, forward_with(), forward_by_rows):
        verdict = quiet(checks.check_forward_with_prefix, fn)
        assert verdict.passed, str(verdict)


def forward_through_library_blocks(model, input_ids, attention_mask, prefix):
    """Correct: the model's own blocks with their prefix argument, returned as a NumPy array."""
    batch, length = input_ids.shape
    n_prefix = prefix[0][0].shape[0]
    x = model.tok_emb(input_ids) + model.pos_emb(torch.arange(n_prefix, n_prefix + length))
    allowed = reference_prefix_mask(attention_mask, n_prefix, model.config.causal)[:, None]
    for block, (keys, values) in zip(model.blocks, prefix):
        x = block(x, allowed, False, (keys.expand(batch, -1, -1), values.expand(batch, -1, -1)))
    return model.lm_head(model.ln_f(x)).detach().numpy()


def test_library_blocks_pass_forward():
    verdict = quiet(checks.check_forward_with_prefix, forward_through_library_blocks)
    assert verdict.passed, str(verdict)


class _Prefix(torch.nn.Module):
    def __init__(self, prefix):
        super().__init__()
        self.pairs, self.length = prefix, prefix[0][0].shape[0]

    def forward(self, batch_size):
        return [(k.expand(batch_size, -1, -1), v.expand(batch_size, -1, -1)) for k, v in self.pairs]


def forward_borrows_the_hook(model, input_ids, attention_mask, prefix):
    """Wrong (was accepted): attach the prefix for one call of the model and take it off again."""
    model.prefix = _Prefix(prefix)
    try:
        return model(input_ids, attention_mask=attention_mask).logits
    finally:
        model.prefix = None


def forward_always_causal(model, input_ids, attention_mask, prefix):
    return reference_forward_with_prefix(
        model, input_ids, attention_mask, prefix,
        attention=lambda attn, x, k, v, mask, causal: reference_prefix_attention(attn, x, k, v, mask, True))


def forward_ignores_mask(model, input_ids, attention_mask, prefix):
    return reference_forward_with_prefix(model, input_ids, torch.ones_like(attention_mask), prefix)


def forward_sets_hook(model, input_ids, attention_mask, prefix):
    from minift.methods import prefix as prefix_method
    prefix_method.apply(model, length=prefix[0][0].shape[0], reparam=False)
    return model(input_ids, attention_mask=attention_mask).logits


@pytest.mark.parametrize("fn, words", [
    (forward_with(shift=False), "positions not shifted"),
    (forward_with(share=True), "shared by every layer"),
    (forward_with(swap=True), "keys and values swapped"),
    (forward_with(first_only=True), "first layer only"),
    (forward_with(final_norm=False), "final LayerNorm (model.ln_f) is missing"),
    (forward_sets_hook, "changed the model"),
    (forward_borrows_the_hook, "called the model itself"),
    (forward_always_causal, "causal flag was ignored"),
    (forward_ignores_mask, "attention_mask was not used"),
])
def test_wrong_forward_is_named(fn, words):
    verdict = quiet(checks.check_forward_with_prefix, fn)
    assert verdict.status == "mistake", str(verdict)
    assert words in verdict.message, str(verdict)


# --- blanks ----------------------------------------------------------------------------------------

def blank_mask(attention_mask, n_prefix, causal):
    raise NotImplementedError("write your code here")


def blank_attention(attn, x, prefix_keys, prefix_values, attention_mask, causal):
    raise NotImplementedError("write your code here")


def attention_calling_blank_mask(attn, x, prefix_keys, prefix_values, attention_mask, causal):
    blank_mask(attention_mask, prefix_keys.shape[1], causal)


def test_blanks_are_not_implemented_and_blame_the_right_function(capsys):
    assert quiet(checks.check_prefix_mask, blank_mask).status == "not implemented"
    verdict = quiet(checks.check_prefix_attention, blank_attention)
    assert verdict.status == "not implemented" and verdict.message.startswith("blank_attention"), str(verdict)
    verdict = quiet(checks.check_prefix_attention, attention_calling_blank_mask)
    assert verdict.status == "not implemented" and verdict.message.startswith("blank_mask"), str(verdict)
    verdict = quiet(checks.check_forward_with_prefix, forward_with(attention=blank_attention))
    assert verdict.status == "not implemented" and verdict.message.startswith("blank_attention"), str(verdict)
    # printed, never raised
    checks.check_forward_with_prefix(forward_with(attention=blank_attention))
    assert "not implemented yet" in capsys.readouterr().out


def test_never_raises_and_keeps_the_random_state():
    state = torch.random.get_rng_state()
    for check in (checks.check_prefix_mask, checks.check_prefix_attention, checks.check_forward_with_prefix,
                  checks.check_insert_prompts):
        assert quiet(check, lambda *args: None).status == "mistake"
        assert quiet(check, lambda *args: {}["oops"]).status == "mistake"
        assert quiet(check, 42).status == "mistake"
    assert torch.equal(torch.random.get_rng_state(), state)


# ================================================================ exercise 2: prompt insertion

def insert_by_rows(embeddings, attention_mask, prompts, before):
    """Correct, row by row, with a bool mask and a list of positions."""
    xs, masks = [], []
    for row, mask in zip(embeddings, attention_mask):
        xs.append(torch.cat([prompts[:before], row, prompts[before:]]))
        masks.append(torch.cat([torch.ones(before, dtype=torch.bool), mask.bool(),
                                torch.ones(len(prompts) - before, dtype=torch.bool)]))
    return torch.stack(xs), torch.stack(masks), list(range(before, before + embeddings.shape[1]))


def insert_by_scatter(embeddings, attention_mask, prompts, before):
    """Correct, by writing into an empty tensor; positions as a NumPy array, mask as floats."""
    batch, length, d = embeddings.shape
    m = prompts.shape[0]
    x = embeddings.new_zeros(batch, m + length, d)
    x[:, :before] = prompts[:before]
    x[:, before:before + length] = embeddings
    x[:, before + length:] = prompts[before:]
    mask = torch.ones(batch, m + length)
    mask[:, before:before + length] = attention_mask
    return x, mask, np.arange(before, before + length)


def insert_float_mask_list_positions(embeddings, attention_mask, prompts, before):
    """Correct: repeat instead of expand, a float mask, the positions as a Python list."""
    batch, length, _ = embeddings.shape
    h = prompts.unsqueeze(0).repeat(batch, 1, 1)
    x = torch.cat([h[:, :before], embeddings, h[:, before:]], dim=1)
    mask = torch.cat([torch.ones(batch, before), attention_mask, torch.ones(batch, len(prompts) - before)], dim=1)
    return x, mask, list(range(before, before + length))


@pytest.mark.parametrize("fn", [reference_insert_prompts, insert_by_rows, insert_by_scatter,
                                insert_float_mask_list_positions])
def test_correct_insertions_pass(fn):
    verdict = quiet(checks.check_insert_prompts, fn)
    assert verdict.passed, str(verdict)


def insert_with(order="template", mask_value=1, extend_mask=True, positions="real", detach=False):
    def insert_prompts(embeddings, attention_mask, prompts, before):
        batch, length, _ = embeddings.shape
        m = prompts.shape[0]
        h = (prompts.detach() if detach else prompts).unsqueeze(0).expand(batch, -1, -1)
        if order == "template":
            x = torch.cat([h[:, :before], embeddings, h[:, before:]], 1)
        elif order == "front":
            x = torch.cat([h, embeddings], 1)
        elif order == "after":
            x = torch.cat([embeddings, h], 1)
        else:                                                  # "swapped"
            x = torch.cat([h[:, m - before:], embeddings, h[:, :m - before]], 1)
        ones = torch.full((batch, m), mask_value, dtype=attention_mask.dtype)
        mask = torch.cat([ones[:, :before], attention_mask, ones[:, before:]], 1) if extend_mask else attention_mask
        if positions == "real":
            real = torch.arange(before, before + length)
        elif positions == "all":
            real = torch.arange(m + length)
        else:                                                  # "unshifted"
            real = torch.arange(length)
        return x, mask, real
    return insert_prompts


def insert_after_each_row(embeddings, attention_mask, prompts, before):
    rows = []
    for row, mask in zip(embeddings, attention_mask):
        n = int(mask.sum())
        rows.append(torch.cat([prompts[:before], row[:n], prompts[before:], row[n:]]))
    _, mask, real = reference_insert_prompts(embeddings, attention_mask, prompts, before)
    return torch.stack(rows), mask, real


def insert_zeroes_padding_in_place(embeddings, attention_mask, prompts, before):
    embeddings[attention_mask == 0] = 0.0
    return reference_insert_prompts(embeddings, attention_mask, prompts, before)


def insert_positions_per_row(embeddings, attention_mask, prompts, before):
    x, mask, positions = reference_insert_prompts(embeddings, attention_mask, prompts, before)
    return x, mask, positions[None].expand(embeddings.shape[0], -1)          # (B, T): one row per sentence


def insert_returns_two(embeddings, attention_mask, prompts, before):
    return reference_insert_prompts(embeddings, attention_mask, prompts, before)[:2]


@pytest.mark.parametrize("fn, words", [
    (insert_with(order="front"), "template is ignored: every prompt vector went in front"),
    (insert_with(order="after"), "zero gradient"),
    (insert_with(order="swapped"), "split the wrong way round"),
    (insert_with(mask_value=0), "marked as padding"),
    (insert_with(extend_mask=False), "not extended"),
    (insert_with(positions="all"), "not cut back"),
    (insert_with(positions="unshifted"), "real_positions is 0..T-1"),
    (insert_with(detach=True), "zero gradient"),
    (insert_after_each_row, "in front of the padding"),
    (insert_zeroes_padding_in_place, "changed its input embeddings"),
    (insert_returns_two, "expected three things"),
    (insert_positions_per_row, "one list of T positions for the whole batch"),
])
def test_wrong_insertions_are_named(fn, words):
    verdict = quiet(checks.check_insert_prompts, fn)
    assert verdict.status == "mistake", str(verdict)
    assert words in verdict.message, str(verdict)


def test_blank_insertion_is_not_implemented():
    def insert_prompts(embeddings, attention_mask, prompts, before):
        raise NotImplementedError("write your code here")
    verdict = quiet(checks.check_insert_prompts, insert_prompts)
    assert verdict.status == "not implemented", str(verdict)
