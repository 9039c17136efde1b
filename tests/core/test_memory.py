"""Training memory: the closed-form prediction against a real, measured AdamW step."""

import copy

import pytest
import torch

from minift import ModelConfig, Transformer, make_target_model
from minift.analysis import memory
from minift.analysis.memory import (BYTES, measure_training_memory, mixed_precision_bytes,
                                    predict_training_memory)
from minift.methods import freeze, full, lora, prefix, ptuning, ptuning_v2

B, T, VOCAB = 6, 20, 57


def small_source(attention="sdpa", tie=True, seed=0):
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=VOCAB, d_model=32, n_layers=3, n_heads=4, max_len=48,
                         attention=attention, tie_embeddings=tie)
    return Transformer(config)


def batch(padded=True, per_token=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    if padded:
        for i in range(B):
            mask[i, 8 + i:] = 0
    labels = torch.randint(0, 3, (B, T) if per_token else (B,), generator=g)
    if per_token:
        labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


METHODS = {
    "full": full.apply,
    "lora": lambda m: lora.apply(m, r=4),
    "lora-all": lambda m: lora.apply(m, r=2, targets=("q", "k", "v", "o", "w1", "w2")),
    "freeze": lambda m: freeze.apply(m, layers=2),
    "freeze-first": lambda m: freeze.apply(m, layers=-1, modules=("attn", "norm")),
    "head-only": lambda m: freeze.apply(m, layers=0),
    "prefix": lambda m: prefix.apply(m, length=5),
    "prefix-table": lambda m: prefix.apply(m, length=5, reparam=False),
    "ptuning-v2": lambda m: ptuning_v2.apply(m, length=4),
}


def target(method, attention="sdpa", task="sequence", tie=True):
    model = make_target_model(small_source(attention, tie), task=task, num_classes=3, seed=0)
    return METHODS[method](model)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("task", ["sequence", "token"])
def test_prediction_matches_measurement(method, task):
    model = target(method, task=task)
    data = batch(per_token=task == "token")
    predicted = predict_training_memory(model, B, T)
    measured = measure_training_memory(model, data)
    for key in ("weights", "gradients", "optimizer_states"):
        assert predicted[key] == measured[key], key
    assert measured["activations"] == pytest.approx(predicted["activations"], rel=0.15)
    assert measured["total"] == sum(measured[k] for k in ("weights", "gradients", "optimizer_states",
                                                          "activations"))


@pytest.mark.parametrize("method", ["full", "lora", "freeze"])
def test_activations_within_15_percent_with_explicit_attention_and_no_padding(method):
    for attention in ("sdpa", "explicit"):
        for padded in (True, False):
            model = target(method, attention)
            predicted = predict_training_memory(model, B, T, padded=padded)
            measured = measure_training_memory(model, batch(padded=padded))
            assert measured["activations"] == pytest.approx(predicted["activations"], rel=0.15), \
                (attention, padded)


def test_language_model_with_tied_and_untied_head():
    for tie in (True, False):
        model = full.apply(small_source(tie=tie))
        data = batch(padded=False, per_token=True)
        data["labels"] = torch.randint(0, VOCAB, (B, T))
        predicted, measured = predict_training_memory(model, B, T, padded=False), \
            measure_training_memory(model, data)
        assert predicted["weights"] == measured["weights"]          # the tied table counted once
        assert predicted["gradients"] == measured["gradients"]
        assert measured["activations"] == pytest.approx(predicted["activations"], rel=0.15)


def test_ptuning_prompt_is_close():
    model = ptuning.apply(make_target_model(small_source(), num_classes=3, seed=0), length=4, encoder="mlp")
    predicted, measured = predict_training_memory(model, B, T), measure_training_memory(model, batch())
    assert predicted["gradients"] == measured["gradients"]
    assert measured["activations"] == pytest.approx(predicted["activations"], rel=0.15)


def test_gradients_only_for_trainable_parameters():
    model = target("lora")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    predicted = predict_training_memory(model, B, T)
    measured = measure_training_memory(model, batch())
    assert predicted["gradients"] == measured["gradients"] == 4 * trainable
    assert predicted["weights"] == measured["weights"] == 4 * total
    n_tensors = sum(1 for p in model.parameters() if p.requires_grad)
    assert measured["optimizer_states"] == 8 * trainable + 4 * n_tensors
    assert all(p.grad is None for p in model.parameters())     # measuring leaves no gradients behind


def test_peft_saves_memory_in_the_right_places():
    results = {m: predict_training_memory(target(m), B, T) for m in ("full", "lora", "freeze", "head-only")}
    for method in ("lora", "freeze", "head-only"):
        assert results[method]["weights"] >= results["full"]["weights"] - 4 * 32 * 32   # lm head dropped only
        assert results[method]["gradients"] < results["full"]["gradients"]
        assert results[method]["optimizer_states"] < results["full"]["optimizer_states"]
        assert results[method]["activations"] < results["full"]["activations"]
    assert results["head-only"]["activations"] < results["freeze"]["activations"]


def test_activation_options_and_dtypes():
    model = target("full")
    no_act = predict_training_memory(model, B, T, activations=False)
    assert no_act["activations"] == 0 and no_act["total"] == no_act["weights"] + no_act["gradients"] \
        + no_act["optimizer_states"]
    fp32 = predict_training_memory(model, B, T)
    fp16 = predict_training_memory(model, B, T, weight_dtype="fp16")
    n = sum(p.numel() for p in model.parameters())
    assert fp16["weights"] == 2 * n and fp16["gradients"] == 2 * n
    assert fp16["optimizer_states"] == fp32["optimizer_states"] + 4 * n     # fp32 master copy
    sgd = predict_training_memory(model, B, T, optimizer="sgd")
    assert sgd["optimizer_states"] == 0
    assert predict_training_memory(model, 2 * B, T)["activations"] > fp32["activations"]


def test_mixed_precision_rule_is_16_bytes_per_parameter():
    assert mixed_precision_bytes(10)["total"] == 160
    frozen = mixed_precision_bytes(100, n_trainable=0)
    assert frozen["total"] == 200 and frozen["gradients"] == 0
    assert BYTES == {"fp32": 4, "fp16": 2, "bf16": 2}


def test_bad_inputs_are_named():
    model = target("full")
    with pytest.raises(ValueError, match="batch_size"):
        predict_training_memory(model, 0, T)
    with pytest.raises(ValueError, match="weight_dtype"):
        predict_training_memory(model, B, T, weight_dtype="fp8")
    with pytest.raises(ValueError, match="optimizer"):
        predict_training_memory(model, B, T, optimizer="lion")
    frozen = copy.deepcopy(model).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        measure_training_memory(frozen, batch())


def test_format_bytes():
    assert memory.format_bytes(512) == "512 B"
    assert memory.format_bytes(1536) == "1.5 KiB"
    assert memory.format_bytes(3 * 1024 ** 3) == "3.0 GiB"
