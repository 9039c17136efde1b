"""from_hf_bert and from_hf_llama against transformers on random models of two shapes each, with and
without padding: the same hidden states and logits (max abs difference <= 1e-4 in fp32)."""

import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")

from minift.interop import BertClassificationHead, from_hf_bert, from_hf_llama  # noqa: E402

TOLERANCE = 1e-4
BERT_SHAPES = [dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
               dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=6, intermediate_size=64,
                    hidden_act="gelu_new")]
LLAMA_SHAPES = [dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=37, tie_word_embeddings=False),
                dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=1,
                     intermediate_size=64, tie_word_embeddings=True,
                     rope_parameters={"rope_type": "default", "rope_theta": 500.0})]
VOCAB = 97


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def batch(padding: str, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (3, 13), generator=g)
    mask = torch.ones_like(ids)
    if padding == "right":
        mask[1, 9:] = 0
        mask[2, 4:] = 0
    elif padding == "left":
        mask[1, :3] = 0
    return ids, mask


def worst(hf_states, minift_states, mask) -> float:
    """Largest difference over the real tokens (padding positions are undefined in both)."""
    real = mask.bool()
    return max(float((a - b)[real].abs().max()) for a, b in zip(hf_states, minift_states))


@pytest.mark.parametrize("shape", range(len(BERT_SHAPES)))
@pytest.mark.parametrize("padding", ["none", "right"])
@pytest.mark.parametrize("kind", ["BertModel", "BertForMaskedLM", "BertForSequenceClassification"])
def test_bert_matches_transformers(kind, padding, shape):
    torch.manual_seed(shape)
    config = transformers.BertConfig(vocab_size=VOCAB, max_position_embeddings=40, num_labels=3,
                                     **BERT_SHAPES[shape])
    hf = getattr(transformers, kind)(config).eval()
    model = from_hf_bert(hf)
    assert model.config.norm_position == "post" and not model.config.causal and model.config.n_token_types == 2
    ids, mask = batch(padding, seed=shape)
    types = (torch.arange(13) >= 6).long().expand(3, 13)
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        ours = model(ids, mask, output_hidden_states=True, token_type_ids=types)
        plain = model(ids, mask, output_hidden_states=True)          # token types matter: not all zero
    assert worst(theirs.hidden_states, ours.hidden_states, mask) <= TOLERANCE
    assert worst(theirs.hidden_states[-1:], plain.hidden_states[-1:], mask) > 1e-3
    if kind == "BertForMaskedLM":
        assert worst([theirs.logits], [ours.logits], mask) <= TOLERANCE
    if kind == "BertForSequenceClassification":
        assert isinstance(model.head, BertClassificationHead)
        assert float((theirs.logits - ours.logits).abs().max()) <= TOLERANCE


@pytest.mark.parametrize("shape", range(len(LLAMA_SHAPES)))
@pytest.mark.parametrize("padding", ["none", "right", "left"])
def test_llama_matches_transformers(padding, shape):
    torch.manual_seed(shape)
    config = transformers.LlamaConfig(vocab_size=VOCAB, max_position_embeddings=40, **LLAMA_SHAPES[shape])
    hf = transformers.LlamaForCausalLM(config).eval()
    model = from_hf_llama(hf)
    c = model.config
    assert (c.norm, c.positions, c.ffn, c.bias) == ("rmsnorm", "rotary", "gated", False)
    assert c.kv_heads == config.num_key_value_heads and c.tie_embeddings == config.tie_word_embeddings
    assert (model.lm_head.weight is model.tok_emb.weight) == config.tie_word_embeddings
    ids, mask = batch(padding, seed=shape)
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        ours = model(ids, mask, output_hidden_states=True)
    assert worst([theirs.logits], [ours.logits], mask) <= TOLERANCE
    # transformers' last hidden state is after the final norm, minift's before it
    assert worst(theirs.hidden_states[:-1], ours.hidden_states[:-1], mask) <= TOLERANCE


def test_explicit_attention_gives_the_same_llama():
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(vocab_size=VOCAB, max_position_embeddings=40,
                                                                **LLAMA_SHAPES[0])).eval()
    ids, mask = batch("right")
    with torch.no_grad():
        assert worst([hf(input_ids=ids, attention_mask=mask).logits],
                     [from_hf_llama(hf, attention="explicit")(ids, mask).logits], mask) <= TOLERANCE


def test_the_origin_names_the_transformers_modules():
    torch.manual_seed(0)
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(vocab_size=VOCAB, max_position_embeddings=40,
                                                                   **LLAMA_SHAPES[0]))
    origin = from_hf_llama(llama).hf_origin
    assert origin.architecture == "LlamaForCausalLM" and origin.task_type == "CAUSAL_LM"
    assert origin.modules["blocks.1.ffn.w3"] == ("model.layers.1.mlp.up_proj", 0, 1)
    names = dict(llama.named_modules())
    assert all(name in names for name, _, _ in origin.modules.values())
    bert = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=VOCAB, max_position_embeddings=40, **BERT_SHAPES[0]))
    origin = from_hf_bert(bert).hf_origin
    assert origin.modules["blocks.0.attn.o"] == ("bert.encoder.layer.0.attention.output.dense", 0, 1)
    assert origin.task_type == "SEQ_CLS"
    names = dict(bert.named_modules())
    assert all(name in names for name, _, _ in origin.modules.values())


def test_unsupported_configs_are_refused_by_name():
    small = dict(vocab_size=VOCAB, max_position_embeddings=40, **LLAMA_SHAPES[0])
    cases = [
        (dict(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}), "rope type 'linear'"),
        (dict(head_dim=16), "head_dim=16"),
        (dict(attention_bias=True), "attention_bias=True with mlp_bias=False"),
        (dict(hidden_act="gelu"), "hidden_act='gelu'"),
    ]
    for change, message in cases:
        hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**(small | change)))
        with pytest.raises(ValueError, match=f"LLaMA config cannot be represented exactly by minift: .*{message}"):
            from_hf_llama(hf)
    bert = transformers.BertModel(transformers.BertConfig(vocab_size=VOCAB, max_position_embeddings=40,
                                                          **BERT_SHAPES[0]))
    bert.config.hidden_act = "gelu_fast"
    with pytest.raises(ValueError, match="hidden_act='gelu_fast'"):
        from_hf_bert(bert)
    bert.config.hidden_act = "gelu"
    bert.config.position_embedding_type = "relative_key"
    with pytest.raises(ValueError, match="position_embedding_type='relative_key'"):
        from_hf_bert(bert)
    with pytest.raises(TypeError, match="from_hf_llama expects a transformers LlamaForCausalLM"):
        from_hf_llama(bert)
    with pytest.raises(TypeError, match="from_hf_bert expects a transformers BertModel"):
        from_hf_bert(torch.nn.Linear(2, 2))
