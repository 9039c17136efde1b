"""The helpers the chapters' checkers share (minift/course/checks/helpers.py, and framework.Rejected,
which replaced each chapter's own copy of an exception carrying a verdict): each does what its
chapters relied on, so that moving it changed no checker's numbers."""

import pytest
import torch
import torch.nn as nn

from minift.course.checks import framework, helpers

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rejected_from_a_helper_becomes_the_checkers_verdict():
    def helper():
        raise framework.Rejected(framework.mistake("the helper found it", "a hint"))

    @framework.checker
    def check(fn):
        helper()
        return framework.passed("never reached")

    verdict = check(lambda: None, quiet=True)
    assert verdict.status == framework.MISTAKE
    assert (verdict.message, verdict.hint) == ("the helper found it", "a hint")


def test_close_needs_the_same_shape_and_compares_in_float64():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert helpers.close(a, a.double() + 1e-6)                # float32 against float64: no dtype error
    assert not helpers.close(a, a + 1e-3)
    assert not helpers.close(a, a.reshape(1, 3))              # broadcastable is not the same
    assert not helpers.close(a, a + 1e-3, atol=1e-5, rtol=0.0)
    assert helpers.close(a, a + 1e-3, atol=1e-2)


def test_padding_mask_pads_the_named_rows_on_the_right():
    mask = helpers.padding_mask(3, 4, {0: 1, 2: 3})
    assert mask.dtype == torch.long
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_tiny_model_is_the_same_for_a_seed_and_leaves_the_callers_random_state():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = helpers.tiny_model(5, causal=True, n_layers=3)
    assert torch.equal(torch.rand(3), expected_next)          # the caller's stream is untouched
    b = helpers.tiny_model(5, causal=True, n_layers=3)
    c = helpers.tiny_model(6, causal=True, n_layers=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.tok_emb.weight, c.tok_emb.weight)
    assert a.config.causal and len(a.blocks) == 3 and a.config.dropout == 0.0
    assert not helpers.tiny_model(5, causal=False).config.causal
    # O(0.3) weights, LayerNorm weights near 1: every mistake moves the output
    assert 0.2 < float(a.tok_emb.weight.detach().std()) < 0.4
    assert 0.9 < float(a.blocks[0].ln1.weight.detach().mean()) < 1.1


def test_tiny_model_with_tags_gets_a_token_head_and_keeps_its_lm_head():
    from minift.heads import TokenClassificationHead

    model = helpers.tiny_model(1, causal=False, n_layers=2, num_tags=7)
    assert isinstance(model.head, TokenClassificationHead)
    assert model.lm_head is not None
    ids = torch.randint(0, model.config.vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
    assert model(ids, attention_mask=torch.ones(2, 5, dtype=torch.long)).logits.shape == (2, 5, 7)
    assert helpers.tiny_model(1, causal=False).head is None


def test_fixed_prefix_gives_every_row_the_given_keys_and_values():
    pairs = [(torch.randn(3, 4), torch.randn(3, 4)) for _ in range(2)]
    prefix = helpers.FixedPrefix(pairs)
    assert prefix.length == 3 and isinstance(prefix, nn.Module)
    out = prefix(5)
    assert len(out) == 2
    for (keys, values), (k, v) in zip(out, pairs):
        assert keys.shape == values.shape == (5, 3, 4)
        assert all(torch.equal(keys[i], k) and torch.equal(values[i], v) for i in range(5))


def test_fixed_prefix_drives_the_models_prefix_hook():
    model = helpers.tiny_model(2, causal=True).eval()
    ids = torch.randint(0, model.config.vocab_size, (2, 4), generator=torch.Generator().manual_seed(1))
    plain = model(ids).logits
    d = model.config.d_model
    model.prefix = helpers.FixedPrefix([(torch.randn(2, d), torch.randn(2, d)) for _ in model.blocks])
    assert not torch.allclose(model(ids).logits, plain)


def test_seeded_draws_the_same_numbers_and_restores_the_random_state():
    torch.manual_seed(7)
    expected_next = torch.rand(2)
    torch.manual_seed(7)
    first = helpers.seeded(3, torch.rand, 4)
    assert torch.equal(first, helpers.seeded(3, torch.rand, 4))
    assert not torch.equal(first, helpers.seeded(4, torch.rand, 4))
    assert torch.equal(torch.rand(2), expected_next)
    assert helpers.seeded(0, lambda a, b=1: a + b, 2, b=5) == 7        # keyword arguments pass through


def test_state_copy_is_a_copy_and_same_state_sees_any_change():
    model = helpers.tiny_model(0, causal=True)
    before = helpers.state_copy(model)
    assert helpers.same_state(before, model)
    with torch.no_grad():
        model.blocks[1].ffn.w2.bias[0] += 1e-3          # in place: the copy must not follow
    assert not helpers.same_state(before, model)
    fresh = helpers.tiny_model(0, causal=True)
    assert helpers.same_state(before, fresh)
    fresh.register_buffer("extra", torch.zeros(1))      # a new tensor is a change as well
    assert not helpers.same_state(before, fresh)


def test_watch_model_calls_counts_forward_calls_and_removes_its_hook():
    model = helpers.tiny_model(0, causal=True)
    ids = torch.zeros(1, 3, dtype=torch.long)
    with helpers.watch_model_calls(model) as calls:
        model.blocks[0].ffn(model.tok_emb(ids))           # parts of the model: not a call of the model
        assert calls == []
        model(ids)
        model(ids)
    assert len(calls) == 2
    model(ids)
    assert len(calls) == 2 and not model._forward_pre_hooks
