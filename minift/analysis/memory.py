"""Training memory: predict it from the shapes, then measure it on a real training step.

Training a model keeps four kinds of numbers in memory at once:

* weights            every parameter, trainable or not                    (P_total x bytes per weight)
* gradients          one per TRAINABLE parameter                          (P_train x bytes per weight)
* optimizer states   AdamW keeps two moments per trainable parameter      (P_train x 2 x 4 bytes, fp32)
                     (+ a 4-byte step counter per trainable tensor, as torch.optim.AdamW stores it)
* activations        the intermediate tensors that autograd saves during the forward pass because
                     backward needs them (inputs of linear layers, LayerNorm statistics, ...)

Parameter-efficient methods shrink the gradients and optimizer states to almost nothing, because
frozen weights need neither. They do NOT remove the frozen weights, and they shrink the activations
much less than one might hope: a gradient must still flow backwards through every layer above the
first trainable parameter, so those layers still save what their backward needs.

``predict_training_memory(model, batch_size, seq_len)`` computes the four terms in closed form from the
model's config and from which parameters are trainable; ``measure_training_memory(model, batch)`` runs
one real AdamW step and sums the bytes of the real tensors. The tests check that the two agree (exactly
for weights, gradients and optimizer states; within 15% for activations).

How the activation prediction is built: one small function per kind of module says what that module
keeps for backward (``embedding_saved``, ``linear_saved``, ``lora_linear_saved``, ``layer_norm_saved``,
``attention_saved``, ``activation_saved``, ``prefix_saved``, ``prompt_saved``, the heads and
``loss_saved``); each takes plain numbers and flags, so it can be checked by hand. ``activation_breakdown``
walks the model in forward order, reads what each module is (shapes from the config, the target map of
minift.model, what trains from requires_grad) and adds up what those functions return.

Mixed precision (how large models are really trained) changes the bytes per number: fp16/bf16 weights
(2) and gradients (2), plus an fp32 master copy of the weights (4) and two fp32 Adam moments (8): the
"16 bytes per parameter" rule. ``predict_training_memory(..., weight_dtype="fp16")`` uses that rule;
``mixed_precision_bytes(n_params, n_trainable)`` gives the same numbers for a bare parameter count.

Chapter 10's architecture options: bias-free blocks (bias=False) are covered; RMSNorm, post-norm,
rotary positions, gated FFNs, grouped-query attention, token types and BERT's LM-head transform are
refused with a ValueError naming the option (``check_supported``) instead of a silently wrong
activation estimate. Weights, gradients and optimizer states are counted for every model
(``predict_training_memory(..., activations=False)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ..methods.lora import is_lora_layer
from ..model import ATTENTION_TARGETS, FFN_TARGETS, target_linear, target_shape
from ..validate import boolean, choice, positive_int

BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
INDEX_BYTES = 8          # token ids, positions and gather indices are int64
OPTIMIZERS = ("adamw", "adam", "sgd", "sgd_momentum")
STATES_PER_PARAM = {"adamw": 2, "adam": 2, "sgd": 0, "sgd_momentum": 1}
KEYS = ("weights", "gradients", "optimizer_states", "activations", "total")

# Which linears read which tensor, from the target map: q, k, v read the normalised input of the
# attention sub-layer, o reads the attention output; w1 reads the normalised input of the FFN, w2 the
# activation's output.
INPUT_PROJECTIONS, OUTPUT_PROJECTION = ATTENTION_TARGETS[:-1], ATTENTION_TARGETS[-1]
FFN_IN, FFN_OUT = FFN_TARGETS[:2]      # w3 (gated FFNs) is refused, see check_supported

# ModelConfig options (chapter 10's real architectures) whose activations this model has not been
# measured for, with the value it supports. predict_training_memory refuses them rather than guess.
SUPPORTED_OPTIONS = {"norm": "layernorm", "norm_position": "pre", "positions": "learned", "ffn": "mlp",
                     "n_token_types": 0, "lm_head_transform": False}


def check_supported(config) -> None:
    """Raise ValueError naming the first ModelConfig option the memory model does not cover yet.

    The activation rules below were measured on GPT-2-shaped blocks; RMSNorm, post-norm, rotary
    positions, gated FFNs, grouped-query attention, token types and BERT's LM-head transform save
    other tensors, so a prediction for them would be silently wrong. bias=False is covered (a bias
    saves nothing for backward)."""
    if config.kv_heads != config.n_heads:
        raise ValueError(f"the memory model does not cover grouped-query attention yet (ModelConfig.n_kv_heads="
                         f"{config.n_kv_heads}, n_heads={config.n_heads}); weights, gradients and optimizer "
                         "states can still be counted with predict_training_memory(..., activations=False)")
    for option, supported in SUPPORTED_OPTIONS.items():
        value = getattr(config, option)
        if value != supported:
            raise ValueError(f"the memory model does not cover ModelConfig.{option}={value!r} yet (it "
                             f"supports {option}={supported!r}: GPT-2-shaped blocks); weights, gradients and "
                             "optimizer states can still be counted with predict_training_memory(..., "
                             "activations=False)")


# ----------------------------------------------------------------------------------------------------
# What one module keeps for backward, one function per kind of module

@dataclass(frozen=True)
class Saved:
    """Numbers autograd keeps for backward: ``floats`` (stored in the weight dtype) and ``indices``
    (int64 elements: token ids, positions, gather indices; a bool mask counts as its bytes / 8)."""

    floats: float = 0
    indices: float = 0

    def __add__(self, other: "Saved") -> "Saved":
        return Saved(self.floats + other.floats, self.indices + other.indices)


@dataclass(frozen=True)
class LinearSaved:
    """What a linear layer keeps for backward.

    needs_input: backward needs the layer's input x. Several linears can read the same x (q, k, v), and
                 autograd then keeps it once, so x is counted by ``input_saved``, not here.
    extra:       what it keeps besides x (a LoRA layer: A x).
    trains:      a parameter in it trains, so its output carries a gradient even when x does not.
    """

    needs_input: bool
    extra: Saved
    trains: bool


def embedding_saved(n_ids: int, trains: bool) -> Saved:
    """nn.Embedding: the table's gradient is a scatter-add into the looked-up rows, so backward keeps
    the ids (``n_ids`` int64), and only when the table trains. No gradient flows below a lookup."""
    return Saved(indices=n_ids if trains else 0)


def linear_saved(trains: bool) -> LinearSaved:
    """y = x W^T + b keeps x for dL/dW = dy^T x, only when the layer trains. dL/dx = dy W needs W,
    which is a weight, not an activation: a frozen linear keeps nothing, even with a gradient passing."""
    return LinearSaved(needs_input=trains, extra=Saved(), trains=trains)


def lora_linear_saved(rows: int, rank: int, base_trains: bool) -> LinearSaved:
    """base(x) + scaling * B (A x) with an active, trainable, unmerged adapter of rank ``rank``
    (0: none of those, so only the base counts). The branch keeps x for A's gradient (the same x the
    base reads) and A x, ``rank`` numbers per row, for B's gradient. Dropout on the branch (p > 0) would
    add a mask and a dropped copy of x; like every dropout site it is left out (see activation_breakdown).
    """
    adapted = rank > 0
    return LinearSaved(needs_input=base_trains or adapted, extra=Saved(floats=rows * rank),
                       trains=base_trains or adapted)


def input_saved(rows: int, width: int, readers) -> Saved:
    """The input x (rows x width) that the linears in ``readers`` read, kept once if any needs it."""
    return Saved(floats=rows * width if any(r.needs_input for r in readers) else 0)


def layer_norm_saved(rows: int, d_model: int, input_grad: bool, trains: bool) -> Saved:
    """LayerNorm keeps its input and two statistics (mean, 1/std) per row, when a gradient has to go
    through it (its input needs one) or its own gain and bias train."""
    return Saved(floats=rows * d_model + 2 * rows) if input_grad or trains else Saved()


def activation_saved(rows: int, d_ff: int, input_grad: bool) -> Saved:
    """The FFN's GELU keeps its input (d_ff per row) when a gradient has to go through it (ReLU keeps
    its output instead: the same count)."""
    return Saved(floats=rows * d_ff if input_grad else 0)


def attention_saved(batch: int, length: int, kv_length: int, d_model: int, n_heads: int,
                    explicit: bool, masked: bool) -> Saved:
    """Attention of ``length`` queries over ``kv_length`` keys (a prefix's keys in front of the tokens'
    own), when a gradient goes through it.

    Fused (torch's scaled_dot_product_attention, minift's default): q, k, v, the output and a
    log-sum-exp per head and query - NOT the (T x T) probabilities, which backward recomputes. With a
    mask (padding or a prefix) it also keeps the boolean mask converted to floats, B x T x (P + T).
    Explicit (config.attention="explicit"): q, k, v and the probabilities, B x heads x T x (P + T); without
    a mask, the causal bool mask T x T it builds. (Its one padding mask, shared by every layer, is
    ``attention_mask_saved``.)
    """
    B, T, S, d, H = batch, length, kv_length, d_model, n_heads
    qkv = B * T * d + 2 * B * S * d
    if explicit:
        return Saved(floats=qkv + B * H * T * S, indices=0 if masked else T * T / INDEX_BYTES)
    return Saved(floats=qkv + B * T * d + B * H * T + (B * T * S if masked else 0))


def attention_keeps_output(explicit: bool) -> bool:
    """Fused attention keeps its output for backward, and that output is what o reads (the same
    storage), so o's input costs nothing more. Explicit attention's o reads a merged copy of the heads."""
    return not explicit


def attention_mask_saved(batch: int, length: int, kv_length: int, explicit: bool, masked: bool) -> Saved:
    """The bool padding mask (B x T x (P + T) bytes) that explicit attention keeps, once for all layers."""
    return Saved(indices=batch * length * kv_length / INDEX_BYTES if explicit and masked else 0)


def prefix_saved(length: int, hidden: int | None, trains: bool) -> Saved:
    """A trainable prefix reparameterised by an MLP (``hidden`` wide; None: a stored table) keeps the
    tanh output, length x hidden, which the MLP's second Linear reads. A table keeps nothing. Its keys
    and values then enter every layer's attention (see ``attention_saved``'s kv_length)."""
    return Saved(floats=length * hidden if trains and hidden is not None else 0)


def prompt_saved(out_tokens: int, grad: bool) -> Saved:
    """An input prompt (P-tuning, prompt tuning) lengthens the sequence every layer sees; its small
    encoder is left out (a few x length x d numbers). At the output, cutting the prompt positions away
    keeps the index of the real positions (``out_tokens`` int64) when a gradient flows back."""
    return Saved(indices=out_tokens if grad else 0)


def sequence_head_saved(batch: int, length: int, d_model: int, pool: str, trains: bool, grad: bool) -> Saved:
    """One label per sequence: pool the ``length`` final states, then Linear(d, classes). "cls" and
    "last" gather one row per sequence at the first / last real token (two int64 index vectors);
    "mean" keeps the mask weights, B x T, and the count it divides by, B; the classifier keeps the
    pooled vectors when it trains. The pooling counts only when a gradient flows back. (minift's
    batches carry an attention mask, so the gather path is the one taken.)"""
    return Saved(floats=(batch * d_model if trains else 0) + (batch * length + batch if pool == "mean" and grad else 0),
                 indices=2 * batch if pool in ("cls", "last") and grad else 0)


def token_head_saved(rows: int, d_model: int, trains: bool) -> Saved:
    """A linear on every output position (a token-classification head, or the LM head): it keeps its
    input, rows x d, when it trains."""
    return input_saved(rows, d_model, [linear_saved(trains)])


def loss_saved(rows: int, classes: int) -> Saved:
    """Cross-entropy keeps its log-softmax (rows x classes), the total weight (1) and the labels."""
    return Saved(floats=rows * classes + 1, indices=rows)


# ----------------------------------------------------------------------------------------------------
# Reading the model: what each module is and whether it trains

def _trains(module) -> bool:
    """Does any parameter of ``module`` (a Linear, a LayerNorm, a prompt encoder...) train?"""
    return module is not None and any(p.requires_grad for p in module.parameters())


def _hook_length(hook) -> int:
    """Virtual tokens a model.prefix / model.prompt hook adds (0 when the hook is empty)."""
    return getattr(hook, "length", 0) if hook is not None else 0


def lora_rank(layer) -> int:
    """Rank r of the adapter the LoRA ``layer`` trains now, or 0: no active adapter (lora_A is None),
    a merged one (forward skips its branch) or a frozen one (neither A nor B requires grad).
    Reads the layer's public attributes only: lora_A (r x in), lora_B (out x r), merged."""
    A, B = layer.lora_A, layer.lora_B
    if A is None or layer.merged or not (A.requires_grad or B.requires_grad):
        return 0
    return A.shape[0]


