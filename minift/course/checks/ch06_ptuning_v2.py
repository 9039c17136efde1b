"""Checkers for chapter 06 (P-tuning v2): deep prompts, one trainable prefix per layer, and the tagger
that reads them.

    from minift.course.checks import ch06_ptuning_v2 as checks
    checks.check_deep_prompt(DeepPrompt)
    checks.check_tag_logits(tag_logits)

Exercise 1, the per-layer prompt parameters (what ``ptuning_v2.apply`` attaches to ``model.prefix``):

    DeepPrompt(n_layers, d_model, length, reparam=False, hidden=None), an nn.Module;
    prompt(batch_size) -> [(keys_0, values_0), ..., (keys_{L-1}, values_{L-1})], each (batch, length, d).
        reparam=False: every layer's keys and values are their own trainable numbers (2 x L x length x d
        in all), randomly initialised, not computed from another layer and not passed through anything.
        reparam=True: prefix-tuning's aid, an embedding (length, d) through Linear(d, hidden) -> tanh ->
        Linear(hidden, L x 2 x d) (hidden defaults to d_model), read as L layers of keys and values.

Exercise 2, the tagger over a deep-prompted model (what the model does with ``model.prefix`` set):

    tag_logits(model, prompt, input_ids, attention_mask) -> (B, T, num_tags): the token head's logits
        with layer l's prefix prompt(B)[l] in front of layer l's keys and values, written with the
        model's own blocks: block(x, allowed, False, (keys, values)).

The checkers try several shapes, padded rows, causal and bidirectional models, train and eval mode, detect
changes to your inputs and weights, and name the usual mistakes: one prefix shared by all layers, keys
equal to values, prompts computed from another layer, reparameterised when asked not to (or not when
asked), the MLP without its tanh, new random numbers at every call, all positions equal, the prefix masked
by padding, the attention_mask ignored, positions not shifted by the prefix, the prompt in the first layer
only, the head on the prompt positions, the LM head instead of the task head, the model called with the
prompt attached for the call instead of a forward pass of one's own.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .framework import Rejected, Verdict, call, checker, mistake, name_of, passed
from .helpers import FixedPrefix, close, padding_mask, same_state, state_copy, tiny_model, watch_model_calls

__all__ = ["check_deep_prompt", "check_tag_logits", "ReferenceDeepPrompt", "reference_tag_logits"]


# ------------------------------------------------------------------------------ reference solutions

class ReferenceDeepPrompt(nn.Module):
    """Deep prompts for ``model.prefix``: an independent trainable (keys, values) pair per layer."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.n_layers, self.d_model, self.length = n_layers, d_model, length
        if reparam:                    # prefix-tuning's training aid: P' -> MLP -> every layer's K and V
            hidden = d_model if hidden is None else hidden
            self.embedding = nn.Parameter(torch.randn(length, d_model))
            self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.Tanh(),
                                     nn.Linear(hidden, n_layers * 2 * d_model))
        else:                          # P-tuning v2's default: the table itself is the parameter
            self.table = nn.Parameter(0.5 * torch.randn(n_layers, 2, length, d_model))

    def forward(self, batch_size):
        if hasattr(self, "mlp"):
            flat = self.mlp(self.embedding)                                  # (length, L * 2 * d)
            table = flat.view(self.length, self.n_layers, 2, self.d_model).permute(1, 2, 0, 3)
        else:
            table = self.table                                               # (L, 2, length, d)
        return [(table[i, 0].expand(batch_size, -1, -1), table[i, 1].expand(batch_size, -1, -1))
                for i in range(self.n_layers)]


def _allowed(attention_mask, n_prefix, causal, prefix_columns=None):
    """(B, 1, T, P + T): the P prefix columns always visible, the tokens' by padding and causality."""
    batch, length = attention_mask.shape
    tokens = attention_mask.bool()[:, None, :].expand(batch, length, length)
    if causal:
        tokens = tokens & torch.ones(length, length, dtype=torch.bool).tril()
    if prefix_columns is None:
        prefix_columns = torch.ones(batch, length, n_prefix, dtype=torch.bool)
    return torch.cat([prefix_columns, tokens], dim=-1)[:, None]


