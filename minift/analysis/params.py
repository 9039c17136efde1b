"""How many parameters does each method train? Count them on a model, or predict them in closed form.

trainable_summary(model) counts what is there (tied tensors once) and groups it by module.
The *_parameters(config, ...) functions give the same numbers from the shapes alone, e.g. for d = 768,
L = 12 LoRA with r = 8 on q and v trains 12 * 2 * 8 * (768 + 768) = 294,912 parameters. The tests
check formula == count for many random configurations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..methods.freeze import MODULES as FREEZE_MODULES  # noqa: F401  (the old name, kept for this release)
from ..methods.freeze import check_modules
from ..methods.lora import check_layers
from ..methods.ptuning import ENCODERS
from ..model import TARGETS, target_shape
from ..validate import boolean, choice, choices, int_in_range, positive_int

LORA_TARGETS = TARGETS          # the old name of minift.model.TARGETS, kept for this release
ADDED_LAST = ("lora", "prefix", "prompt", "lm_head", "head")   # table rows after the base model's


# ----------------------------------------------------------------------------------------------------
# Counting what a model has

def group_of(name: str) -> str:
    """Table row for a parameter name: blocks.3.attn.q.lora_A.default -> "lora", blocks.3.ffn.w1.weight
    -> "blocks.3.ffn", blocks.3.ln1.weight -> "blocks.3.norm", tok_emb.weight -> "tok_emb"."""
    parts = name.split(".")
    if "lora_A" in parts or "lora_B" in parts:
        return "lora"
    if parts[0] == "blocks":
        kind = parts[2]
        return f"blocks.{parts[1]}.{'norm' if kind in ('ln1', 'ln2') else kind}"
    return parts[0]


@dataclass
class ParamSummary:
    """trainable / total parameters, and the same per group (rows: group -> (trainable, total))."""

    trainable: int
    total: int
    rows: dict = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        width = max([len("module")] + [len(g) for g in self.rows])
        lines = [f"{'module':<{width}}  {'trainable':>12}  {'total':>12}",
                 "-" * (width + 28)]
        for group, (trainable, total) in self.rows.items():
            lines.append(f"{group:<{width}}  {trainable:>12,}  {total:>12,}")
        lines.append("-" * (width + 28))
        lines.append(f"{'all':<{width}}  {self.trainable:>12,}  {self.total:>12,}   "
                     f"({self.percent:.3f}% trainable)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ParamSummary(trainable={self.trainable:,}, total={self.total:,}, percent={self.percent:.3f})"


def trainable_summary(model) -> ParamSummary:
    """Count trainable and total parameters of ``model``, per module group. Shared tensors count once."""
    rows: dict[str, list[int]] = {}
    for name, p in model.named_parameters():          # named_parameters skips tied duplicates
        row = rows.setdefault(group_of(name), [0, 0])
        row[1] += p.numel()
        if p.requires_grad:
            row[0] += p.numel()
    trainable = sum(t for t, _ in rows.values())
    total = sum(n for _, n in rows.values())
    ordered = sorted(rows, key=lambda g: ADDED_LAST.index(g) if g in ADDED_LAST else -1)  # stable
    return ParamSummary(trainable, total, {g: tuple(rows[g]) for g in ordered})


# ----------------------------------------------------------------------------------------------------
# Closed forms (a Linear(in, out) with bias has in * out + out parameters, a LayerNorm 2 d, an RMSNorm d).
# The options of ModelConfig for real architectures each change one term: bias=False drops the "+ out",
# grouped-query attention narrows k and v to d_kv, a gated FFN adds w3, rotary positions drop the
# position table, post-norm moves the final norm to the embeddings.

def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def attention_parameters(config) -> int:
    """One layer's q, k, v, o. q and o map d -> d, k and v d -> d_kv (= d unless grouped-query
    attention): 4 (d^2 + d) for GPT-2 and BERT, 2 d^2 + 2 d d_kv without biases for LLaMA."""
    d, d_kv, bias = config.d_model, config.d_kv, config.bias
    return 2 * _linear(d, d, bias) + 2 * _linear(d, d_kv, bias)


def ffn_parameters(config) -> int:
    """One layer's w1 (d -> d_ff) and w2 (d_ff -> d): 2 d d_ff + d_ff + d; a gated FFN (SwiGLU) also
    has w3 (d -> d_ff): 3 d d_ff without biases for LLaMA."""
    d, d_ff, bias = config.d_model, config.d_ff, config.bias
    total = _linear(d, d_ff, bias) + _linear(d_ff, d, bias)
    if config.ffn == "gated":
        total += _linear(d, d_ff, bias)
    return total


def layer_norm_parameters(config) -> int:
    """One norm: a LayerNorm has a gain and a bias of size d, an RMSNorm a gain only."""
    return (1 if config.norm == "rmsnorm" else 2) * config.d_model


def block_parameters(config) -> int:
    """One Transformer layer: attention + FFN + two norms."""
    return attention_parameters(config) + ffn_parameters(config) + 2 * layer_norm_parameters(config)


def embedding_parameters(config) -> int:
    """Token table (vocab x d) + learned positions (max_len x d; none with rotary positions) +
    token types (n_token_types x d, BERT) + the norm on the embeddings of a post-norm model (BERT)."""
    total = config.vocab_size * config.d_model
    if config.positions == "learned":
        total += config.max_len * config.d_model
    total += config.n_token_types * config.d_model
    if config.norm_position == "post":
        total += layer_norm_parameters(config)
    return total


def lm_head_parameters(config) -> int:
    """The LM head: its matrix (vocab x d) unless it is tied to the token table (then it is the same
    tensor and adds nothing), its bias (vocab, BERT) and BERT's transform (dense d -> d + a norm)."""
    d, vocab = config.d_model, config.vocab_size
    total = 0 if config.tie_embeddings else vocab * d
    if config.lm_head_bias:
        total += vocab
    if config.lm_head_transform:
        total += _linear(d, d) + layer_norm_parameters(config)
    return total


