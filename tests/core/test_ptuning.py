"""P-tuning v1 and prompt tuning: prompt vectors inserted into the input through model.prompt."""

import pytest
import torch

from minift import ModelConfig, Transformer, make_target_model
from minift.methods import prefix, ptuning
from minift.methods.ptuning import PromptEncoder

ENCODERS = ["lstm", "mlp", None]


def lm_model(causal=True, seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=61, d_model=32, n_layers=2, n_heads=4, max_len=24, causal=causal)
    return Transformer(config).eval()


def target_model(task="sequence", seed=0, causal=True):
    return make_target_model(lm_model(causal=causal, seed=seed), task=task, num_classes=3, seed=seed).eval()


def random_ids(batch=3, length=10, seed=1):
    return torch.randint(1, 61, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("encoder, expected", [
    ("lstm", {"prompt.embedding"} | {f"prompt.lstm.{kind}_l{layer}{reverse}"
                                     for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                                     for layer in (0, 1) for reverse in ("", "_reverse")}
     | {"prompt.mlp.0.weight", "prompt.mlp.0.bias", "prompt.mlp.2.weight", "prompt.mlp.2.bias"}),
    ("mlp", {"prompt.embedding", "prompt.mlp.0.weight", "prompt.mlp.0.bias", "prompt.mlp.2.weight",
             "prompt.mlp.2.bias"}),
    (None, {"prompt.embedding"}),
])
def test_only_the_prompt_encoder_and_the_head_train(encoder, expected):
    model = ptuning.apply(target_model(), length=6, encoder=encoder)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected | {"head.classifier.weight", "head.classifier.bias"}


@pytest.mark.parametrize("encoder", ENCODERS)
def test_prompt_embeddings_shape_and_effect_on_the_output(encoder):
    model = ptuning.apply(target_model(), length=6, encoder=encoder)
    assert ptuning.prompt_embeddings(model).shape == (6, 32)
    ids = random_ids()
    before = model(ids).logits
    with torch.no_grad():
        model.prompt.embedding[3] += torch.randn(32)     # (a constant shift would vanish in LayerNorm)
    assert (model(ids).logits - before).abs().max() > 1e-4


def test_prompt_tuning_trains_the_vectors_themselves_starting_from_word_embeddings():
    model = ptuning.apply(lm_model(), length=5, encoder=None)
    vectors = ptuning.prompt_embeddings(model)
    assert torch.equal(vectors, model.prompt.embedding.detach())
    table = model.tok_emb.weight.detach()
    assert all((table == row).all(dim=1).any() for row in vectors)      # each is some word's embedding


def test_the_lstm_encoder_makes_every_prompt_depend_on_every_input_vector():
    model = ptuning.apply(lm_model(), length=5, encoder="lstm")
    assert model.prompt.lstm.bidirectional and model.prompt.lstm.num_layers == 2
    before = ptuning.prompt_embeddings(model)
    with torch.no_grad():
        model.prompt.embedding[2] += torch.randn(32)
    changed = (ptuning.prompt_embeddings(model) - before).abs().amax(dim=1)
    assert (changed > 1e-6).all()          # h_0 and h_4 move too: the BiLSTM ties them together


@pytest.mark.parametrize("encoder", ENCODERS)
def test_template_positions_are_honoured(encoder):
    model = ptuning.apply(lm_model(causal=False), length=8, encoder=encoder, positions=(3, 5))
    seen = {}
    model.prompt.register_forward_hook(lambda module, args, out: seen.update(prompt=out))
    model.blocks[0].register_forward_pre_hook(lambda module, args: seen.update(block_input=args[0]))
    ids = random_ids(length=7)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    model(ids, attention_mask=mask)

    x, new_mask, real_positions = seen["prompt"]
    h = ptuning.prompt_embeddings(model)
    assert x.shape == (3, 8 + 7, 32)
    assert torch.allclose(x[:, :3], h[:3].expand(3, -1, -1))            # h_0 h_1 h_2
    assert torch.equal(x[:, 3:10], model.tok_emb(ids))                   # e(x)
    assert torch.allclose(x[:, 10:], h[3:].expand(3, -1, -1))           # h_3 .. h_7
    assert torch.equal(new_mask[:, :3], torch.ones(3, 3, dtype=mask.dtype))
    assert torch.equal(new_mask[:, 3:10], mask) and bool(new_mask[:, 10:].all())
    assert torch.equal(real_positions, torch.arange(3, 10))
    positions = model.pos_emb((new_mask.cumsum(1) - 1).clamp(min=0))      # real tokens numbered in order
    assert torch.allclose(seen["block_input"], x + positions, atol=1e-6)


@pytest.mark.parametrize("positions", [None, (4, 4), (0, 8)])
def test_one_output_per_input_token(positions):
    model = ptuning.apply(lm_model(causal=False), length=8, positions=positions)
    ids = random_ids(length=9)
    out = model(ids, output_hidden_states=True)
    assert out.logits.shape == (3, 9, 61)
    assert all(h.shape == (3, 9, 32) for h in out.hidden_states)
    tagger = ptuning.apply(target_model(task="token", causal=False), length=8, positions=positions)
    assert tagger(ids).logits.shape == (3, 9, 3)
    classifier = ptuning.apply(target_model(causal=False), length=8, positions=positions)
    assert classifier(ids).logits.shape == (3, 3)


def test_prompts_after_the_input_reach_an_encoder():
    ids = random_ids()
    model = ptuning.apply(lm_model(causal=False), length=4, encoder=None, positions=(0, 4))
    before = model(ids).logits
    with torch.no_grad():
        model.prompt.embedding += torch.randn(4, 32)
    assert (model(ids).logits - before).abs().max() > 1e-4


@pytest.mark.parametrize("encoder", ENCODERS)
def test_a_prompt_wholly_after_the_input_of_a_causal_model_is_refused(encoder):
    """No real token of a causal model can see it: it would change nothing and never train."""
    model = target_model()
    with pytest.raises(ValueError, match=r"positions=\(0, 4\) puts every prompt vector after the input, where "
                                         r"a causal model's tokens cannot see it .* positions=\(4, 0\)"):
        ptuning.apply(model, length=4, encoder=encoder, positions=(0, 4))
    assert model.prompt is None                                   # nothing half-attached
    assert all(p.requires_grad for p in model.parameters())       # and nothing frozen


def test_prompt_vectors_after_the_input_of_a_causal_model_are_warned_about():
    model = lm_model()
    with pytest.warns(UserWarning, match=r"positions=\(3, 2\): in a causal model the 2 prompt vector\(s\) after "
                                         r"the input are seen by no real token"):
        ptuning.apply(model, length=5, encoder=None, positions=(3, 2))
    ids = random_ids()
    before = model(ids).logits
    with torch.no_grad():
        model.prompt.embedding[3:] += torch.randn(2, 32)          # the two behind the input: no effect
    assert torch.equal(model(ids).logits, before)
    with torch.no_grad():
        model.prompt.embedding[:3] += torch.randn(3, 32)          # the three in front: an effect
    assert (model(ids).logits - before).abs().max() > 1e-4


def test_right_padding_does_not_change_real_tokens_with_prompts_in_front():
    model = ptuning.apply(lm_model(), length=5, encoder="mlp")
    ids = random_ids()
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    padded = model(ids, attention_mask=mask).logits
    for row, n in ((0, 10), (1, 6)):
        assert torch.allclose(padded[row:row + 1, :n], model(ids[row:row + 1, :n]).logits, atol=1e-5)


def test_too_long_for_max_len():
    model = ptuning.apply(lm_model(), length=8, encoder=None)
    model(random_ids(length=16))
    with pytest.raises(ValueError, match="exceeds max_len=24"):
        model(random_ids(length=17))


@pytest.mark.parametrize("kwargs, message", [
    (dict(length=0), r"prompt length must be an integer in \[1, 23\] .*, got 0"),
    (dict(length=24), r"prompt length must be an integer in \[1, 23\] \(length \+ at least one token must fit "
                      r"in max_len=24\), got 24"),
    (dict(length="8"), r"prompt length must be an integer in \[1, 23\] .*, got '8'"),
    (dict(encoder="gru"), r"encoder='gru' is not allowed; choose from \('lstm', 'mlp', None\)"),
    (dict(length=8, positions=(3, 3)), r"before \+ after must equal length"),
    (dict(length=8, positions=(-1, 9)), r"positions must be \(before, after\)"),
    (dict(length=8, positions=(8,)), r"positions must be \(before, after\)"),
    (dict(hidden=0), "hidden must be a positive integer"),
])
def test_bad_arguments_raise_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ptuning.apply(lm_model(), **kwargs)


def test_incompatible_combinations_are_refused():
    model = ptuning.apply(lm_model(), length=4)
    with pytest.raises(ValueError, match="model.prompt is already set"):
        ptuning.apply(model)
    with_prefix = prefix.apply(lm_model(), length=20)
    with pytest.raises(ValueError, match=r"must be an integer in \[1, 3\] .*the prefix"):
        ptuning.apply(with_prefix, length=4)
    with pytest.raises(ValueError, match="no prompt encoder"):
        ptuning.prompt_embeddings(lm_model())
    assert isinstance(ptuning.apply(with_prefix, length=3).prompt, PromptEncoder)
