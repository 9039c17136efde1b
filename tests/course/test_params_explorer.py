"""The chapter-02 explorer: pure numbers, the text fallback, and the widget callbacks (headless)."""

import matplotlib
import pytest

matplotlib.use("Agg")

from minift import ModelConfig, Transformer  # noqa: E402
from minift.analysis.memory import predict_training_memory  # noqa: E402
from minift.methods import freeze, lora, prefix  # noqa: E402
from minift.course.widgets import params_explorer as pe  # noqa: E402


def test_gpt2_small_counts():
    result = pe.explore(d=768, layers=12, heads=12, vocab=50257, max_len=1024, lora_r=4, prompt_len=16,
                        freeze_layers=2, batch=1, seq=512)
    assert result["total"] == 124_439_808
    assert sum(result["parts"].values()) == result["total"]
    assert result["block"]["attention"] == 4 * 768 * 768 + 4 * 768
    assert result["block"]["FFN"] == 2 * 768 * 3072 + 3072 + 768
    assert result["block"]["ffn_share"] == pytest.approx(2 / 3, abs=0.002)
    methods = result["methods"]
    assert methods["full"]["trainable"] == 124_439_808 and methods["full"]["percent"] == 100
    assert methods["LoRA"]["trainable"] == 12 * 2 * 4 * (768 + 768)
    assert methods["prefix"]["trainable"] == 12 * 2 * 16 * 768
    assert methods["Freeze"]["trainable"] == 2 * (2 * 768 * 3072 + 3072 + 768)
    for name in pe.METHODS:
        memory = methods[name]["memory"]
        assert memory["total"] == sum(memory[k] for k in pe.MEMORY_KEYS)
        assert memory["gradients"] == 4 * methods[name]["trainable"]
    assert methods["LoRA"]["memory"]["optimizer_states"] < methods["full"]["memory"]["optimizer_states"] / 100


def test_gpt3_lora_count_and_mixed_precision():
    result = pe.explore(d=12288, layers=96, heads=96, vocab=50257, max_len=2048, lora_r=4, batch=1,
                        seq=2048, weight_dtype="fp16")
    assert abs(result["total"] - 175e9) / 175e9 < 0.005
    assert result["methods"]["LoRA"]["trainable"] == 18_874_368
    full = result["methods"]["full"]["memory"]
    assert full["weights"] == 2 * result["total"]
    assert full["gradients"] + full["optimizer_states"] >= 14 * result["total"]   # the 16-byte rule


def test_memory_matches_a_real_model_of_the_same_shape():
    """The meta-device model gives what a real model gives."""
    config = ModelConfig(vocab_size=100, d_model=32, n_layers=3, n_heads=4, max_len=40)
    result = pe.explore(d=32, layers=3, heads=4, vocab=100, max_len=40, lora_r=2, prompt_len=5,
                        freeze_layers=1, batch=3, seq=16)
    real = {"LoRA": lora.apply(Transformer(config), r=2, alpha=4),
            "prefix": prefix.apply(Transformer(config), length=5, reparam=False),
            "Freeze": freeze.apply(Transformer(config), layers=1)}
    for name, model in real.items():
        assert result["methods"][name]["memory"] == predict_training_memory(model, 3, 16, padded=False)
        assert result["methods"][name]["trainable"] == sum(p.numel() for p in model.parameters()
                                                           if p.requires_grad)


def test_bad_values_are_named():
    with pytest.raises(ValueError, match="divisible"):
        pe.explore(d=768, heads=7)
    with pytest.raises(ValueError, match="freeze_layers"):
        pe.explore(layers=2, freeze_layers=3)
    with pytest.raises(ValueError, match="batch"):
        pe.explore(batch=0)


def test_zero_freeze_layers_has_no_memory_row():
    result = pe.explore(d=64, layers=2, heads=4, vocab=100, freeze_layers=0, seq=16)
    assert result["methods"]["Freeze"]["memory"] is None
    assert "nothing trains" in pe.table(result)


def test_table_and_figure():
    result = pe.explore(d=128, layers=4, heads=4, vocab=300, max_len=64, seq=32)
    text = pe.table(result)
    assert "FFN" in text and "LoRA r=4" in text and f"{result['total']:,}" in text
    fig = pe.figure(result)
    assert len(fig.axes) == 2
    matplotlib.pyplot.close(fig)


def test_widget_callbacks_headless():
    explorer = pe.build("GPT-2 small", show_plot=False)
    assert "124,439,808" in explorer.output.value
    explorer.controls["lora_r"].value = 8
    assert f"{12 * 2 * 8 * 1536:,}" in explorer.output.value
    explorer.controls["layers"].value = 6
    assert explorer.result["config"]["n_layers"] == 6
    assert explorer.controls["freeze_layers"].max == 6
    explorer.controls["heads"].value = 7                     # 768 is not divisible by 7
    assert "divisible" in explorer.output.value
    explorer.preset.value = "minift causal-base"
    assert explorer.controls["d"].value == 128 and explorer.controls["layers"].value == 4
    assert explorer.result["total"] == 845_824            # the ladder's causal-base
    explorer.controls["weight_dtype"].value = "fp16"
    assert explorer.result["methods"]["full"]["memory"]["weights"] == 2 * explorer.result["total"]


def test_widget_with_plot_builds_a_figure():
    explorer = pe.build("minift causal-base", show_plot=True)
    explorer.controls["batch"].value = 4
    assert explorer.result["config"]["batch"] == 4
    assert "<table" in explorer.output.value              # the plot callback raised nothing
