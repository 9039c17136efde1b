"""Source models: checkpoints load without pickle, round-trip exactly, damaged files are refused with
a clear error, pre-training works, and the old module names (pretrain, pretrained) still work."""

import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import minift
from minift import ModelConfig, Transformer, data, source_models
from minift.source_models import (CHECKPOINT_DIR, LADDER, SourceRecipe, load_model, pretrain, read_metadata,
                                  save_model, source_models_info)


def tiny_model(tied=True):
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, max_len=12,
                                   tie_embeddings=tied)).eval()


def test_save_load_round_trip_is_exact(tmp_path):
    for tied in (True, False):
        model = tiny_model(tied)
        path = tmp_path / f"m{tied}.safetensors"
        save_model(model, path, {"note": "test"})
        loaded = load_model(path)
        ids = torch.randint(0, 40, (2, 9))
        assert torch.equal(model(ids).logits, loaded(ids).logits)
        assert loaded.metadata == {"note": "test"}
        assert (loaded.lm_head.weight is loaded.tok_emb.weight) == tied
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob("*.tmp"))


def test_loading_rejects_files_that_are_not_minift_checkpoints(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a minift checkpoint"):
        load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.safetensors")


def damaged_files(tmp_path):
    """(path, what the error must say) for every way a checkpoint file can be broken."""
    good = tmp_path / "good.safetensors"
    save_model(tiny_model(), good)
    raw = good.read_bytes()
    files = {"empty": (b"", "empty"), "header-cut": (raw[:5], "truncated"),
             "half": (raw[:len(raw) // 2], "truncated"), "last-byte-cut": (raw[:-1], "truncated"),
             "text": (b"this is not a checkpoint\n" * 20, "not a readable safetensors file")}
    cases = []
    for name, (content, problem) in files.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        cases.append((path, problem))
    pickled = tmp_path / "pickled.safetensors"
    torch.save(tiny_model().state_dict(), pickled)
    cases.append((pickled, "not a readable safetensors file"))
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    cases.append((folder, "is a directory"))
    bad_config = tmp_path / "bad-config.safetensors"
    save_file({"w": torch.zeros(2)}, str(bad_config), metadata={"config": "{not json"})
    cases.append((bad_config, "invalid config"))
    wrong_shape = tmp_path / "wrong-shape.safetensors"
    model = tiny_model()
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    state["tok_emb.weight"] = torch.zeros(41, 16)
    save_file(state, str(wrong_shape), metadata={"config": '{"vocab_size": 40, "d_model": 16, "n_layers": 2, '
                                                           '"n_heads": 2, "max_len": 12}'})
    cases.append((wrong_shape, "does not match its config"))
    return cases


def test_damaged_checkpoints_are_refused_naming_the_file_and_the_problem(tmp_path):
    # safetensors itself raises a bare SafetensorError or OSError("No such device") without the name
    for path, problem in damaged_files(tmp_path):
        with pytest.raises(ValueError) as error:
            load_model(path)
        assert type(error.value) is ValueError, (path.name, type(error.value))
        assert str(path) in str(error.value) and problem in str(error.value), str(error.value)
        if "shape" not in path.name:
            with pytest.raises(ValueError, match=re.escape(str(path))):
                read_metadata(path)


def test_a_damaged_shipped_checkpoint_says_how_to_rebuild_it(tmp_path, monkeypatch):
    raw = (CHECKPOINT_DIR / "causal-tiny.safetensors").read_bytes()
    (tmp_path / "causal-tiny.safetensors").write_bytes(raw[:1000])
    monkeypatch.setattr(source_models, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(ValueError, match=r"truncated.*python -m minift\.source_models --only causal-tiny"):
        minift.load_source_model("causal-tiny")
    with pytest.raises(FileNotFoundError, match=r"python -m minift\.source_models --only causal-small"):
        minift.load_source_model("causal-small")


def test_unknown_source_model_lists_the_ladder():
    with pytest.raises(ValueError, match="available: \\['causal-tiny'"):
        minift.load_source_model("gpt-5")


def test_every_shipped_checkpoint_loads_and_matches_the_ladder():
    info = {row["name"]: row for row in source_models_info()}
    assert set(info) == set(LADDER), "a checkpoint of the ladder is missing: run python -m minift.source_models"
    sizes = []
    for name, recipe in LADDER.items():
        model = minift.load_source_model(name)
        assert model.config.causal == recipe.causal
        assert model.num_parameters() == info[name]["parameters"]
        sizes.append((recipe.causal, model.num_parameters()))
    causal_sizes = [n for causal, n in sizes if causal]
    assert causal_sizes == sorted(causal_sizes) and causal_sizes[0] < 100_000 and causal_sizes[-1] > 2_000_000


def test_shipped_checkpoints_load_bit_identically():
    """The loaded weights are exactly the stored tensors (the tied LM head is the embedding)."""
    for name in LADDER:
        stored = load_file(str(CHECKPOINT_DIR / f"{name}.safetensors"))
        state = minift.load_source_model(name).state_dict()
        if "lm_head.weight" not in stored:
            assert state["lm_head.weight"].equal(stored["tok_emb.weight"])
            state.pop("lm_head.weight")
        assert set(state) == set(stored), name
        for key, tensor in stored.items():
            assert state[key].dtype == tensor.dtype and torch.equal(state[key], tensor), (name, key)


def test_shipped_models_beat_chance_on_held_out_text():
    tokenizer = data.get_tokenizer()
    texts = data.source_corpus(200, seed=123)
    split = data.causal_lm_split(texts, max_len=64, pack=True)
    loss = minift.evaluate(minift.load_source_model("causal-tiny"), split)["loss"]
    assert loss < 0.6 * torch.log(torch.tensor(float(tokenizer.vocab_size))).item()


def test_pretraining_lowers_the_loss_of_a_tiny_model(monkeypatch, one_thread):
    monkeypatch.setitem(LADDER, "causal-tiny",
                        SourceRecipe(d_model=16, n_layers=1, n_heads=2, steps=60, batch_size=16, lr=1e-2))
    model, metrics = pretrain("causal-tiny", progress=False)
    uniform = torch.log(torch.tensor(float(data.get_tokenizer().vocab_size))).item()
    assert metrics["val_loss"] < uniform - 1.0
    again, metrics_again = pretrain("causal-tiny", progress=False)
    assert metrics_again["val_loss"] == metrics["val_loss"]


# --------------------------------------------------------------- old names, kept for this release
def test_old_module_names_are_aliases():
    from minift import pretrain as old_pretrain
    from minift import pretrained as old_pretrained
    from minift.pretrain import pretrain as old_pretrain_function
    from minift.pretrained import LADDER as OLD_LADDER, load_model as old_load_model, save_model as old_save_model
    from minift.pretrained import source_config, source_models_info as old_info  # noqa: F401 (notebooks)
    assert old_pretrain_function is pretrain and OLD_LADDER is LADDER
    assert old_load_model is load_model and old_save_model is save_model and old_info is source_models_info
    assert old_pretrained.SourceRecipe is SourceRecipe and old_pretrain.main is source_models.main
    assert minift.load_source_model is source_models.load_source_model


@pytest.mark.parametrize("module", ["minift.source_models", "minift.pretrain"])
def test_command_line_entry_points(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: python -m minift.source_models" in result.stdout and "--only" in result.stdout
    assert "Warning" not in result.stderr, result.stderr      # e.g. runpy's "found in sys.modules"


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    """mkstemp creates 0600 files; a saved file must be readable like any other (0644 under umask 022)."""
    import os
    from minift.files import atomic_path
    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "x.txt") as temporary:
            open(temporary, "w").write("hello")
    finally:
        os.umask(mask)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o644
