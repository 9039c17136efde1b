"""Chapter 02 explorer: where do a Transformer's parameters sit, what does each method train, and how
much memory does a training step take?

    result = explore(d=768, layers=12, heads=12)    # pure: a dict of numbers (tested headlessly)
    print(table(result))                            # the static fallback
    explorer = build(); display(explorer.box)       # the ipywidgets version

Counts come from the closed forms in minift.analysis.params; memory from
minift.analysis.memory.predict_training_memory applied to a model built on PyTorch's "meta" device
(shapes only, no numbers), so even GPT-3's shape costs no memory. The model is a causal LM with
minift's architecture (GPT-2's: learned positions, pre-LayerNorm, GELU FFN, biases, tied head), being
fine-tuned as a language model on ``batch`` sequences of ``seq`` tokens, without padding.
"""

from __future__ import annotations

import functools

import torch

from minift.analysis import params as formulas
from minift.analysis.memory import BYTES, format_bytes, predict_training_memory
from minift.config import ModelConfig
from minift.validate import choice, int_in_range, positive_int, positive_number

# shapes from the published configurations (GPT-2: Radford et al. 2019 / HF config; GPT-3: Brown et al.
# 2020, table 2.1); "minift causal-base" is the ladder's base model with minift's vocabulary
PRESETS = {
    "minift causal-base": dict(d=128, layers=4, heads=4, ff_ratio=4, vocab=None, max_len=64, seq=32),
    "GPT-2 small": dict(d=768, layers=12, heads=12, ff_ratio=4, vocab=50257, max_len=1024, seq=512),
    "GPT-2 XL": dict(d=1600, layers=48, heads=25, ff_ratio=4, vocab=50257, max_len=1024, seq=512),
    "GPT-3 175B": dict(d=12288, layers=96, heads=96, ff_ratio=4, vocab=50257, max_len=2048, seq=2048),
}
D_CHOICES = (32, 64, 128, 192, 256, 384, 512, 768, 1024, 1280, 1600, 2048, 4096, 5120, 8192, 12288)
VOCAB_CHOICES = (512, 1000, 8000, 32000, 50257, 65536, 128256)
SEQ_CHOICES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
RANK_CHOICES = (1, 2, 4, 8, 16, 32, 64)
METHODS = ("full", "LoRA", "prefix", "Freeze")
MEMORY_KEYS = ("weights", "gradients", "optimizer_states", "activations")


def minift_vocab_size() -> int:
    from minift.data import get_tokenizer
    return get_tokenizer().vocab_size


def make_config(d: int, layers: int, heads: int, ff_ratio: float, vocab: int, max_len: int) -> ModelConfig:
    d_ff = int(round(ff_ratio * d))
    return ModelConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=heads, d_ff=d_ff,
                       max_len=max_len, causal=True, tie_embeddings=True)


@functools.lru_cache(maxsize=32)
def _meta_model(config_items: tuple, method: str, lora_r: int, prompt_len: int, freeze_layers: int):
    """A shapes-only model (meta device) with ``method`` applied; cached, never run."""
    from minift.methods import freeze, full, lora, prefix
    from minift.model import Transformer
    config = ModelConfig(**dict(config_items))
    with torch.device("meta"):
        model = Transformer(config)
        if method == "full":
            full.apply(model)
        elif method == "LoRA":
            lora.apply(model, r=lora_r, alpha=2 * lora_r, targets=("q", "v"))
        elif method == "prefix":
            prefix.apply(model, length=prompt_len, reparam=False)
        else:
            freeze.apply(model, layers=freeze_layers, modules=("ffn",))
            # Freeze trains only FFNs, so nothing needs the frozen (tied) embedding / LM head's grad
    return model


