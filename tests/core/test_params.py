"""Parameter counts: trainable_summary on real models, and the closed forms checked against them."""

import copy
import random

import pytest
import torch

from minift import ModelConfig, Transformer, make_target_model, model
from minift.analysis import params
from minift.analysis.params import trainable_summary
from minift.methods import freeze, lora, prefix, ptuning, ptuning_v2


def count(model, trainable_only=True):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def random_configs(n=30, seed=0, options=False):
    """A seeded sweep of small, varied model shapes; with ``options`` also random choices of the
    real-architecture options (norm, norm position, positions, FFN, grouped-query heads, biases,
    token types, LM-head bias)."""
    rng = random.Random(seed)
    for _ in range(n):
        n_heads = rng.choice([1, 2, 4])
        extra = {}
        if options:
            extra = dict(norm=rng.choice(["layernorm", "rmsnorm"]), norm_position=rng.choice(["pre", "post"]),
                         positions=rng.choice(["learned", "rotary"]), ffn=rng.choice(["mlp", "gated"]),
                         n_kv_heads=rng.choice([None] + [h for h in (1, 2, 4) if n_heads % h == 0]),
                         bias=rng.random() < 0.5, n_token_types=rng.choice([0, 2, 3]),
                         lm_head_bias=rng.random() < 0.5)
        yield ModelConfig(vocab_size=rng.randint(5, 80), d_model=n_heads * 2 * rng.randint(1, 5),
                          n_layers=rng.randint(1, 4), n_heads=n_heads,
                          d_ff=rng.choice([None, rng.randint(3, 50)]), max_len=rng.randint(8, 40),
                          causal=rng.random() < 0.5, tie_embeddings=rng.random() < 0.5, **extra)


CONFIGS = list(random_configs()) + list(random_configs(30, seed=1, options=True))


def test_summary_counts_groups_and_percent():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, max_len=24)
    model = lora.apply(make_target_model(Transformer(config), num_classes=3, seed=0), r=4)
    summary = trainable_summary(model)
    assert summary.trainable == count(model) == 2 * 2 * 4 * 64 + 32 * 3 + 3
    assert summary.total == count(model, trainable_only=False)
    assert summary.percent == pytest.approx(100 * summary.trainable / summary.total)
    assert sum(t for t, _ in summary.rows.values()) == summary.trainable
    assert sum(n for _, n in summary.rows.values()) == summary.total
    assert summary.rows["lora"] == (1024, 1024) and summary.rows["head"] == (99, 99)
    assert summary.rows["blocks.1.attn"] == (0, params.attention_parameters(config))   # base inside LoRA
    assert summary.rows["blocks.0.ffn"] == (0, params.ffn_parameters(config))
    assert summary.rows["tok_emb"] == (0, 61 * 32)
    assert list(summary.rows)[-2:] == ["lora", "head"]
    text = str(summary)
    assert "blocks.0.attn" in text and "lora" in text and "% trainable" in text and "1,024" in text


def test_summary_rows_for_prefix_and_prompt():
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, max_len=24)
    model = ptuning.apply(prefix.apply(Transformer(config), length=3, reparam=False), length=2, encoder=None)
    rows = trainable_summary(model).rows
    assert rows["prefix"] == (2 * 2 * 3 * 32, 2 * 2 * 3 * 32)   # the later apply() leaves it trainable
    assert rows["prompt"] == (2 * 32, 2 * 32)
    assert "lm_head" not in rows                          # tied: the same tensor as tok_emb


