"""Classic decoders on lagged spike counts (Glaser et al. 2020): Wiener filter, MLP and GRU.

Every estimator follows the scikit-learn pattern: ``fit(X, y, X_valid, y_valid)`` learns from
X (N, n_lags, U) lagged counts and y (N, D) behavior, choosing its regularisation or stopping
epoch on the validation set, and ``predict(X)`` returns (N, D). Each ``fit`` starts from scratch;
fitted attributes end with an underscore.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn

from neuropoyo.evaluation.metrics import r2_score

ALPHAS = tuple(10.0 ** np.arange(-2, 6))  # ridge penalties tried by the Wiener filter


def check_X(X: np.ndarray, name: str = "X") -> np.ndarray:
    """X as float64 (N, n_lags, U) with finite values."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"{name}: expected lagged counts of shape (N, n_lags, U), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return X


def check_Xy(X: np.ndarray, y: np.ndarray, name: str = "X") -> tuple[np.ndarray, np.ndarray]:
    """X (N, n_lags, U) and y (N, D) as float64, with matching N >= 2 and finite values."""
    X = check_X(X, name)
    y = np.asarray(y, dtype=np.float64)
    target = "y" if name == "X" else "y_valid"
    if y.ndim != 2:
        raise ValueError(f"{target}: expected behavior of shape (N, D), got {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{name} has {X.shape[0]} samples but {target} has {y.shape[0]}")
    if X.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 samples, got {X.shape[0]}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{target}: contains NaN or infinite values")
    return X, y


def _check_valid(X, y, X_valid, y_valid):
    """Checked train and validation arrays with the same lag, unit and output shapes."""
    X, y = check_Xy(X, y)
    X_valid, y_valid = check_Xy(X_valid, y_valid, "X_valid")
    if X_valid.shape[1:] != X.shape[1:] or y_valid.shape[1] != y.shape[1]:
        raise ValueError(
            f"validation shapes {X_valid.shape[1:]} -> {y_valid.shape[1]} differ from training "
            f"shapes {X.shape[1:]} -> {y.shape[1]}"
        )
    return X, y, X_valid, y_valid


def _check_fitted(estimator, X: np.ndarray) -> np.ndarray:
    if not hasattr(estimator, "input_shape_"):
        raise RuntimeError(f"{type(estimator).__name__}: call fit before predict")
    X = check_X(X)
    if X.shape[1:] != estimator.input_shape_:
        raise ValueError(
            f"X: fitted on (n_lags, U) = {estimator.input_shape_}, got {X.shape[1:]}"
        )
    return X