def _linear(block, target: str, rows: int) -> LinearSaved:
    """What the linear that ``target`` names in ``block`` keeps (a plain nn.Linear or a LoRA layer)."""
    layer = target_linear(block, target)
    if is_lora_layer(layer):
        return lora_linear_saved(rows, lora_rank(layer), _trains(layer.base))
    if isinstance(layer, nn.Linear):
        return linear_saved(_trains(layer))
    raise TypeError(f"block target {target!r} is a {type(layer).__name__}: the memory model knows "
                    "nn.Linear and LoRA layers (with base, lora_A, lora_B, merged)")


class _Tally:
    """Float and index counts per part of the model ("block 0", "loss", ...), in forward order."""

    def __init__(self):
        self.floats: dict[str, int] = {}
        self.indices: dict[str, int] = {}

    def add(self, part: str, saved: Saved) -> None:
        for table, n in ((self.floats, saved.floats), (self.indices, saved.indices)):
            if n:
                table[part] = table.get(part, 0) + int(n)


def _block(tally: _Tally, part: str, block, config, batch: int, length: int, prefix_length: int,
           prefix_trains: bool, masked: bool, grad: bool) -> bool:
    """Add what one Transformer block keeps; ``grad``: whether its input carries a gradient. Returns
    whether its output does. x + o(attention(q, k, v of LN1 x)), then x + w2(act(w1(LN2 x)))."""
    rows, explicit = batch * length, config.attention == "explicit"
    width = {t: target_shape(config, t)[0] for t in ATTENTION_TARGETS + (FFN_IN, FFN_OUT)}   # input widths

    ln1 = _trains(block.ln1)
    tally.add(part, layer_norm_saved(rows, config.d_model, grad, ln1))
    projections = [_linear(block, t, rows) for t in INPUT_PROJECTIONS]
    for p in projections:
        tally.add(part, p.extra)
    tally.add(part, input_saved(rows, width[INPUT_PROJECTIONS[0]], projections))
    attention_grad = prefix_trains or any(grad or ln1 or p.trains for p in projections)
    if attention_grad:
        tally.add(part, attention_saved(batch, length, prefix_length + length, config.d_model,
                                        config.n_heads, explicit, masked))
    out = _linear(block, OUTPUT_PROJECTION, rows)
    if not (attention_grad and attention_keeps_output(explicit)):
        tally.add(part, input_saved(rows, width[OUTPUT_PROJECTION], [out]))
    tally.add(part, out.extra)
    grad = grad or attention_grad or out.trains

    ln2 = _trains(block.ln2)
    tally.add(part, layer_norm_saved(rows, config.d_model, grad, ln2))
    first, second = _linear(block, FFN_IN, rows), _linear(block, FFN_OUT, rows)
    tally.add(part, input_saved(rows, width[FFN_IN], [first]) + first.extra)
    activation_grad = grad or ln2 or first.trains
    tally.add(part, activation_saved(rows, config.d_ff, activation_grad))
    tally.add(part, input_saved(rows, width[FFN_OUT], [second]) + second.extra)
    return grad or activation_grad or second.trains


