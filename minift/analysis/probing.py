"""What each layer encodes, and how fine-tuning moves it: linear probes, control tasks, linear CKA,
weight change, and the FFN read as a key-value memory.

Probing (e.g. Tenney et al. 2019; Hewitt & Liang 2019). Run a frozen model, keep every layer's hidden
states, and train a *linear* classifier (a probe) per layer to predict a property (word class, position,
sentiment, ...). High held-out accuracy says the property can be read out of that layer linearly. It does
NOT say the model uses it, and a probe that is powerful enough can learn a lot on its own. Hewitt & Liang's
**control task** measures that: give every word type a fixed random label (same label set, same
frequencies), train the same probe, and look at the **selectivity** = accuracy - control accuracy. A
representation that merely lets the probe memorise word types scores well on both; one that encodes the
property scores well on the real task only.

    states = layer_states(model, input_ids, attention_mask)       # [embeddings, block 1, ..., block L]
    X, y = token_features(states, labels)                        # one row per labelled token, per layer
    acc = probe_accuracy(X[3][train], y[train], X[3][test], y[test])
    control = control_labels(input_ids, labels, seed=0)           # a random label per word type

The default probe is ridge regression onto one-hot labels, solved in closed form (standardised features,
l2 penalty ``l2``): deterministic, no learning rate, a fraction of a second on a CPU, so a notebook can fit
hundreds. ``kind="logistic"`` fits multinomial logistic regression with L-BFGS instead (about 30 times
slower, a few points more accurate on unbalanced labels); both are linear classifiers.

Linear CKA (Kornblith et al. 2019) compares two representations of the same n examples, X (n x p) and
Y (n x q), possibly of different widths:

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F),     Xc, Yc: columns centred

It is 1 for X = Y, unchanged by rotating or uniformly scaling either side, but not by an arbitrary
invertible linear map (which is why it can see change that a probe could undo), and near 0 for unrelated
features. ``cka_per_layer`` compares a model's layers before and after fine-tuning.

FFN as key-value memory (Geva et al. 2021): FFN(x) = W2 f(W1 x). Row i of W1 is a *key* that fires on
input patterns; column i of W2 is the *value* it adds to the residual stream. Projected through the LM
head, a value vector shows which next words the neuron promotes (``value_vector_logits``).
``ffn_activations`` records f(W1 x) for every position, ``ablate_ffn_neurons`` zeroes chosen neurons.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from ..data.splits import IGNORE_INDEX
from ..validate import choice, finite_number, int_in_range, positive_int, probability

POOLING = ("mean", "last", "first")
MODULE_GROUPS = ("attn", "ffn", "norm")


# ---------------------------------------------------------------------------------- hidden states
@torch.no_grad()
def layer_states(model, input_ids, attention_mask=None, batch_size: int = 256) -> list[torch.Tensor]:
    """Every layer's hidden states for ``input_ids`` (N, T): a list of L + 1 float32 CPU tensors
    (N, T, d), index 0 the embedding output and index i block i's output (before the final LayerNorm).

    Runs in eval mode (no dropout) and restores the model's mode afterwards; batches keep memory small.
    """
    batch_size = positive_int("batch_size", batch_size)
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[0] == 0:
        raise ValueError(f"input_ids must be a non-empty 2-D tensor (N, T), got "
                         f"{tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    try:
        for start in range(0, input_ids.shape[0], batch_size):
            ids = input_ids[start:start + batch_size].to(device)
            mask = None if attention_mask is None else attention_mask[start:start + batch_size].to(device)
            out = model(ids, attention_mask=mask, output_hidden_states=True)
            chunks.append([h.float().cpu() for h in out.hidden_states])
    finally:
        model.train(was_training)
    return [torch.cat([chunk[layer] for chunk in chunks]) for layer in range(len(chunks[0]))]


def _check_states(states) -> list[torch.Tensor]:
    if not isinstance(states, (list, tuple)) or not states:
        raise ValueError("states must be a non-empty list of (N, T, d) tensors, one per layer (see layer_states)")
    shapes = {tuple(s.shape[:2]) for s in states}
    if any(s.dim() != 3 for s in states) or len(shapes) != 1:
        raise ValueError(f"states must all be (N, T, d) with the same N and T, got "
                         f"{[tuple(s.shape) for s in states]}")
    return list(states)


def token_features(states, labels) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The rows of a per-token probe: (features per layer, labels, row of each token).

    labels (N, T) holds IGNORE_INDEX (-100) on positions to skip (special tokens, padding). Returns
    X, a list with one (n, d) tensor per layer; y (n,); and sentence (n,), the sentence each token comes
    from, so that train and test can be split by sentence (see split_rows / rows_to_tokens).
    """
    states = _check_states(states)
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != tuple(states[0].shape[:2]):
        raise ValueError(f"labels must be a tensor of shape {tuple(states[0].shape[:2])} (N, T), got "
                         f"{tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__}")
    keep = labels != IGNORE_INDEX
    if not keep.any():
        raise ValueError("every label is IGNORE_INDEX (-100): there is nothing to probe")
    sentence = torch.arange(labels.shape[0])[:, None].expand_as(labels)[keep]
    return [s[keep] for s in states], labels[keep].long(), sentence


