"""minift's prefix-tuning and prompt tuning compute what Hugging Face PEFT computes.

A small random GPT-2 is imported into minift with ``from_hf_gpt2`` (same logits, tested in
test_interop.py). The same virtual-token numbers are then put into both:

* PREFIX_TUNING: PEFT feeds every layer's prefix keys and values to GPT-2 as ``past_key_values`` (a
  cache of earlier tokens), prepends ones to the attention mask, and GPT-2 numbers the real tokens from
  P on. minift's ``prefix.apply`` does the same inside attention. Same logits.
* PROMPT_TUNING: PEFT prepends the virtual-token embeddings to the input embeddings and ones to the
  mask; the real tokens then sit at positions m..m+T-1. minift's ``ptuning.apply(encoder=None)`` does
  the same, but cuts the outputs back to one per real token, where PEFT returns the m virtual
  positions too. Same logits on the real tokens.
* P_TUNING (PEFT's prompt encoder, LSTM head) is prepend-only; with the same weights it equals
  ``ptuning.apply(encoder="lstm")`` with PEFT's encoder_hidden_size = d_model / 2 (then both MLPs are
  d -> d -> d).
"""

import pytest
import torch

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from minift.interop import from_hf_gpt2  # noqa: E402
from minift.methods import prefix, ptuning  # noqa: E402

VOCAB, D, LAYERS, HEADS, POSITIONS = 50, 32, 3, 4, 40
TOLERANCE = 1e-4

# transformers deprecates the names PEFT still uses (is_gradient_checkpointing, past_key_values): not ours
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def hf_gpt2(one_thread):
    config = transformers.GPT2Config(vocab_size=VOCAB, n_embd=D, n_layer=LAYERS, n_head=HEADS,
                                     n_positions=POSITIONS, bos_token_id=None, eos_token_id=None,
                                     pad_token_id=None, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():      # O(0.1-1) weights: a swapped key/value or a shifted position shows up
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(1.0 + 0.2 * noise if ".ln_" in name and name.endswith("weight") else 0.2 * noise)
    return model


def batch():
    """Two sequences, the second right-padded: padding must never hide the virtual tokens."""
    generator = torch.Generator().manual_seed(2)
    ids = torch.randint(0, VOCAB, (2, 7), generator=generator)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    return ids, mask


def peft_model(hf_gpt2, config):
    import copy
    return peft.get_peft_model(copy.deepcopy(hf_gpt2), config).eval()


@pytest.mark.parametrize("length", [1, 5])
def test_prefix_tuning_equals_peft_past_key_values(hf_gpt2, length):
    config = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=length,
                                     prefix_projection=False)
    theirs = peft_model(hf_gpt2, config)
    ours = prefix.apply(from_hf_gpt2(hf_gpt2), length=length, reparam=False).eval()
    # PEFT's table: (P, L * 2 * d), per virtual token [layer 0 key | layer 0 value | layer 1 key | ...]
    generator = torch.Generator().manual_seed(3)
    table = torch.randn(LAYERS, 2, length, D, generator=generator)
    with torch.no_grad():
        ours.prefix.table.copy_(table)
        theirs.prompt_encoder["default"].embedding.weight.copy_(table.permute(2, 0, 1, 3).reshape(length, -1))
    ids, mask = batch()
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
    assert expected.shape == got.shape == (2, 7, VOCAB)
    real = mask.bool()
    assert torch.allclose(got[real], expected[real], atol=TOLERANCE)
    # and the prefix matters: without it the logits differ (the test can fail)
    with torch.no_grad():
        plain = from_hf_gpt2(hf_gpt2)(ids, attention_mask=mask).logits
    assert not torch.allclose(plain[real], expected[real], atol=1e-2)


