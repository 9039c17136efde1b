"""The options of ModelConfig for real architectures (chapter 10): defaults leave the model unchanged,
each option builds and trains, bad values are named, and both hook points work with every option."""

import itertools

import pytest
import torch
import torch.nn as nn

from minift import ModelConfig, Transformer
from minift.config import FFNS, NORM_POSITIONS, NORMS, POSITIONS
from minift.methods import lora
from minift.model import apply_rotary, model_targets, rotary_angles, target_linear

DEFAULT_KEYS = ["tok_emb.weight", "pos_emb.weight"] + [
    f"blocks.0.{name}" for name in ("ln1.weight", "ln1.bias", "attn.q.weight", "attn.q.bias", "attn.k.weight",
                                    "attn.k.bias", "attn.v.weight", "attn.v.bias", "attn.o.weight", "attn.o.bias",
                                    "ln2.weight", "ln2.bias", "ffn.w1.weight", "ffn.w1.bias", "ffn.w2.weight",
                                    "ffn.w2.bias")] + ["ln_f.weight", "ln_f.bias", "lm_head.weight"]


def small(**options):
    torch.manual_seed(0)
    values = dict(vocab_size=23, d_model=16, n_layers=2, n_heads=4, d_ff=24, max_len=20) | options
    return Transformer(ModelConfig(**values))


def test_defaults_build_exactly_the_old_model():
    """No new module, parameter or buffer unless an option asks for it (so checkpoints, seeds and
    optimizer states stay what they were); the same seed gives the same weights as a config that
    spells the defaults out."""
    model = small(n_layers=1)
    assert list(model.state_dict()) == DEFAULT_KEYS
    assert model.type_emb is None and model.ln_emb is None and model.lm_transform is None
    assert model.blocks[0].ffn.w3 is None and isinstance(model.pos_emb, nn.Embedding)
    spelled = small(n_layers=1, norm="layernorm", norm_position="pre", positions="learned", ffn="mlp",
                    n_kv_heads=None, bias=True, n_token_types=0, lm_head_transform=False, lm_head_bias=False)
    for (name, a), (_, b) in zip(model.state_dict().items(), spelled.state_dict().items()):
        assert torch.equal(a, b), name


def test_bad_option_values_are_named():
    base = dict(vocab_size=10, d_model=16, n_heads=4)
    cases = [({"norm": "batchnorm"}, "ModelConfig.norm='batchnorm' is not allowed"),
             ({"norm_position": "middle"}, "ModelConfig.norm_position='middle' is not allowed"),
             ({"positions": "alibi"}, "ModelConfig.positions='alibi' is not allowed"),
             ({"ffn": "moe"}, "ModelConfig.ffn='moe' is not allowed"),
             ({"n_kv_heads": 3}, "ModelConfig.n_kv_heads=3 must divide n_heads=4"),
             ({"n_kv_heads": 0}, "ModelConfig.n_kv_heads must be a positive integer or None"),
             ({"bias": "no"}, "ModelConfig.bias must be True or False"),
             ({"n_token_types": -1}, "ModelConfig.n_token_types must be an integer >= 0"),
             ({"rope_theta": 0}, "ModelConfig.rope_theta must be > 0"),
             ({"positions": "rotary", "d_model": 12, "n_heads": 4}, "n_heads must be even; got d_head=3")]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            ModelConfig(**(base | bad))


COMBINATIONS = list(itertools.product(NORMS, NORM_POSITIONS, POSITIONS, FFNS, (None, 2, 1), (True, False)))


@pytest.mark.parametrize("norm,position,positions,ffn,kv,bias", COMBINATIONS)
def test_every_combination_runs_trains_and_pads_like_no_padding(norm, position, positions, ffn, kv, bias):
    model = small(norm=norm, norm_position=position, positions=positions, ffn=ffn, n_kv_heads=kv, bias=bias,
                  activation="silu" if ffn == "gated" else "gelu", n_token_types=2, lm_head_bias=True)
    ids = torch.randint(0, 23, (3, 9), generator=torch.Generator().manual_seed(1))
    types = (torch.arange(9) >= 5).long().expand(3, 9)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    out = model(ids, mask, token_type_ids=types).logits
    alone = model(ids[1:2, :6], token_type_ids=types[1:2, :6]).logits     # the padded row, unpadded
    assert (out[1, :6] - alone[0]).abs().max() < 1e-5
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert (model.blocks[0].attn.k.bias is not None) == bias
    assert model.blocks[0].attn.k.out_features == (kv or 4) * 4


def test_token_types_change_the_output_and_bad_ones_are_refused():
    model = small(n_token_types=2, causal=False)
    ids = torch.randint(0, 23, (2, 7))
    zeros = model(ids).logits
    assert torch.equal(zeros, model(ids, token_type_ids=torch.zeros_like(ids)).logits)    # None means type 0
    assert (zeros - model(ids, token_type_ids=torch.ones_like(ids)).logits).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"token_type_ids must be integers 0..1"):
        model(ids, token_type_ids=torch.full_like(ids, 2))
    with pytest.raises(ValueError, match="token_type_ids has shape"):
        model(ids, token_type_ids=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="no token-type embeddings"):
        small()(ids, token_type_ids=torch.zeros_like(ids))