def reference_tag_logits(model, prompt, input_ids, attention_mask):
    """The token head's logits with layer l's prefix prompt(B)[l], through the model's own blocks."""
    batch, length = input_ids.shape
    prefix = prompt(batch)
    n_prefix = prefix[0][0].shape[1]
    positions = torch.arange(n_prefix, n_prefix + length)                # the prefix counts as P tokens
    x = model.tok_emb(input_ids) + model.pos_emb(positions)
    allowed = _allowed(attention_mask, n_prefix, model.config.causal)
    for block, keys_values in zip(model.blocks, prefix):
        x = block(x, allowed, False, keys_values)
    return model.head(model.ln_f(x), attention_mask)


# ------------------------------------------------------------------------------------ DeepPrompt

def _prompt_cases():
    """(seed, n_layers, d_model, length, hidden for reparam=True)."""
    return [(0, 2, 8, 3, None), (1, 3, 6, 1, 5), (2, 4, 6, 4, None), (3, 1, 10, 2, 7)]


def _outputs(prompt, batch_size, n_layers, length, d_model, name):
    got = call(prompt, batch_size, what=f"{name}(...)({batch_size})")
    if isinstance(got, torch.Tensor):
        raise Rejected(mistake(f"calling the prompt returned one tensor of shape {tuple(got.shape)}; the prefix "
                               "hook expects a list with one (keys, values) pair per layer",
                               "return [(keys_0, values_0), ..., (keys_{L-1}, values_{L-1})], each "
                               "(batch, length, d_model)"))
    if not isinstance(got, (list, tuple)):
        raise Rejected(mistake(f"calling the prompt returned {type(got).__name__}; expected a list of (keys, values) "
                               "pairs, one per layer", "return a list (or tuple) of n_layers pairs"))
    if len(got) != n_layers:
        raise Rejected(mistake(f"calling the prompt returned {len(got)} (keys, values) pair(s) for a model of "
                               f"{n_layers} layers", "one pair per layer: P-tuning v2 puts a prompt in EVERY layer"))
    pairs = []
    for layer, pair in enumerate(got):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(t, torch.Tensor) for t in pair):
            raise Rejected(mistake(f"layer {layer}'s entry is not a (keys, values) pair of tensors",
                                   "each layer gets a tuple (keys, values)"))
        for what, tensor in zip(("keys", "values"), pair):
            if tuple(tensor.shape) != (batch_size, length, d_model):
                hint = ("expand the (length, d_model) table to the batch: t.expand(batch_size, -1, -1)"
                        if tuple(tensor.shape) == (length, d_model) else
                        "keys and values are (batch_size, length, d_model) for every layer")
                raise Rejected(mistake(f"layer {layer}'s {what} have shape {tuple(tensor.shape)}, expected "
                                       f"(batch, length, d_model) = {(batch_size, length, d_model)}", hint))
            if not tensor.is_floating_point():
                raise Rejected(mistake(f"layer {layer}'s {what} have dtype {tensor.dtype}", "use float tensors"))
        pairs.append(tuple(pair))
    return pairs


def _expected_count(n_layers, d_model, length, reparam, hidden):
    if not reparam:
        return n_layers * 2 * length * d_model
    hidden = d_model if hidden is None else hidden
    return length * d_model + (d_model * hidden + hidden) + (hidden * n_layers * 2 * d_model + n_layers * 2 * d_model)