def _moments(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over axis 0; constant columns get std 1 so they standardise to 0."""
    std = a.std(axis=0)
    return a.mean(axis=0), np.where(std > 0, std, 1.0)


def ridge_path(Z: np.ndarray, t: np.ndarray, alphas) -> list[np.ndarray]:
    """Ridge weights (P, D) of centred targets t (N, D) on centred features Z (N, P), per alpha.

    One eigendecomposition of Z'Z serves every alpha; directions with (near) zero penalised
    eigenvalue get zero weight, so alpha = 0 gives the minimum-norm least-squares solution.
    """
    eigval, eigvec = np.linalg.eigh(Z.T @ Z)
    projected = eigvec.T @ (Z.T @ t)
    floor = np.finfo(np.float64).eps * max(eigval.max(initial=0.0), 1.0) * Z.shape[1]
    weights = []
    for alpha in alphas:
        shrunk = eigval + alpha
        scale = np.divide(1.0, shrunk, out=np.zeros_like(shrunk), where=shrunk > floor)
        weights.append(eigvec @ (scale[:, None] * projected))
    return weights


class WienerFilter:
    """Ridge regression of y on all lagged counts plus an intercept.

    Features are standardised with training statistics; the penalty is the one of ``alphas`` with
    the best validation R2 (the smallest on ties). Fitted: alpha_, valid_scores_ (one R2 per alpha,
    alphas in increasing order), coef_ (n_lags, U, D) and intercept_ (D,) in the original units,
    so predict(X) = X.reshape(N, -1) @ coef + intercept.
    """

    def __init__(self, alphas=ALPHAS):
        self.alphas = alphas

    def fit(self, X, y, X_valid, y_valid) -> "WienerFilter":
        X, y, X_valid, y_valid = _check_valid(X, y, X_valid, y_valid)
        alphas = np.sort(np.asarray(self.alphas, dtype=np.float64).reshape(-1))
        if alphas.size == 0 or np.any(alphas < 0):
            raise ValueError(
                f"WienerFilter: alphas must be a non-empty list of values >= 0, got {self.alphas}"
            )
        flat = X.reshape(len(X), -1)
        x_mean, x_std = _moments(flat)
        y_mean = y.mean(axis=0)
        path = ridge_path((flat - x_mean) / x_std, y - y_mean, alphas)
        fits = [self._unstandardise(w, x_mean, x_std, y_mean) for w in path]
        valid_flat = X_valid.reshape(len(X_valid), -1)
        scores = [r2_score(y_valid, valid_flat @ coef + b) for coef, b in fits]
        best = int(np.argmax(scores))
        self.alpha_, self.valid_scores_ = float(alphas[best]), np.asarray(scores)
        self.input_shape_ = X.shape[1:]
        self.coef_ = fits[best][0].reshape(*X.shape[1:], y.shape[1])
        self.intercept_ = fits[best][1]
        return self

    @staticmethod
    def _unstandardise(w, x_mean, x_std, y_mean) -> tuple[np.ndarray, np.ndarray]:
        coef = w / x_std[:, None]
        return coef, y_mean - x_mean @ coef

    def predict(self, X) -> np.ndarray:
        """(N, D) decoded behavior."""
        X = _check_fitted(self, X)
        coef = self.coef_.reshape(-1, self.coef_.shape[-1])
        return X.reshape(len(X), -1) @ coef + self.intercept_


def train_network(
    network: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    *,
    lr: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    generator: torch.Generator,
) -> tuple[nn.Module, int]:
    """Adam on the MSE with early stopping; returns the network with its best validation weights
    and the number of epochs run. data, valid: (inputs, targets) tensors."""
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    best_loss, best_state, waited, epoch = np.inf, copy.deepcopy(network.state_dict()), 0, 0
    for epoch in range(1, max_epochs + 1):
        network.train()
        for batch in torch.randperm(len(data[0]), generator=generator).split(batch_size):
            optimizer.zero_grad()
            nn.functional.mse_loss(network(data[0][batch]), data[1][batch]).backward()
            optimizer.step()
        loss = float(nn.functional.mse_loss(_forward(network, valid[0], batch_size), valid[1]))
        if loss < best_loss:
            best_loss, best_state, waited = loss, copy.deepcopy(network.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    network.load_state_dict(best_state)
    return network, epoch


def _forward(network: nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Outputs of the network in eval mode, computed batch by batch without gradients."""
    network.eval()
    with torch.no_grad():
        return torch.cat([network(chunk) for chunk in inputs.split(batch_size)])


class _NetworkDecoder(ABC):
    """fit / predict for torch decoders: z-scored inputs and targets, seeded training with early
    stopping (see :func:`train_network`). Subclasses build the network for (n_lags, U) -> D."""

    def __init__(self, hidden, dropout, *, lr=1e-3, batch_size=128, max_epochs=100, patience=5, seed=0):
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed

    @abstractmethod
    def _build(self, n_lags: int, n_units: int, n_outputs: int) -> nn.Module:
        """The untrained network mapping (B, n_lags, U) to (B, D)."""

    def fit(self, X, y, X_valid, y_valid):
        X, y, X_valid, y_valid = _check_valid(X, y, X_valid, y_valid)
        for name in ("batch_size", "max_epochs", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(
                    f"{type(self).__name__}: {name} must be >= 1, got {getattr(self, name)}"
                )
        self.x_mean_, self.x_std_ = _moments(X)
        self.y_mean_, self.y_std_ = _moments(y)
        self.input_shape_ = X.shape[1:]
        # Seed init, dropout and shuffling without touching the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            network = self._build(*X.shape[1:], y.shape[1])
            self.network_, self.n_epochs_ = train_network(
                network,
                (self._inputs(X), self._targets(y)),
                (self._inputs(X_valid), self._targets(y_valid)),
                lr=self.lr,
                batch_size=int(self.batch_size),
                max_epochs=int(self.max_epochs),
                patience=int(self.patience),
                generator=torch.Generator().manual_seed(self.seed),
            )
        return self

    def _inputs(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((X - self.x_mean_) / self.x_std_, dtype=torch.float32)

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((y - self.y_mean_) / self.y_std_, dtype=torch.float32)

    def predict(self, X) -> np.ndarray:
        """(N, D) decoded behavior."""
        X = _check_fitted(self, X)
        out = _forward(self.network_, self._inputs(X), int(self.batch_size)).numpy()
        return out.astype(np.float64) * self.y_std_ + self.y_mean_


class MLPDecoder(_NetworkDecoder):
    """Fully connected network on the flattened lags: hidden layers with ReLU and dropout."""

    def __init__(self, hidden=(256, 256), dropout=0.25, **training):
        super().__init__(hidden, dropout, **training)

    def _build(self, n_lags, n_units, n_outputs):
        layers, width = [nn.Flatten()], n_lags * n_units
        for size in self.hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(self.dropout)]
            width = size
        return nn.Sequential(*layers, nn.Linear(width, n_outputs))


class _GRUNetwork(nn.Module):
    """(B, n_lags, U) with lag 0 the latest bin -> GRU from oldest to latest -> last state -> D."""

    def __init__(self, n_units: int, hidden: int, dropout: float, n_outputs: int):
        super().__init__()
        self.gru = nn.GRU(n_units, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.readout = nn.Linear(hidden, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(x.flip(1))  # chronological order
        return self.readout(self.dropout(last[-1]))


class GRUDecoder(_NetworkDecoder):
    """GRU reading the lag bins in time order; its last state is read out linearly."""

    def __init__(self, hidden=128, dropout=0.25, **training):
        super().__init__(hidden, dropout, **training)

    def _build(self, n_lags, n_units, n_outputs):
        return _GRUNetwork(n_units, self.hidden, self.dropout, n_outputs)
