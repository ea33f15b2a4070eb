"""Classic decoders on lagged spike counts: Wiener filter, MLP and GRU (Glaser et al. 2020), the
Bayesian place-field decoder of position (Zhang et al. 1998), and for classification tasks
multinomial logistic regression and an MLP classifier.

Every estimator follows the scikit-learn pattern: ``fit(X, y, X_valid, y_valid)`` learns from
X (N, n_lags, U) lagged counts and y (N, D) behavior, choosing its regularisation, stopping
epoch or estimate on the validation set, and ``predict(X)`` returns (N, D). The classifiers take
y (N, 1) class indices and predict (N, K) log-probabilities. Each ``fit`` starts from scratch;
fitted attributes end with an underscore.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn

from neuropoyo.evaluation.metrics import median_error, r2_score

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
    """Adam on the MSE (or the cross-entropy, for long class-index targets) with early stopping;
    returns the network with its best validation weights and the number of epochs run.
    data, valid: (inputs, targets) tensors."""
    objective = nn.functional.cross_entropy if data[1].dtype == torch.long else nn.functional.mse_loss
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    best_loss, best_state, waited, epoch = np.inf, copy.deepcopy(network.state_dict()), 0, 0
    for epoch in range(1, max_epochs + 1):
        network.train()
        for batch in torch.randperm(len(data[0]), generator=generator).split(batch_size):
            optimizer.zero_grad()
            objective(network(data[0][batch]), data[1][batch]).backward()
            optimizer.step()
        loss = float(objective(_forward(network, valid[0], batch_size), valid[1]))
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


ESTIMATES = ("map", "mean")  # what BayesDecoder reports of the posterior over grid cells
_CHUNK = 4096  # samples decoded at once (a chunk's posterior is chunk x visited cells)


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) Gaussian weights exp(-(i - j)^2 / 2 sigma^2), cut to 0 beyond 4 sigma (identity for
    sigma 0): multiplying along a grid axis smooths it."""
    distance = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    if sigma == 0:
        return (distance == 0).astype(np.float64)
    return np.where(distance <= 4 * sigma, np.exp(-0.5 * (distance / sigma) ** 2), 0.0)


def _smooth(grid: np.ndarray, sigma: float) -> np.ndarray:
    """``grid`` (K, n_1[, n_2]): K maps smoothed along their spatial axes."""
    for axis in range(1, grid.ndim):
        weights = _gaussian_matrix(grid.shape[axis], sigma)
        grid = np.moveaxis(np.tensordot(grid, weights, axes=([axis], [0])), -1, axis)
    return grid


