#!/usr/bin/env bash
# The wheel as a user gets it (issues 14 and 15): build it from the repository's files,
# install it NON-editable into a fresh virtualenv and run everything from a folder outside
# the repository:
#   (a) no extras: `eventvol --version`, `--help`, an ingest with a quarantined row,
#       `eventvol lake quarantine`, `eventvol gex`: no ModuleNotFoundError (click, weasyprint, ...);
#   (b) the `report` extra only: the bare names research/pipelines/strategies/data_lake do
#       not import, the hypotheses and templates ship, and examples/quickstart.py runs.
# pip reaches the package registries (dependencies); nothing else is downloaded.
# Usage: .ci/wheel_check.sh   (PYTHON=python3.x to choose the interpreter; KEEP=1 keeps the folder)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/eventvol-wheel.XXXXXX")"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
export CI=1 PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH PYTHONSAFEPATH EVENTVOL_LAKE

say() { printf 'wheel-check: %s\n' "$*"; }
fail() { printf 'wheel-check: FAILED: %s\n' "$*" >&2; exit 1; }
# expect_error CODE TEXT CMD...: CMD must exit CODE with exactly one stderr line containing TEXT
expect_error() {
  local code="$1" text="$2" rc=0; shift 2
  "$@" >"$work/last.out" 2>"$work/last.err" || rc=$?
  [ "$rc" = "$code" ] || { cat "$work/last.err" >&2; fail "expected exit $code, got $rc from: $*"; }
  [ "$(grep -c . "$work/last.err")" = 1 ] || { cat "$work/last.err" >&2; fail "expected one error line from: $*"; }
  grep -qF -- "$text" "$work/last.err" || { cat "$work/last.err" >&2; fail "expected '$text' from: $*"; }
}
# run CMD...: fail on a non-zero exit or any import error in its output; output kept in $work/last.log
run() {
  local rc=0
  "$@" >"$work/last.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then cat "$work/last.log" >&2; fail "exit $rc from: $*"; fi
  if grep -qE "ModuleNotFoundError|ImportError|Traceback" "$work/last.log"; then
    cat "$work/last.log" >&2; fail "import error or traceback from: $*"
  fi
}

say "copying the repository's files (tracked and new, not ignored) to $work/src"
mkdir -p "$work/src" "$work/run"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard \
  | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$work/src"

say "building the wheel"
"$PYTHON" -m pip wheel -q --no-deps -w "$work/dist" "$work/src" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "the wheel did not build"; }
wheel="$(ls "$work"/dist/eventvol-*.whl)"
"$PYTHON" - "$wheel" <<'EOF' || fail "the wheel's contents"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
assert tops == {"eventvol"}, f"top-level names in the wheel: {sorted(tops)} (only eventvol allowed)"
for folder, ext in (("eventvol/research/hypotheses/", ".toml"), ("eventvol/research/templates/", ".j2")):
    assert any(n.startswith(folder) and n.endswith(ext) for n in names), f"the wheel lacks {folder}*{ext}"
print(f"wheel-check: {sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files, top level {sorted(tops)}")
EOF

say "(a) fresh venv, the wheel without extras"
"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
ev="$work/venv/bin/eventvol"
pip_install() { "$py" -m pip install -q "$@" >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; fail "pip install $*"; }; }
pip_install "$wheel"
cd "$work/run"  # outside the repository from here on
if "$py" -c "import weasyprint" 2>/dev/null; then fail "weasyprint is installed without the report extra"; fi
run "$ev" --version
grep -qE "^eventvol [0-9]" "$work/last.log" || { cat "$work/last.log" >&2; fail "eventvol --version printed no version"; }
run "$ev" --help
grep -q "backtest" "$work/last.log" || fail "eventvol --help lists no backtest command"
printf 'date,symbol,open,high,low,close,volume\n2023-01-03,AAA,10.0,10.5,9.8,10.2,1000\n2023-02-29,AAA,10.2,10.9,10.1,10.8,1200\n2023-01-04,AAA,10.2,10.9,10.1,10.8,1200\n' >prices.csv
cp "$repo/tests/fixtures/ingest/cboe_eod_calcs.csv" chain.csv
run "$ev" ingest prices-csv prices.csv --lake lake
grep -q "1 quarantined" "$work/last.log" || { cat "$work/last.log" >&2; fail "the impossible date was not quarantined"; }
run "$ev" ingest cboe-eod chain.csv --lake lake
run "$ev" lake quarantine --lake lake
grep -q "prices.csv:3 column date" "$work/last.log" || { cat "$work/last.log" >&2; fail "lake quarantine does not name prices.csv:3"; }
underlying="$(tail -n +2 chain.csv | head -1 | cut -d, -f1 | tr -d '"^')"
day="$(tail -n +2 chain.csv | head -1 | cut -d, -f2)"
run "$ev" gex --underlying "$underlying" --date "$day" --lake lake --json
grep -q "net_gex_per_1pct" "$work/last.log" || { cat "$work/last.log" >&2; fail "eventvol gex printed no net GEX"; }
run "$ev" lake verify --lake lake
run "$py" -c "import sys, eventvol.research.cli; assert 'click' not in sys.modules, 'click is imported'"
expect_error 2 "eventvol: error: missing option '--underlying'" "$ev" gex --lake lake
expect_error 2 "eventvol: error:" "$ev" frobnicate
expect_error 2 "weasyprint" "$ev" report --lake lake --out out
say "(a) ok: --version, --help, ingest + quarantine, lake quarantine, lake verify, gex, one-line usage errors, no click, report without weasyprint refused in one sentence (${SECONDS}s)"

say "(b) the same venv with the report extra only"
pip_install "$wheel[report]"
run "$py" - <<'EOF'
import importlib
for name in ("research", "pipelines", "strategies", "data_lake"):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    raise SystemExit(f"`import {name}` works: a bare layer name is installed")
import eventvol
import weasyprint  # noqa: F401  (the report extra)
names = set(eventvol.hypotheses()["name"])
assert {"H1", "H2", "H3"} <= names, f"the installed package finds hypotheses {sorted(names)}"
print("bare names absent; hypotheses:", sorted(names))
EOF
cp "$repo/examples/quickstart.py" .
run "$py" quickstart.py demo-lake demo-out tiny
[ -s demo-out/report.html ] && head -c 5 demo-out/report.pdf | grep -q "%PDF-" || fail "the quickstart wrote no report.html/report.pdf"
say "(b) ok: bare names do not import, $(grep -c . "$work/last.log") lines of quickstart output, report.html and report.pdf written (${SECONDS}s)"
say "passed in ${SECONDS}s"
