"""The Transformer itself: masks, attention implementations, hooks, heads and input validation."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minift import ModelConfig, Transformer, make_target_model


def small_model(causal=True, attention="sdpa", seed=0, **overrides):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, max_len=24,
                         causal=causal, attention=attention, **overrides)
    return Transformer(config).eval()


def explicit_twin(model):
    twin = Transformer(ModelConfig.from_dict({**model.config.to_dict(), "attention": "explicit"}))
    twin.load_state_dict(model.state_dict())
    return twin.eval()


def test_output_shapes_and_hidden_states():
    model = small_model()
    ids = torch.randint(0, 61, (3, 10))
    out = model(ids, output_hidden_states=True)
    assert out.logits.shape == (3, 10, 61)
    assert len(out.hidden_states) == model.config.n_layers + 1
    assert all(h.shape == (3, 10, 32) for h in out.hidden_states)
    assert model(ids).hidden_states is None


def test_causal_mask_future_tokens_never_change_earlier_logits():
    model = small_model(causal=True)
    ids = torch.randint(0, 61, (2, 12))
    changed = ids.clone()
    changed[:, 7:] = torch.randint(0, 61, (2, 5))
    a, b = model(ids).logits, model(changed).logits
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:], atol=1e-3)


def test_bidirectional_encoder_sees_the_future():
    model = small_model(causal=False)
    ids = torch.randint(0, 61, (2, 12))
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 61
    assert not torch.allclose(model(ids).logits[:, 0], model(changed).logits[:, 0], atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_padding_does_not_change_real_tokens(causal, attention):
    model = small_model(causal=causal, attention=attention)
    ids = torch.randint(1, 61, (3, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    padded = model(ids, attention_mask=mask).logits
    for row, n in ((0, 10), (1, 6), (2, 2)):
        alone = model(ids[row:row + 1, :n]).logits
        assert torch.allclose(padded[row:row + 1, :n], alone, atol=1e-5)
    assert torch.isfinite(padded).all()


@pytest.mark.parametrize("causal", [True, False])
def test_explicit_attention_equals_fused_kernel(causal):
    model = small_model(causal=causal)
    twin = explicit_twin(model)
    ids = torch.randint(0, 61, (4, 16))
    mask = torch.ones_like(ids)
    mask[0, 9:] = 0
    for m in (None, mask):
        assert torch.allclose(model(ids, m).logits, twin(ids, m).logits, atol=1e-5)


class FixedPrefix(nn.Module):
    """A hook module that supplies the same given (keys, values) for every sequence of the batch."""

    def __init__(self, keys_values):
        super().__init__()
        self.keys_values = keys_values

    def forward(self, batch_size):
        return [(k.expand(batch_size, -1, -1), v.expand(batch_size, -1, -1)) for k, v in self.keys_values]


def manual_forward_with_prefix(model, ids, keys_values):
    """Reference: the whole forward written out, concatenating prefix keys/values inside attention."""
    config = model.config
    n_prefix = keys_values[0][0].shape[1]
    length = ids.shape[1]
    x = model.tok_emb(ids) + model.pos_emb(torch.arange(n_prefix, n_prefix + length))
    for block, (pk, pv) in zip(model.blocks, keys_values):
        h = block.ln1(x)
        attn = block.attn
        q = attn.q(h)
        k = torch.cat([pk.expand(ids.shape[0], -1, -1), attn.k(h)], dim=1)
        v = torch.cat([pv.expand(ids.shape[0], -1, -1), attn.v(h)], dim=1)
        heads = []
        for head in range(config.n_heads):
            cols = slice(head * config.d_head, (head + 1) * config.d_head)
            scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(config.d_head)
            if config.causal:
                future = torch.ones(length, length).triu(1).bool()
                scores[:, :, n_prefix:] = scores[:, :, n_prefix:].masked_fill(future, float("-inf"))
            heads.append(scores.softmax(-1) @ v[..., cols])
        x = x + attn.o(torch.cat(heads, dim=-1))
        x = x + block.ffn.w2(F.gelu(block.ffn.w1(block.ln2(x))))
    return model.lm_head(model.ln_f(x))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_prefix_hook_equals_concatenating_keys_values_by_hand(causal, attention):
    model = small_model(causal=causal, attention=attention)
    torch.manual_seed(1)
    keys_values = [(torch.randn(1, 5, 32), torch.randn(1, 5, 32)) for _ in range(model.config.n_layers)]
    ids = torch.randint(0, 61, (2, 9))
    expected = manual_forward_with_prefix(model, ids, keys_values)
    model.prefix = FixedPrefix(keys_values)
    assert torch.allclose(model(ids).logits, expected, atol=1e-5)


def test_prefix_is_never_masked_by_padding_and_positions_start_after_it():
    model = small_model(causal=True)
    keys_values = [(torch.randn(1, 4, 32), torch.randn(1, 4, 32)) for _ in range(2)]
    model.prefix = FixedPrefix(keys_values)
    ids = torch.randint(1, 61, (2, 8))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    padded = model(ids, mask).logits
    assert torch.allclose(padded[1:, :5], model(ids[1:, :5]).logits, atol=1e-5)
    with pytest.raises(ValueError, match="exceeds max_len=24"):
        model(torch.randint(0, 61, (1, 21)))


class PrependPrompt(nn.Module):
    def __init__(self, vectors):
        super().__init__()
        self.vectors = vectors

    def forward(self, embeddings, attention_mask):
        batch, n = embeddings.shape[0], self.vectors.shape[0]
        x = torch.cat([self.vectors.expand(batch, -1, -1), embeddings], dim=1)
        mask = torch.cat([torch.ones(batch, n, dtype=attention_mask.dtype), attention_mask], dim=1)
        return x, mask, torch.arange(n, x.shape[1])


def test_prompt_hook_inserts_vectors_and_cuts_outputs_back():
    model = small_model(causal=True)
    ids = torch.randint(0, 61, (2, 6))
    plain = model(ids).logits
    vectors = torch.randn(3, 32)
    model.prompt = PrependPrompt(vectors)
    out = model(ids, output_hidden_states=True)
    assert out.logits.shape == plain.shape
    assert all(h.shape[1] == 6 for h in out.hidden_states)
    assert not torch.allclose(out.logits, plain, atol=1e-4)
    # same as writing the vectors into the embedding sequence by hand
    model.prompt = None
    x = torch.cat([vectors.expand(2, -1, -1), model.tok_emb(ids)], dim=1) + model.pos_emb(torch.arange(9))
    for block in model.blocks:
        x = block(x, None, True, None)
    assert torch.allclose(out.logits, model.lm_head(model.ln_f(x))[:, 3:], atol=1e-5)


def test_tied_embeddings_share_one_tensor():
    tied = small_model()
    assert tied.lm_head.weight is tied.tok_emb.weight
    untied = small_model(tie_embeddings=False)
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert untied.num_parameters() - tied.num_parameters() == 61 * 32


@pytest.mark.parametrize("bad, message", [
    ({"d_model": 30, "n_heads": 4}, "divisible by n_heads"),
    ({"vocab_size": 0}, "vocab_size must be a positive integer, got 0"),
    ({"n_layers": -1}, "n_layers must be a positive integer, got -1"),
    ({"dropout": 1.5}, "dropout must be in"),
    ({"activation": "swish"}, r"activation='swish' is not allowed; choose from \('gelu', 'gelu_tanh', 'relu', 'silu'\)"),
    ({"attention": "flash"}, r"attention='flash' is not allowed; choose from \('sdpa', 'explicit'\)"),
    ({"causal": "no"}, r"ModelConfig.causal must be True or False, got 'no'"),
    ({"causal": 0}, r"ModelConfig.causal must be True or False, got 0"),
    ({"tie_embeddings": 1}, r"ModelConfig.tie_embeddings must be True or False, got 1"),
    ({"d_model": True}, r"ModelConfig.d_model must be a positive integer, got True"),
    ({"d_model": 32.0}, r"ModelConfig.d_model must be a positive integer, got 32.0"),
    ({"d_ff": 0}, r"ModelConfig.d_ff must be a positive integer or None, got 0"),
    ({"dropout": float("nan")}, r"ModelConfig.dropout must be in \[0, 1\), got nan"),
    ({"layer_norm_eps": float("inf")}, r"ModelConfig.layer_norm_eps must be a finite number, got inf"),
    ({"layer_norm_eps": 0.0}, r"ModelConfig.layer_norm_eps must be > 0, got 0.0"),
])
def test_bad_config_values_are_named(bad, message):
    values = {"vocab_size": 10, "d_model": 32, "n_heads": 4, **bad}
    with pytest.raises(ValueError, match=message):
        ModelConfig(**values)


def test_bad_inputs_give_clear_errors():
    model = small_model()
    with pytest.raises(ValueError, match="token id 61 is outside the vocabulary: allowed ids are 0..60"):
        model(torch.tensor([[1, 2, 61]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match="2-D tensor"):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="exceeds max_len=24"):
        model(torch.randint(0, 61, (1, 25)))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(torch.randint(0, 61, (2, 5)), torch.ones(2, 4))


def test_target_model_copies_all_but_the_output_layer():
    source = small_model()
    before = {k: v.clone() for k, v in source.state_dict().items()}
    target = make_target_model(source, task="sequence", num_classes=3, seed=0)
    assert target.lm_head is None and target.head is not None
    source_params = dict(source.named_parameters())
    for name, param in target.named_parameters():
        if name.startswith("head."):
            continue
        assert torch.equal(param, source_params[name]), name
        assert param.data_ptr() != source_params[name].data_ptr(), f"{name} shares memory with the source"
    assert target.head.classifier.weight.shape == (3, 32)
    # fine-tune the target: the source must not move
    optimizer = torch.optim.SGD(target.parameters(), lr=0.5)
    ids = torch.randint(0, 61, (4, 8))
    loss = F.cross_entropy(target(ids).logits, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    for name, value in source.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert not torch.equal(target.blocks[0].attn.q.weight, source.blocks[0].attn.q.weight)


def test_target_model_heads_and_seeded_initialisation():
    source = small_model()
    a = make_target_model(source, "sequence", 4, pool="last", seed=3)
    b = make_target_model(source, "sequence", 4, pool="last", seed=3)
    assert torch.equal(a.head.classifier.weight, b.head.classifier.weight)
    ids = torch.randint(0, 61, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    assert a(ids, mask).logits.shape == (2, 4)
    # last-token pooling with padding = the unpadded sequence's last token
    assert torch.allclose(a(ids, mask).logits[1], a(ids[1:, :4]).logits[0], atol=1e-5)
    tagger = make_target_model(source, "token", 9, seed=0)
    assert tagger(ids).logits.shape == (2, 7, 9)
    with pytest.raises(ValueError, match=r"task='dialogue' is not allowed; choose from \('sequence', 'token'\)"):
        make_target_model(source, "dialogue", 2)
    with pytest.raises(ValueError, match=r"pool='max' is not allowed; choose from \('cls', 'last', 'mean'\)"):
        make_target_model(source, "sequence", 2, pool="max")
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        make_target_model(source, "sequence", 1)


def test_config_accepts_numpy_numbers_and_stores_plain_python_values():
    import json

    import numpy as np
    config = ModelConfig(vocab_size=np.int64(61), d_model=np.int32(32), n_heads=4, dropout=np.float32(0.25),
                         causal=np.bool_(False))
    assert config.vocab_size == 61 and type(config.vocab_size) is int and type(config.d_model) is int
    assert type(config.dropout) is float and config.causal is False
    json.dumps(config.to_dict())                                   # numpy values would not serialise


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_int32_token_ids_give_the_same_logits_as_int64(dtype):
    from minift.methods import prefix, ptuning
    ids = torch.randint(0, 61, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    for model in (small_model(), prefix.apply(small_model(), length=3), ptuning.apply(small_model(), length=3)):
        expected = model(ids, mask).logits
        assert torch.equal(model(ids.to(dtype), mask.to(dtype)).logits, expected)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16])
def test_narrow_integer_token_ids_are_refused_with_the_fix(dtype):
    with pytest.raises(ValueError, match=rf"input_ids has dtype {dtype}, which the embedding cannot index "
                                         r"with: allowed dtypes are torch.int64 \(long\) and torch.int32; "
                                         r"convert with input_ids.long\(\)"):
        small_model()(torch.tensor([[1, 2, 3]], dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bool])
def test_float_and_bool_token_ids_are_refused(dtype):
    with pytest.raises(ValueError, match=rf"input_ids must hold integer token ids, got dtype {dtype}"):
        small_model()(torch.tensor([[1, 0, 1]]).to(dtype))


def left_and_right_padded(ids, lengths):
    """The same sentences (row i: its first lengths[i] ids), padded on the right and on the left."""
    right, right_mask = torch.zeros_like(ids), torch.zeros_like(ids)
    left, left_mask = torch.zeros_like(ids), torch.zeros_like(ids)
    width = ids.shape[1]
    for row, n in enumerate(lengths):
        right[row, :n], right_mask[row, :n] = ids[row, :n], 1
        left[row, width - n:], left_mask[row, width - n:] = ids[row, :n], 1
    return (right, right_mask), (left, left_mask)


@pytest.mark.parametrize("pool", ["cls", "last", "mean"])
def test_pooling_reads_the_real_tokens_whatever_side_the_padding_is_on(pool):
    """The head alone: the same real hidden vectors, padded left or right, pool to the same vector."""
    from minift.heads import SequenceClassificationHead
    torch.manual_seed(0)
    head = SequenceClassificationHead(8, 3, pool=pool).eval()
    real = torch.randn(3, 6, 8)
    lengths = (6, 4, 1)
    right, left = torch.full((3, 6, 8), 99.0), torch.full((3, 6, 8), -99.0)   # padding: loud garbage
    right_mask, left_mask = torch.zeros(3, 6), torch.zeros(3, 6)
    for row, n in enumerate(lengths):
        right[row, :n], right_mask[row, :n] = real[row, :n], 1
        left[row, 6 - n:], left_mask[row, 6 - n:] = real[row, :n], 1
    expected = torch.stack([head(real[row:row + 1, :n])[0] for row, n in enumerate(lengths)])
    assert torch.allclose(head(right, right_mask), expected, atol=1e-6)
    assert torch.allclose(head(left, left_mask), expected, atol=1e-6)


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_left_and_right_padded_batches_give_the_same_pooled_logits(pool):
    model = make_target_model(small_model(), "sequence", 3, pool=pool, seed=0).eval()
    ids = torch.randint(1, 61, (3, 7), generator=torch.Generator().manual_seed(1))
    (right, right_mask), (left, left_mask) = left_and_right_padded(ids, (7, 4, 2))
    assert torch.allclose(model(left, left_mask).logits, model(right, right_mask).logits, atol=1e-5)
