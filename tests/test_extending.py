"""docs/extending.md's worked examples run as written (a vendor format, a factor family, a
strategy, a hypothesis with its own study kind), checked against hand computations; and a
new hypothesis with a new mechanism estimator runs through the registry, the size study's
in-memory path and the API without editing any eventvol module."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
BLOCK = re.compile(r"```(python|toml)\n(.*?)```", re.S)


def doc_blocks() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(files to write: relative path -> text, examples in order: (name, code))."""
    files, examples = {}, []
    for _, body in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        first = body.splitlines()[0]
        if first.startswith("# file: "):
            files[first[len("# file: "):].strip()] = body
        elif first.startswith("# example: "):
            examples.append((first[len("# example: "):].strip(), body))
    return files, examples


@pytest.fixture
def registries():
    """Snapshot every registry the examples add to, and restore it afterwards."""
    from eventvol.data_lake.ingest import formats
    from eventvol.pipelines import registry as fam
    from eventvol.research.studies import kinds
    from eventvol.strategies import catalog

    fam.load_families()
    kinds.load_kinds()
    saved = [(d, dict(d)) for d in (formats.FORMATS, fam.REGISTRY, catalog.STRATEGIES, kinds.KINDS, kinds.MECHANISMS)]
    path = list(sys.path)
    yield
    for d, copy in saved:
        d.clear()
        d.update(copy)
    sys.path[:] = path
    for mod in ("drop_rebound_kind", "gap_estimator"):
        sys.modules.pop(mod, None)


def test_the_guide_has_the_four_examples():
    files, examples = doc_blocks()
    assert [n for n, _ in examples] == ["vendor-format", "factor-family", "strategy", "hypothesis"]
    assert set(files) == {"drop_rebound_kind.py", "hypotheses/h8_drop_rebound.toml"}


def test_worked_examples_run_and_match_hand_computations(lake_copy, tmp_path, registries):
    files, examples = doc_blocks()
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    ns = {"lake": lake_copy, "workdir": tmp_path}
    for name, code in examples:
        exec(compile(code, f"{DOC}:{name}", "exec"), ns)  # noqa: S102 - the documented example itself

    # 1. the vendor rows are in the lake as written, the unparseable one quarantined
    acme = lake_copy.read("bars", where="symbol = ?", params=["VNDR"])
    assert acme.sort_values("trade_date")["close"].tolist() == [10.50, 10.75]

    # 2. the factor by hand for one symbol and its last date: (max - min) / last close over 21 closes
    bars = lake_copy.read("bars", columns=["trade_date", "symbol", "close"])
    sym = "SYNX"
    c = bars[bars["symbol"] == sym].sort_values("trade_date")["close"].to_numpy()
    hand = (c[-21:].max() - c[-21:].min()) / c[-1]
    got = ns["ranges"]
    got = got[got["entity"] == sym] if "entity" in got.columns else got
    assert float(np.asarray(got["value"])[-1]) == pytest.approx(hand, rel=1e-12)

    # 3. the strategy's P&L by hand: quantity x (next close - close) after each >0.5% drop
    idx = bars[bars["symbol"] == sym].sort_values("trade_date")["close"].to_numpy()
    r = idx[1:] / idx[:-1] - 1
    fell = np.flatnonzero(r[:-1] < -0.005) + 1
    t0 = ns["result"].trades
    t0 = t0[(t0["param_id"] == 0) & t0["traded"]]
    assert len(t0) == len(fell) > 0
    np.testing.assert_allclose(t0["pnl"].to_numpy(), idx[fell + 1] - idx[fell], rtol=1e-12)

    # 4. the hypothesis: t-test of next-session returns after >1% drops, by hand with scipy
    nxt = r[1:][r[:-1] < -0.01]
    h8 = ns["h8"]
    t = stats.ttest_1samp(nxt, 0.0)
    assert h8.estimate == pytest.approx(nxt.mean(), rel=1e-12) and h8.p_value == pytest.approx(t.pvalue, rel=1e-10)
    assert h8.verdict == ("held" if t.pvalue < 0.05 and nxt.mean() > 0 else "not held")
    assert h8.label == "next-session index return after a >1% drop" and h8.scale == 100


