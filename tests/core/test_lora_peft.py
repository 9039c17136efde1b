"""lora.export_peft / lora.import_peft against PEFT itself: the OUTPUTS of PeftModel.from_pretrained on
the original transformers model equal minift's with the adapter (wrong key names would load silently,
with only a warning, and leave the base model's outputs), for GPT-2, BERT and LLaMA shapes; and an
adapter made by PEFT loads into minift with the same outputs."""

import copy
import json
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from minift import ModelConfig, Transformer  # noqa: E402
from minift.interop import from_hf_bert, from_hf_gpt2, from_hf_llama  # noqa: E402
from minift.methods import lora  # noqa: E402

VOCAB = 97


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def gpt2():
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=40, bos_token_id=0, eos_token_id=0)).eval()


def bert():
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=40, num_labels=3)).eval()


def llama():
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=37, max_position_embeddings=40)).eval()


FAMILIES = {"gpt2": (gpt2, from_hf_gpt2), "bert": (bert, from_hf_bert), "llama": (llama, from_hf_llama)}


def inputs():
    ids = torch.randint(0, VOCAB, (3, 11), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return ids, mask


def outputs(model, ids, mask):
    """Logits on the real tokens (or the class logits), for minift and transformers models alike."""
    with torch.no_grad():
        if isinstance(model, Transformer):
            logits = model(ids, mask).logits
        else:
            logits = model(input_ids=ids, attention_mask=mask).logits
    return logits if logits.dim() == 2 else logits[mask.bool()]


def randomize(model, name="default", seed=1, scale=0.3):
    """Give the adapter a non-zero B (it starts at zero, which would test nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora.lora_layers(model):
            if layer.adapter_name == name:
                layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * scale)


CASES = [("gpt2", ("q", "v"), None), ("gpt2", ("q", "k", "v", "o", "w1", "w2"), [1]), ("gpt2", ("k", "w2"), None),
         ("bert", ("q", "v"), None), ("bert", ("o", "w1", "w2"), [0]),
         ("llama", ("q", "v"), None), ("llama", ("q", "k", "v", "o", "w1", "w2", "w3"), None)]


@pytest.mark.parametrize("family,targets,layers", CASES)
def test_peft_loads_the_export_and_computes_what_minift_computes(tmp_path, family, targets, layers):
    make, convert = FAMILIES[family]
    hf = make()
    model = lora.apply(convert(hf), r=3, alpha=5, targets=targets, layers=layers, seed=0)
    randomize(model)
    if family == "bert":                      # the task head trains with LoRA: it travels with the adapter
        with torch.no_grad():
            model.head.classifier.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(4))
            model.head.pooler.bias.add_(0.5)
    ids, mask = inputs()
    ours = outputs(model, ids, mask)
    assert (ours - outputs(convert(hf), ids, mask)).abs().max() > 1e-2     # the adapter does change outputs
    lora.export_peft(model, tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["base_model_name_or_path"] is None
    peft_model = peft.PeftModel.from_pretrained(copy.deepcopy(hf), tmp_path / "adapter").eval()
    assert (outputs(peft_model, ids, mask) - ours).abs().max() <= 1e-5
    # and back: the same adapter into a fresh import
    back = lora.import_peft(convert(hf), tmp_path / "adapter")
    assert (outputs(back, ids, mask) - ours).abs().max() <= 1e-5


def test_gpt2_fused_c_attn_is_one_exact_adapter(tmp_path):
    model = lora.apply(from_hf_gpt2(gpt2()), r=4, alpha=8, targets=("q", "v"), seed=0)
    randomize(model)
    lora.export_peft(model, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and config["fan_in_fan_out"]    # r, alpha doubled
    assert config["target_modules"] == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"]
    assert config["task_type"] == "CAUSAL_LM"
    tensors = load_file(tmp_path / "adapter_model.safetensors")
    A = tensors["base_model.model.transformer.h.1.attn.c_attn.lora_A.weight"]
    B = tensors["base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"]
    q, v = model.blocks[1].attn.q, model.blocks[1].attn.v
    assert A.shape == (8, 32) and B.shape == (96, 8)
    assert torch.equal(A, torch.cat([q.lora_A, v.lora_A]).detach())
    assert torch.equal(B[:32, :4], q.lora_B.detach()) and torch.equal(B[64:, 4:], v.lora_B.detach())
    assert not B[32:64].any() and not B[:32, 4:].any() and not B[64:, :4].any()    # block-diagonal, k rows zero
    back = lora.import_peft(from_hf_gpt2(gpt2()), tmp_path)                         # the split is recorded
    assert back.blocks[1].attn.q.r == 4 and not lora.is_lora_layer(back.blocks[1].attn.k)


@pytest.mark.parametrize("family", ["gpt2", "bert", "llama"])
def test_an_adapter_made_by_peft_loads_into_minift(tmp_path, family):
    make, convert = FAMILIES[family]
    hf = make()
    targets = {"gpt2": ["c_attn", "c_fc"], "bert": ["query", "value", "dense"],
               "llama": ["q_proj", "k_proj", "up_proj", "down_proj"]}[family]
    settings = dict(r=4, lora_alpha=8, target_modules=targets, fan_in_fan_out=family == "gpt2",
                    rank_pattern={"c_fc": 2, "up_proj": 2}, alpha_pattern={"k_proj": 3})
    if family == "bert":        # pooler.dense matches "dense" too: minift has no LoRA target there
        settings["target_modules"] = ["query", "value", "intermediate.dense"]
        settings["task_type"] = "SEQ_CLS"
    peft_model = peft.get_peft_model(copy.deepcopy(hf), peft.LoraConfig(**settings))
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    peft_model.save_pretrained(tmp_path)
    ids, mask = inputs()
    theirs = outputs(peft_model.eval(), ids, mask)
    model = lora.import_peft(convert(hf), tmp_path)
    assert (outputs(model, ids, mask) - theirs).abs().max() <= 1e-5
    assert (outputs(convert(hf), ids, mask) - theirs).abs().max() > 1e-2


def test_a_native_minift_adapter_round_trips(tmp_path):
    torch.manual_seed(0)
    base = Transformer(ModelConfig(vocab_size=VOCAB, d_model=16, n_layers=2, n_heads=2, ffn="gated",
                                   activation="silu", n_kv_heads=1))
    model = lora.apply(copy.deepcopy(base), r=2, alpha=3, targets=("k", "w3"), seed=0)
    randomize(model)
    lora.export_peft(model, tmp_path)
    assert "base_model.model.blocks.0.ffn.w3.lora_A.weight" in load_file(tmp_path / "adapter_model.safetensors")
    back = lora.import_peft(copy.deepcopy(base), tmp_path, name="again")
    ids, mask = inputs()
    assert (outputs(back, ids, mask) - outputs(model, ids, mask)).abs().max() <= 1e-6
    assert lora.adapters(back) == ["again"]


def test_bad_folders_are_refused_clearly(tmp_path):
    model = lora.apply(from_hf_gpt2(gpt2()), r=2, targets=("q",), seed=0)
    lora.export_peft(model, tmp_path / "good")
    fresh = lambda: from_hf_gpt2(gpt2())   # noqa: E731
    with pytest.raises(FileNotFoundError, match="no PEFT adapter folder"):
        lora.import_peft(fresh(), tmp_path / "missing")
    config = json.loads((tmp_path / "good" / "adapter_config.json").read_text())
    (tmp_path / "prefix").mkdir()
    (tmp_path / "prefix" / "adapter_config.json").write_text(json.dumps(config | {"peft_type": "PREFIX_TUNING"}))
    save_file({}, tmp_path / "prefix" / "adapter_model.safetensors")
    with pytest.raises(ValueError, match="peft_type='PREFIX_TUNING'; import_peft reads LoRA adapters only"):
        lora.import_peft(fresh(), tmp_path / "prefix")
    # a module the model does not have
    tensors = load_file(tmp_path / "good" / "adapter_model.safetensors")
    renamed = {k.replace("attn.c_attn", "attn.c_proj_x"): v for k, v in tensors.items()}
    (tmp_path / "unknown").mkdir()
    (tmp_path / "unknown" / "adapter_config.json").write_text(json.dumps(config))
    save_file(renamed, tmp_path / "unknown" / "adapter_model.safetensors")
    with pytest.raises(ValueError, match=r"adapts module 'transformer.h.0.attn.c_proj_x'"):
        lora.import_peft(fresh(), tmp_path / "unknown")
    # keys without PEFT's prefix: PEFT would load them silently as nothing; minift refuses
    (tmp_path / "prefixless").mkdir()
    (tmp_path / "prefixless" / "adapter_config.json").write_text(json.dumps(config))
    save_file({k.replace("base_model.model.", ""): v for k, v in tensors.items()},
              tmp_path / "prefixless" / "adapter_model.safetensors")
    untouched = fresh()
    with pytest.raises(ValueError, match="is neither a LoRA weight of the form base_model.model"):
        lora.import_peft(untouched, tmp_path / "prefixless")
    assert not lora.lora_layers(untouched)                              # nothing changed
    with pytest.raises(ValueError, match="already has a LoRA adapter named 'default'"):
        lora.import_peft(model, tmp_path / "good")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file; a PEFT adapter is a folder"):
        lora.import_peft(fresh(), tmp_path / "file")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        lora.export_peft(model, tmp_path / "file")
