"""The CLI's one error boundary, tried as a careless user, an attacker and a failing disk:
every failure is one sentence on stderr naming the file, row, column or option, with the
documented exit code (2 usage/bad input, 65 damaged lake file, 74 the system refused,
75 busy), the lake byte-identical where nothing should change, and --debug/EVENTVOL_DEBUG=1
adding the traceback."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from eventvol.data_lake import Lake

EVENTVOL = [sys.executable, "-m", "eventvol.research.cli"]


def run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*EVENTVOL, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CI": "true", "EVENTVOL_DEBUG": "", **(env or {})})


def one_sentence(stderr: str) -> str:
    """The single stderr line of a failure (asserting that there is exactly one)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and lines[0].startswith("eventvol: error: "), stderr
    return lines[0]


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file in the lake except the lock file (which holds the last pid)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "locks" not in p.parts}


PRICES = "date,symbol,open,high,low,close,volume\n2024-01-02,AAA,1,2,0.5,1.5,100\n2024-01-03,AAA,1.5,2,1,1.75,200\n"


@pytest.fixture
def prices_lake(tmp_path) -> Path:
    src = tmp_path / "prices.csv"
    src.write_text(PRICES)
    res = run("ingest", "prices-csv", str(src), "--lake", str(tmp_path / "lake"))
    assert res.returncode == 0, res.stderr
    return tmp_path / "lake"


