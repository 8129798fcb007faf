"""eventvol in a notebook: demo lake -> GEX profile -> factor -> backtest -> study -> report.

    python examples/quickstart.py [LAKE_DIR [OUT_DIR [SCALE]]]   (defaults: lake out small)
"""
import sys

import eventvol as ev

lake_dir, out_dir, scale = (sys.argv[1:] + ["lake", "out", "small"][len(sys.argv) - 1:])[:3]
lake = ev.demo(lake_dir, out_dir, scale=scale, report=False).lake  # synthetic market + factors
print(lake.info()[["table", "rows", "first", "last"]])

index = lake.sql('SELECT min("index") AS i FROM index_members')["i"].item()
day = lake.sql("SELECT max(trade_date) AS d FROM option_quotes WHERE underlying = ?", [index])["d"].item()
print(ev.gex(lake, index, day)[["spot", "net_gex_per_1pct", "zero_gamma", "call_wall", "put_wall"]])
profile = ev.gex_profile(lake, index, day)  # net GEX re-priced at spots 0.5 S .. 1.5 S
print(profile.iloc[::25])

gex = ev.factor(lake, "net_gex_per_1pct", index)  # a Series indexed by session
print(f"{index} net GEX: {len(gex)} sessions, negative on {(gex < 0).mean():.0%} of them")

bt = ev.backtest(lake, "earnings-straddle", side=["long", "short"])  # a list sweeps
print(bt.metrics[["side", "trades", "hit_rate", "mean_pnl", "total_pnl"]])
print("compounded return on $100k:", (1 + bt.returns).prod().round(4).to_dict())

h1 = ev.study(lake, "H1")
print(f"H1 {h1.title}: {h1.estimate:.3g} [{h1.ci_low:.3g}, {h1.ci_high:.3g}], p = {h1.p_value:.3g} ({h1.verdict})")

for path in ev.report(lake, out_dir):  # report.html and report.pdf
    print("wrote", path)
