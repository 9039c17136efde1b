"""minift.interop: GPT-2 models from transformers convert to minift (and back) with identical logits."""

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")

from minift import ModelConfig, Transformer  # noqa: E402
from minift.interop import from_hf_gpt2, to_hf_gpt2  # noqa: E402
from minift.methods import lora  # noqa: E402

TOLERANCE = 1e-4
VOCAB = 100

SHAPES = {
    # GPT-2's defaults (gelu_new, tied head), small.
    "small-tied": dict(n_embd=64, n_layer=2, n_head=4, n_positions=32),
    # d_ff not a multiple of d, exact GELU, untied LM head, odd layer-norm eps.
    "untied-gelu": dict(n_embd=96, n_layer=3, n_head=3, n_inner=200, n_positions=32,
                        activation_function="gelu", tie_word_embeddings=False, layer_norm_epsilon=1e-6),
}


def gpt2_config(**overrides):
    values = dict(vocab_size=VOCAB, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    values.update(overrides)
    return transformers.GPT2Config(**values)


@torch.no_grad()
def randomize(hf_model, seed=0):
    """Every parameter random and O(0.1-1): with GPT-2's init (zero biases, LN weight 1, std 0.02) a
    swapped bias, an untransposed matrix or a mixed-up q/k/v split could hide inside tiny logits."""
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in hf_model.named_parameters():
        noise = torch.randn(parameter.shape, generator=generator)
        if ".ln_" in name and name.endswith("weight"):
            parameter.copy_(1.0 + 0.2 * noise)
        else:
            parameter.copy_(0.2 * noise)
    return hf_model


def make_hf(shape, attn_implementation="sdpa", seed=0):
    torch.manual_seed(seed)
    config = gpt2_config(**SHAPES[shape], attn_implementation=attn_implementation)
    return randomize(transformers.GPT2LMHeadModel(config), seed).eval()


def inputs(seed=1, batch=3, length=20):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 13:] = 0      # right padding
    mask[2, 4:] = 0
    return ids, mask


@pytest.fixture(scope="module", params=sorted(SHAPES))
def hf_pair(request):
    """(shape, HF model with sdpa attention, the same weights with eager attention)."""
    sdpa = make_hf(request.param, "sdpa")
    eager = make_hf(request.param, "eager")
    eager.load_state_dict(sdpa.state_dict())
    return request.param, sdpa, eager


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_logits_match_without_padding(hf_pair, attention):
    _, hf, hf_eager = hf_pair
    model = from_hf_gpt2(hf, attention=attention)
    assert isinstance(model, Transformer) and not model.training and model.config.causal
    ids, _ = inputs()
    with torch.no_grad():
        expected = hf(ids).logits
        got = model(ids).logits
        assert (hf_eager(ids).logits - expected).abs().max() <= TOLERANCE
    assert expected.abs().max() > 1.0, "the test weights should give logits large enough to matter"
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_logits_match_with_right_padding(hf_pair, attention):
    _, hf, hf_eager = hf_pair
    model = from_hf_gpt2(hf, attention=attention)
    ids, mask = inputs()
    real = mask.bool()
    with torch.no_grad():
        for reference in (hf, hf_eager):
            expected = reference(ids, attention_mask=mask).logits
            got = model(ids, mask).logits
            assert (got - expected)[real].abs().max().item() <= TOLERANCE
        # Right padding must not change the real positions: row 2 alone, unpadded, gives the same logits.
        alone = model(ids[2:3, :4]).logits
        assert (alone[0] - got[2, :4]).abs().max().item() <= TOLERANCE


def test_config_and_tying_carry_over(hf_pair):
    shape, hf, _ = hf_pair
    model = from_hf_gpt2(hf)
    config, hf_config = model.config, hf.config
    assert (config.d_model, config.n_layers, config.n_heads, config.max_len, config.vocab_size) == \
        (hf_config.n_embd, hf_config.n_layer, hf_config.n_head, hf_config.n_positions, hf_config.vocab_size)
    assert config.d_ff == (hf_config.n_inner or 4 * hf_config.n_embd)
    assert config.layer_norm_eps == hf_config.layer_norm_epsilon
    assert config.dropout == hf_config.resid_pdrop
    tied = shape == "small-tied"
    assert config.tie_embeddings is tied
    assert (model.lm_head.weight is model.tok_emb.weight) is tied
    assert model.num_parameters() == hf.num_parameters()
    assert config.activation == ("gelu_tanh" if tied else "gelu")