def _grad_footprint(prompt, pairs_of, layer):
    """How many trainable numbers move when only layer ``layer``'s keys and values are used."""
    params = [p for p in prompt.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    generator = torch.Generator().manual_seed(7 + layer)
    keys, values = pairs_of()[layer]
    loss = (keys * torch.randn(keys.shape, generator=generator)).sum() \
        + (values * torch.randn(values.shape, generator=generator)).sum()
    loss.backward()
    moved = sum(int((p.grad != 0).sum()) for p in params if p.grad is not None)
    for p in params:
        p.grad = None
    return moved


def _check_one_prompt(cls, seed, n_layers, d_model, length, reparam, hidden) -> None:
    name = name_of(cls)
    where = f" (n_layers={n_layers}, d_model={d_model}, length={length}, reparam={reparam}" + \
            (f", hidden={hidden})" if reparam and hidden is not None else ")")
    kwargs = {"reparam": reparam} if not reparam or hidden is None else {"reparam": reparam, "hidden": hidden}
    with torch.random.fork_rng(devices=[]):        # your global random state is left as it was
        torch.manual_seed(1000 + seed)
        prompt = call(cls, n_layers, d_model, length, what=f"{name}({n_layers}, {d_model}, {length}, ...)", **kwargs)
    if not isinstance(prompt, nn.Module):
        raise Rejected(mistake(f"{name}(...) built a {type(prompt).__name__}, not a torch.nn.Module",
                               "subclass nn.Module (and call super().__init__()) so that model.prefix can hold it "
                               "and its parameters train"))
    params = [p for p in prompt.parameters() if p.requires_grad]
    count = sum(p.numel() for p in params)
    linears = [m for m in prompt.modules() if isinstance(m, nn.Linear)]
    if count == 0:
        raise Rejected(mistake(f"{name} has no trainable parameters{where}",
                               "wrap the prompt tensors in nn.Parameter so that they train (a plain tensor or a "
                               "buffer never receives an optimizer step)"))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2000 + seed)             # a prompt that draws new numbers per call is caught below
        prompt.eval()
        first = _outputs(prompt, 3, n_layers, length, d_model, name)
        again = _outputs(prompt, 3, n_layers, length, d_model, name)
        prompt.train()
        in_train = [_outputs(prompt, 1, n_layers, length, d_model, name) for _ in range(2)]

    if not any(t.requires_grad for pair in first for t in pair):
        raise Rejected(mistake(f"the keys and values are not connected to {name}'s parameters (no gradient can "
                               f"reach them){where}", "compute the outputs from your nn.Parameter(s) inside "
                               "forward, without .detach(), torch.no_grad() or .data"))
    if not all(torch.equal(a, b) for pa, pb in zip(first, again) for a, b in zip(pa, pb)):
        raise Rejected(mistake(f"two calls of the prompt gave different keys/values: it draws new random numbers "
                               f"at every call{where}", "draw the random initial values once, in __init__, into "
                               "nn.Parameter(s); forward only reads them"))
    for layer, (keys, values) in enumerate(first):
        if not (torch.equal(keys, keys[:1].expand_as(keys)) and torch.equal(values, values[:1].expand_as(values))):
            raise Rejected(mistake(f"layer {layer}'s prefix differs between the sentences of a batch{where}",
                                   "every sentence gets the same prompt: expand one (length, d) table to the batch"))
    if not all(close(a[0], b[0]) for run in in_train for pa, pb in zip(first, run) for a, b in zip(pa, pb)):
        raise Rejected(mistake(f"the prompt gives other numbers in train() and eval() mode (dropout?){where}",
                               "the deep prompts are parameters: no dropout or other randomness in forward"))

    if length > 1:
        for layer, (keys, values) in enumerate(first):
            if torch.equal(keys[0], keys[0, :1].expand_as(keys[0])) and \
                    torch.equal(values[0], values[0, :1].expand_as(values[0])):
                raise Rejected(mistake(f"every prompt position of layer {layer} holds the same numbers (a zero or "
                                       f"constant start?){where}: identical positions get identical gradients and "
                                       "stay identical, so a prompt of length P acts like length 1",
                                       "start from random numbers, e.g. 0.5 * torch.randn(...)"))

    if n_layers > 1 and all(torch.equal(first[0][0], keys) and torch.equal(first[0][1], values)
                            for keys, values in first[1:]):
        raise Rejected(mistake(f"one prefix shared by all layers: every layer got the same keys and values{where}",
                               "P-tuning v2 gives each layer its OWN prompt: a table of shape "
                               "(n_layers, 2, length, d_model), layer l reads table[l]"))
    for layer, (keys, values) in enumerate(first):
        if torch.equal(keys, values):
            raise Rejected(mistake(f"keys and values are the same tensor in layer {layer}{where}",
                                   "each layer has separate keys and values: 2 x length x d_model numbers"))
    expected = _expected_count(n_layers, d_model, length, reparam, hidden)
    if not reparam:
        if linears:
            raise Rejected(mistake(f"reparameterised when asked not to: reparam=False still builds "
                                   f"{len(linears)} linear layer(s) ({count:,} trainable numbers instead of "
                                   f"2 x L x length x d = {expected:,}){where}",
                                   "P-tuning v2's default trains the table directly; only reparam=True adds "
                                   "the MLP"))
        if count == 2 * length * d_model and n_layers > 1:
            raise Rejected(mistake(f"one prefix shared by all layers: {count:,} trainable numbers are one layer's "
                                   f"worth (2 x length x d), expected 2 x L x length x d = {expected:,}{where}",
                                   "a table of shape (n_layers, 2, length, d_model), layer l reads table[l]"))
        if count != expected:
            raise Rejected(mistake(f"{count:,} trainable numbers, expected 2 x n_layers x length x d_model = "
                                   f"{expected:,}{where}", "keys and values, length x d_model each, for every layer"))
        for layer in range(n_layers):
            moved = _grad_footprint(prompt, lambda: prompt(2), layer)
            if moved > 2 * length * d_model:
                raise Rejected(mistake(f"layer {layer}'s prompt is computed from other layers' numbers ({moved:,} "
                                       f"trainable numbers feed it, its own are 2 x length x d = "
                                       f"{2 * length * d_model:,}){where}", "in P-tuning v2 each layer's prompt "
                                       "is its own parameter, not the previous layer's prompt or output"))
            if moved < 2 * length * d_model:
                raise Rejected(mistake(f"some of layer {layer}'s keys/values get no gradient ({moved:,} of "
                                       f"{2 * length * d_model:,} trainable numbers move){where}",
                                       "return the parameters themselves (expanded), not constants"))
    else:
        if not linears and count == 2 * n_layers * length * d_model:
            raise Rejected(mistake(f"reparam=True was ignored: the prompt is a plain table{where}",
                                   "with reparam=True build embedding (length, d) -> Linear(d, hidden) -> tanh -> "
                                   "Linear(hidden, n_layers * 2 * d) and read its output as every layer's keys "
                                   "and values"))
        if count == expected:
            _check_tanh(prompt, n_layers, d_model, length, hidden, where)
        if count != expected:
            h = d_model if hidden is None else hidden
            raise Rejected(mistake(f"reparam=True: {count:,} trainable numbers, expected {expected:,} = embedding "
                                   f"{length} x {d_model} + Linear({d_model}, {h}) + Linear({h}, "
                                   f"{n_layers * 2 * d_model}){where}",
                                   "hidden defaults to d_model; the MLP's output holds every layer's keys and "
                                   "values at once"))

    if seed == 0:
        _check_in_model(prompt, n_layers, d_model, length, name, where)