def transformer_parameters(config, include_lm_head: bool = True) -> int:
    """The whole model: embeddings, L layers, the final norm (pre-norm models only) and the LM head
    (see lm_head_parameters). LLaMA-7B: 6,738,415,616; BERT-base without pooler: 108,891,648."""
    include_lm_head = boolean("include_lm_head", include_lm_head)
    total = embedding_parameters(config) + config.n_layers * block_parameters(config)
    if config.norm_position == "pre":
        total += layer_norm_parameters(config)
    if include_lm_head:
        total += lm_head_parameters(config)
    return total


def head_parameters(config, num_classes: int) -> int:
    """A task head (minift.heads): one Linear(d, num_classes)."""
    return _linear(config.d_model, positive_int("num_classes", num_classes, minimum=2))


def lora_parameters(config, r: int, targets=("q", "v"), layers=None) -> int:
    """Sum over adapted layers and targets of r (in + out): A is r x in, B is out x r (k and v: out =
    d_kv; w3: in = d, out = d_ff).

    targets and layers are checked as lora.apply checks them (names from minift.model.TARGETS, each
    once; layers None for all, or distinct block indices), so the count is that of a model apply accepts."""
    r = positive_int("r", r)
    targets = choices("targets", targets, TARGETS)     # target_shape refuses w3 without a gated FFN
    n_layers = len(check_layers(layers, config.n_layers))
    return n_layers * sum(r * sum(target_shape(config, t)) for t in targets)


def prefix_parameters(config, length: int, reparam: bool = True, hidden: int | None = None) -> int:
    """Without reparam: the table, L * 2 * length * d_kv. With it (what trains): the embedding P'
    (length x d) and the MLP Linear(d, hidden) -> tanh -> Linear(hidden, L * 2 * d_kv). hidden defaults
    to d, as in prefix.apply; after freeze_to_table the count is the table's again. d_kv, the width
    of keys and values, is d unless the model uses grouped-query attention (see minift.model)."""
    length, reparam = positive_int("length", length), boolean("reparam", reparam)
    hidden = positive_int("hidden", hidden, allow_none=True, hint="None: d_model")
    d, d_kv, n_layers = config.d_model, config.d_kv, config.n_layers
    if not reparam:
        return n_layers * 2 * length * d_kv
    hidden = d if hidden is None else hidden
    return length * d + _linear(d, hidden) + _linear(hidden, n_layers * 2 * d_kv)


def _lstm_parameters(n_in: int, hidden: int, num_layers: int = 2, bidirectional: bool = True) -> int:
    """torch.nn.LSTM: per layer and direction 4 gates, each W_ih (h x in), W_hh (h x h), two biases."""
    directions = 2 if bidirectional else 1
    total = 0
    for layer in range(num_layers):
        layer_in = n_in if layer == 0 else directions * hidden
        total += directions * 4 * (hidden * layer_in + hidden * hidden + 2 * hidden)
    return total


def ptuning_parameters(config, length: int, encoder: str | None = "lstm", hidden: int | None = None) -> int:
    """length * d prompt vectors, plus the encoder: "lstm" = 2-layer BiLSTM (hidden per direction,
    default d // 2) + MLP Linear(2 hidden, d) -> ReLU -> Linear(d, d); "mlp" = Linear(d, hidden) ->
    ReLU -> Linear(hidden, d) (hidden default d); None (prompt tuning) = nothing more."""
    length = positive_int("length", length)
    encoder = choice("encoder", encoder, ENCODERS, hint="None = prompt tuning")
    hidden = positive_int("hidden", hidden, allow_none=True)
    d = config.d_model
    total = length * d
    if encoder == "lstm":
        hidden = max(1, d // 2) if hidden is None else hidden
        total += _lstm_parameters(d, hidden) + _linear(2 * hidden, d) + _linear(d, d)
    elif encoder == "mlp":
        hidden = d if hidden is None else hidden
        total += _linear(d, hidden) + _linear(hidden, d)
    return total


def freeze_parameters(config, layers: int, modules=("ffn",)) -> int:
    """What freeze.apply(layers, modules) trains (task head not included): |layers| times the chosen
    parts of one layer, e.g. FFN only: N (2 d d_ff + d_ff + d). Arguments are checked as freeze.apply
    checks them."""
    n_layers = config.n_layers
    layers = int_in_range("layers", layers, -n_layers, n_layers,
                          hint="N > 0: last N layers, N < 0: first |N|, 0: only the task head")
    modules = check_modules(modules)
    if "all" in modules:
        per_layer = block_parameters(config)
    else:
        parts = {"ffn": ffn_parameters(config), "attn": attention_parameters(config),
                 "norm": 2 * layer_norm_parameters(config)}
        per_layer = sum(parts[m] for m in modules)
    return abs(layers) * per_layer
