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

Mixed precision (how large models are really trained) changes the bytes per number: fp16/bf16 weights
(2) and gradients (2), plus an fp32 master copy of the weights (4) and two fp32 Adam moments (8): the
"16 bytes per parameter" rule. ``predict_training_memory(..., weight_dtype="fp16")`` uses that rule;
``mixed_precision_bytes(n_params, n_trainable)`` gives the same numbers for a bare parameter count.
"""

from __future__ import annotations

import torch

BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
INDEX_BYTES = 8          # token ids, positions and gather indices are int64
OPTIMIZERS = ("adamw", "adam", "sgd", "sgd_momentum")
STATES_PER_PARAM = {"adamw": 2, "adam": 2, "sgd": 0, "sgd_momentum": 1}
KEYS = ("weights", "gradients", "optimizer_states", "activations", "total")


# ----------------------------------------------------------------------------------------------------
# Which parameters train

def _trainable(module) -> bool:
    """Does any parameter of ``module`` (a Linear, a LoRA-wrapped Linear, a LayerNorm...) train?"""
    return module is not None and any(p.requires_grad for p in module.parameters())


def _linear_flags(linear) -> tuple[bool, int]:
    """(is the base weight trainable, LoRA rank of the active adapter or 0) for one target linear."""
    base = getattr(linear, "base", None)
    if base is None:                                  # a plain nn.Linear
        return _trainable(linear), 0
    name = getattr(linear, "active", None)
    rank = 0
    if name is not None and getattr(linear, "merged", None) is None and name in linear.lora_A \
            and (linear.lora_A[name].requires_grad or linear.lora_B[name].requires_grad):
        rank = linear.rank[name]
    return _trainable(base), rank


def _unique_parameters(model):
    """Every parameter once: model.parameters() already yields a tied tensor only once."""
    return list(model.parameters())


# ----------------------------------------------------------------------------------------------------
# Activations, predicted

def activation_breakdown(model, batch_size: int, seq_len: int, padded: bool = True) -> dict:
    """Numbers (elements, not bytes) that autograd saves for backward in one forward pass, per part.

    Returns {"floats": {part: count}, "indices": {part: count}} with float tensors (stored in the
    weight dtype) and int64 index tensors kept apart. The rules, per operation, are those of PyTorch's
    autograd (a tensor is saved only if the backward of some input that requires grad needs it):

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
    Assumptions: dropout = 0 (dropout > 0 adds a mask per dropout site), the task head / LM head as
    minift builds them, every sequence padded to ``seq_len`` tokens. A P-tuning prompt lengthens the
    sequence by its length; its small prompt encoder is left out (a few x length x d numbers).
    """
    config = model.config
    B, T, d, H = batch_size, seq_len, config.d_model, config.n_heads
    floats: dict[str, int] = {}
    indices: dict[str, int] = {}

    def add(table, part, n):
        if n:
            table[part] = table.get(part, 0) + int(n)

    # input layer: token ids for the embedding table's gradient, positions for the position table's
    grad = False
    if _trainable(model.tok_emb):
        add(indices, "embeddings", B * T)
        grad = True
    prompt = getattr(model, "prompt", None)
    prompt_len = getattr(prompt, "length", 0) if prompt is not None else 0
    if prompt is not None and _trainable(prompt):
        grad = True
    T = T + prompt_len                                     # the Transformer sees the prompts too
    if _trainable(model.pos_emb):
        add(indices, "embeddings", T)
        grad = True

    prefix = getattr(model, "prefix", None)
    P = getattr(prefix, "length", 0) if prefix is not None else 0
    prefix_grad = prefix is not None and _trainable(prefix)
    if prefix_grad and getattr(prefix, "mlp", None) is not None:
        add(floats, "prefix MLP", P * prefix.hidden)       # tanh output, shared by the second Linear
    masked = padded or P > 0
    explicit = config.attention == "explicit"
    if explicit and masked:
        add(indices, "attention mask", B * T * (P + T) / INDEX_BYTES)     # one bool mask, all layers

    for i, block in enumerate(model.blocks):
        part = f"block {i}"
        # LayerNorm 1
        ln1 = _trainable(block.ln1)
        if grad or ln1:
            add(floats, part, B * T * d + 2 * B * T)
        h_grad = grad or ln1
        # q, k, v
        h_saved, proj_grad = False, {}
        for name in ("q", "k", "v"):
            w, r = _linear_flags(getattr(block.attn, name))
            h_saved |= w or r > 0
            add(floats, part, B * T * r)
            proj_grad[name] = h_grad or w or r > 0
        if h_saved:
            add(floats, part, B * T * d)
        kv_len = P + T
        attn_grad = proj_grad["q"] or proj_grad["k"] or proj_grad["v"] or prefix_grad
        o_w, o_r = _linear_flags(block.attn.o)
        if attn_grad:
            if explicit:
                add(floats, part, B * T * d + 2 * B * kv_len * d)                 # q, k, v
                add(floats, part, B * H * T * kv_len)                             # probabilities
                if not masked:
                    add(indices, part, T * T / INDEX_BYTES)                       # causal bool mask
            else:
                add(floats, part, B * T * d + 2 * B * kv_len * d + B * T * d + B * H * T)  # q k v out lse
                if masked:
                    add(floats, part, B * T * kv_len)                             # float mask
        out_saved_already = attn_grad and not explicit
        if (o_w or o_r) and not out_saved_already:
            add(floats, part, B * T * d)                                          # input of o
        add(floats, part, B * T * o_r)
        grad = grad or attn_grad or o_w or o_r > 0
        # LayerNorm 2 and FFN
        ln2 = _trainable(block.ln2)
        if grad or ln2:
            add(floats, part, B * T * d + 2 * B * T)
        h2_grad = grad or ln2
        w1, r1 = _linear_flags(block.ffn.w1)
        if w1 or r1:
            add(floats, part, B * T * d)                                          # input of w1
        add(floats, part, B * T * r1)
        gelu_grad = h2_grad or w1 or r1 > 0
        if gelu_grad:
            add(floats, part, B * T * config.d_ff)                                # GELU input
        w2, r2 = _linear_flags(block.ffn.w2)
        if w2 or r2:
            add(floats, part, B * T * config.d_ff)                                # input of w2
        add(floats, part, B * T * r2)
        grad = grad or gelu_grad or w2 or r2 > 0

    # final LayerNorm, output layer, loss
    if grad or _trainable(model.ln_f):
        add(floats, "final norm", B * T * d + 2 * B * T)
    grad = grad or _trainable(model.ln_f)
    T_out = T - prompt_len
    if prompt_len and grad:
        add(indices, "output", T_out)                      # cutting the prompt positions away
    head = getattr(model, "head", None)
    if head is not None:
        classes = head.classifier.out_features
        if hasattr(head, "pool"):                          # one label per sequence
            if head.pool == "last" and grad:
                add(indices, "output", 2 * B)
            if _trainable(head.classifier):
                add(floats, "output", B * d)
            if head.pool == "mean" and grad:
                add(floats, "output", B * T_out)
            rows = B
        else:                                              # one label per token
            if _trainable(head.classifier):
                add(floats, "output", B * T_out * d)
            rows = B * T_out
    else:
        classes = config.vocab_size
        if _trainable(model.lm_head):
            add(floats, "output", B * T_out * d)
        rows = B * T_out
    add(floats, "loss", rows * classes + 1)                # log-softmax output, total weight
    add(indices, "loss", rows)                             # the labels
    return {"floats": floats, "indices": indices}


def activation_bytes(model, batch_size: int, seq_len: int, weight_dtype: str = "fp32",
                     padded: bool = True) -> int:
    """Bytes of what autograd saves in one forward pass (see ``activation_breakdown``)."""
    parts = activation_breakdown(model, batch_size, seq_len, padded)
    return int(round(sum(parts["floats"].values()) * BYTES[weight_dtype]
                     + sum(parts["indices"].values()) * INDEX_BYTES))


# ----------------------------------------------------------------------------------------------------
# The whole prediction

def _check(batch_size, seq_len, weight_dtype, optimizer):
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if weight_dtype not in BYTES:
        raise ValueError(f"weight_dtype={weight_dtype!r} is unknown; allowed: {tuple(BYTES)}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is unknown; allowed: {OPTIMIZERS}")


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
    _check(batch_size, seq_len, weight_dtype, optimizer)
    params = _unique_parameters(model)
    n_total = sum(p.numel() for p in params)
    trainable = [p for p in params if p.requires_grad]
    n_train = sum(p.numel() for p in trainable)
    width = BYTES[weight_dtype]
    states = STATES_PER_PARAM[optimizer] * 4 * n_train
    if optimizer in ("adamw", "adam"):
        states += 4 * len(trainable)                       # torch keeps `step` as a float32 tensor
    if weight_dtype != "fp32":
        states += 4 * n_train                              # fp32 master weights (mixed precision)
    result = {
        "weights": n_total * width,
        "gradients": n_train * width,
        "optimizer_states": states,
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
    n_trainable = n_params if n_trainable is None else n_trainable
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

    This takes a real optimizer step, so it changes the model (pass lr=0.0 to leave the weights as they
    are up to weight decay, or measure a copy). loss_fn(model, batch) -> scalar loss; default: minift's
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
