"""minift.analysis.lowrank on matrices whose answers are known, and the rank explorer's callbacks."""

import math

import pytest
import torch

from minift.analysis import lowrank


def low_rank_plus_noise(m=20, n=30, r=4, noise=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, r, generator=g, dtype=torch.float64) @ torch.randn(r, n, generator=g, dtype=torch.float64)
    return W + noise * torch.randn(m, n, generator=g, dtype=torch.float64)


def test_truncated_svd_of_a_diagonal_matrix_keeps_the_largest_entries():
    W = torch.diag(torch.tensor([1.0, 5.0, 3.0, 2.0]))
    approx = lowrank.truncated_svd(W, 2)
    assert torch.allclose(approx, torch.diag(torch.tensor([0.0, 5.0, 3.0, 0.0])), atol=1e-6)
    assert approx.dtype == W.dtype
    assert lowrank.reconstruction_error(W, 2, relative=False) == pytest.approx(math.sqrt(1 + 4))


def test_exact_low_rank_matrix_is_recovered_at_its_rank():
    W = low_rank_plus_noise(r=4)
    assert lowrank.reconstruction_error(W, 4) < 1e-10
    assert lowrank.reconstruction_error(W, 3) > 0.01
    assert torch.linalg.matrix_rank(lowrank.truncated_svd(W, 3)) == 3
    assert torch.allclose(lowrank.truncated_svd(W, 0), torch.zeros_like(W))
    assert torch.allclose(lowrank.truncated_svd(W, 20), W)


@pytest.mark.parametrize("r", [0, 1, 3, 5, 10, 20])
def test_eckart_young_identity(r):
    """error^2 of the best rank-r approximation = sum of the discarded sigma^2."""
    W = low_rank_plus_noise(noise=0.3, seed=1)
    S = torch.linalg.svdvals(W)
    absolute = lowrank.reconstruction_error(W, r, relative=False)
    assert absolute ** 2 == pytest.approx(float((S[r:] ** 2).sum()), rel=1e-9, abs=1e-9)
    assert lowrank.reconstruction_error(W, r) == pytest.approx(lowrank.discarded_energy(W, r), abs=1e-9)
    curve = lowrank.error_curve(W)
    assert curve["error"][r] == pytest.approx(lowrank.reconstruction_error(W, r), abs=1e-9)


def test_truncated_svd_is_optimal_against_random_rank_r_matrices():
    W = low_rank_plus_noise(noise=0.5, seed=2)
    best = lowrank.reconstruction_error(W, 3, relative=False)
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        X = torch.randn(20, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 30, generator=g, dtype=torch.float64)
        # the best scaling of a random rank-3 matrix is still worse
        scale = float((W * X).sum() / (X * X).sum())
        assert float(torch.linalg.matrix_norm(W - scale * X)) > best


def test_effective_rank_definitions():
    assert lowrank.effective_rank(torch.eye(6)) == pytest.approx(6.0)
    assert lowrank.effective_rank(torch.outer(torch.arange(1.0, 5.0), torch.ones(3))) == pytest.approx(1.0)
    assert lowrank.effective_rank(torch.zeros(3, 4)) == 0.0
    assert lowrank.energy_rank(torch.zeros(3, 4)) == 0
    # sigma^2 = 16, 9, 0: 90% of 25 needs both
    assert lowrank.energy_rank(torch.diag(torch.tensor([4.0, 3.0, 0.0]))) == 2
    assert lowrank.energy_rank(torch.diag(torch.tensor([4.0, 3.0, 0.0])), energy=0.6) == 1
    assert lowrank.effective_rank(torch.diag(torch.tensor([4.0, 3.0, 0.0])), method="energy") == 2
    # two equal singular values and a zero: exp(entropy of (1/2, 1/2)) = 2
    assert lowrank.effective_rank(torch.diag(torch.tensor([2.0, 2.0, 0.0]))) == pytest.approx(2.0)
    W = low_rank_plus_noise(r=3, noise=0.01, seed=3)
    assert 2.0 < lowrank.effective_rank(W) < 3.5
    assert lowrank.energy_rank(W) <= 3
    G = lowrank.gaussian_like(W, seed=0)
    assert float(torch.linalg.matrix_norm(G)) == pytest.approx(float(torch.linalg.matrix_norm(W)))
    assert lowrank.effective_rank(G) > 12
    with pytest.raises(ValueError, match="method"):
        lowrank.effective_rank(W, method="nuclear")
    with pytest.raises(ValueError, match="energy"):
        lowrank.energy_rank(W, energy=1.5)


def test_input_validation_names_the_bad_value():
    W = torch.randn(4, 6)
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        lowrank.truncated_svd(W, 5)
    with pytest.raises(ValueError, match="2-D"):
        lowrank.truncated_svd(torch.randn(3), 1)
    with pytest.raises(ValueError, match="NaN"):
        lowrank.truncated_svd(torch.tensor([[float("nan"), 1.0]]), 1)
    with pytest.raises(ValueError, match="same input dimension"):
        lowrank.subspace_similarity(torch.randn(2, 5), torch.randn(2, 6), 1, 1)
    with pytest.raises(ValueError, match="i must be"):
        lowrank.subspace_similarity(torch.randn(2, 5), torch.randn(3, 5), 3, 1)


