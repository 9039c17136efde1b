"""Chapter 06's checkers: the references pass, blanks are "not implemented", correct alternatives pass,
and wrong implementations a student would really write each get a failing verdict naming the mistake."""

import pytest
import torch
import torch.nn as nn

from minift.course.checks import ch06_ptuning_v2 as checks
from minift.course.checks.ch06_ptuning_v2 import ReferenceDeepPrompt, reference_tag_logits
from verdict_asserts import quiet


def assert_mistake(verdict, *words):
    assert verdict.status == "mistake", str(verdict)
    text = (verdict.message + " " + verdict.hint).lower()
    for word in words:
        assert word.lower() in text, f"{word!r} not in: {verdict}"


# ============================================================================ exercise 1: DeepPrompt

class StubPrompt(nn.Module):
    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        raise NotImplementedError("write your code here")

    def forward(self, batch_size):
        raise NotImplementedError("write your code here")


class HalfStubPrompt(nn.Module):
    """__init__ written, forward still blank."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.table = nn.Parameter(torch.randn(n_layers, 2, length, d_model))

    def forward(self, batch_size):
        raise NotImplementedError("write your code here")


# --- correct alternatives -----------------------------------------------------------------------------

class ListPrompt(nn.Module):
    """One nn.Parameter per layer and kind in ParameterLists, MLP built by hand with torch.tanh."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.n_layers, self.d_model, self.length, self.reparam = n_layers, d_model, length, reparam
        if reparam:
            hidden = hidden or d_model
            self.start = nn.Embedding(length, d_model)
            self.up = nn.Linear(d_model, hidden)
            self.out = nn.Linear(hidden, n_layers * 2 * d_model)
        else:
            self.keys = nn.ParameterList(nn.Parameter(torch.randn(length, d_model) * 0.1) for _ in range(n_layers))
            self.values = nn.ParameterList(nn.Parameter(torch.randn(length, d_model) * 0.1) for _ in range(n_layers))

    def forward(self, batch_size):
        if self.reparam:
            flat = self.out(torch.tanh(self.up(self.start.weight)))          # (P, L * 2 * d)
            layers = flat.reshape(self.length, self.n_layers, 2, self.d_model)
            pairs = [(layers[:, i, 0], layers[:, i, 1]) for i in range(self.n_layers)]
        else:
            pairs = list(zip(self.keys, self.values))
        return [(k.unsqueeze(0).repeat(batch_size, 1, 1), v.unsqueeze(0).repeat(batch_size, 1, 1))
                for k, v in pairs]


class LoopPrompt(nn.Module):
    """Keys and values as two (L, P, d) tables, returned as a tuple, built in a loop."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.n_layers = n_layers
        self.reparam = reparam
        if reparam:
            self.p = nn.Parameter(torch.randn(length, d_model))
            self.mlp = nn.Sequential(nn.Linear(d_model, hidden or d_model), nn.Tanh(),
                                     nn.Linear(hidden or d_model, n_layers * 2 * d_model))
        else:
            self.k = nn.Parameter(torch.randn(n_layers, length, d_model))
            self.v = nn.Parameter(torch.randn(n_layers, length, d_model))

    def forward(self, batch_size):
        out = []
        if self.reparam:
            h = self.mlp(self.p)
            for i in range(self.n_layers):
                chunk = h[:, i * 2 * h.shape[1] // (2 * self.n_layers):(i + 1) * 2 * h.shape[1] // (2 * self.n_layers)]
                k, v = chunk.chunk(2, dim=-1)
                out.append((k.expand(batch_size, -1, -1), v.expand(batch_size, -1, -1)))
        else:
            for i in range(self.n_layers):
                out.append((self.k[i].expand(batch_size, -1, -1), self.v[i].expand(batch_size, -1, -1)))
        return tuple(out)


@pytest.mark.parametrize("cls", [ReferenceDeepPrompt, ListPrompt, LoopPrompt])
def test_correct_prompts_pass(cls):
    verdict = quiet(checks.check_deep_prompt, cls)
    assert verdict.passed, str(verdict)


def test_blank_prompt_is_not_implemented():
    for cls in (StubPrompt, HalfStubPrompt):
        verdict = quiet(checks.check_deep_prompt, cls)
        assert verdict.status == "not implemented", str(verdict)


def test_checker_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    quiet(checks.check_deep_prompt, ReferenceDeepPrompt)
    assert torch.equal(torch.rand(3), expected)


# --- wrong ones ---------------------------------------------------------------------------------------

class SharedPrompt(ReferenceDeepPrompt):
    """One (2, P, d) prefix used by every layer."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__(n_layers, d_model, length, reparam, hidden)
        if not reparam:
            del self.table
            self.shared = nn.Parameter(0.5 * torch.randn(2, length, d_model))

    def forward(self, batch_size):
        if hasattr(self, "mlp"):
            return super().forward(batch_size)
        return [(self.shared[0].expand(batch_size, -1, -1), self.shared[1].expand(batch_size, -1, -1))
                for _ in range(self.n_layers)]