def _check_tanh(prompt, n_layers, d_model, length, hidden, where) -> None:
    """reparam=True: between the two linears sits a tanh, so however large the first linear's output gets, every
    number the prompt gives stays within what the second linear can make of inputs in [-1, 1]. Checked by
    scaling the first linear's output by 1000 for one call: without tanh (or with ReLU) the keys grow with it.
    A prompt built without nn.Linear modules is not probed."""
    hidden = d_model if hidden is None else hidden
    linears = [m for m in prompt.modules() if isinstance(m, nn.Linear)]
    first = [m for m in linears if (m.in_features, m.out_features) == (d_model, hidden)]
    last = [m for m in linears if (m.in_features, m.out_features) == (hidden, n_layers * 2 * d_model)]
    if len(first) != 1 or len(last) != 1 or first[0] is last[0]:
        return
    with torch.no_grad():
        bound = float(last[0].weight.abs().sum(dim=1).max()) + \
            (float(last[0].bias.abs().max()) if last[0].bias is not None else 0.0)
        handle = first[0].register_forward_hook(lambda module, args, output: output * 1000.0)
        try:
            pairs = call(prompt, 1, what="the prompt")
        finally:
            handle.remove()
        largest = max(float(t.abs().max()) for pair in pairs for t in pair)
    if largest > bound * (1 + 1e-4) + 1e-6:
        raise Rejected(mistake(f"reparam=True: the MLP has no tanh between its two linears (or another activation "
                               f"that does not saturate){where}", "Linear(d_model, hidden) -> tanh -> Linear(hidden, "
                               "n_layers * 2 * d_model): nn.Sequential(nn.Linear(...), nn.Tanh(), nn.Linear(...))"))


def _check_in_model(prompt, n_layers, d_model, length, name, where) -> None:
    """Plugged into a model's prefix hook, the prompt must act exactly like ptuning_v2's own table."""
    with torch.random.fork_rng(devices=[]):        # ptuning_v2.apply draws its own table: not from your stream
        _compare_with_library(prompt, n_layers, d_model, length, where)