def explore(d: int = 768, layers: int = 12, heads: int = 12, ff_ratio: float = 4, vocab: int = 50257,
            lora_r: int = 4, prompt_len: int = 16, batch: int = 8, seq: int = 512,
            freeze_layers: int = 2, max_len: int | None = None, weight_dtype: str = "fp32") -> dict:
    """Everything the explorer shows, as numbers.

    Returns {"config", "parts" (parameters per kind), "total", "block" (attention / FFN / norms of
    one layer and the FFN's share), "methods": {method: {"label", "trainable", "percent", "memory"}}}.
    LoRA: rank ``lora_r`` on W_q and W_v of every layer. prefix: ``prompt_len`` key and value vectors
    per layer, stored directly. Freeze: the FFNs of the last ``freeze_layers`` layers. max_len (learned
    positions) defaults to seq + prompt_len (it only changes the position table's size).
    """
    d, layers, heads, vocab, lora_r, prompt_len, batch, seq = (
        positive_int(name, value) for name, value in (
            ("d", d), ("layers", layers), ("heads", heads), ("vocab", vocab), ("lora_r", lora_r),
            ("prompt_len", prompt_len), ("batch", batch), ("seq", seq)))
    if d % heads:
        raise ValueError(f"d={d} is not divisible by heads={heads}; pick heads among the divisors of {d}")
    freeze_layers = int_in_range("freeze_layers", freeze_layers, 0, layers)
    if lora_r > d:
        raise ValueError(f"lora_r={lora_r} is larger than d={d}")
    choice("weight_dtype", weight_dtype, tuple(BYTES))
    ff_ratio = positive_number("ff_ratio", ff_ratio)
    max_len = seq + prompt_len if max_len is None else max_len       # learned positions
    config = make_config(d, layers, heads, ff_ratio, vocab, max_len)

    attention = formulas.attention_parameters(config)
    ffn = formulas.ffn_parameters(config)
    norms = 2 * formulas.layer_norm_parameters(config)
    parts = {
        "token embeddings (= tied LM head)": vocab * d,
        "position embeddings": max_len * d,
        "attention": layers * attention,
        "FFN": layers * ffn,
        "layer norms": layers * norms + formulas.layer_norm_parameters(config),
    }
    total = formulas.transformer_parameters(config)
    assert total == sum(parts.values())

    trainable = {
        "full": total,
        "LoRA": formulas.lora_parameters(config, lora_r, ("q", "v")),
        "prefix": formulas.prefix_parameters(config, prompt_len, reparam=False),
        "Freeze": formulas.freeze_parameters(config, freeze_layers, ("ffn",)),
    }
    labels = {
        "full": "full fine-tuning",
        "LoRA": f"LoRA r={lora_r} on Wq, Wv",
        "prefix": f"prefix, {prompt_len} vectors/layer",
        "Freeze": f"Freeze: FFN of last {freeze_layers} layer{'s' if freeze_layers != 1 else ''}",
    }
    items = tuple(sorted(config.to_dict().items()))
    methods = {}
    for method in METHODS:
        if method == "Freeze" and freeze_layers == 0:
            memory = None                               # nothing trains: no training step to size
        else:
            args = {"full": (0, 0, 0), "LoRA": (lora_r, 0, 0), "prefix": (0, prompt_len, 0),
                    "Freeze": (0, 0, freeze_layers)}[method]         # only what changes the model
            model = _meta_model(items, method, *args)
            memory = predict_training_memory(model, batch, seq, weight_dtype=weight_dtype, padded=False)
        total_with_added = total + (trainable[method] if method in ("LoRA", "prefix") else 0)
        methods[method] = {"label": labels[method], "trainable": trainable[method],
                           "percent": 100.0 * trainable[method] / total_with_added, "memory": memory}
    return {
        "config": config.to_dict() | {"ff_ratio": ff_ratio, "weight_dtype": weight_dtype,
                                      "batch": batch, "seq": seq},
        "parts": parts,
        "total": total,
        "block": {"attention": attention, "FFN": ffn, "layer norms": norms,
                  "ffn_share": ffn / (attention + ffn + norms)},
        "methods": methods,
    }


# ----------------------------------------------------------------------------------------------------
# Showing it: a text table (the static fallback), HTML, a figure

