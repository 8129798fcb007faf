"""Event-study statistics, pure numpy/scipy/statsmodels: market-model abnormal returns,
CAR/CAAR, the cross-sectional t-test, the Boehmer-Musumeci-Poulsen (BMP) standardized test,
the Corrado (1989) / Cowan (1992) rank test, OLS with Newey-West (HAC) or clustered errors,
regime-difference tests and Benjamini-Hochberg adjusted p-values.

Conventions: returns are simple daily returns (decimals); an event's relative day 0 is its
reaction session; the estimation window ends `gap` sessions before the event window starts,
so no event-window return leaks into the market model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class TestResult:
    """A test of a mean (or a difference) with its two-sided p-value and 95% confidence
    interval. `stat` is t or z; `estimate` is in the unit of the tested quantity."""

    name: str
    estimate: float
    stat: float
    p_value: float
    ci_low: float
    ci_high: float
    n: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MarketModel:
    """OLS fit R_i = alpha + beta R_m + e over the estimation window.
    sigma: residual standard deviation (ddof=2); est_len: observations used;
    mkt_mean, mkt_ss: the estimation window's market mean and sum of squared deviations
    (for the BMP forecast-error correction)."""

    alpha: float
    beta: float
    sigma: float
    est_len: int
    mkt_mean: float
    mkt_ss: float


def fit_market_model(stock: np.ndarray, market: np.ndarray) -> MarketModel:
    """Fit the market model on paired daily returns (NaN pairs dropped)."""
    ok = np.isfinite(stock) & np.isfinite(market)
    y, x = np.asarray(stock, float)[ok], np.asarray(market, float)[ok]
    n = len(y)
    if n < 3:
        return MarketModel(np.nan, np.nan, np.nan, n, np.nan, np.nan)
    xm = x.mean()
    ss = float(((x - xm) ** 2).sum())
    beta = float(((x - xm) * (y - y.mean())).sum() / ss) if ss > 0 else 0.0
    alpha = float(y.mean() - beta * xm)
    resid = y - alpha - beta * x
    sigma = float(np.sqrt((resid**2).sum() / (n - 2)))
    return MarketModel(alpha, beta, sigma, n, float(xm), ss)


@dataclass
class EventPanel:
    """Abnormal returns of N events over a common relative-day window.

    rel_days: (W,) relative days; ar: (W, N) abnormal returns; sar: (W, N) abnormal returns
    divided by their forecast-error standard deviation; sigma: (N,) residual sd;
    est_ar: (L, N) estimation-window residuals (NaN-padded) for the rank test;
    event_ids: (N,) labels; dropped: events without enough estimation data."""

    rel_days: np.ndarray
    ar: np.ndarray
    sar: np.ndarray
    sigma: np.ndarray
    est_ar: np.ndarray
    event_ids: np.ndarray
    dropped: list


def abnormal_returns(stock: np.ndarray, market: np.ndarray, event_pos: np.ndarray,
                     event_ids=None, *, window: tuple[int, int] = (-5, 5), est_len: int = 120,
                     gap: int = 10, min_est: int = 60, model: str = "market") -> EventPanel:
    """Market-model (or mean-adjusted, model="mean") abnormal returns.

    stock: (T, N) daily returns of each event's security on the session grid; market: (T,)
    market returns; event_pos: (N,) row of each event's day 0. The estimation window is the
    `est_len` sessions ending `gap` sessions before the event window's first day."""
    stock = np.asarray(stock, float)
    market = np.asarray(market, float)
    lo, hi = window
    rel = np.arange(lo, hi + 1)
    n = stock.shape[1]
    ids = np.asarray(event_ids if event_ids is not None else np.arange(n))
    ar = np.full((len(rel), n), np.nan)
    sar = np.full((len(rel), n), np.nan)
    sig = np.full(n, np.nan)
    est = np.full((est_len, n), np.nan)
    dropped = []
    for i, p in enumerate(np.asarray(event_pos, int)):
        e_hi = p + lo - gap  # exclusive end of the estimation window
        e_lo = max(e_hi - est_len, 0)
        if e_hi <= 0 or p + hi >= len(market):
            dropped.append(ids[i])
            continue
        y, x = stock[e_lo:e_hi, i], market[e_lo:e_hi]
        if model == "mean":
            ok = np.isfinite(y)
            m = MarketModel(float(np.nanmean(y)) if ok.any() else np.nan, 0.0,
                            float(np.nanstd(y, ddof=1)) if ok.sum() > 1 else np.nan, int(ok.sum()), 0.0, np.inf)
        else:
            m = fit_market_model(y, x)
        if m.est_len < min_est or not np.isfinite(m.sigma) or m.sigma <= 0:
            dropped.append(ids[i])
            continue
        xw = market[p + lo : p + hi + 1]
        ar[:, i] = stock[p + lo : p + hi + 1, i] - m.alpha - m.beta * xw
        # forecast-error variance of an out-of-sample prediction (Patell/BMP correction)
        corr = 1.0 + 1.0 / m.est_len + (0.0 if not np.isfinite(m.mkt_ss) else (xw - m.mkt_mean) ** 2 / m.mkt_ss)
        sar[:, i] = ar[:, i] / (m.sigma * np.sqrt(corr))
        sig[i] = m.sigma
        r = y - m.alpha - m.beta * x
        est[est_len - len(r):, i] = r
    keep = np.isfinite(sig)
    return EventPanel(rel, ar[:, keep], sar[:, keep], sig[keep], est[:, keep], ids[keep], dropped)