def _compare_with_library(prompt, n_layers, d_model, length, where) -> None:
    from minift.methods import ptuning_v2

    with torch.no_grad():
        pairs = prompt(1)
        table = torch.stack([torch.stack([keys[0], values[0]]) for keys, values in pairs])   # (L, 2, P, d)
    for causal in (True, False):
        ours = tiny_model(40, causal, d_model=d_model, n_layers=n_layers, n_heads=2, num_tags=5)
        library = ptuning_v2.apply(tiny_model(40, causal, d_model=d_model, n_layers=n_layers, n_heads=2, num_tags=5),
                                   length=length)
        with torch.no_grad():
            library.prefix.table.copy_(table)
        ours.prefix = prompt
        ids = torch.randint(0, 23, (2, 5), generator=torch.Generator().manual_seed(3))
        mask = padding_mask(2, 5, {1: 2})
        with torch.no_grad():
            try:
                got = ours(ids, attention_mask=mask).logits
            except Exception as error:   # noqa: BLE001 - a prompt the hook cannot use is the student's mistake
                raise Rejected(mistake(f"model.prefix = your prompt: the model's forward failed with "
                                       f"{type(error).__name__}: {error}{where}",
                                       "the hook calls prompt(batch_size) and expects one (keys, values) pair "
                                       "per layer, each (batch, length, d_model)")) from None
            want = library(ids, attention_mask=mask).logits
        real = mask.bool()
        if not close(got[real], want[real]):
            raise Rejected(mistake(f"plugged into model.prefix, your prompt gives other logits than ptuning_v2.apply "
                                   f"with the same numbers{where}", "layer l must receive (keys_l, values_l)"))


@checker
def check_deep_prompt(cls) -> Verdict:
    """cls(n_layers, d_model, length, reparam=False, hidden=None) -> nn.Module; module(B) -> L x (K, V)."""
    for seed, n_layers, d_model, length, hidden in _prompt_cases():
        for reparam in (False, True):
            _check_one_prompt(cls, seed, n_layers, d_model, length, reparam, hidden)
    return passed(f"{name_of(cls)} gives every layer its own trainable keys and values (2 x L x length x d "
                  f"numbers), random, fixed between calls, the same for every sentence; reparam=True adds the "
                  f"MLP; plugged into model.prefix it equals ptuning_v2.apply ({len(_prompt_cases())} shapes, "
                  "1-4 layers, train and eval mode)")


# ------------------------------------------------------------------------------------- tag_logits

def _tag_cases():
    """(seed, causal, n_layers, num_tags, B, T, P, padding)."""
    return [(0, True, 2, 5, 2, 5, 3, {1: 2}), (1, False, 3, 9, 3, 4, 2, {0: 1, 2: 2}),
            (2, True, 3, 7, 1, 6, 1, {}), (3, False, 2, 5, 2, 6, 4, {0: 3})]


def _tag_inputs(seed, causal, n_layers, num_tags, batch, length, n_prefix, pad):
    model = tiny_model(20 + seed, causal, n_layers=n_layers, num_tags=num_tags)
    generator = torch.Generator().manual_seed(300 + seed)
    ids = torch.randint(0, model.config.vocab_size, (batch, length), generator=generator)
    d = model.config.d_model
    pairs = [(torch.randn(n_prefix, d, generator=generator) * 1.5, torch.randn(n_prefix, d, generator=generator) * 1.5)
             for _ in range(n_layers)]
    return model, ids, padding_mask(batch, length, pad), FixedPrefix(pairs)