def _human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def table(result: dict) -> str:
    """Plain-text version of what the explorer shows."""
    c = result["config"]
    lines = [f"d={c['d_model']}  layers={c['n_layers']}  heads={c['n_heads']}  d_ff={c['d_ff']}  "
             f"vocab={c['vocab_size']}  positions={c['max_len']}  ->  {result['total']:,} parameters",
             f"one layer: attention {result['block']['attention']:,}, FFN {result['block']['FFN']:,} "
             f"({100 * result['block']['ffn_share']:.1f}% of the layer), norms {result['block']['layer norms']:,}",
             "", "where the parameters sit:"]
    for part, n in result["parts"].items():
        lines.append(f"  {part:<36} {n:>18,}  {100 * n / result['total']:6.2f}%")
    lines += ["", f"training memory, batch {c['batch']} x {c['seq']} tokens, {c['weight_dtype']} "
                  f"({'mixed precision: + fp32 master copy' if c['weight_dtype'] != 'fp32' else 'fp32 everywhere'}), AdamW:"]
    header = f"  {'method':<32} {'trainable':>15} {'%':>8}" + "".join(f" {k[:11]:>11}" for k in MEMORY_KEYS) \
        + f" {'total':>11}"
    lines.append(header)
    for method in METHODS:
        m = result["methods"][method]
        row = f"  {m['label']:<32} {m['trainable']:>15,} {m['percent']:>7.3f}%"
        if m["memory"] is None:
            row += "  (nothing trains)"
        else:
            row += "".join(f" {format_bytes(m['memory'][k]):>11}" for k in MEMORY_KEYS + ("total",))
        lines.append(row)
    return "\n".join(lines)


# ipywidgets gives an HTML widget's content a 28-px line height (one widget row) and lets it grow to
# its content's width: multi-line cells were double-spaced and a wide table ran past the notebook's edge,
# clipped, instead of scrolling (seen in JupyterLab in headless Chromium at 1024 px). Scoped to the
# explorer's box (the class Explorer adds).
EXPLORER_CLASS = "minift-params-explorer"
HTML_STYLE = (f"<style>.{EXPLORER_CLASS} .widget-html-content {{min-width: 0; line-height: 1.35;}}</style>")


def html(result: dict) -> str:
    """The same numbers as HTML tables for the widget: where the parameters sit (a row per part), then
    what each method trains and its training memory with the methods as COLUMNS (four columns of numbers
    fit a 1024-px JupyterLab window with the file browser open; a row per method needed eight, which
    did not). Method names may wrap, numbers may not; a horizontal scroll bar is the last resort."""
    from html import escape

    c = result["config"]
    number = "padding: 1px 6px; text-align: right; white-space: nowrap"
    name = "padding: 1px 6px; text-align: left"
    summary = (f"<p style='margin: 0 0 4px 0'>d={c['d_model']}, layers={c['n_layers']}, heads={c['n_heads']}, "
               f"d_ff={c['d_ff']}, vocab={c['vocab_size']}, positions={c['max_len']}: "
               f"<b>{result['total']:,} parameters</b>. One layer: attention {result['block']['attention']:,}, "
               f"FFN {result['block']['FFN']:,} ({100 * result['block']['ffn_share']:.1f}% of the layer).</p>")
    parts = "".join(f"<tr><td style='{name}'>{escape(part)}</td><td style='{number}'>{n:,}</td>"
                    f"<td style='{number}'>{100 * n / result['total']:.2f}%</td></tr>"
                    for part, n in result["parts"].items())
    parts_table = (f"<table style='border-collapse: collapse; font-size: 12px'><tr><th style='{name}'>where the "
                   f"parameters sit</th><th style='{number}'>parameters</th><th style='{number}'>%</th></tr>"
                   f"{parts}</table>")
    precision = "mixed precision (+ fp32 master copy)" if c["weight_dtype"] != "fp32" else "fp32 everywhere"
    methods = [result["methods"][m] for m in METHODS]
    header = "".join(f"<th style='padding: 1px 6px; text-align: right; vertical-align: bottom; "
                     f"min-width: 5em; max-width: 9em'>{escape(m['label'])}</th>" for m in methods)
    rows = [("trainable parameters", [f"{m['trainable']:,}" for m in methods]),
            ("% of the model", [f"{m['percent']:.3f}%" for m in methods])]
    for key in MEMORY_KEYS + ("total",):
        cells = [format_bytes(m["memory"][key]) if m["memory"] is not None
                 else ("nothing trains" if key == MEMORY_KEYS[0] else "-") for m in methods]
        rows.append((key.replace("_", " "), cells))
    body = ""
    for label, cells in rows:
        bold = "font-weight: bold; " if label == "total" else ""
        body += (f"<tr><td style='{bold}{name}'>{label}</td>"
                 + "".join(f"<td style='{bold}{number}'>{cell}</td>" for cell in cells) + "</tr>")
    memory_table = (f"<p style='margin: 6px 0 2px 0'>what each method trains, and the memory of one training "
                    f"step: batch {c['batch']} x {c['seq']} tokens, {c['weight_dtype']} ({precision}), AdamW:</p>"
                    f"<table style='border-collapse: collapse; font-size: 12px'><tr><th></th>{header}</tr>"
                    f"{body}</table>")
    return (f"{HTML_STYLE}<div style='overflow-x: auto; max-width: 100%'>{summary}{parts_table}"
            f"{memory_table}</div>")