GAP_MODULE = '''
"""Mechanism estimator `index_gap_share`: share of the index's sessions that close up."""
import numpy as np
from scipy import stats

from eventvol.research.studies.kinds import estimate_dict, register_mechanism


def run(data, spec, params):
    index = data.market_symbol()
    r = data.returns([index])[index].dropna().to_numpy()
    k, n = int((r > float(params.get("above", 0.0))).sum()), len(r)
    res = stats.binomtest(k, n, 0.5)
    ci = res.proportion_ci(0.95)
    return estimate_dict("share of sessions closing up (binomial)", k / n, ci.low, ci.high, res.pvalue, n, null=0.5)


register_mechanism("index_up_share", run, params=("above",))
'''

GAP_TOML = '''
name = "H9"
title = "The index closes up on more than half of its sessions"
claim = "More index sessions close up than down."
kind = "event_study"
plugins = ["gap_estimator"]

[events]
kinds = ["earnings"]

[test]
expected = "positive"
counted = "mechanism"

[mechanism]
estimator = "index_up_share"
above = 0.0

[report]
label = "share of index sessions closing up"
unit = "%"
scale = 100

[synthetic]
off = { }
'''


def test_new_hypothesis_and_estimator_without_editing_eventvol(tmp_path, registries):
    """A TOML file and one new estimator module: loaded, validated, run on in-memory
    synthetic tables through the size study's path, the counted test by hand."""
    import dataclasses

    from eventvol.data_lake.synthetic import SyntheticConfig, simulate
    from eventvol.research.studies.registry import load_hypotheses, run_hypothesis
    from eventvol.research.studies.size import result_of, synthetic_data
    from eventvol.research.studies.spec import SpecError

    (tmp_path / "gap_estimator.py").write_text(GAP_MODULE)
    folder = tmp_path / "hyp"
    folder.mkdir()
    (folder / "h9.toml").write_text(GAP_TOML)
    sys.path.insert(0, str(tmp_path))
    spec = load_hypotheses(folder)["H9"]
    tables = simulate(dataclasses.replace(SyntheticConfig(), seed=5, start="2023-01-03", end="2023-06-30",
                                          n_stocks=4, n_members=3, stock_expiries=1, index_monthlies=1,
                                          index_weeklies_days=7, index_dailies=1))
    r = run_hypothesis(synthetic_data(tables), spec)
    closes = tables["bars"].to_pandas() if hasattr(tables["bars"], "to_pandas") else tables["bars"]
    c = closes[closes["symbol"] == "SYNX"].sort_values("trade_date")["close"].to_numpy()
    up = int((np.diff(c) > 0).sum())
    assert r.evaluable and r.estimate == pytest.approx(up / (len(c) - 1), rel=1e-12)
    assert r.p_value == pytest.approx(stats.binomtest(up, len(c) - 1, 0.5).pvalue, rel=1e-12)
    assert r.null_value == 0.5 and r.held == (r.p_value < 0.05 and r.estimate > 0.5)
    # the size study's path gives the same counted test
    assert result_of(spec, tables)["p_value"] == r.p_value
    # an estimator parameter it did not declare is refused, naming the file and the key
    (folder / "h9.toml").write_text(GAP_TOML.replace("above = 0.0", "above = 0.0\nbelow = 1.0"))
    with pytest.raises(SpecError, match=r"h9.toml has unknown key 'below' in \[mechanism\]"):
        load_hypotheses(folder)
    # a plugin module that does not exist is one clear sentence
    (folder / "h9.toml").write_text(GAP_TOML.replace('"gap_estimator"', '"no_such_module_xyz"'))
    with pytest.raises(SpecError, match="plugin module 'no_such_module_xyz', which cannot be imported"):
        load_hypotheses(folder)