class BayesDecoder:
    """Memoryless Bayesian place-field decoder (Zhang et al. 1998) for a 1-D or 2-D position.

    X is the design of :func:`~neuropoyo.baselines.binning.design`: (N, n_lags, U + 1), the spike
    counts of each lag then the observed fraction of the lag. Its lags are summed into one window
    per sample (``n_lags * bin_s`` long; the baselines give this decoder one 0.5 s bin,
    :data:`~neuropoyo.baselines.binning.BAYES_BIN_S`); the window's observed fraction f scales the
    expected counts, so a window cut by a gap is still decoded.

    fit: the training positions are binned on a grid of square cells, ``n_bins`` along the widest
    dimension. Each unit's rate map (expected count per whole window) is its summed counts per
    cell over the cell's occupancy (summed f), numerator and occupancy both smoothed by a Gaussian
    of ``sigma_bins`` cells; rates under ``rate_floor`` times the unit's mean are raised to it, so
    a spike where a unit never fired in training is unlikely, not impossible. Only visited cells
    (holding a training sample) are decoded.

    predict: for each sample, the log posterior of each visited cell c is
    ``sum_u n_u log rate_u(c) - f sum_u rate_u(c)`` (independent Poisson units, uniform prior);
    the estimate is the cell centre of the maximum (``"map"``, the classic choice) or the posterior
    mean (``"mean"``). ``estimate="auto"`` takes the one with the lower median error on the
    validation set. Defaults (50 cells, sigma 2 cells, floor 1 % of the mean rate) did best among
    25-100 cells and sigma 0-2 in a 2-fold check within the training split of the nelpy linear
    track (positions in pixels). Fitted: estimate_, valid_errors_ {estimate: median validation error},
    centres_ (C, D) of the visited cells, log_rates_ (C, U), total_rate_ (C,).
    """

    def __init__(self, n_bins: int = 50, sigma_bins: float = 2.0, rate_floor: float = 0.01, estimate: str = "auto"):
        self.n_bins = n_bins
        self.sigma_bins = sigma_bins
        self.rate_floor = rate_floor
        self.estimate = estimate

    def _check_parameters(self) -> None:
        if int(self.n_bins) != self.n_bins or self.n_bins < 2:
            raise ValueError(f"BayesDecoder: n_bins must be an integer >= 2, got {self.n_bins}")
        if not self.sigma_bins >= 0:
            raise ValueError(f"BayesDecoder: sigma_bins must be >= 0 cells, got {self.sigma_bins}")
        if not self.rate_floor > 0:
            raise ValueError(f"BayesDecoder: rate_floor must be > 0 (a fraction of each unit's mean), got {self.rate_floor}")
        if self.estimate not in ("auto", *ESTIMATES):
            raise ValueError(f"BayesDecoder: estimate must be one of auto, {', '.join(ESTIMATES)}; got {self.estimate!r}")

    @staticmethod
    def _window(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Counts (N, U) of each sample's whole window and the window's observed fraction (N,)."""
        if X.shape[2] < 2:
            raise ValueError(
                f"X: expected the design of binning.design, (N, n_lags, U + 1) with the observed "
                f"fraction last; got {X.shape}"
            )
        counts, observed = X[:, :, :-1].sum(axis=1), X[:, :, -1].mean(axis=1)
        if np.any(counts < 0) or np.any((observed < 0) | (observed > 1)):
            raise ValueError("X: counts must be >= 0 and the observed fraction (last feature) in [0, 1]")
        return counts, observed

    def fit(self, X, y, X_valid, y_valid) -> "BayesDecoder":
        X, y, X_valid, y_valid = _check_valid(X, y, X_valid, y_valid)
        self._check_parameters()
        if y.shape[1] not in (1, 2):
            raise ValueError(
                f"BayesDecoder: decodes a 1-D or 2-D position, but y has {y.shape[1]} dimensions; "
                "decode a position stream (e.g. --readout position) or use wiener, mlp or gru"
            )
        counts, observed = self._window(X)
        low, high = y.min(axis=0), y.max(axis=0)
        width = float(np.max(high - low)) / int(self.n_bins)
        if width == 0:
            raise ValueError("BayesDecoder: the training positions never vary; there is no place to decode")
        shape = tuple(int(n) for n in np.maximum(np.ceil((high - low) / width - 1e-9), 1))
        self.low_, self.width_, self.shape_ = low, width, shape
        cell = self._cells(y)
        n_cells = int(np.prod(shape))
        spikes = np.zeros((n_cells, counts.shape[1]))
        np.add.at(spikes, cell, counts)
        occupancy = np.bincount(cell, weights=observed, minlength=n_cells)
        visited = np.bincount(cell, minlength=n_cells) > 0
        spikes = _smooth(spikes.T.reshape(-1, *shape), self.sigma_bins).reshape(len(spikes.T), -1)
        occupancy = _smooth(occupancy.reshape(1, *shape), self.sigma_bins).reshape(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = spikes[:, visited] / occupancy[visited]  # (U, C); 0/0 where no sample saw recorded time
        mean = counts.sum(axis=0) / max(observed.sum(), np.finfo(np.float64).tiny)
        floor = np.maximum(self.rate_floor * mean, np.finfo(np.float64).tiny)[:, None]
        rates = np.maximum(np.nan_to_num(rates), floor)
        index = np.stack(np.unravel_index(np.flatnonzero(visited), shape), axis=1)
        self.centres_ = low + (index + 0.5) * width
        self.log_rates_, self.total_rate_ = np.log(rates).T, rates.sum(axis=0)
        self.input_shape_ = X.shape[1:]
        self.valid_errors_ = {
            name: median_error(y_valid, self._decode(X_valid, name)) for name in ESTIMATES
        }
        self.estimate_ = (
            min(ESTIMATES, key=self.valid_errors_.get) if self.estimate == "auto" else self.estimate
        )
        return self

    def _cells(self, y: np.ndarray) -> np.ndarray:
        """(N,) flat grid cell of each position (positions beyond the grid go to its edge cells)."""
        index = np.floor((y - self.low_) / self.width_).astype(np.int64)
        index = np.clip(index, 0, np.array(self.shape_) - 1)
        return np.ravel_multi_index(tuple(index.T), self.shape_)

    def posterior(self, X) -> np.ndarray:
        """(N, C) posterior over the visited cells (``centres_``) of each sample."""
        X = _check_fitted(self, X)
        counts, observed = self._window(X)
        chunks = []
        for start in range(0, len(X), _CHUNK):
            rows = slice(start, start + _CHUNK)
            log_post = counts[rows] @ self.log_rates_.T - observed[rows, None] * self.total_rate_
            log_post -= log_post.max(axis=1, keepdims=True)
            post = np.exp(log_post)
            chunks.append(post / post.sum(axis=1, keepdims=True))
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.centres_)))

    def _decode(self, X: np.ndarray, estimate: str) -> np.ndarray:
        post = self.posterior(X)
        return self.centres_[post.argmax(axis=1)] if estimate == "map" else post @ self.centres_

    def predict(self, X) -> np.ndarray:
        """(N, D) decoded positions: the posterior's MAP cell centre or mean (``estimate_``)."""
        return self._decode(_check_fitted(self, X), self.estimate_)


def check_labels(y: np.ndarray, n_classes: int, name: str = "y") -> np.ndarray:
    """(N,) int64 class indices from (N, 1) labels, each in [0, n_classes)."""
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[1] != 1:
        raise ValueError(f"{name}: expected class indices of shape (N, 1), got {y.shape}")
    labels = y[:, 0]
    if not (np.all(labels == np.round(labels)) and labels.min() >= 0 and labels.max() < n_classes):
        raise ValueError(f"{name}: labels must be class indices in [0, {n_classes}), got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


def _log_probabilities(logits: torch.Tensor) -> np.ndarray:
    return torch.log_softmax(logits, dim=1).numpy().astype(np.float64)


class LogisticRegression:
    """Multinomial logistic regression on all lagged values (standardised with training
    statistics) plus an intercept, fitted by L-BFGS; the L2 penalty is the one of ``alphas`` with
    the lowest validation cross-entropy (per sample). Fitted: alpha_, valid_losses_, linear_.
    n_classes: K, the number of classes of the task (labels 0..K-1)."""

    def __init__(self, n_classes: int, alphas=ALPHAS, max_iter: int = 200):
        self.n_classes, self.alphas, self.max_iter = n_classes, alphas, max_iter

    def fit(self, X, y, X_valid, y_valid) -> "LogisticRegression":
        X, _, X_valid, _ = _check_valid(X, y, X_valid, y_valid)
        labels, valid_labels = check_labels(y, self.n_classes), check_labels(y_valid, self.n_classes, "y_valid")
        flat = X.reshape(len(X), -1)
        self.x_mean_, self.x_std_ = _moments(flat)
        self.input_shape_ = X.shape[1:]
        inputs, valid_inputs = self._inputs(X), self._inputs(X_valid)
        targets, valid_targets = torch.as_tensor(labels), torch.as_tensor(valid_labels)
        fits, losses = [], []
        for alpha in np.sort(np.asarray(self.alphas, dtype=np.float64)):
            linear = nn.Linear(inputs.shape[1], self.n_classes, dtype=torch.float64)
            nn.init.zeros_(linear.weight), nn.init.zeros_(linear.bias)
            optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=int(self.max_iter), line_search_fn="strong_wolfe")

            def closure():
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(linear(inputs), targets) + alpha / len(inputs) * linear.weight.pow(2).sum()
                loss.backward()
                return loss

            optimizer.step(closure)
            with torch.no_grad():
                losses.append(float(nn.functional.cross_entropy(linear(valid_inputs), valid_targets)))
            fits.append((float(alpha), linear))
        best = int(np.argmin(losses))
        self.alpha_, self.linear_ = fits[best]
        self.valid_losses_ = np.asarray(losses)
        return self

    def _inputs(self, X: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((X.reshape(len(X), -1) - self.x_mean_) / self.x_std_, dtype=torch.float64)

    def predict(self, X) -> np.ndarray:
        """(N, K) log-probabilities of the classes."""
        X = _check_fitted(self, X)
        with torch.no_grad():
            return _log_probabilities(self.linear_(self._inputs(X)))


class MLPClassifier(MLPDecoder):
    """:class:`MLPDecoder`'s network with K outputs trained on the cross-entropy (early stopping
    on the validation cross-entropy); predict gives (N, K) log-probabilities."""

    def __init__(self, n_classes: int, hidden=(256, 256), dropout=0.25, **training):
        super().__init__(hidden, dropout, **training)
        self.n_classes = n_classes

    def fit(self, X, y, X_valid, y_valid) -> "MLPClassifier":
        check_labels(y, self.n_classes), check_labels(y_valid, self.n_classes, "y_valid")
        return super().fit(X, y, X_valid, y_valid)

    def _build(self, n_lags, n_units, n_outputs):
        return super()._build(n_lags, n_units, self.n_classes)

    def _targets(self, y: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(y)[:, 0].astype(np.int64))

    def predict(self, X) -> np.ndarray:
        """(N, K) log-probabilities of the classes."""
        X = _check_fitted(self, X)
        return _log_probabilities(_forward(self.network_, self._inputs(X), int(self.batch_size)))