def _output(tally: _Tally, model, batch: int, length: int, grad: bool) -> tuple[int, int]:
    """Add what the output layer keeps; return (rows, classes) of the logits the loss sees."""
    d, head = model.config.d_model, getattr(model, "head", None)
    if head is None:                                       # the LM head: next-token logits
        tally.add("output", token_head_saved(batch * length, d, _trains(model.lm_head)))
        return batch * length, model.config.vocab_size
    classes, trains = head.classifier.out_features, _trains(head.classifier)
    if hasattr(head, "pool"):                              # one label per sequence
        tally.add("output", sequence_head_saved(batch, length, d, head.pool, trains, grad))
        return batch, classes
    tally.add("output", token_head_saved(batch * length, d, trains))     # one label per token
    return batch * length, classes


# ----------------------------------------------------------------------------------------------------
# Activations, predicted

def _check_shape(batch_size, seq_len, padded) -> tuple[int, int, bool]:
    return (positive_int("batch_size", batch_size), positive_int("seq_len", seq_len),
            boolean("padded", padded))


def activation_breakdown(model, batch_size: int, seq_len: int, padded: bool = True) -> dict:
    """Numbers (elements, not bytes) that autograd saves for backward in one forward pass, per part.

    Returns {"floats": {part: count}, "indices": {part: count}} with float tensors (stored in the
    weight dtype) and int64 index tensors kept apart. The rules, per operation, are those of PyTorch's
    autograd (a tensor is saved only if the backward of some input that requires grad needs it); each
    kind of module states its own in one function above (``linear_saved``, ``attention_saved``, ...):

    * Linear y = x W^T + b saves its input x only if W is trainable (dL/dW = dy^T x); dL/dx needs W,
      which is a weight, not an activation. A LoRA branch B(A x) saves x (for A) and A x (r numbers
      per token, for B). Several linears reading the same x (q, k, v) save it once.
    * LayerNorm saves its input and two statistics (mean, 1/std) per token, when its input or its own
      gain/bias requires grad.
    * GELU saves its input (d_ff per token) when that input requires grad.
    * Fused attention (torch's scaled_dot_product_attention, minift's default on CPU) saves q, k, v,
      its output and a log-sum-exp per head and query - NOT the (T x T) attention probabilities, which
      it recomputes in backward. With a padding mask (minift's batches are always right-padded) or a
      prefix, the boolean mask is converted to a float mask (B x T x (P + T)) in every layer and saved.
      The explicit implementation (config.attention="explicit") saves the probabilities instead:
      B x heads x T x (P + T) per layer, plus a copy of the merged heads for the output projection.
    * Once nothing below a layer requires grad (a frozen embedding, frozen lower blocks), those
      layers save nothing at all: backward stops at the first trainable parameter. Above it, the
      gradient has to pass through every layer, so they save what dL/dx needs even when frozen
      (LayerNorm inputs, GELU inputs, attention's q, k, v), though not the inputs of frozen linears.
    * The loss: cross-entropy saves its log-softmax (B x classes, or B x T x vocab for an LM head).

    On CUDA, torch may pick another fused kernel (flash or memory-efficient attention; their
    log-sum-exp is padded, and the memory-efficient kernel keeps the float mask too), so attention's
    share can differ by a few percent there; the rules were checked against measurements on CPU.
    Assumptions: dropout = 0 (dropout > 0 adds a mask per dropout site, LoRA's included), the task
    head / LM head as minift builds them, every sequence padded to ``seq_len`` tokens. A P-tuning prompt
    lengthens the sequence by its length; its small prompt encoder is left out (a few x length x d numbers).
    """
    batch_size, seq_len, padded = _check_shape(batch_size, seq_len, padded)
    config, B = model.config, batch_size
    check_supported(config)
    tally = _Tally()

    # the input layer: token table, an optional prompt (P-tuning), position table
    prompt = getattr(model, "prompt", None)
    length = seq_len + _hook_length(prompt)               # the Transformer sees the prompts too
    tally.add("embeddings", embedding_saved(B * seq_len, _trains(model.tok_emb)))
    # with padding, positions are numbered from the mask: one id per token (B x length), else one row
    tally.add("embeddings", embedding_saved(B * length if padded else length, _trains(model.pos_emb)))
    grad = _trains(model.tok_emb) or _trains(prompt) or _trains(model.pos_emb)

    # an optional prefix (prefix-tuning, P-tuning v2) and explicit attention's mask: once, for all layers
    prefix = getattr(model, "prefix", None)
    prefix_length, prefix_trains = _hook_length(prefix), _trains(prefix)
    reparam = getattr(prefix, "mlp", None) is not None
    tally.add("prefix MLP", prefix_saved(prefix_length, prefix.hidden if reparam else None, prefix_trains))
    masked = padded or prefix_length > 0
    tally.add("attention mask", attention_mask_saved(B, length, prefix_length + length,
                                                     config.attention == "explicit", masked))

    for i, block in enumerate(model.blocks):
        grad = _block(tally, f"block {i}", block, config, B, length, prefix_length, prefix_trains,
                      masked, grad)

    # final LayerNorm, the prompt positions cut away, the output layer, the loss
    ln_f = _trains(model.ln_f)
    tally.add("final norm", layer_norm_saved(B * length, config.d_model, grad, ln_f))
    grad = grad or ln_f
    if _hook_length(prompt):
        tally.add("output", prompt_saved(seq_len, grad))
    rows, classes = _output(tally, model, B, seq_len, grad)
    tally.add("loss", loss_saved(rows, classes))
    return {"floats": tally.floats, "indices": tally.indices}


