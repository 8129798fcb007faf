"""The PM research report: self-contained HTML with every data text escaped, sections by the
lake's data (and a list of what was left out), units on estimates, top-N lists with full CSVs
beside the report, a backtest tear sheet, and the rendered artefacts checked as a reader sees
them: PDF pages rasterised (non-blank, page count), no heading left alone at the bottom of a
page (text positions from pdftotext -bbox), and the HTML rendered in headless Chromium."""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from eventvol.data_lake import Lake

EVIL = "<script>alert(1)</script>"
MAX_PAGES = 12


@pytest.fixture(scope="module")
def report_dir(small_lake_path, tmp_path_factory):
    """A report over a copy of the small lake in which a stock is named `<script>...` and
    a user event list (H6) names events `<script>...`, with the earnings-straddle tear sheet."""
    from eventvol.research.report import backtest_for_report, build_research_report

    root = tmp_path_factory.mktemp("rep")
    shutil.copytree(small_lake_path, root / "lake")
    lake = Lake.open(root / "lake")
    bars = lake.read("bars", where="symbol = 'BOLT'")
    bars["symbol"] = EVIL
    with lake.writer():
        lake.write("bars", bars)
    dates = sorted(bars["trade_date"])[100:160:6]
    ev = root / "events.csv"
    ev.write_text("date,symbol,name\n" + "".join(f'{d},"{EVIL}","{EVIL} 13F #{i}"\n' for i, d in enumerate(dates)))
    out = root / "out"
    bt = backtest_for_report(lake, "earnings-straddle", ["side=long"])
    # every chart the report draws passes the chart rules (title, axis units, legend entries)
    from eventvol.research import charts as C

    drawn, draw = [], C.png_b64

    def checked(fig):
        drawn.append((fig.axes[0].get_title("left") or fig.axes[0].get_title(), C.problems(fig)))
        return draw(fig)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "png_b64", checked)
        paths = build_research_report(lake, out, events_file=ev, pdf=True, backtests=[bt])
    assert [p.name for p in paths] == ["report.html", "report.pdf"]
    (out / "charts.json").write_text(json.dumps(drawn))
    return out


def test_every_chart_has_title_units_and_legend(report_dir):
    drawn = json.loads((report_dir / "charts.json").read_text())
    assert len(drawn) >= 10  # positioning x3, history, CAARs, regimes, tear sheet, dashboards
    assert [(t, p) for t, p in drawn if p] == []


def test_html_is_self_contained_and_escapes_data_text(report_dir):
    html = (report_dir / "report.html").read_text()
    assert "<script" not in html.lower()  # the only script tags would have come from data
    assert "http://" not in html and "https://" not in html and "src=\"data:image/png;base64," in html
    for section in ('id="summary"', 'id="positioning"', 'id="study-H1"', 'id="backtest-earnings-straddle"',
                    'id="dashboards"', 'id="provenance"'):
        assert section in html
    summary = html[html.index('id="summary"'):html.index('id="positioning"')]
    assert all(f"<b>H{i}</b>" in summary for i in range(1, 7)) and "95% CI" in summary
    # the counted test is named beside each verdict, and the left-out sections say why
    assert summary.count("Verdict (counted test)") == 1
    assert "Left out of this report" in summary and "Momentum regimes" in summary
    assert "monthly MktRF" in summary


def test_estimates_carry_units_and_readable_numbers(report_dir):
    """No e-notation and no raw `not (...)` expressions anywhere a reader looks; the summary
    estimates carry the study's unit."""
    from eventvol.research.studies.registry import load_hypotheses

    html = (report_dir / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]+"', "", html))
    assert not re.search(r"\d(\.\d+)?e[-+]\d", text), re.search(r".{40}\d(\.\d+)?e[-+]\d.{20}", text)
    assert "not (" not in htmllib.unescape(text)
    specs = load_hypotheses()
    units = {s.section("report").get("unit") for s in specs.values()} - {None, ""}
    assert units and any(htmllib.escape(u) in html for u in units)


def test_event_lists_are_top_n_with_full_csv_beside(report_dir):
    from eventvol.research.report import TOP_N

    html = (report_dir / "report.html").read_text()
    csvs = sorted(p.name for p in report_dir.glob("events_*.csv"))
    assert csvs, "no event list written"
    for name in csvs:
        full = pd.read_csv(report_dir / name)
        assert f'href="{name}"' in html
        study = name.removeprefix("events_").removesuffix(".csv")
        block = html[html.index(f'id="study-{study}"'):]
        block = block[:block.index("</section>")]
        shown = block[block.index("<h3>Events"):].count("<tr>") - 1
        assert shown == min(TOP_N, len(full))
        assert f"of {len(full)} by" in block
        # market-wide events name the index, never "nan"
        assert not full["symbol"].isna().any() and "nan" not in set(full["symbol"].astype(str))
    trades = pd.read_csv(report_dir / "trades_earnings-straddle.csv")
    assert 'href="trades_earnings-straddle.csv"' in html and len(trades) > TOP_N