# ---------------------------------------------------------------- usage errors (typer 0.29)
def test_version():
    from eventvol import __version__

    res = run("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"eventvol {__version__}" and res.stderr == ""


@pytest.mark.parametrize("args, sentence", [
    (["gex"], "eventvol: error: missing option '--underlying' (see `eventvol gex --help`)"),
    (["frobnicate"], "eventvol: error: no such command 'frobnicate' (see `eventvol --help`)"),
    (["ingest"], "eventvol: error: missing argument 'FORMAT' (see `eventvol ingest --help`)"),
    (["ingest", "prices-csv"], "eventvol: error: missing argument 'PATH...' (see `eventvol ingest --help`)"),
    (["gex", "--underlying", "X", "--date", "2024-01-02", "--grid", "many"],
     "eventvol: error: invalid value for '--grid': "),
    (["gex", "--bogus"], "eventvol: error: no such option: --bogus (see `eventvol gex --help`)"),
    (["lake", "verify", "--json=yes"], None),
])
def test_usage_errors_are_one_sentence_exit_2(args, sentence):
    res = run(*args)
    assert res.returncode == 2, res.stderr
    line = one_sentence(res.stderr)
    if sentence:
        assert line.startswith(sentence) and line.endswith("--help`)")
    assert res.stdout == ""


def test_debug_flag_and_env_show_the_traceback(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for extra, env in (([], {"EVENTVOL_DEBUG": "1"}), (["--debug"], None)):
        res = run("gex", "--lake", str(f), "--underlying", "X", "--date", "2024-01-02", *extra, env=env)
        assert res.returncode == 2
        assert "Traceback (most recent call last)" in res.stderr and "LakeNotFoundError" in res.stderr
        assert res.stderr.strip().splitlines()[-1] == f"eventvol: error: the lake path {f} is a file, not a lake folder"


def test_cli_module_does_not_import_click():
    """typer 0.29 does not depend on click; the CLI must not need it (no-extras installs)."""
    code = ("import sys, builtins\n"
            "real = builtins.__import__\n"
            "def guard(name, *a, **k):\n"
            "    if name == 'click' or name.startswith('click.'):\n"
            "        raise ModuleNotFoundError(\"No module named 'click'\")\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = guard\n"
            "sys.argv = ['eventvol', 'gex']\n"
            "from eventvol.research import cli\n"
            "cli.main()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "CI": "true"})
    assert res.returncode == 2 and one_sentence(res.stderr).startswith("eventvol: error: missing option")


# ---------------------------------------------------------------- the lake path
def test_lake_at_a_regular_file_is_refused_and_the_file_untouched(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    src = tmp_path / "prices.csv"
    src.write_text(PRICES)
    for args in (["gex", "--underlying", "X", "--date", "2024-01-02"], ["ingest", "prices-csv", str(src)],
                 ["lake", "verify"]):
        res = run(*args, "--lake", str(f))
        assert res.returncode == 2
        assert one_sentence(res.stderr) == f"eventvol: error: the lake path {f} is a file, not a lake folder"
    assert f.read_text() == "mine"


@pytest.mark.parametrize("place", ["/proc/eventvol-lake", "/sys/eventvol-lake"])
def test_lake_in_a_place_that_cannot_be_written_is_exit_74(tmp_path, place):
    src = tmp_path / "prices.csv"
    src.write_text(PRICES)
    res = run("ingest", "prices-csv", str(src), "--lake", place)
    assert res.returncode == 74, res.stderr
    assert one_sentence(res.stderr).startswith(f"eventvol: error: cannot create a lake at {place}: ")


def test_lake_under_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    src = tmp_path / "prices.csv"
    src.write_text(PRICES)
    res = run("ingest", "prices-csv", str(src), "--lake", str(f / "lake"))
    assert res.returncode == 74
    assert one_sentence(res.stderr).startswith(f"eventvol: error: cannot create a lake at {f / 'lake'}: Not a directory")


def test_read_only_lake_on_write_is_refused_and_unchanged(prices_lake, tmp_path, eventvol_cli, monkeypatch):
    """As root chmod does not stop writes, so the kernel's answer is injected where the lake
    opens its lock file for writing (the first write a writer does)."""
    from eventvol.data_lake import lock

    before = snapshot(prices_lake)
    real_open = os.open

    def read_only(path, flags, *a):
        if str(path).endswith("writer.lock") and flags & (os.O_RDWR | os.O_WRONLY):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *a)

    monkeypatch.setattr(lock.os, "open", read_only)
    src = tmp_path / "more.csv"
    src.write_text(PRICES.replace("AAA", "BBB"))
    code, out, err = eventvol_cli("ingest", "prices-csv", str(src), "--lake", str(prices_lake))
    assert code == 74
    assert one_sentence(err) == (f"eventvol: error: cannot write to lake {prices_lake}: Read-only file system "
                                 f"({prices_lake / 'locks' / 'writer.lock'})")
    assert snapshot(prices_lake) == before
    # reading a read-only lake still works
    code, out, err = eventvol_cli("lake", "verify", "--lake", str(prices_lake), "--json")
    assert code == 0 and json.loads(out)["damaged"] == []


def test_disk_full_while_writing_leaves_the_lake_as_it_was(prices_lake, tmp_path, eventvol_cli, monkeypatch):
    from eventvol.data_lake import store

    before = snapshot(prices_lake)

    def full_disk(path, data):
        # parts are encoded in memory and written once: some bytes made it to disk, then ENOSPC
        with open(path, "wb") as f:
            f.write(memoryview(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(store, "_write_staged", full_disk)
    src = tmp_path / "more.csv"
    src.write_text(PRICES.replace("2024-01", "2024-02"))
    code, out, err = eventvol_cli("ingest", "prices-csv", str(src), "--lake", str(prices_lake))
    assert code == 74
    line = one_sentence(err)
    assert line.startswith("eventvol: error: no space left on device (") and str(prices_lake / "staging") in line
    assert snapshot(prices_lake) == before
    assert not any((prices_lake / "staging").iterdir())


# ---------------------------------------------------------------- bad parameters and files
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_non_finite_fee_is_refused_naming_the_parameter(small_lake_path, value):
    res = run("backtest", "earnings-straddle", "--lake", str(small_lake_path), "--param", f"fee_per_contract={value}")
    assert res.returncode == 2, res.stderr
    assert one_sentence(res.stderr) == f"eventvol: error: parameter fee_per_contract must be a finite number, not {value!r}"


def test_report_out_at_a_regular_file_is_refused_before_any_work(small_lake_path, tmp_path):
    f = tmp_path / "report"
    f.write_text("keep me")
    for args in (["report", "--no-pdf"], ["demo", "--no-pdf", "--scale", "tiny"]):
        res = run(*args, "--lake", str(small_lake_path), "--out", str(f / "sub" if args[0] == "demo" else f))
        assert res.returncode == 2, res.stderr
        assert "is a file, not a folder" in one_sentence(res.stderr) and str(f) in res.stderr
    assert f.read_text() == "keep me"


@pytest.mark.parametrize("kind", ["binary", "directory", "gzip", "latin1"])
def test_study_events_at_a_binary_file_or_directory(small_lake_path, tmp_path, kind):
    p = tmp_path / "events"
    if kind == "directory":
        p.mkdir()
        expected = f"eventvol: error: event file {p} is a folder, not a CSV file"
    elif kind == "binary":
        p.write_bytes(bytes(range(256)) * 4)
        expected = f"eventvol: error: event file {p} is binary (a NUL byte at offset 0), not a CSV"
    elif kind == "gzip":
        import gzip

        p.write_bytes(gzip.compress(b"date,symbol\n2023-04-03,SYNX\n", mtime=0))
        expected = f"eventvol: error: event file {p} is binary (a NUL byte at offset 3)"
    else:
        p.write_bytes("date,symbol,name\n2023-04-03,SYNX,caf\u00e9\n".encode("latin-1"))
        expected = f"eventvol: error: event file {p} is not UTF-8 text (byte 36, row 2 cannot be decoded)"
    before = snapshot(small_lake_path)
    res = run("study", "H6", "--lake", str(small_lake_path), "--events", str(p))
    assert res.returncode == 2, res.stderr
    assert one_sentence(res.stderr).startswith(expected)
    assert snapshot(small_lake_path) == before


# ---------------------------------------------------------------- a damaged lake
def _part(lake: Lake, table: str, month: str) -> Path:
    y, m = month.split("-")
    (p,) = (lake.table_dir(table) / f"year={y}" / f"month={m}").glob("part-*.parquet")
    return p


def test_damaged_months_are_named_intact_months_still_answer_and_recovery_works(lake_copy):
    lake = lake_copy
    root = str(lake.root)
    gex_march = run("gex", "--lake", root, "--underlying", "SYNX", "--date", "2023-03-01", "--json")
    gex_april = run("gex", "--lake", root, "--underlying", "SYNX", "--date", "2023-04-03", "--json")
    assert gex_march.returncode == 0 and gex_april.returncode == 0, gex_april.stderr
    april_rows = lake.read("option_quotes", where="trade_date BETWEEN ? AND ?", params=["2023-04-01", "2023-04-30"])
    flipped, truncated = _part(lake, "option_quotes", "2023-04"), _part(lake, "option_quotes", "2023-06")
    data = bytearray(flipped.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:1000])
    before = snapshot(lake.root)

    res = run("lake", "verify", "--lake", root)
    assert res.returncode == 65
    assert f"damaged: {flipped.relative_to(lake.root)}: its content hash is" in res.stdout
    assert f"damaged: {truncated.relative_to(lake.root)}: it is truncated" in res.stdout
    assert one_sentence(res.stderr).startswith(f"eventvol: error: 2 damaged file(s) in lake {lake.root}, first ")
    res = run("lake", "verify", "--lake", root, "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 65 and [d["partition"] for d in doc["damaged"]] == ["2023-04", "2023-06"]
    assert doc["files_checked"] == sum(len(lake.files(t)) for t in ("option_quotes", "bars", "events", "factors",
                                                                    "index_members", "index_weights", "rates",
                                                                    "corporate_actions", "letf_funds",
                                                                    "short_interest", "factor_returns", "runs",
                                                                    "truth", "refresh_state"))

    # gex of an intact month answers exactly as before; of a damaged month, one sentence
    again = run("gex", "--lake", root, "--underlying", "SYNX", "--date", "2023-03-01", "--json")
    assert again.returncode == 0 and json.loads(again.stdout) == json.loads(gex_march.stdout)
    for date, part in (("2023-04-03", flipped), ("2023-06-01", truncated)):
        res = run("gex", "--lake", root, "--underlying", "SYNX", "--date", date, "--json")
        assert res.returncode == 65, res.stderr
        line = one_sentence(res.stderr)
        assert f"lake file {part.relative_to(lake.root)} in {lake.root} is damaged" in line
        assert "lake verify --set-aside" in line and res.stdout == ""
    assert snapshot(lake.root) == before  # reads and verify changed nothing

    # recovery (docs/lake.md): set the damaged parts aside, re-ingest the month, verify
    res = run("lake", "verify", "--lake", root, "--set-aside")
    assert res.returncode == 0, res.stderr
    assert "set aside: damaged/" in res.stdout
    res = run("gex", "--lake", root, "--underlying", "SYNX", "--date", "2023-04-03", "--json")
    assert res.returncode == 2 and one_sentence(res.stderr) == "eventvol: error: the lake has no SYNX option quotes on 2023-04-03"
    Lake.open(lake.root).write("option_quotes", april_rows)
    res = run("gex", "--lake", root, "--underlying", "SYNX", "--date", "2023-04-03", "--json")
    assert res.returncode == 0 and json.loads(res.stdout) == json.loads(gex_april.stdout)
    assert flipped.exists()  # the same content-addressed part again
    res = run("lake", "verify", "--lake", root, "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["damaged"] == []


def test_corrupt_journal_is_one_warning_line_and_the_write_goes_through(prices_lake, tmp_path):
    txn = prices_lake / "staging" / "txn-broken"
    txn.mkdir()
    (txn / "journal.json").write_text('{"moves": [["../../etc/passwd", "tables/bars/x.parquet"]]')
    src = tmp_path / "more.csv"
    src.write_text(PRICES.replace("AAA", "CCC"))
    res = run("ingest", "prices-csv", str(src), "--lake", str(prices_lake))
    assert res.returncode == 0, res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.strip()]
    assert line.startswith("eventvol: warning: the staging journal staging/txn-broken of lake ")
    assert "set aside in quarantine/journals/txn-broken" in line
    assert sorted(Lake.open(prices_lake).read("bars")["symbol"].unique()) == ["AAA", "CCC"]


def test_busy_lake_is_exit_75(prices_lake, tmp_path):
    import fcntl

    src = tmp_path / "more.csv"
    src.write_text(PRICES)
    before = snapshot(prices_lake)
    with open(prices_lake / "locks" / "writer.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        res = run("ingest", "prices-csv", str(src), "--lake", str(prices_lake))
    assert res.returncode == 75
    assert "is being written by another process" in one_sentence(res.stderr)
    assert snapshot(prices_lake) == before


def test_unexpected_failure_is_one_sentence_exit_1(eventvol_cli, monkeypatch, prices_lake):
    from eventvol.data_lake import store

    monkeypatch.setattr(store.Lake, "verify", lambda self, **kw: 1 / 0)
    code, out, err = eventvol_cli("lake", "verify", "--lake", str(prices_lake))
    assert code == 1
    assert one_sentence(err) == ("eventvol: error: internal error ZeroDivisionError: division by zero "
                                 "(rerun with --debug for the traceback and report it)")


def test_lock_file_that_is_a_folder_is_exit_74(prices_lake, tmp_path):
    lock = prices_lake / "locks" / "writer.lock"
    lock.unlink()
    lock.mkdir()
    src = tmp_path / "more.csv"
    src.write_text(PRICES)
    before = snapshot(prices_lake)
    res = run("ingest", "prices-csv", str(src), "--lake", str(prices_lake))
    assert res.returncode == 74
    assert one_sentence(res.stderr) == f"eventvol: error: cannot write to lake {prices_lake}: Is a directory ({lock})"
    assert snapshot(prices_lake) == before


def test_interrupt_is_one_line_exit_130(eventvol_cli, monkeypatch, prices_lake):
    from eventvol.data_lake import store

    def interrupted(self, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.Lake, "verify", interrupted)
    code, out, err = eventvol_cli("lake", "verify", "--lake", str(prices_lake))
    assert code == 130 and one_sentence(err) == "eventvol: error: interrupted"


def test_verify_of_an_intact_lake_and_of_no_lake(prices_lake, tmp_path):
    res = run("lake", "verify", "--lake", str(prices_lake), "--json")
    doc = json.loads(res.stdout)
    assert res.returncode == 0 and doc["damaged"] == [] and doc["files_checked"] == len(list(
        (prices_lake / "tables").rglob("part-*.parquet")))
    res = run("lake", "verify", "--lake", str(tmp_path / "absent"))
    assert res.returncode == 2 and one_sentence(res.stderr).startswith(f"eventvol: error: no lake at {tmp_path / 'absent'}")
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("name, decoy", [("a[1]", "a1"), ("a?b", "aXb")])
def test_ingest_and_read_a_lake_whose_path_has_glob_characters(tmp_path, name, decoy):
    src, other = tmp_path / "prices.csv", tmp_path / "other.csv"
    src.write_text(PRICES)
    other.write_text(PRICES.replace("AAA", "DECOY").replace("1.75", "9.75"))
    assert run("ingest", "prices-csv", str(other), "--lake", str(tmp_path / decoy)).returncode == 0
    for _ in range(2):  # the second ingest is an upsert that reads the lake's own parts
        res = run("ingest", "prices-csv", str(src), "--lake", str(tmp_path / name), "--json")
        assert res.returncode == 0, res.stderr
    bars = Lake.open(tmp_path / name).read("bars")
    assert bars["symbol"].tolist() == ["AAA", "AAA"] and bars["close"].tolist() == [1.5, 1.75]
    res = run("lake", "verify", "--lake", str(tmp_path / name), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["damaged"] == []


def test_missing_optional_extra_is_a_usage_sentence(small_lake_path, tmp_path, eventvol_cli, monkeypatch):
    """`pip install eventvol` without the `report` extra: report.pdf cannot be made."""
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import weasyprint -> ModuleNotFoundError
    lake = tmp_path / "lake"
    shutil.copytree(small_lake_path, lake)
    code, out, err = eventvol_cli("report", "--lake", str(lake), "--out", str(tmp_path / "out"))
    assert code == 2
    assert one_sentence(err) == ("eventvol: error: this needs the optional package weasyprint: "
                                 "pip install 'eventvol[report]', or pass --no-pdf")
    assert (tmp_path / "out" / "report.html").exists() and not (tmp_path / "out" / "report.pdf").exists()


def test_damaged_quarantine_file_is_named(tmp_path):
    src = tmp_path / "prices.csv"
    src.write_text(PRICES + "2023-02-29,AAA,1,2,0.5,1.5,100\n")
    lake = tmp_path / "lake"
    assert run("ingest", "prices-csv", str(src), "--lake", str(lake)).returncode == 0
    (rejected,) = (lake / "quarantine").glob("*/rejected.parquet")
    assert run("lake", "quarantine", "--lake", str(lake)).returncode == 0
    rejected.write_bytes(rejected.read_bytes()[:40])
    before = snapshot(lake)
    res = run("lake", "quarantine", "--lake", str(lake))
    assert res.returncode == 65
    assert one_sentence(res.stderr) == (f"eventvol: error: quarantine file {rejected.relative_to(lake)} in {lake} is "
                                        "damaged (it is truncated or not Parquet (no PAR1 magic bytes)); delete it "
                                        "and re-run that ingest to quarantine its rows again")
    assert snapshot(lake) == before
