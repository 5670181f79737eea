"""Clustering building blocks: the torch modules and the numpy k-means and metrics.

Pure torch + numpy, no mltrainer imports: this source is inlined into the generated train.py, and
the architecture and export stages import it, so all three run the same code.
"""

import numpy as np
import torch
import torch.nn as nn

# -----------------------------------------------------------------------------
# Modules: an MLP autoencoder, and the exported model (optional encoder + nearest-centroid head)


class AutoEncoder(nn.Module):
    """Linear-ReLU MLP encoder to a small embedding and its mirror as decoder (reconstruction loss)."""

    def __init__(self, n_in: int, hidden: int, latent: int, layers: int = 1, dropout: float = 0.0):
        super().__init__()

        def stack(dims: list) -> nn.Sequential:
            mods: list = []
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
                mods.append(nn.Linear(a, b))
                if i < len(dims) - 2:
                    mods.append(nn.ReLU())
                    if dropout > 0:
                        mods.append(nn.Dropout(dropout))
            return nn.Sequential(*mods)

        dims = [n_in] + [hidden] * layers + [latent]
        self.encoder = stack(dims)
        self.decoder = stack(dims[::-1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def linear_names(seq: nn.Sequential, prefix: str = "encoder") -> list:
    """State-dict prefixes of the Linear layers in order (ReLU between them, none after the last)."""
    return [f"{prefix}.{i}" for i, m in enumerate(seq) if isinstance(m, nn.Linear)]


class CentroidDistance(nn.Module):
    """Squared Euclidean distance from each row to each centroid: [n, d] -> [n, k]."""

    def __init__(self, centroids):
        super().__init__()
        self.centroids = nn.Parameter(torch.as_tensor(np.asarray(centroids), dtype=torch.float32), requires_grad=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = self.centroids
        return ((z * z).sum(1, keepdim=True) - 2 * z @ c.T + (c * c).sum(1)[None, :]).clamp_min(0)


class Clusterer(nn.Module):
    """The exported model: features -> (encoder) -> distances to the k centroids; argmin is the cluster."""

    def __init__(self, centroids, encoder: nn.Module = None):
        super().__init__()
        self.encoder = encoder
        self.head = CentroidDistance(centroids)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x) if self.encoder is not None else x)


# -----------------------------------------------------------------------------
# k-means in numpy (float64): k-means++ seeding, Lloyd iterations, several restarts


def sq_dists(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [n, k], clipped at 0 against rounding."""
    d = (X * X).sum(1)[:, None] - 2.0 * X @ C.T + (C * C).sum(1)[None, :]
    return np.maximum(d, 0.0)


def assign(X: np.ndarray, C: np.ndarray, chunk: int = 65536) -> tuple:
    """Nearest centroid of each row and its squared distance, in chunks to bound memory."""
    X, C = np.asarray(X, np.float64), np.asarray(C, np.float64)
    labels = np.empty(len(X), np.int64)
    dist = np.empty(len(X), np.float64)
    for s in range(0, len(X), chunk):
        d = sq_dists(X[s:s + chunk], C)
        labels[s:s + chunk] = d.argmin(1)
        dist[s:s + chunk] = d[np.arange(len(d)), labels[s:s + chunk]]
    return labels, dist


def kmeans_pp(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each new centre drawn with probability proportional to its squared distance."""
    C = [X[rng.integers(len(X))]]
    d = sq_dists(X, C[0][None, :])[:, 0]
    for _ in range(1, k):
        total = d.sum()
        i = rng.choice(len(X), p=d / total) if total > 0 else rng.integers(len(X))
        C.append(X[i])
        d = np.minimum(d, sq_dists(X, X[i][None, :])[:, 0])
    return np.stack(C)


def kmeans(X: np.ndarray, k: int, rng: np.random.Generator, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-4) -> tuple:
    """Best of ``n_init`` k-means++ runs by inertia: (centroids [k, d], inertia per row, iterations)."""
    X = np.asarray(X, np.float64)
    stop = tol * float(X.var(0).mean())  # scale-free tolerance on the centroid shift, as in scikit-learn
    best = (None, np.inf, 0)
    for _ in range(max(1, n_init)):
        C = kmeans_pp(X, k, rng)
        for it in range(1, max_iter + 1):
            labels, dist = assign(X, C)
            counts = np.bincount(labels, minlength=k)
            sums = np.zeros_like(C)
            np.add.at(sums, labels, X)
            new = sums / np.maximum(counts, 1)[:, None]
            for j in np.nonzero(counts == 0)[0]:  # an empty cluster takes the point farthest from its centre
                far = int(dist.argmax())
                new[j], dist[far] = X[far], 0.0
            shift = float(((new - C) ** 2).sum())
            C = new
            if shift <= stop:
                break
        inertia = float(assign(X, C)[1].mean())
        if inertia < best[1]:
            best = (C, inertia, it)
    return best


# -----------------------------------------------------------------------------
# Metrics in numpy: silhouette, Davies-Bouldin, adjusted Rand index, normalised mutual information


def _codes(labels) -> np.ndarray:
    return np.unique(np.asarray(labels), return_inverse=True)[1].ravel()


def silhouette(X: np.ndarray, labels, max_points: int = 2000, seed: int = 0) -> float:
    """Mean silhouette (b - a) / max(a, b) on at most ``max_points`` rows (a fixed-seed subsample)."""
    X, y = np.asarray(X, np.float64), _codes(labels)
    if len(X) > max_points:
        keep = np.random.default_rng(seed).choice(len(X), max_points, replace=False)
        X, y = X[keep], _codes(y[keep])
    k = int(y.max()) + 1 if len(y) else 0
    if k < 2 or k >= len(X):
        return 0.0
    D = np.sqrt(sq_dists(X, X))
    np.fill_diagonal(D, 0.0)
    onehot = np.eye(k)[y]
    sums, counts = D @ onehot, onehot.sum(0)
    rows = np.arange(len(X))
    own = counts[y]
    a = sums[rows, y] / np.maximum(own - 1, 1)
    other = sums / counts[None, :]
    other[rows, y] = np.inf
    b = other.min(1)
    s = np.where(own > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-300), 0.0)
    return float(s.mean())


def davies_bouldin(X: np.ndarray, labels) -> float:
    """Mean over clusters of the worst (spread_i + spread_j) / centre distance; lower is better."""
    X, y = np.asarray(X, np.float64), _codes(labels)
    k = int(y.max()) + 1 if len(y) else 0
    if k < 2:
        return float("nan")
    C = np.stack([X[y == j].mean(0) for j in range(k)])
    spread = np.array([np.sqrt(((X[y == j] - C[j]) ** 2).sum(1)).mean() for j in range(k)])
    M = np.sqrt(sq_dists(C, C))
    if np.allclose(spread, 0) or np.allclose(M, 0):
        return 0.0
    M[M == 0] = np.inf
    R = (spread[:, None] + spread[None, :]) / M
    np.fill_diagonal(R, -np.inf)
    return float(R.max(1).mean())


def _contingency(a, b) -> np.ndarray:
    ca, cb = _codes(a), _codes(b)
    table = np.zeros((ca.max() + 1, cb.max() + 1))
    np.add.at(table, (ca, cb), 1)
    return table


def adjusted_rand(a, b) -> float:
    """Adjusted Rand index of two labelings: 1 identical, about 0 for random ones."""
    t = _contingency(a, b)
    pairs = lambda x: x * (x - 1) / 2.0
    index, rows, cols = pairs(t).sum(), pairs(t.sum(1)).sum(), pairs(t.sum(0)).sum()
    expected = rows * cols / max(pairs(t.sum()), 1.0)
    top = (rows + cols) / 2.0
    return 1.0 if top == expected else float((index - expected) / (top - expected))


def normalized_mutual_info(a, b) -> float:
    """Mutual information over the mean of the two entropies (scikit-learn's arithmetic NMI)."""
    t = _contingency(a, b)
    if t.shape[0] == t.shape[1] == 1:
        return 1.0
    p = t / t.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())
    h = lambda q: float(-(q[q > 0] * np.log(q[q > 0])).sum())
    norm = (h(pa) + h(pb)) / 2.0
    return 0.0 if mi <= 0 or norm <= 0 else float(min(1.0, mi / norm))


def clustering_metrics(X: np.ndarray, clusters, reference=None) -> dict:
    """The test metrics: silhouette and Davies-Bouldin on the features; ARI and NMI when reference labels exist."""
    m = {"silhouette": silhouette(X, clusters), "davies_bouldin": davies_bouldin(X, clusters)}
    if reference is not None:
        m["ari"] = adjusted_rand(reference, clusters)
        m["nmi"] = normalized_mutual_info(reference, clusters)
    return {k: round(float(v), 6) for k, v in m.items() if np.isfinite(v)}