def test_backtest_tear_sheet_charts_the_api_returns(small_lake):
    """The tear sheet's equity curve is the cumulative sum of the API's daily `.returns` (in %
    of capital) and its drawdown the fall from the running peak, read back off the chart."""
    from eventvol.research import charts as C
    from eventvol.research import tearsheet as T
    from eventvol.research.report import backtest_for_report

    res = backtest_for_report(small_lake, "earnings-straddle")
    bt = T.from_result(res)
    r = res.returns
    assert isinstance(r, pd.Series) and bt.returns.equals(r.astype(float))
    fig = T.equity_chart(bt)
    assert C.problems(fig) == []
    line = fig.axes[0].get_lines()[0]
    want = 100 * r.sort_index().cumsum()
    np.testing.assert_allclose(np.asarray(line.get_ydata(), float), want.to_numpy(), rtol=0, atol=1e-12)
    # total P&L / capital = the last point of the curve
    traded = res.trades[res.trades["traded"]]
    assert want.iloc[-1] == pytest.approx(100 * traded["pnl"].sum() / res.capital, rel=1e-12)
    for f in (T.distribution_chart(bt),):
        assert C.problems(f) == []
    closes = small_lake.read("bars", columns=["trade_date", "symbol", "close"])
    moves = T.realized_moves(T.traded(bt), closes)
    # one realized move by hand
    row = T.traded(bt).iloc[0]
    c = closes.assign(trade_date=pd.to_datetime(closes["trade_date"])).set_index(["symbol", "trade_date"])["close"]
    hand = abs(c[(row["underlying"], pd.Timestamp(row["exit_session"]))] / c[(row["underlying"], pd.Timestamp(row["entry_session"]))] - 1)
    assert moves.iloc[0] == pytest.approx(hand, rel=1e-12)
    assert C.problems(T.move_scatter(bt, moves)) == []


def test_report_refuses_a_sweep_in_a_tear_sheet():
    from eventvol.data_lake import NoDataError
    from eventvol.research.report import backtest_params

    assert backtest_params(["a", "b"], ["side=long", "b:delta=0.3"]) == {"a": ["side=long"], "b": ["side=long", "delta=0.3"]}
    with pytest.raises(NoDataError, match="one value per parameter"):
        backtest_params(["a"], ["side=long,short"])
    with pytest.raises(NoDataError, match="not among --backtest"):
        backtest_params(["a"], ["c:side=long"])


# ------------------------------------------------------------------- rendered pages

def _pages(report_dir):
    if shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None:
        pytest.skip("pdftoppm/pdftotext (poppler-utils) are not installed; apt-get install -y poppler-utils")
    out = report_dir / "pages"
    if not out.exists():
        out.mkdir()
        subprocess.run(["pdftoppm", "-r", "40", "-png", str(report_dir / "report.pdf"), str(out / "page")], check=True)
    return sorted(out.glob("page-*.png"))