def _tag_variants(model, ids, mask, prompt):
    """(message, hint, logits) of the usual mistakes."""
    batch, length = ids.shape
    prefix = prompt(batch)
    n_prefix = prefix[0][0].shape[1]
    causal = model.config.causal
    right = torch.arange(n_prefix, n_prefix + length)

    def run(positions=right, allowed=None, layers=None, final_norm=True, first_only=False):
        x = model.tok_emb(ids) + model.pos_emb(positions)
        allowed = _allowed(mask, n_prefix, causal) if allowed is None else allowed
        plain = _allowed(mask, 0, causal)
        for i, block in enumerate(model.blocks):
            if first_only and i > 0:
                x = block(x, plain, False, None)
            else:
                x = block(x, allowed, False, (layers or prefix)[i])
        return model.head(model.ln_f(x) if final_norm else x, mask)

    zeros = torch.zeros(batch, length, n_prefix, dtype=torch.bool)
    wrong_end = torch.cat([mask.bool(), torch.ones(batch, n_prefix, dtype=torch.bool)], 1)
    tokens_tri = torch.ones(length, n_prefix + length, dtype=torch.bool)
    tokens_tri[:, n_prefix:] = torch.ones(length, length, dtype=torch.bool).tril() if causal else True
    wrong_end = (wrong_end[:, None, :].expand(batch, length, n_prefix + length) & tokens_tri)[:, None]
    no_triangle = _allowed(mask, n_prefix, False)
    causal_on_all = (torch.cat([torch.ones(batch, n_prefix, dtype=torch.bool), mask.bool()], 1)[:, None, :]
                     .expand(batch, length, n_prefix + length)
                     & torch.ones(length, n_prefix + length, dtype=torch.bool).tril())[:, None]
    variants = [
        ("one prefix shared by all layers: every block got layer 0's keys and values",
         "zip(model.blocks, prefix): block l gets prefix[l]", run(layers=[prefix[0]] * len(prefix))),
        ("the prefix is masked by padding: its columns of the attention mask are False, so no token sees it",
         "padding never hides the prefix: the P prefix columns of the (B, 1, T, P + T) mask are all True",
         run(allowed=_allowed(mask, n_prefix, causal, prefix_columns=zeros))),
        ("the prefix is masked by padding: the attention_mask was extended at the wrong end ([mask ; ones] "
         "instead of [ones ; mask]), so padding lands on prefix columns",
         "key mask = cat([ones(B, P), attention_mask], dim=1): the prefix keys come first", run(allowed=wrong_end)),
        ("positions not shifted by the prefix: the real tokens must be numbered P..P+T-1, as if the prefix were "
         "P earlier tokens", "positions = torch.arange(P, P + T)", run(positions=torch.arange(length))),
        ("the prompt enters the first layer only: P-tuning v2 gives EVERY layer its prefix",
         "pass prefix[l] to every block", run(first_only=True)),
        ("keys and values swapped: prompt(B)[l] is (keys, values)", "pass the pair to the block as it is",
         run(layers=[(v, k) for k, v in prefix])),
        ("the final LayerNorm (model.ln_f) is missing before the head", "logits = model.head(model.ln_f(x), mask)",
         run(final_norm=False)),
        ("the attention_mask was not used in the attention: real tokens attend to padding",
         "a token column of `allowed` is False where attention_mask is 0",
         run(allowed=_allowed(torch.ones_like(mask), n_prefix, causal))),
    ]
    if causal:
        variants.append(("a causal model's tokens see tokens after them (no causal triangle on the token part)",
                         "for a causal model token i sees the prefix and tokens 0..i", run(allowed=no_triangle)))
        variants.append(("the causal triangle starts at the prefix: query i sees only keys 0..i of [prefix ; "
                         "tokens], so later prefix keys are hidden", "the prefix is always visible; the triangle "
                         "covers the T token columns only", run(allowed=causal_on_all)))
    else:
        variants.append(("a bidirectional model got a causal triangle", "apply the triangle only when "
                         "model.config.causal is True", run(allowed=_allowed(mask, n_prefix, True))))
    return variants