def car(panel: EventPanel, start: int, end: int) -> np.ndarray:
    """Cumulative abnormal return of each event over relative days [start, end]."""
    sel = (panel.rel_days >= start) & (panel.rel_days <= end)
    return panel.ar[sel].sum(axis=0)


def caar_path(panel: EventPanel, start: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rel_days, CAAR, standard error) cumulated from `start` (default the window's first
    day); the standard error is the cross-sectional one of the events' CARs."""
    start = panel.rel_days[0] if start is None else start
    sel = panel.rel_days >= start
    cum = np.cumsum(panel.ar[sel], axis=0)
    n = cum.shape[1]
    se = cum.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.full(len(cum), np.nan)
    return panel.rel_days[sel], cum.mean(axis=1), se


def mean_test(x: np.ndarray, name: str = "cross-sectional t") -> TestResult:
    """One-sample t-test of mean(x) = 0 with a t-based 95% interval."""
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        return TestResult(name, float(np.mean(x)) if n else np.nan, np.nan, np.nan, np.nan, np.nan, n)
    m, se = float(x.mean()), float(x.std(ddof=1) / np.sqrt(n))
    t = m / se if se > 0 else np.nan
    q = stats.t.ppf(0.975, n - 1)
    return TestResult(name, m, t, float(2 * stats.t.sf(abs(t), n - 1)), m - q * se, m + q * se, n)


def bmp_test(panel: EventPanel, start: int, end: int) -> TestResult:
    """Boehmer, Musumeci and Poulsen (1991): standardized CARs
    SCAR_i = sum_t SAR_it / sqrt(L), tested with their cross-sectional standard deviation,
    z = mean(SCAR) / (sd(SCAR) / sqrt(N)) (robust to event-induced variance). The estimate
    reported is the CAAR (mean raw CAR) so that its unit is a return."""
    sel = (panel.rel_days >= start) & (panel.rel_days <= end)
    scar = panel.sar[sel].sum(axis=0) / np.sqrt(sel.sum())
    n = len(scar)
    caar = float(car(panel, start, end).mean()) if n else np.nan
    if n < 2:
        return TestResult("BMP", caar, np.nan, np.nan, np.nan, np.nan, n)
    z = float(scar.mean() / (scar.std(ddof=1) / np.sqrt(n)))
    t = mean_test(car(panel, start, end))
    return TestResult("BMP", caar, z, float(2 * stats.norm.sf(abs(z))), t.ci_low, t.ci_high, n)