PIE_LABEL_MIN_PERCENT = 4.0     # smaller slices get no percentage on the pie (the legend names every part)
FIGURE_SIZE = (6.4, 5.4)        # inches: about 640 px wide, the notebook's width in a 1024-px window


def figure(result: dict):
    """Pie chart of where the parameters sit (names in a legend beside it, percentages only on slices
    of at least PIE_LABEL_MIN_PERCENT, so small slices never print over each other) above stacked bars
    of training memory per method (its legend beside the bars).

    One above the other, not side by side: side by side the figure was 10 inches wide, so in a 1024-px
    JupyterLab window (file browser open) it was shrunk to about 60% and its 8-point text became
    unreadable, and the pie's legend ran over the bars' axis label (both seen in headless Chromium,
    tests/browser/check_frontends.py). Here the legends have a column of their own."""
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=FIGURE_SIZE)
    # two columns: the plots on the left, their legends in the right column (kept empty of axes)
    grid = fig.add_gridspec(2, 2, width_ratios=[1.1, 1], height_ratios=[1, 1.15], left=0.13, right=0.99,
                            bottom=0.06, top=0.94, hspace=0.3, wspace=0.04)
    ax1, ax2 = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0])
    parts = {k: v for k, v in result["parts"].items() if v > 0}
    total = sum(parts.values())
    wedges, _texts, _autotexts = ax1.pie(
        list(parts.values()), autopct=lambda p: f"{p:.1f}%" if p >= PIE_LABEL_MIN_PERCENT else "",
        startangle=90, pctdistance=0.72, textprops={"fontsize": 8}, radius=1.0)
    ax1.legend(wedges, [f"{k} ({100 * v / total:.1f}%)" for k, v in parts.items()], loc="center left",
               bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    ax1.set_title(f"where the {_human(result['total'])} parameters sit", fontsize=10)
    methods = [m for m in METHODS if result["methods"][m]["memory"] is not None]
    bottom = [0.0] * len(methods)
    for key in MEMORY_KEYS:
        values = [result["methods"][m]["memory"][key] / 2 ** 30 for m in methods]
        ax2.bar(methods, values, bottom=bottom, label=key.replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax2.set_ylabel("predicted training memory (GiB)", fontsize=9)
    ax2.tick_params(labelsize=8)
    c = result["config"]
    ax2.set_title(f"one training step, batch {c['batch']} x {c['seq']}, {c['weight_dtype']}", fontsize=10)
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)  # beside the bars
    return fig


# ----------------------------------------------------------------------------------------------------
# The widget

class Explorer:
    """The widget objects: ``controls`` (name -> widget), ``output`` (HTML table), ``plot`` (Output),
    ``box`` (what to display). ``update()`` recomputes; every control change calls it."""

    def __init__(self, preset: str = "GPT-2 small", show_plot: bool = True):
        import ipywidgets as w
        self.show_plot = show_plot
        style = {"description_width": "110px"}
        layout = w.Layout(width="380px")

        def sel(options, value, description):
            return w.SelectionSlider(options=list(options), value=value, description=description,
                                     continuous_update=False, style=style, layout=layout)

        def ints(low, high, value, description):
            return w.IntSlider(min=low, max=high, value=value, description=description,
                               continuous_update=False, style=style, layout=layout)

        self.preset = w.Dropdown(options=list(PRESETS), value=preset, description="preset",
                                 style=style, layout=layout)
        self.controls = {
            "d": sel(D_CHOICES, 768, "d (width)"),
            "layers": ints(1, 128, 12, "layers"),
            "heads": ints(1, 128, 12, "heads"),
            "ff_ratio": w.FloatSlider(min=1, max=8, step=0.5, value=4, description="d_ff / d",
                                      continuous_update=False, style=style, layout=layout),
            "vocab": sel(sorted(set(VOCAB_CHOICES) | {minift_vocab_size()}), 50257, "vocabulary"),
            "lora_r": sel(RANK_CHOICES, 4, "LoRA r"),
            "prompt_len": ints(1, 128, 16, "prefix length"),
            "freeze_layers": ints(0, 12, 2, "Freeze: last N"),
            "batch": ints(1, 64, 8, "batch"),
            "seq": sel(SEQ_CHOICES, 512, "sequence length"),
            "weight_dtype": w.ToggleButtons(options=["fp32", "fp16"], value="fp32", description="precision",
                                            style=style),
        }
        self.max_len = 1024
        self.output = w.HTML()
        self.plot = w.Output()
        self.busy = False
        self.result = None
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self.preset.observe(self._preset_changed, names="value")
        left = w.VBox([self.preset] + list(self.controls.values()))
        # controls, then the table, then the plot: side by side, JupyterLab squeezed the sliders'
        # read-outs and wrapped the table (seen in a headless-Chromium render)
        self.box = w.VBox([left, self.output, self.plot])
        self.box.add_class(EXPLORER_CLASS)          # for HTML_STYLE, and tests/browser/check_frontends.py
        self._preset_changed({"new": preset})

    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def _preset_changed(self, change) -> None:
        preset = dict(PRESETS[change["new"]])
        vocab = preset.pop("vocab") or minift_vocab_size()
        self.max_len = preset.pop("max_len")
        self.busy = True                                     # one update for the whole preset
        try:
            self.controls["layers"].max = max(self.controls["layers"].max, preset["layers"])
            self.controls["heads"].max = max(self.controls["heads"].max, preset["heads"])
            self.controls["vocab"].value = vocab
            for name, value in preset.items():
                self.controls[name].value = value
            self.controls["freeze_layers"].max = preset["layers"]
            self.controls["freeze_layers"].value = min(2, preset["layers"])
        finally:
            self.busy = False
        self.update()

    def _changed(self, _change=None) -> None:
        if not self.busy:
            self.controls["freeze_layers"].max = self.controls["layers"].value
            self.update()

    def update(self) -> dict | None:
        try:
            result = explore(max_len=self.max_len, **self.values())
        except ValueError as error:
            # the old table and figure belong to other settings: clear both, show only the error
            from html import escape
            self.output.value = (f"{HTML_STYLE}<p style='color: #b00'><b>Cannot compute this setting:</b> "
                                 f"{escape(str(error))}</p>")
            self.plot.clear_output()
            self.result = None
            return None
        self.output.value = html(result)
        if self.show_plot:
            import matplotlib.pyplot as plt
            self.plot.clear_output(wait=True)
            with self.plot:
                fig = figure(result)
                plt.show()
                plt.close(fig)
        self.result = result
        return result


def build(preset: str = "GPT-2 small", show_plot: bool = True) -> Explorer:
    """The explorer's widgets; display ``build().box`` in a notebook."""
    return Explorer(preset, show_plot)
