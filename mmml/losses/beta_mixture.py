"""Two-component beta mixture fitted by EM to per-sample losses (clean vs noisy pairs).

The M-step uses weighted moments (Arazo et al., 2019, as in RCAR / DivideMix-style noise
modelling): each component's mean and variance from its responsibilities give its ``alpha`` and
``beta`` in closed form. Guards keep the fit finite: inputs are clipped into ``[eps, 1 - eps]``,
variances are floored, moments that no beta distribution has (variance >= mean * (1 - mean)) are
shrunk, and responsibilities are computed in log space.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numpy as np

_EPS = 1e-4
_MIN_VARIANCE = 1e-6


class DegenerateLossesError(ValueError):
    """The losses carry no information to split on (non-finite, too few, or all equal)."""


def normalize_losses(losses: np.ndarray) -> np.ndarray:
    """Min-max normalise to ``[0, 1]``; ``DegenerateLossesError`` for NaN/inf or all-equal losses."""
    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    if losses.size < 2:
        raise DegenerateLossesError(f"need at least 2 per-sample losses to fit a mixture, got {losses.size}")
    bad = ~np.isfinite(losses)
    if bad.any():
        raise DegenerateLossesError(
            f"{int(bad.sum())} of {losses.size} per-sample losses are NaN or infinite (first at index "
            f"{int(np.flatnonzero(bad)[0])}); the training loss diverged or the inputs are broken"
        )
    low, high = losses.min(), losses.max()
    if high - low <= 1e-12 * max(1.0, abs(high)):
        raise DegenerateLossesError(
            f"all {losses.size} per-sample losses are equal ({high:.6g}); nothing separates clean from noisy pairs"
        )
    return (losses - low) / (high - low)


def _beta_log_pdf(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return (alpha - 1) * np.log(x) + (beta - 1) * np.log1p(-x) - (math.lgamma(alpha) + math.lgamma(beta) - math.lgamma(alpha + beta))


def _moments_to_params(mean: float, variance: float) -> tuple[float, float]:
    mean = float(np.clip(mean, _EPS, 1 - _EPS))
    # a beta distribution needs variance < mean (1 - mean); keep a little inside that bound
    variance = float(np.clip(variance, _MIN_VARIANCE, 0.99 * mean * (1 - mean)))
    common = mean * (1 - mean) / variance - 1
    return max(mean * common, 1e-3), max((1 - mean) * common, 1e-3)


@dataclass
class BetaMixture:
    """Two beta components on ``[0, 1]``; component 0 always has the smaller mean (the clean one).

    Fit with :meth:`fit` on values in ``[0, 1]`` (e.g. :func:`normalize_losses` output); then
    :meth:`posterior` gives each value's component probabilities.
    """

    max_iters: int = 20
    tol: float = 1e-6
    alphas: np.ndarray | None = None
    betas: np.ndarray | None = None
    weights: np.ndarray | None = None
    converged: bool = False

    def fit(self, x: np.ndarray) -> "BetaMixture":
        x = self._clip(x)
        if x.size < 2 or np.ptp(x) == 0:
            raise DegenerateLossesError(f"need at least 2 distinct values in [0, 1] to fit, got {x.size} values")
        # initialise by a split at the median: low values clean, high noisy
        responsibilities = np.stack([x <= np.median(x), x > np.median(x)]).astype(np.float64)
        if responsibilities[1].sum() == 0:  # more than half the values at the maximum
            responsibilities = np.stack([x < x.max(), x >= x.max()]).astype(np.float64)
        previous = -np.inf
        self.converged = False
        for _ in range(self.max_iters):
            self._m_step(x, responsibilities)
            log_joint = self._log_joint(x)
            log_likelihood = np.logaddexp(log_joint[0], log_joint[1])
            responsibilities = np.exp(log_joint - log_likelihood)
            mean_ll = float(log_likelihood.mean())
            if abs(mean_ll - previous) < self.tol:
                self.converged = True
                break
            previous = mean_ll
        self._order_components()
        return self

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """``[2, n]`` probability of each component for each value (columns sum to 1).

        Guard against the tails of beta densities: below the low component's mean a value is never
        less likely low than the mean itself, above the high component's mean never more likely low
        than that mean (a plain posterior can flip at the extremes, e.g. the smallest loss judged noisy).
        """
        if self.alphas is None:
            raise RuntimeError("BetaMixture.posterior called before fit")
        x = self._clip(x)
        low = self._raw_posterior(x)[0]
        low_mean, high_mean = self.means()
        at_means = self._raw_posterior(np.array([low_mean, high_mean]))[0]
        low = np.where(x <= low_mean, np.maximum(low, at_means[0]), low)
        low = np.where(x >= high_mean, np.minimum(low, at_means[1]), low)
        return np.stack([low, 1 - low])

    def _raw_posterior(self, x: np.ndarray) -> np.ndarray:
        log_joint = self._log_joint(x)
        return np.exp(log_joint - np.logaddexp(log_joint[0], log_joint[1]))

    def means(self) -> np.ndarray:
        return self.alphas / (self.alphas + self.betas)

    def variances(self) -> np.ndarray:
        total = self.alphas + self.betas
        return self.alphas * self.betas / (total**2 * (total + 1))

    def separation(self) -> float:
        """Ashman's D: distance of the component means over their pooled standard deviation.

        About 1 or less when the mixture merely splits one unimodal blob in two; larger for two
        real modes (> 2: clearly separated).
        """
        means = self.means()
        return float(abs(means[1] - means[0]) / np.sqrt(self.variances().mean()))

    def _m_step(self, x: np.ndarray, responsibilities: np.ndarray) -> None:
        alphas, betas = np.empty(2), np.empty(2)
        totals = responsibilities.sum(axis=1)
        for k in range(2):
            weight = responsibilities[k] / max(totals[k], 1e-12)
            mean = float((weight * x).sum())
            variance = float((weight * (x - mean) ** 2).sum())
            alphas[k], betas[k] = _moments_to_params(mean, variance)
        self.alphas, self.betas = alphas, betas
        weights = totals / totals.sum()
        self.weights = np.clip(weights, 1e-6, 1.0) / np.clip(weights, 1e-6, 1.0).sum()

    def _log_joint(self, x: np.ndarray) -> np.ndarray:
        return np.stack(
            [np.log(self.weights[k]) + _beta_log_pdf(x, self.alphas[k], self.betas[k]) for k in range(2)]
        )

    def _order_components(self) -> None:
        order = np.argsort(self.means())
        self.alphas, self.betas, self.weights = self.alphas[order], self.betas[order], self.weights[order]

    @staticmethod
    def _clip(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if not np.isfinite(x).all():
            raise DegenerateLossesError("BetaMixture values must be finite")
        return np.clip(x, _EPS, 1 - _EPS)


def clean_probability(losses: np.ndarray, max_iters: int = 20) -> tuple[np.ndarray, BetaMixture]:
    """Posterior probability that each pair is clean (the low-loss component), and the fitted mixture.

    Raises :class:`DegenerateLossesError` for NaN/inf or all-equal losses.
    """
    normalized = normalize_losses(losses)
    mixture = BetaMixture(max_iters=max_iters).fit(normalized)
    return mixture.posterior(normalized)[0], mixture