def test_the_lora_example_in_the_docstring():
    config = ModelConfig(vocab_size=100, d_model=768, n_layers=12, n_heads=12)
    assert params.lora_parameters(config, r=8, targets=("q", "v")) == 294_912


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_closed_forms_equal_counted_parameters(config):
    rng = random.Random(config.vocab_size * 1000 + config.d_model)
    torch.manual_seed(0)
    source = Transformer(config)
    assert params.transformer_parameters(config) == count(source, trainable_only=False)
    block = source.blocks[0]
    assert params.attention_parameters(config) == count(block.attn)
    assert params.ffn_parameters(config) == count(block.ffn)
    assert params.block_parameters(config) == count(block)

    num_classes = rng.randint(2, 5)
    target = make_target_model(source, num_classes=num_classes, seed=0)
    head = params.head_parameters(config, num_classes)
    assert params.transformer_parameters(config, include_lm_head=False) + head == count(target, False)

    r = rng.randint(1, min(config.d_kv, config.d_ff))
    names = model.model_targets(config)                               # w3 only in a gated FFN
    targets = tuple(rng.sample(names, rng.randint(1, len(names))))
    layers = sorted(rng.sample(range(config.n_layers), rng.randint(1, config.n_layers)))
    adapted = lora.apply(copy.deepcopy(target), r=r, targets=targets, layers=layers)
    assert params.lora_parameters(config, r, targets, layers) + head == count(adapted)

    length, hidden, reparam = rng.randint(1, config.max_len - 1), rng.randint(1, 20), rng.random() < 0.5
    if config.kv_heads != config.n_heads:
        return   # prefix modules of grouped-query models are kv-width: prefix_module does not build them yet
    for method in (prefix.apply, ptuning_v2.apply):
        with_prefix = method(copy.deepcopy(target), length=length, reparam=reparam, hidden=hidden)
        assert params.prefix_parameters(config, length, reparam, hidden) + head == count(with_prefix)
    defaults = prefix.apply(copy.deepcopy(target), length=length)
    assert params.prefix_parameters(config, length) + head == count(defaults)
    prefix.freeze_to_table(defaults)
    assert params.prefix_parameters(config, length, reparam=False) + head == count(defaults)

    for encoder in ("lstm", "mlp", None):
        for width in (None, hidden):
            with_prompt = ptuning.apply(copy.deepcopy(target), length=length, encoder=encoder, hidden=width)
            assert params.ptuning_parameters(config, length, encoder, width) + head == count(with_prompt)

    n = rng.randint(-config.n_layers, config.n_layers)
    modules = tuple(rng.sample(("ffn", "attn", "norm", "all"), rng.randint(1, 3)))
    frozen = freeze.apply(copy.deepcopy(target), layers=n, modules=modules)
    assert params.freeze_parameters(config, n, modules) + head == count(frozen)


def test_closed_forms_reject_unknown_names():
    config = ModelConfig(vocab_size=10, d_model=8, n_layers=1, n_heads=2)
    with pytest.raises(ValueError, match=r"targets item='x' is not allowed; choose from \('q', 'k'"):
        params.lora_parameters(config, 2, ("q", "x"))
    with pytest.raises(ValueError, match=r"encoder='gru' is not allowed; choose from \('lstm', 'mlp', None\)"):
        params.ptuning_parameters(config, 4, "gru")
    with pytest.raises(ValueError, match=r"modules item='mlp' is not allowed; choose from \('ffn'"):
        params.freeze_parameters(config, 1, ("mlp",))


def test_closed_forms_refuse_what_apply_refuses():
    """These used to return a number for a model that apply() cannot build."""
    config = ModelConfig(vocab_size=10, d_model=8, n_layers=2, n_heads=2)
    with pytest.raises(ValueError, match="targets has repeated items"):
        params.lora_parameters(config, 2, ("q", "q"))                 # was counted twice
    with pytest.raises(ValueError, match="r must be a positive integer, got 0"):
        params.lora_parameters(config, 0)                             # was 0
    with pytest.raises(ValueError, match="layers item=5 is not allowed"):
        params.lora_parameters(config, 2, layers=[0, 5])              # was counted as 2 layers
    with pytest.raises(ValueError, match=r"layers must be an integer in \[-2, 2\]"):
        params.freeze_parameters(config, 3)                           # was 3 layers of a 2-layer model
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2, got 1"):
        params.head_parameters(config, 1)
    with pytest.raises(ValueError, match="length must be a positive integer, got 0"):
        params.prefix_parameters(config, 0)
    with pytest.raises(ValueError, match="reparam must be True or False, got 'no'"):
        params.prefix_parameters(config, 4, reparam="no")             # "no" was taken as True
    with pytest.raises(ValueError, match="include_lm_head must be True or False"):
        params.transformer_parameters(config, include_lm_head="no")


