"""Numbers for people: units, readable scales and thousands separators, shared by the CLI's
terminal output and the report (one definition of how a dollar amount or a GEX prints)."""

from __future__ import annotations

import math


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(float(v))


def money(v: float | None, decimals: int = 2) -> str:
    """Dollars with the sign before the symbol: -148.93 -> '-$148.93', 1234.5 -> '$1,234.50'."""
    if not _finite(v):
        return "n/a"
    sign = "-" if v < 0 else ""
    return f"{sign}${abs(v):,.{decimals}f}"


def usd_scaled(v: float | None, decimals: int = 2) -> str:
    """Dollars in a readable scale: -18,706,892,042 -> '-$18.71bn', 2.5e6 -> '$2.50m'."""
    if not _finite(v):
        return "n/a"
    a = abs(v)
    for div, suffix in ((1e12, "tn"), (1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if a >= div:
            return f"{'-' if v < 0 else ''}${a / div:,.{decimals}f}{suffix}"
    return money(v, decimals)


def gex_bn(v: float | None) -> str:
    """Dealer GEX in $bn per 1% move (the field's usual scale), sign first: '-$18.71bn per 1%'."""
    if not _finite(v):
        return "n/a"
    return f"{'-' if v < 0 else ''}${abs(v) / 1e9:,.2f}bn per 1%"


def level(v: float | None) -> str:
    """A price or index level: '4,500.53'."""
    return f"{v:,.2f}" if _finite(v) else "n/a"


def pct(v: float | None, decimals: int = 1) -> str:
    """A decimal fraction as percent: 0.019 -> '1.9%'."""
    return f"{100 * v:.{decimals}f}%" if _finite(v) else "n/a"


def number(v: float | None, sig: int = 4) -> str:
    """A plain number without scientific notation, `sig` significant digits, thousands
    separators: 0.000123 -> '0.000123', 12345.678 -> '12,346'; beyond 1e-5..1e15 a mantissa
    times a power of ten: 4.51e-13 -> '4.510×10⁻¹³' (never 'e' notation)."""
    if not _finite(v):
        return "n/a"
    v = float(v)
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    if mag < -5 or mag > 14:  # a run of zeros helps nobody: mantissa x 10 to the power
        sup = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
        return f"{v / 10 ** mag:.{max(sig - 1, 0)}f}×10{str(mag).translate(sup)}"
    decimals = max(0, sig - 1 - mag)
    return f"{v:,.{decimals}f}"


def with_unit(v: float | None, unit: str = "", scale: float = 1.0, sig: int = 3) -> str:
    """`v * scale` followed by its unit ('%' and 'bp' attach without a space): the report's
    and the CLI's way of printing a study estimate."""
    if not _finite(v):
        return "n/a"
    s = number(float(v) * scale, sig)
    if not unit:
        return s
    return f"{s}{unit}" if unit in ("%", "bp") or unit.startswith("% ") else f"{s} {unit}"


def regime_statement(spot: float | None, zero_gamma: float | None, net_gex_per_1pct: float | None) -> str:
    """One line a PM reads first: 'dealers short gamma: spot 4,500.53 is 1.9% below zero
    gamma 4,591'. Dealers are short gamma when net GEX < 0."""
    if not _finite(net_gex_per_1pct):
        return "dealer gamma unknown: no usable contracts"
    side = "short" if net_gex_per_1pct < 0 else "long"
    head = f"dealers {side} gamma ({gex_bn(net_gex_per_1pct)})"
    if not _finite(zero_gamma) or not _finite(spot):
        return f"{head}: no zero-gamma crossing within 50% of spot {level(spot)}"
    gap = spot / zero_gamma - 1
    where = "above" if gap > 0 else "below"
    return f"{head}: spot {level(spot)} is {abs(gap):.1%} {where} zero gamma {zero_gamma:,.0f}"


def pvalue(p: float | None) -> str:
    """A p-value as people read it: 0.0123 -> '0.012', 2.6e-11 -> '< 0.0001'."""
    if not _finite(p):
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}" if p < 0.01 else f"{p:.3f}".rstrip("0").rstrip(".")


# factor and column names in words (tables, legends, axis labels)
WORDS = {
    "net_gex_per_1pct": "net dealer GEX",
    "net_vex_per_volpt": "net dealer vanna",
    "net_cex_per_day": "net dealer charm",
    "zero_gamma": "zero gamma",
    "dispersion_ratio_21d": "dispersion ratio (21 sessions)",
    "dispersion_ratio_21d_pct3y": "dispersion-ratio percentile (3 years)",
    "comomentum": "momentum crowding",
    "wml_return": "winners-minus-losers return",
    "letf_rebalance_flow_usd": "leveraged-ETF rebalance flow ($)",
    "short_interest_float": "short interest (% of float)",
    "call_gamma_near_spot_share": "call gamma near spot (share)",
    "abs_ar_over_implied_move": "|abnormal return| / implied move",
    "car": "cumulative abnormal return",
    "event_id": "event",
    "entity": "symbol",
}


def words(text: str | None) -> str:
    """A label in words: known factor and column names replaced, 'x < 0' kept, underscores
    gone ('net_gex_per_1pct < 0' -> 'net dealer GEX < 0')."""
    if not text:
        return ""
    import re

    pattern = r"\b(" + "|".join(sorted(map(re.escape, WORDS), key=len, reverse=True)) + r")\b"
    return re.sub(pattern, lambda m: WORDS[m.group(1)], str(text)).replace("_", " ")


# units of stored factor values (see docs/factors.md), for terminal tables
FACTOR_UNITS = {
    "net_gex_per_1pct": "$ per 1% move", "net_gex_per_point": "$ per point", "gex_0dte": "$ per 1% move",
    "gex_le7d": "$ per 1% move", "gex_gt7d": "$ per 1% move", "net_vex_per_volpt": "$ per vol point",
    "net_cex_per_day": "$ of delta per day", "spot": "$", "zero_gamma": "$", "call_wall": "$", "put_wall": "$",
    "zero_dte_volume_share": "share", "contracts_used": "contracts", "letf_rebalance_flow_usd": "$",
}


def factor_value(name: str, v: float | None) -> str:
    """A factor value for a terminal table: dollar amounts in a readable scale, others as plain
    numbers (6 significant digits, thousands separators, no e-notation)."""
    unit = FACTOR_UNITS.get(name, "")
    if unit.startswith("$ ") or unit == "$":
        return level(v) if unit == "$" else usd_scaled(v)
    return number(v, 6)


def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> list[str]:
    """A plain text table: a header line, a rule, then rows; columns padded to their widest
    cell (columns in `right` right-aligned, default all but the first two)."""
    right = set(range(2, len(headers))) if right is None else right
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]

    def fmt(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [fmt(headers), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