class TableButLayerZero(ReferenceDeepPrompt):
    """The right table, but every layer reads table[0]."""

    def forward(self, batch_size):
        if hasattr(self, "mlp"):
            return super().forward(batch_size)
        return [(self.table[0, 0].expand(batch_size, -1, -1), self.table[0, 1].expand(batch_size, -1, -1))
                for _ in range(self.n_layers)]


class AlwaysReparam(nn.Module):
    """Builds prefix-tuning's MLP whatever reparam says."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.inner = ReferenceDeepPrompt(n_layers, d_model, length, reparam=True, hidden=hidden)

    def forward(self, batch_size):
        return self.inner(batch_size)


class NeverReparam(nn.Module):
    """Ignores reparam=True: always a plain table."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.inner = ReferenceDeepPrompt(n_layers, d_model, length, reparam=False)

    def forward(self, batch_size):
        return self.inner(batch_size)


class ZeroInit(ReferenceDeepPrompt):
    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__(n_layers, d_model, length, reparam, hidden)
        if not reparam:
            with torch.no_grad():
                self.table.zero_()


class KeysAreValues(ReferenceDeepPrompt):
    def forward(self, batch_size):
        pairs = super().forward(batch_size)
        return [(k, k) for k, _ in pairs]


class ChainedPrompt(nn.Module):
    """Layer l's prompt computed from layer l-1's: the article's 'not from the previous layer' mistake."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.inner = ReferenceDeepPrompt(n_layers, d_model, length, reparam, hidden)

    def forward(self, batch_size):
        pairs = self.inner(batch_size)
        out = [pairs[0]]
        for k, v in pairs[1:]:
            out.append((k + out[-1][0], v + out[-1][1]))
        return out


class FreshRandom(nn.Module):
    """Draws new random keys and values at every call (and trains only a scale)."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.n_layers, self.d_model, self.length = n_layers, d_model, length
        self.scale = nn.Parameter(torch.ones(n_layers, 2, length, d_model))

    def forward(self, batch_size):
        table = self.scale * torch.randn(self.n_layers, 2, self.length, self.d_model)
        return [(table[i, 0].expand(batch_size, -1, -1), table[i, 1].expand(batch_size, -1, -1))
                for i in range(self.n_layers)]


class NotExpanded(ReferenceDeepPrompt):
    def forward(self, batch_size):
        return [(k[0], v[0]) for k, v in super().forward(batch_size)]


class BufferTable(nn.Module):
    """The table as a plain tensor attribute: nothing trains."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.table = torch.randn(n_layers, 2, length, d_model)

    def forward(self, batch_size):
        return [(self.table[i, 0].expand(batch_size, -1, -1), self.table[i, 1].expand(batch_size, -1, -1))
                for i in range(self.table.shape[0])]


class DropoutPrompt(ReferenceDeepPrompt):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop = nn.Dropout(0.5)

    def forward(self, batch_size):
        return [(self.drop(k), self.drop(v)) for k, v in super().forward(batch_size)]


class WrongHiddenDefault(ReferenceDeepPrompt):
    """reparam=True with hidden defaulting to 2 * d_model."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__(n_layers, d_model, length, reparam, hidden if hidden is not None or not reparam
                         else 2 * d_model)


class MLPPrompt(nn.Module):
    """reparam=True always, with the MLP's middle activation as given (tanh is the right one)."""

    activation = nn.Tanh

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.inner = ReferenceDeepPrompt(n_layers, d_model, length, reparam, hidden)
        if reparam:
            self.inner.mlp[1] = self.activation()

    def forward(self, batch_size):
        return self.inner(batch_size)


class NoTanh(MLPPrompt):
    """Wrong (was accepted): Linear -> Linear, the tanh forgotten."""

    activation = nn.Identity


class ReluInsteadOfTanh(MLPPrompt):
    """Wrong (was accepted): ReLU where prefix-tuning has tanh."""

    activation = nn.ReLU