def activation_bytes(model, batch_size: int, seq_len: int, weight_dtype: str = "fp32",
                     padded: bool = True) -> int:
    """Bytes of what autograd saves in one forward pass (see ``activation_breakdown``)."""
    width = BYTES[choice("weight_dtype", weight_dtype, tuple(BYTES))]
    parts = activation_breakdown(model, batch_size, seq_len, padded)
    return int(round(sum(parts["floats"].values()) * width + sum(parts["indices"].values()) * INDEX_BYTES))


# ----------------------------------------------------------------------------------------------------
# Weights, gradients, optimizer states

def gradient_bytes(n_trainable: int, weight_dtype: str = "fp32") -> int:
    """One gradient per trainable parameter, in the weight dtype; frozen parameters get none."""
    return n_trainable * BYTES[weight_dtype]


def optimizer_state_bytes(n_trainable: int, n_tensors: int, optimizer: str = "adamw",
                          weight_dtype: str = "fp32") -> int:
    """What the optimizer keeps for ``n_trainable`` parameters in ``n_tensors`` trainable tensors:
    AdamW two fp32 moments per parameter (8 bytes) + torch's float32 ``step`` per tensor (4 bytes);
    SGD with momentum one moment; plain SGD nothing. With fp16/bf16 weights (mixed precision) also
    an fp32 master copy of every trainable parameter (4 bytes)."""
    states = STATES_PER_PARAM[optimizer] * 4 * n_trainable
    if optimizer in ("adamw", "adam"):
        states += 4 * n_tensors
    if weight_dtype != "fp32":
        states += 4 * n_trainable
    return states


