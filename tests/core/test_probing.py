"""minift.analysis.probing on known answers: CKA's invariances, probes on separable features and on
noise, control tasks as Hewitt & Liang define them, weight change, and the FFN memory hooks."""

import copy

import pytest
import torch

import minift
from minift.analysis import probing
from minift.data import IGNORE_INDEX
from minift.methods import lora


def gaussian(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------------------ CKA
def test_cka_of_a_representation_with_itself_is_one():
    X = gaussian(200, 16)
    assert probing.linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_maps_isotropic_scaling_and_shifts():
    X = gaussian(300, 12)
    Q, _ = torch.linalg.qr(gaussian(12, 12, seed=1))
    Y = X[:, :4] @ gaussian(4, 20, seed=3) + 0.5 * gaussian(300, 20, seed=4)     # partly related to X
    reference = probing.linear_cka(X, Y)
    assert 0.05 < reference < 0.95                        # a value where invariance means something
    assert probing.linear_cka(X @ Q, Y) == pytest.approx(reference, abs=1e-10)
    assert probing.linear_cka(7.5 * X, Y) == pytest.approx(reference, abs=1e-10)
    assert probing.linear_cka(X + 3.0, Y) == pytest.approx(reference, abs=1e-10)   # centring
    assert probing.linear_cka(X @ Q, X) == pytest.approx(1.0, abs=1e-10)


def test_cka_is_not_invariant_to_an_arbitrary_linear_map():
    X = gaussian(500, 10)
    A = torch.diag(torch.tensor([10.0, 5, 2, 1, 1, 1, 0.5, 0.2, 0.1, 0.05], dtype=torch.float64))
    assert probing.linear_cka(X, X @ A) < 0.9


def test_cka_of_independent_random_features_is_small_and_symmetric():
    X, Y = gaussian(2000, 10, seed=5), gaussian(2000, 10, seed=6)
    assert probing.linear_cka(X, Y) < 0.05
    assert probing.linear_cka(X, Y) == pytest.approx(probing.linear_cka(Y, X), abs=1e-12)


def test_cka_matches_the_gram_matrix_formula():
    X, Y = gaussian(50, 7, seed=7), gaussian(50, 3, seed=8)
    H = torch.eye(50, dtype=torch.float64) - 1 / 50
    K, L = H @ X @ X.T @ H, H @ Y @ Y.T @ H
    hsic = lambda A, B: (A * B).sum()
    expected = hsic(K, L) / torch.sqrt(hsic(K, K) * hsic(L, L))
    assert probing.linear_cka(X, Y) == pytest.approx(float(expected), abs=1e-10)


def test_cka_refuses_bad_inputs():
    with pytest.raises(ValueError, match="same number of rows"):
        probing.linear_cka(gaussian(10, 3), gaussian(11, 3))
    with pytest.raises(ValueError, match="2-D"):
        probing.linear_cka(gaussian(10), gaussian(10, 3))
    with pytest.raises(ValueError, match="constant"):
        probing.linear_cka(torch.ones(10, 3), gaussian(10, 3))
    with pytest.raises(ValueError, match="NaN"):
        probing.linear_cka(torch.full((10, 3), float("nan")), gaussian(10, 3))


# --------------------------------------------------------------------------------------- probes
def test_probe_separates_linearly_separable_features():
    y = torch.arange(600) % 3
    centres = gaussian(3, 20, seed=1) * 4
    X = centres[y] + 0.3 * gaussian(600, 20, seed=2)
    accuracy = probing.probe_accuracy(X[:400], y[:400], X[400:], y[400:])
    assert accuracy > 0.99


def test_probe_on_noise_is_at_chance():
    y = torch.arange(2000) % 4
    X = gaussian(2000, 20, seed=3)                  # independent of y
    accuracy = probing.probe_accuracy(X[:1500], y[:1500], X[1500:], y[1500:])
    assert abs(accuracy - 0.25) < 0.06
    assert probing.majority_accuracy(y[:1500], y[1500:]) == pytest.approx(0.25)


def test_probe_is_deterministic_and_accepts_any_scale():
    y = torch.arange(300) % 2
    X = gaussian(300, 5) + y[:, None] * torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)
    a = probing.fit_probe(X, y).predict(X)
    b = probing.fit_probe(1e4 * X, y).predict(1e4 * X)
    assert torch.equal(a, b)


def test_probe_refuses_bad_labels():
    with pytest.raises(ValueError, match="class ids"):
        probing.fit_probe(gaussian(10, 2), torch.rand(10))
    with pytest.raises(ValueError, match=r"X must be \(n, d\)"):
        probing.fit_probe(gaussian(10, 2), torch.zeros(9, dtype=torch.long))


# ------------------------------------------------------------------------------ control tasks
def test_control_labels_give_one_fixed_label_per_word_type():
    words = torch.tensor([[5, 6, 5, 7, 0], [6, 5, 8, 7, 0]])
    labels = torch.tensor([[0, 1, 2, 1, IGNORE_INDEX], [1, 0, 2, 2, IGNORE_INDEX]])
    control = probing.control_labels(words, labels, seed=3)
    assert control.shape == labels.shape
    assert (control[:, -1] == IGNORE_INDEX).all()        # skipped positions stay skipped
    valid = labels != IGNORE_INDEX
    for word in words[valid].unique():
        assert len(control[(words == word) & valid].unique()) == 1
    assert control[valid].max() <= labels[valid].max() and control[valid].min() >= 0
    assert torch.equal(control, probing.control_labels(words, labels, seed=3))   # seeded
    assert not torch.equal(words, probing.control_labels(words, labels, seed=3))