class EmbeddingModulePrompt(nn.Module):
    """Correct: per-layer nn.ParameterLists for the table; reparam=True reads an nn.Embedding's weight."""

    def __init__(self, n_layers, d_model, length, reparam=False, hidden=None):
        super().__init__()
        self.n_layers, self.d_model, self.length, self.reparam = n_layers, d_model, length, reparam
        if reparam:
            self.embedding = nn.Embedding(length, d_model)
            self.mlp = nn.Sequential(nn.Linear(d_model, hidden or d_model), nn.Tanh(),
                                     nn.Linear(hidden or d_model, n_layers * 2 * d_model))
        else:
            self.keys = nn.ParameterList([nn.Parameter(0.5 * torch.randn(length, d_model)) for _ in range(n_layers)])
            self.values = nn.ParameterList([nn.Parameter(0.5 * torch.randn(length, d_model))
                                            for _ in range(n_layers)])

    def forward(self, batch_size):
        if self.reparam:
            out = self.mlp(self.embedding.weight).view(self.length, self.n_layers, 2, self.d_model)
            pairs = [(out[:, i, 0], out[:, i, 1]) for i in range(self.n_layers)]
        else:
            pairs = list(zip(self.keys, self.values))
        return [(k.unsqueeze(0).repeat(batch_size, 1, 1), v.unsqueeze(0).repeat(batch_size, 1, 1)) for k, v in pairs]


def test_embedding_module_prompt_passes():
    verdict = quiet(checks.check_deep_prompt, EmbeddingModulePrompt)
    assert verdict.passed, str(verdict)


WRONG_PROMPTS = [
    (NoTanh, ("no tanh",)),
    (ReluInsteadOfTanh, ("no tanh",)),
    (SharedPrompt, ("one prefix shared by all layers",)),
    (TableButLayerZero, ("one prefix shared by all layers",)),
    (AlwaysReparam, ("reparameterised when asked not to",)),
    (NeverReparam, ("reparam=True was ignored",)),
    (ZeroInit, ("same numbers", "zero")),
    (KeysAreValues, ("keys and values are the same",)),
    (ChainedPrompt, ("computed from other layers",)),
    (FreshRandom, ("new random numbers at every call",)),
    (NotExpanded, ("shape", "expand")),
    (BufferTable, ("no trainable parameters",)),
    (DropoutPrompt, ("train() and eval()",)),
    (WrongHiddenDefault, ("hidden defaults to d_model",)),
]


@pytest.mark.parametrize("cls, words", WRONG_PROMPTS, ids=[c.__name__ for c, _ in WRONG_PROMPTS])
def test_wrong_prompts_are_named(cls, words):
    assert_mistake(quiet(checks.check_deep_prompt, cls), *words)


def test_a_raising_prompt_is_reported_not_raised():
    class Raises(ReferenceDeepPrompt):
        def forward(self, batch_size):
            raise IndexError("boom")

    verdict = quiet(checks.check_deep_prompt, Raises)
    assert_mistake(verdict, "IndexError", "boom")


# ============================================================================ exercise 2: tag_logits

def stub_tag_logits(model, prompt, input_ids, attention_mask):
    raise NotImplementedError("write your code here")


def tag_logits_with_attention_pattern(model, prompt, input_ids, attention_mask):
    """Uses the model's own mask helper and keeps the prefix list as a tuple."""
    batch, length = input_ids.shape
    prefix = tuple(prompt(batch))
    n_prefix = prefix[0][0].shape[1]
    x = model.tok_emb(input_ids) + model.pos_emb(torch.arange(length) + n_prefix)
    allowed = model.attention_pattern(attention_mask.bool(), n_prefix, model.config.causal)
    for i, block in enumerate(model.blocks):
        x = block(x, allowed, False, prefix[i])
    return model.head(model.ln_f(x), attention_mask)


def tag_logits_loops(model, prompt, input_ids, attention_mask):
    """Mask built entry by entry, then a float additive mask turned back into booleans."""
    batch, length = input_ids.shape
    prefix = prompt(batch)
    n_prefix = prefix[0][0].shape[1]
    allowed = torch.zeros(batch, 1, length, n_prefix + length, dtype=torch.bool)
    for b in range(batch):
        for i in range(length):
            for j in range(n_prefix + length):
                t = j - n_prefix
                allowed[b, 0, i, j] = j < n_prefix or (bool(attention_mask[b, t])
                                                       and (not model.config.causal or t <= i))
    positions = torch.tensor([n_prefix + i for i in range(length)])
    x = model.tok_emb(input_ids.long()) + model.pos_emb(positions)
    for block, (keys, values) in zip(model.blocks, prefix):
        x = block(x, allowed, False, (keys, values))
    return model.head(model.ln_f(x))


@pytest.mark.parametrize("fn", [reference_tag_logits, tag_logits_with_attention_pattern, tag_logits_loops])
def test_correct_taggers_pass(fn):
    verdict = quiet(checks.check_tag_logits, fn)
    assert verdict.passed, str(verdict)


def test_blank_tagger_is_not_implemented():
    assert quiet(checks.check_tag_logits, stub_tag_logits).status == "not implemented"