def test_prefix_with_reparameterisation_equals_peft_prefix_projection(hf_gpt2):
    """Li & Liang's MLP: Embedding(P, d) -> Linear(d, h) -> tanh -> Linear(h, L * 2 * d), in both."""
    length, hidden = 4, 24
    config = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=length,
                                     prefix_projection=True, encoder_hidden_size=hidden)
    theirs = peft_model(hf_gpt2, config)
    ours = prefix.apply(from_hf_gpt2(hf_gpt2), length=length, reparam=True, hidden=hidden).eval()
    encoder = theirs.prompt_encoder["default"]
    with torch.no_grad():
        ours.prefix.embedding.weight.copy_(encoder.embedding.weight)
        for mine, peft_linear in zip((ours.prefix.mlp[0], ours.prefix.mlp[2]),
                                     (encoder.transform[0], encoder.transform[2])):
            mine.weight.copy_(peft_linear.weight)
            mine.bias.copy_(peft_linear.bias)
    ids, mask = batch()
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
    real = mask.bool()
    assert torch.allclose(got[real], expected[real], atol=TOLERANCE)


@pytest.mark.parametrize("length", [1, 6])
def test_prompt_tuning_equals_peft_prepended_embeddings(hf_gpt2, length):
    config = peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=length)
    theirs = peft_model(hf_gpt2, config)
    ours = ptuning.apply(from_hf_gpt2(hf_gpt2), length=length, encoder=None).eval()
    generator = torch.Generator().manual_seed(4)
    prompts = torch.randn(length, D, generator=generator)
    with torch.no_grad():
        ours.prompt.embedding.copy_(prompts)
        theirs.prompt_encoder["default"].embedding.weight.copy_(prompts)
    ids, mask = batch()
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
    # PEFT returns the virtual positions as well; minift cuts them off (one output per real token)
    assert expected.shape == (2, length + 7, VOCAB) and got.shape == (2, 7, VOCAB)
    real = mask.bool()
    assert torch.allclose(got[real], expected[:, length:][real], atol=TOLERANCE)


def test_p_tuning_lstm_encoder_equals_peft_prompt_encoder(hf_gpt2):
    """PEFT's P_TUNING (LSTM head): MLP(BiLSTM(p)) prepended, like ptuning.apply(encoder="lstm").
    PEFT's MLP is 2h -> 2h -> d, minift's 2h -> d -> d: the same when h = d / 2 (minift's default)."""
    length = 3
    config = peft.PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=length,
                                      encoder_reparameterization_type="LSTM", encoder_hidden_size=D // 2)
    theirs = peft_model(hf_gpt2, config)
    ours = ptuning.apply(from_hf_gpt2(hf_gpt2), length=length, encoder="lstm").eval()
    encoder = theirs.prompt_encoder["default"]
    with torch.no_grad():
        ours.prompt.embedding.copy_(encoder.embedding.weight)
        ours.prompt.lstm.load_state_dict(encoder.lstm_head.state_dict())
        for mine, peft_linear in zip((ours.prompt.mlp[0], ours.prompt.mlp[2]),
                                     (encoder.mlp_head[0], encoder.mlp_head[2])):
            mine.weight.copy_(peft_linear.weight)
            mine.bias.copy_(peft_linear.bias)
    ids, mask = batch()
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask).logits
        got = ours(ids, attention_mask=mask).logits
    real = mask.bool()
    assert torch.allclose(got[real], expected[:, length:][real], atol=TOLERANCE)


def test_real_tokens_are_numbered_after_the_virtual_tokens(hf_gpt2):
    """Both libraries shift positions: numbering the real tokens from 0 gives other logits."""
    length = 4
    ours = prefix.apply(from_hf_gpt2(hf_gpt2), length=length, reparam=False).eval()
    ids, mask = batch()
    with torch.no_grad():
        shifted = ours(ids, attention_mask=mask).logits
        # the same prefix with positions 0..T-1: swap in a position table moved by `length`
        moved = ours.pos_emb.weight.clone()
        ours.pos_emb.weight[length:] = moved[:-length]
        unshifted = ours(ids, attention_mask=mask).logits
    assert not torch.allclose(shifted, unshifted, atol=1e-2)