def _unique_parameters(model):
    """Every parameter once: model.parameters() already yields a tied tensor only once."""
    return list(model.parameters())


# ----------------------------------------------------------------------------------------------------
# The whole prediction

def predict_training_memory(model, batch_size: int, seq_len: int, weight_dtype: str = "fp32",
                            optimizer: str = "adamw", activations: bool = True,
                            padded: bool = True) -> dict:
    """Predicted bytes of one training step of ``model`` (as it is: what is trainable is read from
    requires_grad) on batches of ``batch_size`` sequences of ``seq_len`` tokens.

    weights:          every parameter (tied tensors once) x bytes of ``weight_dtype``
    gradients:        trainable parameters x bytes of ``weight_dtype``
    optimizer_states: AdamW's two moments per trainable parameter in fp32 (8 bytes) + a 4-byte step
                      counter per trainable tensor; with fp16/bf16 weights (mixed precision) also the
                      fp32 master copy (4 bytes per trainable parameter). "sgd": none; "sgd_momentum": one.
    activations:      ``activation_bytes`` (0 when activations=False), in ``weight_dtype``
    total:            the sum. (Real peak memory adds temporary buffers and allocator slack.)
    """
    _check_shape(batch_size, seq_len, padded)
    weight_dtype = choice("weight_dtype", weight_dtype, tuple(BYTES))
    optimizer = choice("optimizer", optimizer, OPTIMIZERS)
    activations = boolean("activations", activations)
    params = _unique_parameters(model)
    trainable = [p for p in params if p.requires_grad]
    n_train = sum(p.numel() for p in trainable)
    result = {
        "weights": sum(p.numel() for p in params) * BYTES[weight_dtype],
        "gradients": gradient_bytes(n_train, weight_dtype),
        "optimizer_states": optimizer_state_bytes(n_train, len(trainable), optimizer, weight_dtype),
        "activations": activation_bytes(model, batch_size, seq_len, weight_dtype, padded) if activations else 0,
    }
    result["total"] = sum(result.values())
    return result


