"""The linear algebra behind LoRA: low-rank approximation, effective rank, subspace similarity, and
training inside a random low-dimensional subspace (intrinsic dimension).

    from minift.analysis import lowrank
    W_r = lowrank.truncated_svd(W, r)                 # best rank-r approximation (Eckart-Young)
    lowrank.reconstruction_error(W, r)                # ||W - W_r||_F / ||W||_F
    lowrank.effective_rank(W)                         # exp(entropy of the normalised singular values)
    lowrank.energy_rank(W, 0.9)                       # smallest k keeping 90% of sum(sigma^2)
    lowrank.subspace_similarity(A8, A64, i, j)        # phi(i, j) of the LoRA paper, section 7.2
    sub = lowrank.RandomSubspace(model, dim=100)      # theta = theta0 + P z, only z (100 numbers) trains

Conventions follow PyTorch: a weight matrix W has shape (out, in); a LoRA factor A has shape (r, in).
Every function accepts a torch tensor or anything torch.as_tensor understands, computes in float64
and returns torch tensors (or Python floats/ints for scalars).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn as nn
from torch.func import functional_call

ENERGY = 0.9        # the default energy fraction of energy_rank()


# --------------------------------------------------------------------------------------------------
# helpers

def _matrix(W, name: str = "W") -> torch.Tensor:
    """W as a 2-D float64 tensor on the CPU, or a clear error."""
    if isinstance(W, nn.Parameter):
        W = W.detach()
    W = torch.as_tensor(W)
    if W.dim() != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got a tensor of shape {tuple(W.shape)}")
    if W.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(W.shape)})")
    W = W.detach().to(device="cpu", dtype=torch.float64)
    if not torch.isfinite(W).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return W


def _rank_arg(r, W: torch.Tensor, name: str = "r", allow_zero: bool = True) -> int:
    low = 0 if allow_zero else 1
    full = min(W.shape)
    if isinstance(r, bool) or not isinstance(r, int) or not low <= r <= full:
        raise ValueError(f"{name} must be an integer in [{low}, {full}] (min of the shape {tuple(W.shape)}), "
                         f"got {r!r}")
    return r


def singular_values(W) -> torch.Tensor:
    """The singular values of W, largest first (float64)."""
    return torch.linalg.svdvals(_matrix(W))


# --------------------------------------------------------------------------------------------------
# best rank-r approximation

def truncated_svd(W, r: int) -> torch.Tensor:
    """The best rank-r approximation of W: keep the r largest singular values and their vectors.

    W = U diag(S) V^T  ->  W_r = U[:, :r] diag(S[:r]) V[:, :r]^T. By the Eckart-Young(-Mirsky) theorem no
    matrix of rank <= r is closer to W, in the Frobenius norm or in the spectral norm. r = 0 gives zeros,
    r = min(W.shape) gives W back (up to float rounding). Same dtype as W when W is floating point.
    """
    original = torch.as_tensor(W.detach() if isinstance(W, torch.Tensor) else W)
    M = _matrix(W)
    r = _rank_arg(r, M)
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    approx = (U[:, :r] * S[:r]) @ Vh[:r]
    dtype = original.dtype if original.is_floating_point() else torch.float64
    return approx.to(dtype)


def reconstruction_error(W, r: int, relative: bool = True) -> float:
    """||W - W_r||_F (divided by ||W||_F when relative), W_r = truncated_svd(W, r)."""
    M = _matrix(W)
    r = _rank_arg(r, M)
    error = float(torch.linalg.matrix_norm(M - truncated_svd(M, r)))
    if relative:
        norm = float(torch.linalg.matrix_norm(M))
        return error / norm if norm > 0 else 0.0
    return error


def discarded_energy(W, r: int, relative: bool = True) -> float:
    """sqrt(sum of sigma_i^2 for i > r) (divided by ||W||_F when relative).

    The Eckart-Young identity says this equals reconstruction_error(W, r): the error of the best rank-r
    approximation is exactly the singular values it throws away.
    """
    M = _matrix(W)
    r = _rank_arg(r, M)
    S = torch.linalg.svdvals(M)
    error = float(torch.sqrt((S[r:] ** 2).sum()))
    if relative:
        total = float(torch.sqrt((S ** 2).sum()))
        return error / total if total > 0 else 0.0
    return error


def error_curve(W, ranks: Iterable[int] | None = None) -> dict:
    """Relative reconstruction error for each rank (default 0..min(shape)), from one SVD.

    Returns {"rank": [...], "error": [...], "energy": [...]} where energy is the kept fraction of
    sum(sigma^2) (so error^2 + energy = 1 for every rank).
    """
    M = _matrix(W)
    S2 = torch.linalg.svdvals(M) ** 2
    total = float(S2.sum())
    ranks = list(range(min(M.shape) + 1)) if ranks is None else [_rank_arg(r, M) for r in ranks]
    kept = torch.cat([torch.zeros(1, dtype=S2.dtype), torch.cumsum(S2, 0)])
    energy = [float(kept[r]) / total if total > 0 else 1.0 for r in ranks]
    error = [math.sqrt(max(0.0, 1.0 - e)) for e in energy]
    return {"rank": ranks, "error": error, "energy": energy}


# --------------------------------------------------------------------------------------------------
# effective rank

def effective_rank(W, method: str = "entropy", energy: float = ENERGY) -> float:
    """How many directions a matrix really uses. Two common definitions:

    * method="entropy" (Roy & Vetterli, 2007): p_i = sigma_i / sum_j sigma_j is a probability
      distribution over directions; the effective rank is exp(H(p)), H the Shannon entropy (natural
      log). It is a real number between 1 (one direction) and min(W.shape) (all singular values equal),
      and changes smoothly when small singular values appear. A random Gaussian matrix scores high
      (but below the full rank, because its singular values spread out: Marchenko-Pastur).
    * method="energy": the smallest k whose top-k singular values keep ``energy`` (default 90%) of
      sum(sigma^2) = ||W||_F^2, i.e. the smallest rank whose relative reconstruction error is
      <= sqrt(1 - energy). An integer; easy to read, but it jumps and depends on the threshold.

    The zero matrix has effective rank 0 by both definitions.
    """
    if method == "entropy":
        S = singular_values(W)
        total = float(S.sum())
        if total == 0:
            return 0.0
        p = S / total
        p = p[p > 0]
        return float(torch.exp(-(p * torch.log(p)).sum()))
    if method == "energy":
        return float(energy_rank(W, energy))
    raise ValueError(f"method={method!r} is unknown; allowed: 'entropy', 'energy'")


def energy_rank(W, energy: float = ENERGY) -> int:
    """The smallest k such that sigma_1^2 + ... + sigma_k^2 >= energy * ||W||_F^2 (0 for W = 0)."""
    if isinstance(energy, bool) or not isinstance(energy, (int, float)) or not 0 < energy <= 1:
        raise ValueError(f"energy must be a fraction in (0, 1], got {energy!r}")
    S2 = singular_values(W) ** 2
    total = float(S2.sum())
    if total == 0:
        return 0
    kept = torch.cumsum(S2, 0) / total
    # a tiny tolerance so that energy=1 is reached despite float rounding
    return int((kept < energy - 1e-12).sum()) + 1


def gaussian_like(W, seed: int = 0) -> torch.Tensor:
    """A random Gaussian matrix of W's shape, scaled to W's Frobenius norm: the "no structure" baseline."""
    M = _matrix(W)
    generator = torch.Generator().manual_seed(seed)
    G = torch.randn(M.shape, generator=generator, dtype=torch.float64)
    return G * (torch.linalg.matrix_norm(M) / torch.linalg.matrix_norm(G))


# --------------------------------------------------------------------------------------------------
# subspace similarity (LoRA paper, section 7.2)

def right_singular_vectors(A) -> torch.Tensor:
    """The right-singular vectors of A (r x d) as COLUMNS of a d x r matrix, most important first.

    A = U S V^T; this is V[:, :min(r, d)]: an orthonormal basis of A's row space, i.e. of the
    input directions a LoRA factor A (shape r x in) reads. The LoRA paper calls it U_A.
    """
    M = _matrix(A, "A")
    _, _, Vh = torch.linalg.svd(M, full_matrices=False)
    return Vh.T


def subspace_similarity(A1, A2, i: int, j: int) -> float:
    """phi(A1, A2, i, j) = ||U1[:, :i]^T U2[:, :j]||_F^2 / min(i, j)   (Hu et al. 2021, eq. in 7.2).

    U1, U2 are the right-singular vectors of A1 (r1 x d) and A2 (r2 x d). phi is 1 when the span of
    A1's top-i directions contains that of A2's top-j directions (or the reverse), 0 when they are
    orthogonal. Two random subspaces of dimensions i and j in d dimensions give about max(i, j) / d.
    """
    M1, M2 = _matrix(A1, "A1"), _matrix(A2, "A2")
    if M1.shape[1] != M2.shape[1]:
        raise ValueError(f"A1 and A2 must read the same input dimension: A1 is {tuple(M1.shape)}, "
                         f"A2 is {tuple(M2.shape)} (both r x d)")
    U1, U2 = right_singular_vectors(M1), right_singular_vectors(M2)
    i = _rank_arg(i, torch.empty(U1.shape[1], U1.shape[1]), "i", allow_zero=False)
    j = _rank_arg(j, torch.empty(U2.shape[1], U2.shape[1]), "j", allow_zero=False)
    overlap = U1[:, :i].T @ U2[:, :j]
    return float((overlap ** 2).sum() / min(i, j))


def subspace_similarity_grid(A1, A2) -> torch.Tensor:
    """phi(A1, A2, i, j) for every i <= rank(A1's rows), j <= A2's: a (r1, r2) tensor, entry [i-1, j-1].

    Computed from one SVD each: the squared overlaps, cumulatively summed over i and j.
    """
    M1, M2 = _matrix(A1, "A1"), _matrix(A2, "A2")
    if M1.shape[1] != M2.shape[1]:
        raise ValueError(f"A1 and A2 must read the same input dimension: A1 is {tuple(M1.shape)}, "
                         f"A2 is {tuple(M2.shape)} (both r x d)")
    U1, U2 = right_singular_vectors(M1), right_singular_vectors(M2)
    squared = (U1.T @ U2) ** 2                               # (k1, k2)
    cumulative = squared.cumsum(0).cumsum(1)
    i = torch.arange(1, squared.shape[0] + 1, dtype=torch.float64)[:, None]
    j = torch.arange(1, squared.shape[1] + 1, dtype=torch.float64)[None, :]
    return cumulative / torch.minimum(i, j)


def random_subspace_baseline(d: int, i: int, j: int) -> float:
    """Expected phi for two independent random subspaces of dimensions i and j in R^d: max(i, j) / d."""
    return max(i, j) / d


# --------------------------------------------------------------------------------------------------
# intrinsic dimension: train in a random subspace

def fast_walsh_hadamard(x: torch.Tensor) -> torch.Tensor:
    """The (unnormalised) Walsh-Hadamard transform H x of a vector whose length is a power of 2.

    H has entries +-1 and H H = n I. O(n log n) with log2(n) butterfly steps; differentiable.
    """
    n = x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"the length must be a power of 2, got {n}")
    h = 1
    y = x
    while h < n:
        y = y.reshape(-1, 2, h)                    # pairs of blocks of size h
        y = torch.stack((y[:, 0] + y[:, 1], y[:, 0] - y[:, 1]), dim=1)
        h *= 2
    return y.reshape(x.shape)


class FastfoodProjection(nn.Module):
    """A fixed random linear map R^dim -> R^D, in O(n log n) memory.

    Each column has unit norm over all n padded entries; keeping the first D of them leaves a column
    length of about sqrt(D / n) (between 0.71 and 1; e.g. 0.77 for causal-tiny, D = 38,691, n = 65,536).

    The "Fastfood" transform (Le, Sarlos & Smola 2013) used by Li et al. (2018) and Aghajanyan et al.
    (2020) for intrinsic dimension: pad z to n = 2^ceil(log2 D), then
        x = H G Pi H B z / (sqrt(n) ||G||),    keep the first D entries,
    with B a random +-1 diagonal, H the Walsh-Hadamard transform, Pi a random permutation and G a
    Gaussian diagonal. It behaves like a dense Gaussian projection but stores only 3 vectors of n numbers
    instead of a D x dim matrix (200k parameters x dim 3000 would be 600M floats, 2.4 GB).
    """

    def __init__(self, dim: int, D: int, seed: int = 0):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= D:
            raise ValueError(f"dim must be an integer in [1, {D}] (the number of parameters), got {dim!r}")
        self.dim, self.D = dim, D
        self.n = 1 << max(0, (D - 1).bit_length())
        generator = torch.Generator().manual_seed(seed)
        B = torch.randint(0, 2, (self.n,), generator=generator).float() * 2 - 1
        permutation = torch.randperm(self.n, generator=generator)
        G = torch.randn(self.n, generator=generator)
        self.register_buffer("B", B)
        self.register_buffer("permutation", permutation)
        self.register_buffer("G", G / (G.norm() * math.sqrt(self.n)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.zeros(self.n, dtype=z.dtype, device=z.device)
        x = x.index_copy(0, torch.arange(self.dim, device=z.device), z)
        x = fast_walsh_hadamard(x * self.B)
        x = fast_walsh_hadamard(x[self.permutation] * self.G)
        return x[:self.D]

    def matrix(self) -> torch.Tensor:
        """The D x dim matrix itself (for tests and small examples only)."""
        eye = torch.eye(self.dim, dtype=self.G.dtype, device=self.G.device)
        return torch.stack([self(e) for e in eye], dim=1)


class RandomSubspace(nn.Module):
    """Train a model inside a random ``dim``-dimensional subspace of its parameter space.

        theta = theta0 + P z,      theta0 frozen (the pre-trained model + its new head),
                                   P a fixed random D x dim projection, z in R^dim starts at 0

    Only z is a parameter, so minift.fit(sub, ...) trains exactly ``dim`` numbers and the model starts
    exactly at theta0. P is a Fastfood transform (see FastfoodProjection) with columns of length about sqrt(D / n). Every
    parameter of the wrapped model - body AND task head - lives in the subspace, as in Li et al. (2018)
    and Aghajanyan et al. (2020), so ``dim`` is the whole training budget. The forward pass uses
    torch.func.functional_call, so the wrapped model's own tensors are never modified.

    scale multiplies P z: the learning rate of Adam sets how far z moves per step, and scale how far
    that moves theta (it is equivalent to a larger learning rate, but keeps the optimiser's numbers in a
    familiar range).
    """

    def __init__(self, model: nn.Module, dim: int, seed: int = 0, scale: float = 1.0):
        super().__init__()
        self.model = model
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        named = list(model.named_parameters())
        if not named:
            raise ValueError("the model has no parameters")
        self.names = [name for name, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.D = sum(self.sizes)
        self.dim = dim
        self.scale = float(scale)
        self.register_buffer("theta0", torch.cat([p.detach().reshape(-1) for _, p in named]).clone())
        self.projection = FastfoodProjection(dim, self.D, seed=seed)
        self.z = nn.Parameter(torch.zeros(dim, dtype=self.theta0.dtype))

    @property
    def config(self):
        return self.model.config

    def theta(self) -> torch.Tensor:
        return self.theta0 + self.scale * self.projection(self.z)

    def parameters_dict(self) -> dict:
        flat = self.theta()
        return {name: piece.view(shape) for name, piece, shape in
                zip(self.names, torch.split(flat, self.sizes), self.shapes)}

    def forward(self, *args, **kwargs):
        return functional_call(self.model, self.parameters_dict(), args, kwargs)

    @torch.no_grad()
    def export(self) -> nn.Module:
        """Write theta0 + P z into the wrapped model's tensors and return the model (for analysis)."""
        for (name, parameter), value in zip(self.model.named_parameters(), self.parameters_dict().values()):
            parameter.copy_(value)
        return self.model

    def extra_repr(self) -> str:
        return f"dim={self.dim}, D={self.D}, scale={self.scale}"


def d90(dims, scores, reference: float, fraction: float = 0.9):
    """The smallest d whose score reaches ``fraction`` of ``reference`` (None if none does).

    With scores measured at a few d only, this is the first measured d past the threshold (the paper
    interpolates nothing either: it reports the grid point)."""
    target = fraction * reference
    for d, score in sorted(zip(dims, scores)):
        if score >= target:
            return d
    return None


__all__ = ["singular_values", "truncated_svd", "reconstruction_error", "discarded_energy", "error_curve",
           "effective_rank", "energy_rank", "gaussian_like", "right_singular_vectors",
           "subspace_similarity", "subspace_similarity_grid", "random_subspace_baseline",
           "fast_walsh_hadamard", "FastfoodProjection", "RandomSubspace", "d90"]