def test_round_trip_to_hf(hf_pair):
    _, hf, _ = hf_pair
    model = from_hf_gpt2(hf, attention="explicit")
    back = to_hf_gpt2(model)
    assert back.config._attn_implementation == "eager"
    ids, mask = inputs()
    with torch.no_grad():
        assert (back(ids, attention_mask=mask).logits - hf(ids, attention_mask=mask).logits)[mask.bool()] \
            .abs().max().item() <= TOLERANCE
    original = hf.state_dict()
    for name, tensor in back.state_dict().items():
        assert torch.equal(tensor, original[name]), name


def test_native_minift_model_exports_and_comes_back():
    torch.manual_seed(0)
    model = Transformer(ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=2, max_len=16,
                                    activation="relu", tie_embeddings=False)).eval()
    hf = to_hf_gpt2(model)
    assert hf.config.activation_function == "relu" and hf.config.tie_word_embeddings is False
    ids, mask = inputs(length=16)
    with torch.no_grad():
        assert (hf(ids).logits - model(ids).logits).abs().max().item() <= TOLERANCE
        again = from_hf_gpt2(hf)
        assert (again(ids, mask).logits - model(ids, mask).logits)[mask.bool()].abs().max().item() <= TOLERANCE


def test_bare_gpt2_model_ties_the_head_to_wte():
    config = gpt2_config(**SHAPES["small-tied"])
    body = randomize(transformers.GPT2Model(config)).eval()
    model = from_hf_gpt2(body)
    assert model.lm_head.weight is model.tok_emb.weight
    ids, _ = inputs()
    with torch.no_grad():
        expected = body(ids).last_hidden_state
        got = model(ids, output_hidden_states=True)
        assert (model.ln_f(got.hidden_states[-1]) - expected).abs().max().item() <= TOLERANCE
        assert (got.logits - expected @ body.wte.weight.t()).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("activation", ["gelu_new", "gelu_pytorch_tanh", "gelu", "relu"])
def test_supported_activations_match(activation):
    config = gpt2_config(n_embd=32, n_layer=1, n_head=2, n_positions=16, activation_function=activation)
    hf = randomize(transformers.GPT2LMHeadModel(config)).eval()
    ids, _ = inputs(length=16)
    with torch.no_grad():
        assert (from_hf_gpt2(hf)(ids).logits - hf(ids).logits).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("activation", ["gelu_fast", "quick_gelu"])
def test_unsupported_activation_is_refused(activation):
    hf = transformers.GPT2LMHeadModel(gpt2_config(n_embd=32, n_layer=1, n_head=2, n_positions=16,
                                                  activation_function=activation))
    with pytest.raises(ValueError, match=activation) as error:
        from_hf_gpt2(hf)
    assert "gelu_new" in str(error.value)        # the message lists the supported ones


@pytest.mark.parametrize("setting", [dict(scale_attn_by_inverse_layer_idx=True),
                                     dict(reorder_and_upcast_attn=True),
                                     dict(scale_attn_weights=False),
                                     dict(add_cross_attention=True)])
def test_unrepresentable_configs_are_refused(setting):
    hf = transformers.GPT2LMHeadModel(gpt2_config(n_embd=32, n_layer=1, n_head=2, n_positions=16, **setting))
    with pytest.raises(ValueError, match=next(iter(setting))):
        from_hf_gpt2(hf)


def test_other_model_types_are_refused():
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        from_hf_gpt2(torch.nn.Linear(2, 2))


def lora_model(seed=0):
    """A causal minift LM with a LoRA adapter on every target and a large, nonzero dW."""
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=2, max_len=16)).eval()
    lora.apply(model, r=4, alpha=8, targets=("q", "k", "v", "o", "w1", "w2"), seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, layer in lora.lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.5)
    return model


@pytest.mark.parametrize("merged", [False, True])
def test_a_lora_adapter_is_exported_and_the_model_is_left_alone(merged):
    # before the fix, to_hf_gpt2 read the frozen base weights: the adapter silently vanished
    model = lora_model()
    if merged:
        lora.merge(model)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    ids, _ = inputs(length=16)
    with torch.no_grad():
        expected = model(ids).logits
        base = lora.remove(copy.deepcopy(model))(ids).logits
        assert (expected - base).abs().max() > 0.1, "the adapter should change the logits"
        hf = to_hf_gpt2(model)
        assert (hf(ids).logits - expected).abs().max().item() <= TOLERANCE
    # the user's model keeps its adapters, in the merge state it had, and the same tensors
    assert len(lora.lora_layers(model)) == 12
    assert all(layer.merged == merged for _, layer in lora.lora_layers(model))
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_a_model_whose_adapters_are_switched_off_exports_the_base_model():
    model = lora_model()
    lora.use(model, None)
    ids, _ = inputs(length=16)
    with torch.no_grad():
        plain = lora.remove(copy.deepcopy(model))
        assert (to_hf_gpt2(model)(ids).logits - plain(ids).logits).abs().max().item() <= TOLERANCE