def mixed_precision_bytes(n_params: int, n_trainable: int | None = None, weight_bytes: int = 2,
                          master_copy: bool = True) -> dict:
    """Weights, gradients and Adam states of a bare parameter count (no activations), e.g. GPT-3.

    Full fine-tuning in mixed precision: 2 (weights) + 2 (grads) + 4 (fp32 master) + 8 (two fp32
    moments) = 16 bytes per parameter. Frozen parameters cost only their 2 weight bytes.
    """
    n_params = positive_int("n_params", n_params, minimum=0)
    n_trainable = n_params if n_trainable is None else positive_int("n_trainable", n_trainable, minimum=0)
    if n_trainable > n_params:
        raise ValueError(f"n_trainable={n_trainable} is larger than n_params={n_params}")
    weight_bytes = positive_int("weight_bytes", weight_bytes)
    master_copy = boolean("master_copy", master_copy)
    result = {"weights": n_params * weight_bytes, "gradients": n_trainable * weight_bytes,
              "optimizer_states": n_trainable * (8 + (4 if master_copy else 0))}
    result["total"] = sum(result.values())
    return result


# ----------------------------------------------------------------------------------------------------
# Measuring

def _storage_key(t: torch.Tensor):
    return (t.device.type, t.device.index, t.untyped_storage().data_ptr())