def test_pdf_pages_render_non_blank_within_the_page_budget(report_dir):
    pdf = (report_dir / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    pages = _pages(report_dir)
    assert 4 <= len(pages) <= MAX_PAGES
    from PIL import Image

    for i, p in enumerate(pages):
        img = np.asarray(Image.open(p).convert("L"), float)
        # ink above the footer: the first page is full, the last may hold a few lines only
        ink = (img[: int(img.shape[0] * 0.9)] < 200).mean()
        assert ink > (0.03 if i == 0 else 0.002), (p.name, ink)


def bbox_lines(pdf_path) -> list[list[tuple[float, str]]]:
    """Per page, the text lines (y of the line top in points, text), top to bottom, from
    `pdftotext -bbox`, without the footer (the bottom page margin)."""
    doc = subprocess.run(["pdftotext", "-bbox", str(pdf_path), "-"], capture_output=True, text=True, check=True).stdout
    pages = []
    for page in re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', doc, re.S):
        height = float(page.group(2))
        words = [(float(m.group(2)), float(m.group(1)), htmllib.unescape(m.group(3)))
                 for m in re.finditer(r'<word xMin="([\d.]+)" yMin="([\d.]+)"[^>]*>(.*?)</word>', page.group(3))]
        words = [w for w in words if w[0] < height - 40]  # the footer sits in the 16 mm bottom margin
        lines: list[list] = []
        for y, x, t in sorted(words):
            if lines and abs(lines[-1][0] - y) < 2.5:
                lines[-1][1].append((x, t))
            else:
                lines.append([y, [(x, t)]])
        pages.append([(y, " ".join(t for _, t in sorted(ws))) for y, ws in lines])
    return pages


def headings(html: str) -> list[str]:
    return [re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", "", h))).strip()
            for h in re.findall(r"<h[23][^>]*>(.*?)</h[23]>", html, re.S)]


def orphaned_headings(pdf_path, html: str) -> list[str]:
    """Headings whose text ends a page (nothing of their section below them on that page)."""
    heads = [h for h in headings(html) if len(h) >= 4]
    out = []
    for i, lines in enumerate(bbox_lines(pdf_path)):
        if not lines:
            continue
        last = lines[-1][1]
        if any(h.endswith(last) or h == last for h in heads) and len(last) >= 4:
            out.append(f"page {i + 1}: {last!r}")
    return out


def test_no_heading_is_orphaned_at_a_page_bottom(report_dir):
    _pages(report_dir)
    html = (report_dir / "report.html").read_text()
    assert orphaned_headings(report_dir / "report.pdf", html) == []


def test_the_orphan_check_catches_an_orphan_and_the_css_rule_prevents_it(tmp_path):
    """A page filled to just above the bottom, then a heading and a block too tall to fit:
    with breaks after headings allowed (`break-after: auto`, overriding WeasyPrint's default)
    the heading ends page 1 and the check reports it; with the report's stylesheet it moves
    to page 2."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    import weasyprint

    from eventvol.research.report import TEMPLATES

    css = re.search(r"<style>(.*?)</style>", (TEMPLATES / "research_report.html.j2").read_text(), re.S).group(1)
    body = ('<div style="height: 232mm">filler</div><h2>Lonely heading here</h2>'
            '<figure><div style="height: 120mm; background: #eee">block</div></figure><p>after</p>')
    results = {}
    plain = "@page { size: A4; margin: 15mm 14mm 16mm 14mm; } figure { break-inside: avoid; } h2 { break-after: auto; }"
    for name, style in (("plain", plain),
                        ("report", css)):
        html = f"<html><head><style>{style}</style></head><body>{body}</body></html>"
        pdf = tmp_path / f"{name}.pdf"
        weasyprint.HTML(string=html).write_pdf(pdf)
        results[name] = orphaned_headings(pdf, html)
    assert results["plain"] == ["page 1: 'Lonely heading here'"]
    assert results["report"] == []


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (apt-get install -y chromium); skipping the browser check")


def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    chrome = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    url = (report_dir / "report.html").as_uri()
    dom = subprocess.run([chrome, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert 'id="summary"' in text and 'id="positioning"' in text and 'id="provenance"' in text
    assert "<script>alert(1)" not in text  # the escaped name did not become a script
    assert len(re.findall(r"<img ", text)) >= 6
    shot = tmp_path / "shot.png"
    res = subprocess.run([chrome, *flags, f"--screenshot={shot}", "--window-size=1200,1600", url],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), float)
    assert img.std() > 10 and (img < 200).mean() > 0.02  # text and charts were drawn
    # Chromium's own print layout of the same HTML: a PDF of non-blank pages
    pdf = tmp_path / "chromium.pdf"
    res = subprocess.run([chrome, *flags, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", url],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0 and pdf.read_bytes().startswith(b"%PDF"), res.stderr[-2000:]
    # and Chromium's pages obey the same rule: no heading ends a page
    if shutil.which("pdftotext"):
        assert orphaned_headings(pdf, (report_dir / "report.html").read_text()) == []
        n_pages = len(bbox_lines(pdf))
        assert 4 <= n_pages <= MAX_PAGES + 2, n_pages  # Chromium's fonts differ slightly from WeasyPrint's


# ------------------------------------------------------------------- partial lakes

def test_chain_only_lake_gets_positioning_pages_and_says_what_is_left_out(small_lake, tmp_path, eventvol_cli):
    lake = Lake.open(tmp_path / "chains", create=True)
    q = small_lake.read("option_quotes", where="underlying IN ('ACME', 'SYNX') AND trade_date >= DATE '2023-08-01'")
    with lake.writer():
        lake.write("option_quotes", q)
    out = tmp_path / "out"
    code, stdout, stderr = eventvol_cli("report", "--lake", str(lake.root), "--out", str(out), "--no-pdf")
    assert code == 0, stderr
    html = (out / "report.html").read_text()
    assert 'id="positioning"' in html and 'id="positioning-ACME"' in html and 'id="positioning-SYNX"' in html
    left = html[html.index("Left out of this report"):]
    left = left[:left.index("</div>")]
    assert "Hypotheses and factor dashboards" in left and "index_members" in left
    assert "Backtest earnings-straddle" in left and "no events of kind earnings" in left and "Momentum regimes" in left
    assert 'id="study-' not in html and 'id="dashboards"' not in html


def test_price_only_lake_gets_its_factor_pages(small_lake, tmp_path):
    from eventvol.pipelines.factors import materialize
    from eventvol.research.report import build_research_report

    lake = Lake.open(tmp_path / "prices", create=True)
    with lake.writer():
        lake.write("bars", small_lake.read("bars"))
        lake.write("index_members", small_lake.read("index_members"))
    materialize(lake, "dispersion")
    out = tmp_path / "out"
    build_research_report(lake, out, studies=["H3"], pdf=False)
    html = (out / "report.html").read_text()
    assert 'id="dashboards"' in html and "dispersion ratio" in html.lower()
    assert 'alt="Dispersion ratio with percentile bands"' in html
    left = html[html.index("Left out of this report"):]
    assert "Dealer positioning" in left[:left.index("</div>")] and "no option quotes" in left
    assert 'id="positioning"' not in html


def test_real_chain_only_lake_reports_positioning(real_data, tmp_path, eventvol_cli):
    """The real Cboe SPX chain of 2022-02-04 alone: `eventvol report` exits 0 with the
    positioning page, the chart marks the zero gamma `eventvol gex` computes, and page 1
    names what is left out and why."""
    from eventvol.research import api

    lake = tmp_path / "lake"
    code, out, err = eventvol_cli("ingest", "cboe-quotetable", str(real_data / "cboe_quotetable" / "spx_2022-02-04.csv"),
                                  "--lake", str(lake))
    assert code == 0, err
    code, out, err = eventvol_cli("report", "--lake", str(lake), "--out", str(tmp_path / "out"), "--no-pdf")
    assert code == 0, err
    html = (tmp_path / "out" / "report.html").read_text()
    zg = float(re.search(r'id="positioning-SPX" data-zero-gamma="([^"]+)"', html).group(1))
    assert zg == api.gex(Lake.open(lake), "SPX", "2022-02-04")["zero_gamma"]
    assert 4500 < zg < 4700  # a flip above the 4,500.53 close (dealers short gamma at spot)
    left = html[html.index("Left out of this report"):]
    left = left[:left.index("</div>")]
    assert "no events of kind earnings" in left and "index_members" in left and "NoDataError" not in left
    assert pd.read_csv(tmp_path / "out" / "positioning.csv")["underlying"].tolist() == ["SPX"]


def test_report_cli_backtest_tear_sheets_with_params(small_lake, tmp_path, eventvol_cli):
    """`eventvol report --backtest A --backtest B --param A:k=v`: a tear sheet per backtest,
    the scoped parameter applied to A only, and A's metrics those of the API's backtest."""
    from eventvol.research import api
    from eventvol.research.formatting import money, pct

    out = tmp_path / "out"
    code, stdout, err = eventvol_cli("report", "--lake", str(small_lake.root), "--out", str(out), "--no-pdf",
                                     "--studies", "H1", "--backtest", "earnings-straddle", "--backtest", "gamma-regime",
                                     "--param", "earnings-straddle:side=short")
    assert code == 0, err
    html = (out / "report.html").read_text()
    assert 'id="backtest-earnings-straddle"' in html and 'id="backtest-gamma-regime"' in html
    sheet = html[html.index('id="backtest-earnings-straddle"'):html.index('id="backtest-gamma-regime"')]
    res = api.backtest(small_lake, "earnings-straddle", side="short")
    m = res.metrics.iloc[0]
    assert "side=short" in sheet
    assert f"<td>{money(m['total_pnl'])}</td>" in sheet and f"<td>{pct(m['hit_rate'])}</td>" in sheet
    assert 'href="#backtest-earnings-straddle"' in html  # H1 points at the trades on its events
    for name in ("earnings-straddle", "gamma-regime"):
        assert (out / f"trades_{name}.csv").exists()
    code, _, err = eventvol_cli("report", "--lake", str(small_lake.root), "--out", str(out), "--no-pdf",
                                "--backtest", "gamma-regime", "--param", "threshold=0,1")
    assert code == 2 and "one value per parameter" in err and len(err.strip().splitlines()) == 1
