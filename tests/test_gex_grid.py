"""The multilevel bracketing grid of zero gamma (`pipelines.nb.multilevel_grid_sums`) reads the
same sign at every grid point as the all-fine recurrence it replaces, so it finds the same
brackets and the same roots; checked on random chains built to have many close crossings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eventvol.pipelines import nb


def random_chain(rng, n, narrow_share):
    """Coefficients (c, inv_sd, a) of n Gaussians in ln(spot) around ln 100: a share of narrow
    (short-dated) ones, the rest wide, weights of both signs that nearly cancel."""
    narrow = rng.random(n) < narrow_share
    sd = np.where(narrow, rng.uniform(0.004, 0.03, n), rng.uniform(0.03, 0.8, n))
    c = math.log(100.0) + rng.normal(0, 0.15, n)
    a = rng.choice([-1.0, 1.0], n) * rng.lognormal(0, 1.5, n) / sd
    return c, 1.0 / sd, a


CASES = [(seed, n, share) for seed in range(6) for n, share in ((40, 0.5), (400, 0.1), (3000, 0.02), (300, 0.0))]


@pytest.mark.parametrize("seed, n, narrow_share", CASES)
def test_multilevel_grid_reads_the_fine_grid_signs(seed, n, narrow_share):
    rng = np.random.default_rng(seed)
    c, inv_sd, a = random_chain(rng, n, narrow_share)
    spot = 100.0
    n_grid = nb.grid_points(inv_sd, 201, 0.5, 1.5)
    lx0 = math.log(50.0)
    dlx = (math.log(150.0) - lx0) / (n_grid - 1)
    fine = nb.log_grid_sums(lx0, dlx, n_grid, c, inv_sd, a)
    fast = nb.multilevel_grid_sums(lx0, dlx, n_grid, c, inv_sd, a)
    assert not np.array_equal(fast, fine)  # the coarse levels ran (not the all-fine fallback)
    np.testing.assert_array_equal(np.sign(fast), np.sign(fine))
    # and therefore the same brackets and roots (to the polish's 1e-13)
    br_fine = nb.profile_brackets(spot, c, inv_sd, a, 201, 0.5, 1.5, True)
    br_fast = nb.profile_brackets(spot, c, inv_sd, a, 201, 0.5, 1.5)
    np.testing.assert_array_equal(br_fast, br_fine)
    roots = nb.profile_roots(spot, c, inv_sd, a, 201, 0.5, 1.5)
    ref = np.array([nb._bracket_root(row, c, inv_sd, a) for row in br_fine])
    np.testing.assert_allclose(roots, ref, rtol=1e-12)


def test_the_cases_exercise_coarse_levels_and_many_roots():
    """Guard against a vacuous test: most contracts run on coarse levels and the chains cross
    zero many times."""
    rng = np.random.default_rng(0)
    c, inv_sd, a = random_chain(rng, 3000, 0.02)
    n_grid = nb.grid_points(inv_sd, 201, 0.5, 1.5)
    dlx = math.log(3.0) / (n_grid - 1)
    assert np.mean(1.0 / (inv_sd * dlx) >= 8.0) > 0.9  # wide enough for level >= 1
    counts = [len(nb.profile_roots(100.0, *random_chain(np.random.default_rng(s), 400, 0.1), 201, 0.5, 1.5))
              for s in range(6)]
    assert max(counts) >= 3


def test_pairs_share_one_gaussian_and_the_profile_is_unchanged():
    """A call and a put with the same strike, T and IV become one term with the summed weight;
    the profile equals the unmerged sum to rounding."""
    strike = np.array([90.0, 90.0, 100.0, 100.0, 110.0])
    t = np.array([0.1, 0.1, 0.1, 0.1, 0.1])
    iv = np.array([0.3, 0.3, 0.25, 0.26, 0.2])  # the 100 pair has two IVs: not merged
    w = np.array([500.0, -800.0, 300.0, -100.0, 700.0])
    z = np.zeros(5)
    c, inv_sd, a = nb.profile_coefficients(strike, t, iv, w, z, z)
    assert len(c) == 4
    spots = np.linspace(70, 130, 61)
    merged = nb.profile(spots, c, inv_sd, a)
    one_by_one = sum(nb.profile(spots, *nb.profile_coefficients(strike[i:i + 1], t[i:i + 1], iv[i:i + 1], w[i:i + 1],
                                                                z[:1], z[:1])) for i in range(5))
    np.testing.assert_allclose(merged, one_by_one, rtol=1e-13, atol=1e-9 * np.abs(one_by_one).max())