def test_w3_is_a_lora_target_of_gated_ffns_only():
    gated = small(ffn="gated", activation="silu")
    lora.apply(gated, r=2, targets=("w1", "w3"))
    assert lora.is_lora_layer(gated.blocks[1].ffn.w3)
    assert "w3" in model_targets(gated.config) and "w3" not in model_targets(small().config)
    with pytest.raises(ValueError, match="target 'w3' exists only in a gated FFN"):
        lora.apply(small(), r=2, targets=("w3",))
    with pytest.raises(ValueError, match="target 'w3' exists only in a gated FFN"):
        target_linear(small().blocks[0], "w3")


def test_rotary_scores_depend_only_on_position_differences():
    """RoPE's defining property: q_m . k_n depends on m - n only."""
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 8), torch.randn(1, 1, 8)

    def score(m, n):
        cq, sq = rotary_angles(torch.tensor([m]), 8, 10000.0, torch.float)
        ck, sk = rotary_angles(torch.tensor([n]), 8, 10000.0, torch.float)
        return (apply_rotary(q, cq, sq, 8) * apply_rotary(k, ck, sk, 8)).sum()

    assert torch.allclose(score(5, 2), score(13, 10), atol=1e-5)
    assert not torch.allclose(score(5, 2), score(5, 3), atol=1e-3)


class CachePrefix(nn.Module):
    """A prefix hook that hands every layer fixed (keys, values): a cache of earlier tokens."""

    def __init__(self, keys_values):
        super().__init__()
        self.keys_values = keys_values
        self.length = keys_values[0][0].shape[1]

    def forward(self, batch_size):
        return [(k.expand(batch_size, -1, -1), v.expand(batch_size, -1, -1)) for k, v in self.keys_values]


@pytest.mark.parametrize("positions,kv", [("rotary", 1), ("rotary", 2), ("learned", 2), ("rotary", None)])
def test_prefix_is_a_cache_of_kv_width_with_rotary_positions_after_it(positions, kv):
    """The prefix contract with grouped-query attention and rotary positions: give a causal model the
    (rotated) keys and values of the first P tokens as its prefix, and the remaining tokens get exactly
    the outputs they get in the full sequence - so the prefix is kv-width, its keys are used as they
    are, and the real tokens' positions start at P."""
    model = small(norm="rmsnorm", positions=positions, ffn="gated", activation="silu", n_kv_heads=kv, bias=False)
    ids = torch.randint(0, 23, (1, 11), generator=torch.Generator().manual_seed(2))
    P = 4
    cache = []
    hooks = [block.attn.k.register_forward_hook(lambda m, i, o: cache.append(["k", o])) for block in model.blocks]
    hooks += [block.attn.v.register_forward_hook(lambda m, i, o: cache.append(["v", o])) for block in model.blocks]
    with torch.no_grad():
        full = model(ids).logits
        model(ids[:, :P])
    for hook in hooks:
        hook.remove()
    keys = [o for kind, o in cache[-2 * len(model.blocks):] if kind == "k"]
    values = [o for kind, o in cache[-2 * len(model.blocks):] if kind == "v"]
    if positions == "rotary":
        cos, sin = rotary_angles(torch.arange(P), model.config.d_head, model.config.rope_theta, torch.float)
        keys = [apply_rotary(k, cos, sin, model.config.d_head) for k in keys]
    assert keys[0].shape[-1] == model.config.d_kv
    model.prefix = CachePrefix(list(zip(keys, values)))
    with torch.no_grad():
        rest = model(ids[:, P:]).logits
    assert (rest - full[:, P:]).abs().max() < 1e-5


def test_a_full_width_prefix_on_a_gqa_model_is_refused():
    model = small(n_kv_heads=2)
    model.prefix = CachePrefix([(torch.zeros(1, 3, 16), torch.zeros(1, 3, 16))] * 2)
    with pytest.raises(ValueError, match=r"prefix keys/values have width 16, this model's keys have width d_kv"):
        model(torch.zeros(1, 4, dtype=torch.long))


def test_prompt_hook_works_with_rotary_and_post_norm():
    from minift.methods import ptuning

    for options in (dict(positions="rotary", norm="rmsnorm", n_kv_heads=2), dict(norm_position="post", n_token_types=2)):
        model = ptuning.apply(small(**options), length=3, encoder=None)
        ids = torch.randint(0, 23, (2, 6))
        out = model(ids, torch.ones_like(ids)).logits
        assert out.shape == (2, 6, 23)
        out.sum().backward()
        assert all(p.grad is not None for p in model.prompt.parameters())