def test_target_names_and_shapes_come_from_the_model():
    assert params.LORA_TARGETS is model.TARGETS                       # the old name, kept as an alias
    config = ModelConfig(vocab_size=10, d_model=8, n_layers=3, n_heads=2, d_ff=20)
    for t in model.model_targets(config):
        n_in, n_out = model.target_shape(config, t)
        assert params.lora_parameters(config, 2, (t,), layers=[1]) == 2 * (n_in + n_out)
    with pytest.raises(ValueError, match="target 'w3' exists only in a gated FFN"):
        params.lora_parameters(config, 2, ("w3",))
    gqa = ModelConfig(vocab_size=10, d_model=8, n_layers=3, n_heads=4, n_kv_heads=2, d_ff=20, ffn="gated")
    assert model.target_shape(gqa, "k") == model.target_shape(gqa, "v") == (8, 4)
    assert model.target_shape(gqa, "w3") == model.target_shape(gqa, "w1") == (8, 20)
    assert params.lora_parameters(gqa, 2, ("k", "w3")) == 3 * 2 * ((8 + 4) + (8 + 20))


OPTION_GRID = dict(norm=("layernorm", "rmsnorm"), norm_position=("pre", "post"), positions=("learned", "rotary"),
                   ffn=("mlp", "gated"), n_kv_heads=(None, 1), bias=(True, False), n_token_types=(0, 2))
HEAD_GRID = dict(lm_head_bias=(False, True), lm_head_transform=(False, True), tie_embeddings=(True, False))


def test_closed_forms_cover_every_combination_of_options():
    """All 128 combinations of the body options on one small shape, each with one of the 8
    combinations of the LM-head options (every one used 16 times): formula == count."""
    import itertools
    heads = list(itertools.product(*HEAD_GRID.values()))
    for i, values in enumerate(itertools.product(*OPTION_GRID.values())):
        options = dict(zip(OPTION_GRID, values)) | dict(zip(HEAD_GRID, heads[i % len(heads)]))
        config = ModelConfig(vocab_size=13, d_model=8, n_layers=2, n_heads=2, d_ff=12, max_len=9, **options)
        with torch.device("meta"):
            net = Transformer(config)
        where = f"options {options}"
        assert params.transformer_parameters(config) == count(net, False), where
        assert params.block_parameters(config) == count(net.blocks[1], False), where
        assert params.attention_parameters(config) == count(net.blocks[0].attn, False), where
        assert params.ffn_parameters(config) == count(net.blocks[0].ffn, False), where
        head = count(net.lm_transform, False) if net.lm_transform is not None else 0
        head += 0 if config.tie_embeddings else net.lm_head.weight.numel()
        head += net.lm_head.bias.numel() if net.lm_head.bias is not None else 0
        assert params.lm_head_parameters(config) == head, where
        assert params.transformer_parameters(config, include_lm_head=False) == count(net, False) - head, where


def test_llama_7b_and_bert_base_counts():
    """The published sizes, from configs built in minift (on the meta device: no memory is used)."""
    llama = ModelConfig(vocab_size=32000, d_model=4096, n_layers=32, n_heads=32, d_ff=11008, max_len=2048,
                        norm="rmsnorm", positions="rotary", ffn="gated", activation="silu", bias=False,
                        tie_embeddings=False)
    with torch.device("meta"):
        net = Transformer(llama)
    assert params.transformer_parameters(llama) == count(net, False) == 6_738_415_616
    bert = ModelConfig(vocab_size=30522, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_len=512,
                       causal=False, norm_position="post", n_token_types=2, layer_norm_eps=1e-12)
    with torch.device("meta"):
        net = Transformer(bert)
    body = params.transformer_parameters(bert, include_lm_head=False)
    assert body == count(net, False) == 108_891_648          # BertModel without its pooler
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.BertConfig()
    with torch.device("meta"):
        hf = transformers.BertModel(hf_config, add_pooling_layer=False)
    assert count(hf, False) == body