def pooled_features(states, attention_mask, pool: str = "mean") -> list[torch.Tensor]:
    """One vector per sentence and layer, for sentence-level probes: the mean of the real tokens
    ("mean"), the last real token ("last", what a causal model's last position has seen) or the first
    ("first", BERT's [CLS])."""
    states = _check_states(states)
    pool = choice("pool", pool, POOLING)
    if attention_mask is None:
        attention_mask = torch.ones(states[0].shape[:2], dtype=torch.long)
    mask = attention_mask.to(torch.float32)
    if tuple(mask.shape) != tuple(states[0].shape[:2]):
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)}, the states {tuple(states[0].shape[:2])}")
    if pool == "mean":
        weights = (mask / mask.sum(dim=1, keepdim=True).clamp(min=1))[..., None]
        return [(s * weights).sum(dim=1) for s in states]
    index = torch.arange(mask.shape[1])
    real = mask.bool()
    where = (torch.where(real, index, -1).amax(dim=1).clamp(min=0) if pool == "last"
             else torch.where(real, index, mask.shape[1]).amin(dim=1).clamp(max=mask.shape[1] - 1))
    rows = torch.arange(mask.shape[0])
    return [s[rows, where] for s in states]


def split_rows(n: int, test_fraction: float = 0.3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random split of n rows (sentences) into (train, test) index tensors."""
    n = positive_int("n", n, minimum=2)
    test_fraction = probability("test_fraction", test_fraction)
    seed = positive_int("seed", seed, minimum=0)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = min(n - 1, max(1, round(test_fraction * n)))
    return order[n_test:].sort().values, order[:n_test].sort().values


def rows_to_tokens(sentence: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Boolean mask over tokens: True where the token's sentence is in ``rows``."""
    return torch.isin(sentence, rows)


# ------------------------------------------------------------------------------------ the probe
@dataclass
class LinearProbe:
    """A linear classifier: scores = ((X - mean) / scale) @ weight + bias; prediction = arg-max."""

    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor        # (d, classes)
    bias: torch.Tensor          # (classes,)

    def scores(self, X) -> torch.Tensor:
        X = torch.as_tensor(X, dtype=torch.float64)
        return ((X - self.mean) / self.scale) @ self.weight + self.bias

    def predict(self, X) -> torch.Tensor:
        return self.scores(X).argmax(dim=1)

    def accuracy(self, X, y) -> float:
        y = torch.as_tensor(y)
        if len(y) == 0:
            raise ValueError("cannot compute an accuracy on 0 examples")
        return float((self.predict(X) == y).double().mean())


def _check_xy(X, y, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    if X.dim() != 2 or y.dim() != 1 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(f"{what}: X must be (n, d) and y (n,) with n > 0, got X {tuple(X.shape)} and y {tuple(y.shape)}")
    if y.is_floating_point() or (y < 0).any():
        raise ValueError(f"{what}: y must hold class ids 0, 1, ... (integers), got dtype {y.dtype}, "
                         f"min {y.min().item() if len(y) else None}")
    if not torch.isfinite(X).all():
        raise ValueError(f"{what}: X holds NaN or inf")
    return X.to(torch.float64), y.long()


PROBES = ("ridge", "logistic")


def fit_probe(X, y, num_classes: int | None = None, l2: float = 1e-2, kind: str = "ridge",
              steps: int = 50) -> LinearProbe:
    """A linear probe on standardised X (each feature scaled to mean 0, std 1 on the training rows).

    kind="ridge": ridge regression of one-hot(y), in closed form; penalty l2 * n * ||W||^2. Instant and
    deterministic, the course's default. kind="logistic": multinomial logistic regression (cross-entropy
    + l2 * ||W||^2), ``steps`` iterations of L-BFGS from zero; slower (about a second for 5,000 tokens),
    usually a few points more accurate, notably on unbalanced labels. Both are deterministic (no random
    initialisation), so the same data give the same probe.
    """
    X, y = _check_xy(X, y, "fit_probe")
    l2 = finite_number("l2", l2, minimum=0.0)
    kind = choice("kind", kind, PROBES)
    steps = positive_int("steps", steps)
    num_classes = int(y.max()) + 1 if num_classes is None else positive_int("num_classes", num_classes)
    if int(y.max()) >= num_classes:
        raise ValueError(f"y holds class {int(y.max())} but num_classes is {num_classes}")
    mean = X.mean(dim=0)
    scale = X.std(dim=0, unbiased=False).clamp(min=1e-8)
    Z = (X - mean) / scale
    n, d = Z.shape
    if kind == "ridge":
        targets = torch.nn.functional.one_hot(y, num_classes).to(torch.float64)
        target_mean = targets.mean(dim=0)
        # Z is centred, so the bias is the targets' mean and only W is penalised
        gram = Z.T @ Z + (l2 * n + 1e-9) * torch.eye(d, dtype=torch.float64)
        weight = torch.linalg.solve(gram, Z.T @ (targets - target_mean))
        return LinearProbe(mean, scale, weight, target_mean)
    weight = torch.zeros(d, num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(Z @ weight + bias, y) + l2 * (weight ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearProbe(mean, scale, weight.detach(), bias.detach())


def probe_accuracy(X_train, y_train, X_test, y_test, l2: float = 1e-2, kind: str = "ridge") -> float:
    """Held-out accuracy of a probe fitted on (X_train, y_train) (see fit_probe for ``kind``)."""
    y_train = torch.as_tensor(y_train)
    y_test = torch.as_tensor(y_test)
    classes = int(max(int(y_train.max()), int(y_test.max()))) + 1 if len(y_test) else None
    probe = fit_probe(X_train, y_train, num_classes=classes, l2=l2, kind=kind)
    return probe.accuracy(X_test, y_test)


def majority_accuracy(y_train, y_test) -> float:
    """The accuracy of always answering the training set's most frequent label: the floor a probe
    must beat (chance is not 1 / classes when classes are unbalanced)."""
    y_train, y_test = torch.as_tensor(y_train).long(), torch.as_tensor(y_test).long()
    if len(y_train) == 0 or len(y_test) == 0:
        raise ValueError("majority_accuracy needs non-empty y_train and y_test")
    return float((y_test == torch.bincount(y_train).argmax()).double().mean())


def control_labels(keys, labels, seed: int = 0) -> torch.Tensor:
    """Hewitt & Liang's control task: each key (word type) gets ONE fixed random label, drawn from the
    empirical distribution of the real labels. Same shape as ``labels``; IGNORE_INDEX positions stay.

    keys: the same shape as labels, e.g. the token ids (one label per word type, as in the paper), or a
    per-sentence key for sentence labels. Every occurrence of a key gets the same control label, so a
    probe can only score on it by recognising the key (memorising types), never from the context.
    """
    keys, labels = torch.as_tensor(keys), torch.as_tensor(labels)
    if keys.shape != labels.shape:
        raise ValueError(f"keys {tuple(keys.shape)} and labels {tuple(labels.shape)} must have the same shape")
    seed = positive_int("seed", seed, minimum=0)
    valid = labels != IGNORE_INDEX
    if not valid.any():
        raise ValueError("every label is IGNORE_INDEX (-100): there is no label distribution to copy")
    real = labels[valid].long()
    if (real < 0).any():
        raise ValueError(f"labels must be class ids >= 0 (or {IGNORE_INDEX} to skip), got {int(real.min())}")
    frequencies = torch.bincount(real).double()
    types, inverse = torch.unique(keys[valid], return_inverse=True)
    generator = torch.Generator().manual_seed(seed)
    per_type = torch.multinomial(frequencies / frequencies.sum(), len(types), replacement=True,
                                 generator=generator)
    control = labels.clone().long()
    control[valid] = per_type[inverse]
    return control


def selectivity(accuracy, control_accuracy):
    """accuracy - control accuracy (Hewitt & Liang): a number, or a list for per-layer lists."""
    if isinstance(accuracy, (list, tuple)):
        if len(accuracy) != len(control_accuracy):
            raise ValueError(f"{len(accuracy)} accuracies but {len(control_accuracy)} control accuracies")
        return [float(a) - float(c) for a, c in zip(accuracy, control_accuracy)]
    return float(accuracy) - float(control_accuracy)


def probe_layers(X, y, train, test, control=None, l2: float = 1e-2, kind: str = "ridge") -> dict:
    """Fit one probe per layer. X: list of (n, d) per layer; y (n,); train, test: boolean masks or
    index tensors over the n rows; control (n,): control-task labels (optional).

    Returns {"accuracy": [...], "control": [...] or None, "selectivity": [...] or None,
    "majority": float}: one entry per layer, held-out accuracies."""
    y = torch.as_tensor(y).long()
    accuracy = [probe_accuracy(layer[train], y[train], layer[test], y[test], l2, kind) for layer in X]
    result = {"accuracy": accuracy, "control": None, "selectivity": None,
              "majority": majority_accuracy(y[train], y[test])}
    if control is not None:
        control = torch.as_tensor(control).long()
        result["control"] = [probe_accuracy(layer[train], control[train], layer[test], control[test], l2, kind)
                             for layer in X]
        result["selectivity"] = selectivity(accuracy, result["control"])
    return result


# ------------------------------------------------------------------------------------ linear CKA
def _centred(X, name: str) -> torch.Tensor:
    X = torch.as_tensor(X)
    if X.dim() != 2:
        raise ValueError(f"{name} must be 2-D (examples x features), got shape {tuple(X.shape)}")
    if X.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 examples (rows), got {X.shape[0]}")
    X = X.detach().to(torch.float64)
    if not torch.isfinite(X).all():
        raise ValueError(f"{name} holds NaN or inf")
    return X - X.mean(dim=0, keepdim=True)


def linear_cka(X, Y) -> float:
    """Linear CKA between two representations of the same n examples: X (n, p), Y (n, q), rows are
    examples. 1 = the same up to rotation and uniform scale, near 0 = unrelated. Computed in float64
    in the feature form, O(n p q), so n may be large."""
    Xc, Yc = _centred(X, "X"), _centred(Y, "Y")
    if Xc.shape[0] != Yc.shape[0]:
        raise ValueError(f"X and Y must describe the same examples (same number of rows), got "
                         f"{Xc.shape[0]} and {Yc.shape[0]}; rows are examples, columns features")
    cross = torch.linalg.matrix_norm(Yc.T @ Xc) ** 2
    norm_x = torch.linalg.matrix_norm(Xc.T @ Xc)
    norm_y = torch.linalg.matrix_norm(Yc.T @ Yc)
    if norm_x == 0 or norm_y == 0:
        raise ValueError("CKA is undefined for a constant representation (every row equal)")
    return float(cross / (norm_x * norm_y))


def cka_per_layer(states_a, states_b, attention_mask=None) -> list[float]:
    """Linear CKA between layer i of two runs on the same inputs (e.g. before and after fine-tuning),
    over every real token (attention_mask 1): one number per layer."""
    states_a, states_b = _check_states(states_a), _check_states(states_b)
    if len(states_a) != len(states_b) or states_a[0].shape[:2] != states_b[0].shape[:2]:
        raise ValueError("states_a and states_b must hold the same layers of the same inputs")
    keep = (torch.ones(states_a[0].shape[:2], dtype=torch.bool) if attention_mask is None
            else attention_mask.bool().cpu())
    return [linear_cka(a[keep], b[keep]) for a, b in zip(states_a, states_b)]


# ---------------------------------------------------------------------------- weight change
def module_group(name: str) -> tuple[int, str] | None:
    """("blocks.2.ffn.w1.weight") -> (2, "ffn"); attention -> "attn"; the two LayerNorms -> "norm";
    None for tensors outside the blocks. A LoRA layer's ``base`` is its linear; its A and B are not
    pre-trained weights and return None."""
    parts = name.split(".")
    if len(parts) < 3 or parts[0] != "blocks" or any(p.startswith("lora_") for p in parts):
        return None
    group = {"attn": "attn", "ffn": "ffn", "ln1": "norm", "ln2": "norm"}.get(parts[2])
    return (int(parts[1]), group) if group else None


def _block_weights(model) -> dict:
    weights = {}
    for name, tensor in model.state_dict().items():
        if module_group(name) is not None:
            weights[name.replace(".base.", ".")] = tensor.detach().to("cpu", torch.float64)
    return weights


def relative_weight_change(before, after) -> dict:
    """||W_after - W_before||_F / ||W_before||_F per (layer, group), group in attn / ffn / norm, every
    tensor of the group taken together. ``before`` and ``after`` are models with the same blocks.

    A model with an UNMERGED LoRA adapter is refused: its base weights have not moved, so the answer
    would be a silent zero. Merge it first (minift.methods.lora.remove(model, merge=True)).
    """
    for model in (before, after):
        if any(any(p.startswith("lora_") for p in n.split(".")) for n, _ in model.named_parameters()):
            merged = all(getattr(m, "merged", None) for m in model.modules() if hasattr(m, "lora_A"))
            if not merged:
                raise ValueError("the model holds an unmerged LoRA adapter, whose update is not in the "
                                 "weights; call minift.methods.lora.remove(model, merge=True) first")
    w0, w1 = _block_weights(before), _block_weights(after)
    if set(w0) != set(w1):
        raise ValueError(f"the two models have different block tensors: {sorted(set(w0) ^ set(w1))[:4]}")
    change, base = {}, {}
    for name in w0:
        key = module_group(name)
        change[key] = change.get(key, 0.0) + float(((w1[name] - w0[name]) ** 2).sum())
        base[key] = base.get(key, 0.0) + float((w0[name] ** 2).sum())
    return {key: math.sqrt(change[key]) / math.sqrt(base[key]) if base[key] > 0 else float("nan")
            for key in sorted(change)}


# ------------------------------------------------------------------------ FFN key-value memory
def _check_layer(model, layer) -> int:
    return int_in_range("layer", layer, 0, model.config.n_layers - 1)


@torch.no_grad()
def ffn_activations(model, layer: int, input_ids, attention_mask=None, batch_size: int = 256) -> torch.Tensor:
    """f(W1 x) of block ``layer``'s FFN at every position: (N, T, d_ff), float32 on the CPU. These are
    the key "memory coefficients" of Geva et al.: how strongly each key matches the input."""
    layer = _check_layer(model, layer)
    batch_size = positive_int("batch_size", batch_size)
    w2 = model.blocks[layer].ffn.w2
    seen = []
    handle = w2.register_forward_pre_hook(lambda module, args: seen.append(args[0].float().cpu()))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for start in range(0, input_ids.shape[0], batch_size):
            mask = None if attention_mask is None else attention_mask[start:start + batch_size].to(device)
            model(input_ids[start:start + batch_size].to(device), attention_mask=mask)
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(seen)


def value_vector_logits(model, layer: int, neuron: int) -> torch.Tensor:
    """Column ``neuron`` of W2 (the value vector, d) projected through the LM head: (vocab,) scores of
    the next words this neuron pushes up when it fires (Geva et al. skip the final LayerNorm too)."""
    layer = _check_layer(model, layer)
    w2 = model.blocks[layer].ffn.w2
    neuron = int_in_range("neuron", neuron, 0, w2.weight.shape[1] - 1)
    if getattr(model, "lm_head", None) is None:
        raise ValueError("the model has no LM head (a target model?): project with the source model")
    return (model.lm_head.weight @ w2.weight[:, neuron]).detach()


@contextlib.contextmanager
def ablate_ffn_neurons(model, layer: int, neurons):
    """Within the block, FFN neurons ``neurons`` of block ``layer`` output zero (their value vectors are
    never added). Removed on exit, also after an error."""
    layer = _check_layer(model, layer)
    w2 = model.blocks[layer].ffn.w2
    neurons = torch.as_tensor(list(neurons), dtype=torch.long)
    if len(neurons) and (neurons.min() < 0 or neurons.max() >= w2.weight.shape[1]):
        raise ValueError(f"neurons must be in 0..{w2.weight.shape[1] - 1}, got {neurons.tolist()}")

    def zero(module, args):
        hidden = args[0].clone()
        hidden[..., neurons.to(hidden.device)] = 0
        return (hidden,)

    handle = w2.register_forward_pre_hook(zero)
    try:
        yield model
    finally:
        handle.remove()


__all__ = ["layer_states", "token_features", "pooled_features", "split_rows", "rows_to_tokens", "LinearProbe",
           "PROBES", "fit_probe", "probe_accuracy", "majority_accuracy", "control_labels", "selectivity", "probe_layers",
           "linear_cka", "cka_per_layer", "module_group", "relative_weight_change", "ffn_activations",
           "value_vector_logits", "ablate_ffn_neurons", "POOLING", "MODULE_GROUPS"]