def corrado_rank_test(panel: EventPanel, start: int, end: int) -> TestResult:
    """Corrado (1989) rank test, extended to a multi-day window as in Cowan (1992).

    Each event's abnormal returns over its estimation and event windows are ranked together
    (K_it over its T_i valid days; U_it = K_it / (T_i + 1) - 1/2). With Ubar_t the
    cross-sectional mean on day t, S_U = sqrt(mean_t Ubar_t^2) over all days, and L the
    window length: z = sum_{t in window} Ubar_t / (sqrt(L) * S_U)."""
    full = np.vstack([panel.est_ar, panel.ar])  # (L_est + W, N), estimation days first
    n = full.shape[1]
    if n < 1:
        return TestResult("Corrado rank", np.nan, np.nan, np.nan, np.nan, np.nan, 0)
    u = np.full(full.shape, np.nan)
    for i in range(n):
        ok = np.isfinite(full[:, i])
        u[ok, i] = stats.rankdata(full[ok, i]) / (ok.sum() + 1) - 0.5
    ubar = np.nanmean(u, axis=1)
    rows = np.isfinite(ubar)
    s_u = float(np.sqrt(np.mean(ubar[rows] ** 2)))
    n_est = panel.est_ar.shape[0]
    sel = np.flatnonzero((panel.rel_days >= start) & (panel.rel_days <= end)) + n_est
    z = float(ubar[sel].sum() / (np.sqrt(len(sel)) * s_u)) if s_u > 0 else np.nan
    return TestResult("Corrado rank", float(np.nanmean(u[sel])), z,
                      float(2 * stats.norm.sf(abs(z))), np.nan, np.nan, n)


def welch_difference(a: np.ndarray, b: np.ndarray, name: str = "difference (Welch)") -> TestResult:
    """mean(a) - mean(b) with Welch's t-test and a Welch-Satterthwaite 95% interval."""
    a = np.asarray(a, float)[np.isfinite(a)]
    b = np.asarray(b, float)[np.isfinite(b)]
    n = len(a) + len(b)
    if len(a) < 2 or len(b) < 2:
        return TestResult(name, np.nan, np.nan, np.nan, np.nan, np.nan, n)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    d, se = float(a.mean() - b.mean()), float(np.sqrt(va + vb))
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = d / se
    q = stats.t.ppf(0.975, df)
    return TestResult(name, d, float(t), float(2 * stats.t.sf(abs(t), df)), d - q * se, d + q * se, n)


def vol_ratio_test(a: np.ndarray, b: np.ndarray, name: str = "vol ratio (F)") -> TestResult:
    """Ratio of root-mean-square of a to that of b (zero-mean standardized returns), with the
    exact F interval and two-sided F-test of equal variance under normality:
    (rms_a^2 / rms_b^2) ~ F(n_a, n_b) when the true ratio is 1."""
    a = np.asarray(a, float)[np.isfinite(a)]
    b = np.asarray(b, float)[np.isfinite(b)]
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return TestResult(name, np.nan, np.nan, np.nan, np.nan, np.nan, na + nb)
    f = float(np.mean(a**2) / np.mean(b**2))
    lo = f / stats.f.ppf(0.975, na, nb)
    hi = f / stats.f.ppf(0.025, na, nb)
    p = float(2 * min(stats.f.cdf(f, na, nb), stats.f.sf(f, na, nb)))
    return TestResult(name, float(np.sqrt(f)), f, min(p, 1.0), float(np.sqrt(lo)), float(np.sqrt(hi)), na + nb)