def test_subspace_similarity_known_cases():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 10, generator=g, dtype=torch.float64)
    # the same row space (any invertible mix of the rows): phi = 1 for the full ranks
    M = torch.randn(4, 4, generator=g, dtype=torch.float64)
    assert lowrank.subspace_similarity(A, M @ A, 4, 4) == pytest.approx(1.0)
    assert lowrank.subspace_similarity(A, A, 2, 2) == pytest.approx(1.0)
    # orthogonal row spaces: phi = 0
    E = torch.eye(10, dtype=torch.float64)
    assert lowrank.subspace_similarity(E[:3], E[3:8], 3, 5) == pytest.approx(0.0)
    # a 1-dim subspace inside a 5-dim one: phi(1, 5) = 1
    assert lowrank.subspace_similarity(E[2:3] * 7, E[:5], 1, 5) == pytest.approx(1.0)
    # right-singular vectors, not rows: scaling rows changes the order of directions
    B = torch.diag(torch.tensor([1.0, 10.0], dtype=torch.float64)) @ E[:2]
    assert lowrank.subspace_similarity(B, E[1:2], 1, 1) == pytest.approx(1.0)
    assert lowrank.subspace_similarity(B, E[0:1], 1, 1) == pytest.approx(0.0)


def test_subspace_similarity_grid_matches_the_pointwise_definition_and_the_random_baseline():
    g = torch.Generator().manual_seed(1)
    A1 = torch.randn(5, 40, generator=g, dtype=torch.float64)
    A2 = torch.randn(8, 40, generator=g, dtype=torch.float64)
    grid = lowrank.subspace_similarity_grid(A1, A2)
    assert grid.shape == (5, 8)
    for i in (1, 3, 5):
        for j in (1, 4, 8):
            assert float(grid[i - 1, j - 1]) == pytest.approx(lowrank.subspace_similarity(A1, A2, i, j))
    # random subspaces: on average about max(i, j) / d
    values = []
    for seed in range(200):
        g = torch.Generator().manual_seed(100 + seed)
        values.append(lowrank.subspace_similarity(torch.randn(2, 40, generator=g), torch.randn(6, 40, generator=g), 2, 6))
    assert sum(values) / len(values) == pytest.approx(lowrank.random_subspace_baseline(40, 2, 6), rel=0.15)


def test_fast_walsh_hadamard_matches_the_matrix():
    n = 8
    H = torch.tensor([[1.0]])
    while H.shape[0] < n:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    x = torch.randn(n)
    assert torch.allclose(lowrank.fast_walsh_hadamard(x), H @ x, atol=1e-5)
    with pytest.raises(ValueError, match="power of 2"):
        lowrank.fast_walsh_hadamard(torch.randn(6))


def test_fastfood_projection_columns_are_unit_norm_and_nearly_orthogonal():
    P = lowrank.FastfoodProjection(dim=6, D=256, seed=0).matrix()       # D a power of 2: no truncation
    assert P.shape == (256, 6)
    assert torch.allclose(P.norm(dim=0), torch.ones(6), atol=1e-5)
    gram = P.T @ P - torch.eye(6)
    assert gram.abs().max() < 0.35
    # deterministic from the seed
    assert torch.equal(P, lowrank.FastfoodProjection(dim=6, D=256, seed=0).matrix())
    assert not torch.equal(P, lowrank.FastfoodProjection(dim=6, D=256, seed=1).matrix())
    with pytest.raises(ValueError, match="dim"):
        lowrank.FastfoodProjection(dim=0, D=10)


def _small_model():
    from minift import ModelConfig, Transformer
    torch.manual_seed(0)
    return Transformer(ModelConfig(vocab_size=30, d_model=16, n_layers=1, n_heads=2, max_len=12))


def test_random_subspace_starts_at_theta0_and_trains_only_z():
    model = _small_model()
    ids = torch.randint(0, 30, (3, 7))
    with torch.no_grad():
        before = model(ids).logits.clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    sub = lowrank.RandomSubspace(model, dim=5, seed=0)
    trainable = [p for p in sub.parameters() if p.requires_grad]
    assert len(trainable) == 1 and trainable[0].numel() == 5
    assert sub.D == sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.allclose(sub(ids).logits, before, atol=1e-6)       # z = 0: the same model
    optimizer = torch.optim.Adam(sub.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        loss = sub(ids).logits.logsumexp(-1).mean()
        loss.backward()
        optimizer.step()
    assert sub.z.abs().sum() > 0
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())   # theta0 untouched
    with torch.no_grad():
        moved = sub(ids).logits
        exported = sub.export()(ids).logits
    assert not torch.allclose(moved, before)
    assert torch.allclose(moved, exported, atol=1e-5)
    # the change of theta is exactly P z
    delta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - sub.theta0
    assert torch.allclose(delta, sub.projection(sub.z.detach()), atol=1e-6)


def test_d90():
    assert lowrank.d90([10, 100, 1000], [0.5, 0.8, 0.9], reference=0.9) == 1000
    assert lowrank.d90([10, 100, 1000], [0.5, 0.82, 0.9], reference=0.9) == 100
    assert lowrank.d90([10, 100], [0.1, 0.2], reference=0.9) is None