def test_control_labels_follow_the_empirical_label_distribution():
    words = torch.arange(20000)                          # 20,000 types, one token each
    labels = torch.tensor([0] * 14000 + [1] * 4000 + [2] * 2000)
    control = probing.control_labels(words, labels, seed=0)
    shares = torch.bincount(control).double() / len(control)
    assert torch.allclose(shares, torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64), atol=0.015)


def test_control_task_is_learnable_only_by_memorising_types():
    """Features that identify the word type (one-hot) make the control task learnable on seen types;
    features that are pure noise do not."""
    generator = torch.Generator().manual_seed(0)
    words = torch.randint(0, 30, (3000,), generator=generator)
    labels = torch.randint(0, 3, (3000,), generator=generator)
    control = probing.control_labels(words, labels, seed=1)
    one_hot = torch.nn.functional.one_hot(words, 30).double()
    assert probing.probe_accuracy(one_hot[:2000], control[:2000], one_hot[2000:], control[2000:], l2=1e-4) > 0.99
    noise = gaussian(3000, 30)
    assert probing.probe_accuracy(noise[:2000], control[:2000], noise[2000:], control[2000:]) < 0.5
    assert probing.selectivity([0.9, 0.8], [0.5, 0.8]) == pytest.approx([0.4, 0.0])


def test_control_labels_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        probing.control_labels(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3, 5, dtype=torch.long))


# --------------------------------------------------------------------------- on a real model
@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = minift.ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, max_len=12)
    return minift.Transformer(config).eval()


def test_layer_states_and_features(tiny):
    ids = torch.randint(0, 40, (5, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    states = probing.layer_states(tiny, ids, mask, batch_size=2)
    assert len(states) == 3 and states[0].shape == (5, 7, 16)
    with torch.no_grad():
        direct = tiny(ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert all(torch.allclose(a, b) for a, b in zip(states, direct))
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 1:3] = 1
    X, y, sentence = probing.token_features(states, labels)
    assert X[1].shape == (10, 16) and sentence.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    pooled = probing.pooled_features(states, mask, "last")
    assert torch.equal(pooled[2][0], states[2][0, 4])
    mean = probing.pooled_features(states, mask, "mean")
    assert torch.allclose(mean[1][0], states[1][0, :5].mean(dim=0))
    train, test = probing.split_rows(5, 0.4, seed=0)
    assert sorted(train.tolist() + test.tolist()) == list(range(5)) and len(test) == 2
    assert probing.cka_per_layer(states, states, mask) == pytest.approx([1.0, 1.0, 1.0])


def test_relative_weight_change_per_module(tiny):
    after = copy.deepcopy(tiny)
    with torch.no_grad():
        after.blocks[1].ffn.w1.weight.mul_(1.5)          # only layer 1's FFN moves
    change = probing.relative_weight_change(tiny, after)
    assert change[(0, "ffn")] == 0 and change[(1, "attn")] == 0 and change[(1, "norm")] == 0
    w1, w2 = tiny.blocks[1].ffn.w1, tiny.blocks[1].ffn.w2
    norm = sum(float((p.detach().double() ** 2).sum()) for p in (w1.weight, w1.bias, w2.weight, w2.bias)) ** 0.5
    assert change[(1, "ffn")] == pytest.approx(0.5 * w1.weight.detach().double().norm().item() / norm, rel=1e-9)


def test_relative_weight_change_refuses_an_unmerged_adapter(tiny):
    adapted = lora.apply(copy.deepcopy(tiny), r=2, targets=("q", "v"))
    with torch.no_grad():
        adapted.blocks[0].attn.q.lora_B.normal_()
    with pytest.raises(ValueError, match="unmerged LoRA"):
        probing.relative_weight_change(tiny, adapted)
    merged = lora.remove(adapted, merge=True)
    assert probing.relative_weight_change(tiny, merged)[(0, "attn")] > 0


def test_ffn_memory_hooks(tiny):
    ids = torch.randint(0, 40, (3, 6), generator=torch.Generator().manual_seed(1))
    acts = probing.ffn_activations(tiny, 1, ids)
    assert acts.shape == (3, 6, tiny.config.d_ff)
    with torch.no_grad():
        normal = tiny(ids).logits
        with probing.ablate_ffn_neurons(tiny, 1, range(tiny.config.d_ff)):
            ablated = tiny(ids).logits
            assert probing.ffn_activations(tiny, 1, ids).shape == acts.shape
        assert torch.equal(tiny(ids).logits, normal)      # the hook is gone afterwards
    assert not torch.allclose(normal, ablated)
    logits = probing.value_vector_logits(tiny, 0, 3)
    assert torch.allclose(logits, tiny.lm_head.weight @ tiny.blocks[0].ffn.w2.weight[:, 3])
    with pytest.raises(ValueError, match="layer"):
        probing.ffn_activations(tiny, 2, ids)
    with pytest.raises(ValueError, match="neurons"):
        with probing.ablate_ffn_neurons(tiny, 0, [999]):
            pass


def test_logistic_probe_separates_and_stays_at_chance_on_noise():
    y = torch.arange(600) % 3
    X = gaussian(3, 20, seed=1)[y] * 4 + 0.3 * gaussian(600, 20, seed=2)
    assert probing.probe_accuracy(X[:400], y[:400], X[400:], y[400:], kind="logistic") > 0.99
    noise = gaussian(2000, 20, seed=3)
    y = torch.arange(2000) % 4
    accuracy = probing.probe_accuracy(noise[:1500], y[:1500], noise[1500:], y[1500:], kind="logistic")
    assert abs(accuracy - 0.25) < 0.06
    with pytest.raises(ValueError, match="kind"):
        probing.fit_probe(X, torch.arange(600) % 3, kind="svm")