@checker
def check_tag_logits(fn) -> Verdict:
    """fn(model, prompt, input_ids, attention_mask) -> (B, T, num_tags)."""
    name = name_of(fn)
    for number, (seed, causal, n_layers, num_tags, batch, length, n_prefix, pad) in enumerate(_tag_cases()):
        model, ids, mask, prompt = _tag_inputs(seed, causal, n_layers, num_tags, batch, length, n_prefix, pad)
        real = mask.bool()
        with torch.no_grad():
            want = reference_tag_logits(model, prompt, ids, mask)
            hooked = tiny_model(20 + seed, causal, n_layers=n_layers, num_tags=num_tags)
            hooked.prefix = prompt
            library = hooked(ids, attention_mask=mask).logits
        assert close(want[real], library[real]), "the reference and minift's prefix hook disagree"
        for mode in ("train", "eval"):
            model.train(mode == "train")
            if number == 1:
                ids_in, mask_in = ids.clone().to(torch.int32), mask.clone().bool()   # any id / 0-1 dtype works
            else:
                ids_in, mask_in = ids.clone(), mask.clone()
            before_inputs = (ids_in.clone(), mask_in.clone())
            prompt_before = [t.clone() for pair in prompt.pairs for t in pair]
            state = state_copy(model)
            with watch_model_calls(model) as calls:
                got = call(fn, model, prompt, ids_in, mask_in, what=f"{name}(model, prompt, input_ids, attention_mask)")
            if not (torch.equal(ids_in, before_inputs[0]) and torch.equal(mask_in, before_inputs[1])):
                return mistake(f"{name} changed its input input_ids or attention_mask in place",
                               "build new tensors instead of writing into the ones you were given")
            if not all(torch.equal(a, b) for a, b in zip([t for pair in prompt.pairs for t in pair], prompt_before)):
                return mistake(f"{name} changed the prompt's keys or values in place",
                               "the prompt is read, never written, in the forward pass")
            if not same_state(state, model):
                return mistake(f"{name} changed the model's weights", "the forward pass only reads the weights")
            if model.prefix is not None or model.prompt is not None:
                model.prefix = model.prompt = None
                return mistake(f"{name} attached a hook to the model (model.prefix / model.prompt)",
                               "write the forward pass yourself with the model's blocks: "
                               "block(x, allowed, False, (keys, values))")
            if calls:
                return mistake(f"{name} called the model itself (model(...)), e.g. with the prompt attached to "
                               "model.prefix for the call: the exercise is to write that forward pass",
                               "use model.tok_emb, model.pos_emb, block(x, allowed, False, (keys, values)) for "
                               "every block, model.ln_f and model.head")
            if model.training != (mode == "train"):
                return mistake(f"{name} changed the model's train/eval mode", "leave the model's mode as it was")
            where = f" (case {number + 1}: {'causal' if causal else 'bidirectional'}, {n_layers} layers, " \
                    f"B={batch}, T={length}, P={n_prefix}, {mode} mode)"
            if not isinstance(got, torch.Tensor):
                return mistake(f"{name} returned {type(got).__name__}; expected the logits tensor (B, T, num_tags)",
                               "return model.head(...)'s output")
            got = got.detach()
            shape = (batch, length, num_tags)
            if tuple(got.shape) != shape:
                if tuple(got.shape) == (batch, n_prefix + length, num_tags):
                    return mistake(f"the head is on the prompt positions too: {tuple(got.shape)} has P + T rows per "
                                   f"sentence{where}", "the deep prompts are keys and values, not positions: the "
                                   "output has one row per real token, (B, T, num_tags)")
                if tuple(got.shape) == (batch, length - n_prefix, num_tags):
                    return mistake(f"P real tokens were cut off the output {tuple(got.shape)}{where}",
                                   "with deep prompts the hidden states have T positions, the real tokens: "
                                   "nothing to cut")
                if got.shape[-1] == model.config.vocab_size:
                    return mistake(f"the logits have the vocabulary's width {got.shape[-1]}: that is the LM head, "
                                   f"not the task head{where}", "a tagger reads model.head (one output per tag)")
                return mistake(f"{name} returned shape {tuple(got.shape)}, expected (B, T, num_tags) = {shape}{where}",
                               "one row of tag logits per input token")
            if close(got[real], want[real]):
                continue
            with torch.no_grad():
                variants = _tag_variants(model, ids, mask, prompt)
            for message, hint, output in variants:
                if close(got[real], output[real]):
                    return mistake(message + where, hint)
            return mistake(f"the tag logits differ from minift's model with the same deep prompts{where}",
                           "x = tok_emb(ids) + pos_emb(arange(P, P + T)); allowed (B, 1, T, P + T) with the P "
                           "prefix columns True; per block x = block(x, allowed, False, prefix[l]); "
                           "logits = model.head(model.ln_f(x), attention_mask)")
    return passed(f"{name} equals minift's P-tuning v2 tagger on {len(_tag_cases())} models (causal and "
                  "bidirectional, 2-3 layers, P = 1..4, padded rows, train and eval mode): each layer reads "
                  "its own prefix, padding never hides it, positions start at P, one tag row per real token")