def _sum_unique(tensors) -> int:
    """Bytes of the storages behind ``tensors``, each storage counted once."""
    seen: dict = {}
    for t in tensors:
        if t is None:
            continue
        seen[_storage_key(t)] = t.untyped_storage().nbytes()
    return sum(seen.values())


def default_loss(model, batch):
    """minift's training loss: cross-entropy of the model's logits against batch["labels"]."""
    from ..train import loss_and_accuracy
    logits = model(batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    return loss_and_accuracy(logits, batch["labels"])[0]


def measure_training_memory(model, batch: dict, loss_fn=None, lr: float = 1e-3,
                            weight_decay: float = 0.01) -> dict:
    """MEASURED bytes of one real training step of ``model`` on ``batch`` (a dict with input_ids,
    attention_mask, labels on the model's device), with minift's AdamW (fit()'s optimizer).

    weights / gradients / optimizer_states: the bytes of the actual tensors after one AdamW step
    (parameters, their .grad, every tensor in the optimizer state), each storage counted once (tied
    weights once). activations: during the forward pass, a saved_tensors_hooks records every tensor
    autograd saves for backward; those that are parameters are left out (they are the weights), the
    rest are summed, each storage once. On CUDA, "peak_cuda" is torch.cuda.max_memory_allocated over
    the whole step (it includes temporaries and the inputs, so it is larger than the sum).

    This takes a real optimizer step, so it changes the model: measure a copy (copy.deepcopy) when the
    weights must stay as they are. loss_fn(model, batch) -> scalar loss; default: minift's
    cross-entropy on batch["labels"].
    """
    from ..train import make_optimizer
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no trainable parameters (every requires_grad is False)")
    loss_fn = default_loss if loss_fn is None else loss_fn
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    params = _unique_parameters(model)
    param_storages = {_storage_key(p) for p in params}
    saved: dict = {}

    def pack(t):
        if isinstance(t, torch.Tensor) and _storage_key(t) not in param_storages:
            saved[_storage_key(t)] = t.untyped_storage().nbytes()
        return t

    was_training = model.training
    model.train()
    optimizer = make_optimizer(model, lr, weight_decay)
    for p in params:
        p.grad = None
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model, batch)
    activations = sum(saved.values())
    saved.clear()
    loss.backward()
    optimizer.step()
    if cuda:
        torch.cuda.synchronize(device)
    result = {
        "weights": _sum_unique(params),
        "gradients": _sum_unique(p.grad for p in params if p.requires_grad),
        "optimizer_states": _sum_unique(v for state in optimizer.state.values() for v in state.values()
                                        if isinstance(v, torch.Tensor)),
        "activations": activations,
    }
    result["total"] = sum(result.values())
    if cuda:
        result["peak_cuda"] = int(torch.cuda.max_memory_allocated(device))
    optimizer.zero_grad(set_to_none=True)
    model.train(was_training)
    return result


def compare(predicted: dict, measured: dict) -> dict:
    """measured / predicted for each key both have (nan where the prediction is 0 and the measure not)."""
    out = {}
    for key in KEYS:
        if key in predicted and key in measured:
            p, m = predicted[key], measured[key]
            out[key] = 1.0 if p == m else (m / p if p else float("nan"))
    return out


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