@dataclass(frozen=True)
class Regression:
    """OLS coefficients with robust standard errors; arrays align with `names`."""

    names: list
    coef: np.ndarray
    se: np.ndarray
    t: np.ndarray
    p: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n: int
    r2: float
    cov_type: str

    def to_dict(self) -> dict:
        return {"n": self.n, "r2": self.r2, "cov_type": self.cov_type, "coefficients": {
            k: {"coef": float(self.coef[i]), "se": float(self.se[i]), "t": float(self.t[i]),
                "p_value": float(self.p[i]), "ci_low": float(self.ci_low[i]), "ci_high": float(self.ci_high[i])}
            for i, k in enumerate(self.names)}}


def newey_west_cov(X: np.ndarray, resid: np.ndarray, maxlags: int) -> np.ndarray:
    """Newey-West (Bartlett kernel) covariance of OLS coefficients, no small-sample factor:
    (X'X)^-1 [sum_l w_l (Gamma_l + Gamma_l')] (X'X)^-1 with w_l = 1 - l/(maxlags+1)."""
    xu = X * resid[:, None]
    s = xu.T @ xu
    for lag in range(1, maxlags + 1):
        g = xu[lag:].T @ xu[:-lag]
        s += (1 - lag / (maxlags + 1)) * (g + g.T)
    bread = np.linalg.inv(X.T @ X)
    return bread @ s @ bread


def default_lags(n: int) -> int:
    """The Newey-West (1994) plug-in lag count floor(4 (n/100)^(2/9))."""
    return int(np.floor(4 * (n / 100.0) ** (2.0 / 9.0)))


def ols(y: np.ndarray, X: np.ndarray, names: list, *, cov: str = "HAC", maxlags: int | None = None,
        groups: np.ndarray | None = None) -> Regression:
    """OLS of y on X (include a constant column yourself) with Newey-West HAC errors
    (cov="HAC", normal-based inference, computed here) or errors clustered by `groups`
    (cov="cluster", via statsmodels, with t(G - 1) inference over G clusters), or classical
    ("nonrobust")."""
    y = np.asarray(y, float)
    X = np.asarray(X, float)
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    y, X = y[ok], X[ok]
    n, k = X.shape
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    r2 = float(1 - (resid**2).sum() / ((y - y.mean()) ** 2).sum()) if n > 1 else np.nan
    if cov == "HAC":
        lags = default_lags(n) if maxlags is None else maxlags
        se = np.sqrt(np.diag(newey_west_cov(X, resid, lags)))
        label = f"HAC (Newey-West, {lags} lags)"
    else:
        import statsmodels.api as sm

        if cov == "cluster":
            fit = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": np.asarray(groups)[ok]})
            label = "clustered"
        else:
            fit = sm.OLS(y, X).fit()
            label = "nonrobust"
        se = np.asarray(fit.bse)
    t = coef / se
    if cov == "nonrobust":
        p = 2 * stats.t.sf(np.abs(t), n - k)
        q = stats.t.ppf(0.975, n - k)
    elif cov == "cluster":
        # t with G - 1 degrees of freedom (Cameron and Miller 2015, sec. VI; Bester, Conley and
        # Hansen 2011 for a few large time blocks): the normal is too narrow with few clusters
        dof = max(len(np.unique(np.asarray(groups)[ok])) - 1, 1)
        p = 2 * stats.t.sf(np.abs(t), dof)
        q = stats.t.ppf(0.975, dof)
        label = f"clustered ({dof + 1} clusters, t with {dof} df)"
    else:
        p = 2 * stats.norm.sf(np.abs(t))
        q = stats.norm.ppf(0.975)
    return Regression(list(names), coef, se, t, p, coef - q * se, coef + q * se, n, r2, label)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted p-values (step-up, monotone, capped at 1); NaNs
    (tests that could not be run) stay NaN and do not count toward the number of tests."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(adj[::-1])[::-1]
    out[order] = np.minimum(adj, 1.0)
    return out