def _allowed(attention_mask, n_prefix, causal, prefix_value=True):
    batch, length = attention_mask.shape
    tokens = attention_mask.bool()[:, None, :].expand(batch, length, length)
    if causal:
        tokens = tokens & torch.ones(length, length, dtype=torch.bool).tril()
    prefix = torch.full((batch, length, n_prefix), prefix_value, dtype=torch.bool)
    return torch.cat([prefix, tokens], -1)[:, None]


def _tagger(shared=False, positions_from_zero=False, padded_prefix=False, mask_from_padding=False,
            first_layer_only=False, head_on_prompts=False, lm_head=False, hook=False, mutate=False,
            borrow_hook=False, ignore_mask=False):
    def tag_logits(model, prompt, input_ids, attention_mask):
        if hook:
            model.prefix = prompt
            return model(input_ids, attention_mask=attention_mask).logits
        if borrow_hook:              # attach the prompt for one call and take it off again
            model.prefix = prompt
            try:
                return model(input_ids, attention_mask=attention_mask).logits
            finally:
                model.prefix = None
        if ignore_mask:
            attention_mask = torch.ones_like(attention_mask)
        if mutate:
            attention_mask[:, -1] = 1         # "no padding at the end"
        batch, length = input_ids.shape
        prefix = prompt(batch)
        n_prefix = prefix[0][0].shape[1]
        start = 0 if positions_from_zero else n_prefix
        x = model.tok_emb(input_ids) + model.pos_emb(torch.arange(start, start + length))
        if mask_from_padding:        # the prefix columns copy the row's padding: [mask[:, :P] ; mask]
            keys = torch.cat([attention_mask[:, :n_prefix] * 0, attention_mask], dim=1).bool()
            allowed = keys[:, None, None, :].expand(batch, 1, length, n_prefix + length).clone()
            if model.config.causal:
                allowed[..., n_prefix:] &= torch.ones(length, length, dtype=torch.bool).tril()
        else:
            allowed = _allowed(attention_mask, n_prefix, model.config.causal, prefix_value=not padded_prefix)
        plain = _allowed(attention_mask, 0, model.config.causal)
        if head_on_prompts:          # prompts as P extra positions in front, head over every position
            x = torch.cat([prefix[0][1], x], dim=1)
            full = torch.cat([torch.ones(batch, n_prefix, dtype=attention_mask.dtype), attention_mask], 1)
            plain = _allowed(full, 0, model.config.causal)
            for block in model.blocks:
                x = block(x, plain, False, None)
            return model.head(model.ln_f(x), full)
        for i, block in enumerate(model.blocks):
            if first_layer_only and i > 0:
                x = block(x, plain, False, None)
            else:
                x = block(x, allowed, False, prefix[0] if shared else prefix[i])
        x = model.ln_f(x)
        return model.lm_head(x) if lm_head else model.head(x, attention_mask)
    return tag_logits


WRONG_TAGGERS = [
    ("shared", _tagger(shared=True), ("one prefix shared by all layers",)),
    ("positions", _tagger(positions_from_zero=True), ("positions not shifted",)),
    ("padded prefix", _tagger(padded_prefix=True), ("prefix is masked by padding",)),
    ("prefix from padding", _tagger(mask_from_padding=True), ("masked by padding",)),
    ("first layer only", _tagger(first_layer_only=True), ("first layer only",)),
    ("head on prompts", _tagger(head_on_prompts=True), ("head is on the prompt positions",)),
    ("lm head", _tagger(lm_head=True), ("LM head",)),
    ("hook", _tagger(hook=True), ("attached a hook",)),
    ("mutates", _tagger(mutate=True), ("changed its input",)),
    ("borrows the hook", _tagger(borrow_hook=True), ("called the model itself",)),
    ("ignores the mask", _tagger(ignore_mask=True), ("attention_mask was not used",)),
]


@pytest.mark.parametrize("fn, words", [(fn, words) for _, fn, words in WRONG_TAGGERS],
                         ids=[name for name, _, _ in WRONG_TAGGERS])
def test_wrong_taggers_are_named(fn, words):
    assert_mistake(quiet(checks.check_tag_logits, fn), *words)


def test_a_tagger_that_flips_the_mode_is_named():
    def flips(model, prompt, input_ids, attention_mask):
        model.eval()
        return reference_tag_logits(model, prompt, input_ids, attention_mask)

    assert_mistake(quiet(checks.check_tag_logits, flips), "train/eval mode")


def test_tagger_check_prints_and_never_raises(capsys):
    def returns_none(model, prompt, input_ids, attention_mask):
        return None

    verdict = checks.check_tag_logits(returns_none)
    assert verdict.status == "mistake" and "NoneType" in capsys.readouterr().out
