"""Source models: checkpoints load without pickle, round-trip exactly, and pre-training works."""

import pytest
import torch

import minift
from minift import ModelConfig, Transformer, data
from minift.pretrained import LADDER, load_model, save_model, source_models_info
from minift.pretrain import pretrain


def test_save_load_round_trip_is_exact(tmp_path):
    for tied in (True, False):
        torch.manual_seed(0)
        model = Transformer(ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, max_len=12,
                                        tie_embeddings=tied)).eval()
        path = tmp_path / f"m{tied}.safetensors"
        save_model(model, path, {"note": "test"})
        loaded = load_model(path)
        ids = torch.randint(0, 40, (2, 9))
        assert torch.equal(model(ids).logits, loaded(ids).logits)
        assert loaded.metadata == {"note": "test"}
        assert (loaded.lm_head.weight is loaded.tok_emb.weight) == tied
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob("*.tmp"))


def test_loading_rejects_files_that_are_not_minift_checkpoints(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a minift checkpoint"):
        load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")


def test_unknown_source_model_lists_the_ladder():
    with pytest.raises(ValueError, match="available: \\['causal-tiny'"):
        minift.load_source_model("gpt-5")


def test_every_shipped_checkpoint_loads_and_matches_the_ladder():
    info = {row["name"]: row for row in source_models_info()}
    assert set(info) == set(LADDER), "a checkpoint of the ladder is missing: run python -m minift.pretrain"
    sizes = []
    for name, recipe in LADDER.items():
        model = minift.load_source_model(name)
        assert model.config.causal == recipe.causal
        assert model.num_parameters() == info[name]["parameters"]
        sizes.append((recipe.causal, model.num_parameters()))
    causal_sizes = [n for causal, n in sizes if causal]
    assert causal_sizes == sorted(causal_sizes) and causal_sizes[0] < 100_000 and causal_sizes[-1] > 2_000_000


def test_shipped_models_beat_chance_on_held_out_text():
    tokenizer = data.get_tokenizer()
    texts = data.source_corpus(200, seed=123)
    split = data.causal_lm_split(texts, max_len=64, pack=True)
    loss = minift.evaluate(minift.load_source_model("causal-tiny"), split)["loss"]
    assert loss < 0.6 * torch.log(torch.tensor(float(tokenizer.vocab_size))).item()


def test_pretraining_lowers_the_loss_of_a_tiny_model(monkeypatch):
    from minift import pretrained
    monkeypatch.setitem(pretrained.LADDER, "causal-tiny",
                        pretrained.SourceRecipe(d_model=16, n_layers=1, n_heads=2, steps=60, batch_size=16, lr=1e-2))
    model, metrics = pretrain("causal-tiny", progress=False)
    uniform = torch.log(torch.tensor(float(data.get_tokenizer().vocab_size))).item()
    assert metrics["val_loss"] < uniform - 1.0
    again, metrics_again = pretrain("causal-tiny", progress=False)
    assert metrics_again["val_loss"] == metrics["val_loss"]
