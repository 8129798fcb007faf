"""The PM research report: self-contained HTML with every data text escaped, a PDF whose
pages render, and a headless-Chromium check that the HTML renders without errors."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from eventvol.data_lake import Lake

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def report_dir(small_lake_path, tmp_path_factory):
    """A report over a copy of the small lake in which a stock is named `<script>...` and
    a user event list (H6) names events `<script>...`."""
    from eventvol.research.report import build_research_report

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
    paths = build_research_report(lake, out, events_file=ev, pdf=True)
    assert [p.name for p in paths] == ["report.html", "report.pdf"]
    return out


def test_html_is_self_contained_and_escapes_data_text(report_dir):
    html = (report_dir / "report.html").read_text()
    assert "<script" not in html.lower()  # the only script tags would have come from data
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 13F #0" in html  # the event name shows as text
    assert "http://" not in html and "https://" not in html and "src=\"data:image/png;base64," in html
    for section in ('id="summary"', 'id="study-H1"', 'id="study-H6"', 'id="dashboards"', 'id="provenance"'):
        assert section in html
    # the first page states what held, with intervals, for every shipped hypothesis
    summary = html[html.index('id="summary"'):html.index('id="study-')]
    assert all(f"<b>H{i}</b>" in summary for i in range(1, 7)) and "95% CI" in summary


def test_pdf_pages_render(report_dir):
    pdf = (report_dir / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed; apt-get install -y poppler-utils")
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(report_dir / "report.pdf"), str(report_dir / "page")], check=True)
    pages = sorted(report_dir.glob("page-*.png"))
    assert len(pages) >= 4  # summary, studies, dashboards, provenance
    from PIL import Image

    first = np.asarray(Image.open(pages[0]).convert("L"), float)
    assert first.std() > 10  # not a blank page


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
    dom = subprocess.run([chrome, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    assert 'id="summary"' in text and 'id="dashboards"' in text and 'id="provenance"' in text
    assert "<script>alert(1)" not in text  # the escaped name did not become a script
    assert len(re.findall(r"<img ", text)) >= 4
    shot = tmp_path / "shot.png"
    res = subprocess.run([chrome, *flags, f"--screenshot={shot}", "--window-size=1200,1600", url],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), float)
    assert img.std() > 10  # something was drawn
