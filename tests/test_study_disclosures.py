"""H7: the planted disclosure effect of the synthetic market is recovered from the lake's
own disclosure events (the CI of CAR[0,+1] covers twice the planted daily abnormal return)."""

from __future__ import annotations

import pytest

from eventvol.data_lake import Lake
from eventvol.data_lake.synthetic import SyntheticConfig, build
from eventvol.research.studies.registry import load_hypotheses, run_hypothesis


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    """15 months, so that every disclosure has a market-model estimation window."""
    lk = Lake.open(tmp_path_factory.mktemp("h7") / "lake", create=True)
    build(lk, SyntheticConfig(seed=11, start="2023-01-03", end="2024-03-28", n_stocks=6, n_members=5))
    return lk


def test_h7_recovers_the_planted_disclosure_effect(lake):
    spec = load_hypotheses()["H7"]
    res = run_hypothesis(lake, spec).to_dict()
    assert res["status"] == "ok" and res["n_events"] >= 3
    planted = 2 * lake.read("truth").set_index("parameter").loc["daily_abnormal_return_mean", "value"]
    assert res["truth"]["value"] == pytest.approx(planted)
    assert res["primary"]["estimate"] < 0
    assert res["truth"]["covered"] is True
    assert res["primary"]["ci_low"] <= planted <= res["primary"]["ci_high"]
