#!/bin/sh
# dashboard_test.sh - end-to-end test of the built-in dashboard (GET /) in a
# real browser: Debian's chromium, headless.
#
# Starts build/jobd (or $JOBD_BIN) on a free loopback port with a temporary
# config and store, submits a job with a recognizable payload and a job that
# fails, loads http://127.0.0.1:PORT/ in chromium and checks the rendered DOM
# (--dump-dom) shows the job's short id (full id in its title), the
# failure's error, a date on a time older than today, "runs at" on a
# delayed job, rates at first load (from GET /stats), queued and running
# counts per type (from GET /types) and, in the detail view, the payload.
# Chromium runs with TZ=UTC, so that the times it shows are predictable.  Writes a screenshot to tests/browser/out/dashboard.png
# and, when everything passed and JOBD_UPDATE_SCREENSHOT=1 is set, a copy
# to docs/dashboard.png (the README's picture; CI leaves it alone).
#
# Exit: 0 pass (or SKIP: chromium missing and not root), 1 failure,
# 77 when the daemon does not serve the dashboard at GET / yet.
# All traffic stays on 127.0.0.1.
set -eu

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
JOBD_BIN=${JOBD_BIN:-build/jobd}
CHROMIUM=${CHROMIUM:-chromium}
OUT_DIR=$ROOT/tests/browser/out
SHOT=$OUT_DIR/dashboard.png

say() { printf 'dashboard_test: %s\n' "$*"; }
fail() { say "FAIL: $*" >&2; exit 1; }

# ---- chromium ----
if ! command -v "$CHROMIUM" >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		say "SKIP: $CHROMIUM is not installed and we are not root" \
		    "(as root: apt-get install -y chromium)"
		exit 0
	fi
	say "installing chromium (apt-get install -y chromium)"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null ||
	{ apt-get update -q >/dev/null &&
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } ||
		fail "could not install chromium"
	command -v "$CHROMIUM" >/dev/null 2>&1 || fail "$CHROMIUM still missing"
fi
command -v curl >/dev/null 2>&1 || fail "curl is missing"
if ! command -v sqlite3 >/dev/null 2>&1; then
	[ "$(id -u)" -eq 0 ] || { say "SKIP: sqlite3 is not installed and we are not root"; exit 0; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q sqlite3 >/dev/null ||
		fail "could not install sqlite3"
fi
[ -x "$JOBD_BIN" ] || fail "$JOBD_BIN is not built (make all)"

# ---- temp dir, daemon, cleanup ----
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-dashboard.XXXXXX")
PID=""
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null || true
		i=0
		while kill -0 "$PID" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1; i=$((i + 1))
		done
		kill -KILL "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# A port nobody listens on: random in 20000..59999; if jobd still cannot
# bind it (a race), it exits and we try another.
pick_port() {
	while :; do
		p=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 + 20000 ))
		curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p/" || { echo "$p"; return; }
	done
}

start_daemon() {
	PORT=$(pick_port)
	BASE=http://127.0.0.1:$PORT
	cat >"$TMP/jobd.conf" <<EOF
[server]
listen = 127.0.0.1:$PORT
log_level = notice

[store]
path = $TMP/jobs.db
durability = normal

[workers]
threads = 2
shutdown_grace = 1s

[handler.noop]
builtin = noop

[handler.echo]
builtin = echo

[handler.sleep]
builtin = sleep
timeout = 2m

[handler.fail]
builtin = fail
max_attempts = 1
EOF
	"$JOBD_BIN" --config "$TMP/jobd.conf" >"$TMP/jobd.log" 2>&1 &
	PID=$!
	# Bounded wait for /healthz, or for the daemon to die.
	i=0
	while [ $i -lt 100 ]; do
		if curl -sf -o /dev/null --max-time 1 "$BASE/healthz"; then
			return 0
		fi
		kill -0 "$PID" 2>/dev/null || { wait "$PID" 2>/dev/null || true; PID=""; return 1; }
		sleep 0.1
		i=$((i + 1))
	done
	fail "jobd did not answer /healthz within 10s: $(cat "$TMP/jobd.log")"
}

tries=0
until start_daemon; do
	tries=$((tries + 1))
	[ $tries -lt 5 ] || fail "jobd would not start: $(cat "$TMP/jobd.log")"
done
say "jobd pid $PID on $BASE"

# ---- jobs ----
submit() { # type json-payload -> job id
	r=$(curl -sS --max-time 10 -H 'Content-Type: application/json' \
	    -d "{\"type\":\"$1\",\"payload\":$2}" "$BASE/jobs") ||
		fail "POST /jobs ($1) failed"
	id=$(printf '%s' "$r" | sed -n 's/.*"id":"\([0-9a-f-]\{36\}\)".*/\1/p')
	[ -n "$id" ] || fail "POST /jobs ($1) answered: $r"
	echo "$id"
}
field() { # job-json name -> string value
	printf '%s' "$1" | sed -n "s/.*\"$2\":\"\\(\\([^\"\\\\]\\|\\\\.\\)*\\)\".*/\\1/p"
}

MARK="dashboard-e2e-$$-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
JOB=$(submit echo "{\"marker\":\"$MARK\"}")
FJOB=$(submit fail "{\"marker\":\"$MARK-fail\"}")
submit noop null >/dev/null
submit sleep '{"seconds":60}' >/dev/null
CJOB=$(curl -sS -H 'Content-Type: application/json' \
    -d '{"type":"noop","delay":3600}' "$BASE/jobs" |
    sed -n 's/.*"id":"\([0-9a-f-]\{36\}\)".*/\1/p')
[ -n "$CJOB" ] && curl -sS -o /dev/null -X DELETE "$BASE/jobs/$CJOB"
DJOB=$(curl -sS -H 'Content-Type: application/json' \
    -d '{"type":"noop","delay":7200}' "$BASE/jobs" |
    sed -n 's/.*"id":"\([0-9a-f-]\{36\}\)".*/\1/p')
[ -n "$DJOB" ] || fail "could not submit a delayed job"

# Long-poll until both reach a final state (no fixed sleeps).
FJSON=$(curl -sS --max-time 30 "$BASE/jobs/$FJOB?wait=20")
[ "$(field "$FJSON" status)" = failed ] || fail "failing job did not fail: $FJSON"
ERR=$(field "$FJSON" error)
[ -n "$ERR" ] || fail "failed job has no error: $FJSON"
JJSON=$(curl -sS --max-time 30 "$BASE/jobs/$JOB?wait=20")
[ "$(field "$JJSON" status)" = succeeded ] || fail "echo job did not succeed: $JJSON"
say "job $JOB (payload marker $MARK), failed job $FJOB: $ERR"
RUN_AT=$(field "$(curl -sS "$BASE/jobs/$DJOB")" run_at)
[ -n "$RUN_AT" ] || fail "delayed job $DJOB has no run_at"
# An old time: the echo job was created (and finished) on 2020-01-02, as
# far as the store knows (microseconds since the epoch).
OLD_US=$(( $(date -u -d 2020-01-02T03:04:05Z +%s) * 1000000 ))
sqlite3 -cmd '.timeout 10000' "$TMP/jobs.db" \
    "UPDATE jobs SET created_at = $OLD_US, finished_at = $OLD_US WHERE id = '$JOB';" ||
	fail "could not age job $JOB in the store"

# ---- is the page served? ----
if ! curl -sS --max-time 10 "$BASE/" | grep -q '<meta name="jobd-dashboard"'; then
	say "dashboard not wired into GET / yet"
	exit 77
fi

# ---- the browser ----
PROFILE=$TMP/prof
chrome() {
	TZ=UTC timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
	    --disable-quic --no-first-run --disable-background-networking \
	    --disable-component-update --disable-sync \
	    --user-data-dir="$PROFILE" --virtual-time-budget=5000 "$@" \
	    2>>"$TMP/chromium.log"
}
# Text as chromium serializes it: &, < and > escaped.
html_text() { printf '%s' "$1" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g'; }

chrome --dump-dom "$BASE/" >"$TMP/dom.html" ||
	fail "chromium --dump-dom failed: $(tail -20 "$TMP/chromium.log")"
tr -d '\n' <"$TMP/dom.html" >"$TMP/dom1.html"

check() { # description fixed-string file
	grep -qF -- "$2" "$3" || {
		say "DOM dump kept in tests/browser/out/dom.html" >&2
		mkdir -p "$OUT_DIR" && cp "$TMP/dom.html" "$OUT_DIR/dom.html"
		fail "$1: '$2' not in the rendered page"
	}
}
check "job list row" "<tr data-job-id=\"$JOB\"" "$TMP/dom1.html"
# A row of the list, or of "Jobs by type", on its own.
row() { # attr value -> file
	sed -n "s#.*<tr $1=\"$2\"##p" "$TMP/dom1.html" | sed 's#</tr>.*##' >"$TMP/row.html"
	echo "$TMP/row.html"
}
# Short ids: the last 8 characters (random; a UUIDv7 starts with its time).
SHORT=${JOB#????????????????????????????}
check "short id with the full id as title" "data-open=\"$JOB\" title=\"$JOB\">…$SHORT</button>" "$TMP/dom1.html"
check "full id kept for copying" "data-full-id=\"$JOB\"" "$TMP/dom1.html"
check "copy button" "data-copy=\"$JOB\"" "$TMP/dom1.html"
check "a date on an old time" ">2020-01-02 03:04:05</time>" "$(row data-job-id "$JOB")"
check "run_at of a delayed job" "<span class=\"runs-at\">runs at <time datetime=\"$RUN_AT\"" "$(row data-job-id "$DJOB")"
# Rates at once, from the daemon's buckets (jobs were submitted seconds
# ago): not the "–" or 0 of a page that waits for samples of its own.
RATE=$(sed -n 's#.*<strong id="rate-in">\([^<]*\)</strong>.*#\1#p' "$TMP/dom1.html")
case "$RATE" in
''|–|0|0.0|0.00) fail "no intake rate at first load: '$RATE'" ;;
esac
check "rates chart drawn" "<polyline class=\"in\"" "$TMP/dom1.html"
# Jobs by type: queued and running now (the 60 s sleep runs, the delayed
# noop waits), beside the totals.
check "running now per type" "data-col=\"running\">1</td>" "$(row data-type sleep)"
check "queued now per type" "data-col=\"queued\">1</td>" "$(row data-type noop)"
check "totals per type" "data-col=\"submitted\">3</td>" "$(row data-type noop)"
say "short ids, an old date, run_at, rates ($RATE jobs/s) and counts per type shown"
# The failure, with its error, inside the "Latest failures" list.
sed -n 's/.*<ol id="failures">//p' "$TMP/dom1.html" | sed 's#</ol>.*##' >"$TMP/failures.html"
check "failure listed" "data-job-id=\"$FJOB\"" "$TMP/failures.html"
check "failure's error" "$(html_text "$ERR")" "$TMP/failures.html"
check "failed row's error" "$(html_text "$ERR")</span></td>" "$TMP/dom1.html"
say "dashboard shows job $JOB and the failure's error"

# The detail view (#job=ID) shows all fields and the pretty-printed payload.
chrome --dump-dom "$BASE/#job=$JOB" >"$TMP/detail.html" ||
	fail "chromium --dump-dom (detail) failed: $(tail -20 "$TMP/chromium.log")"
tr -d '\n' <"$TMP/detail.html" >"$TMP/detail1.html"
check "detail payload" "\"marker\": \"$MARK\"" "$TMP/detail1.html"
check "detail status" "<dd data-field=\"status\"><span class=\"badge s-succeeded\">succeeded</span>" "$TMP/detail1.html"
say "detail view shows the payload"

# Live updates: the page reads GET /events (the header says "live").
check "live updates from /events" 'data-state="live">live</span>' "$TMP/dom1.html"
say "the page follows GET /events"

# A progress bar that moves: the running sleep job reports its percentage
# (builtin sleep, through the progress helper's jobd_ctx_progress).  A
# daemon whose jobs carry no "progress" yet: said, and skipped.
SJOB=$(curl -sS "$BASE/jobs?status=running&type=sleep" |
       sed -n 's/.*"id":"\([0-9a-f-]\{36\}\)".*/\1/p' | head -1)
pct() { curl -sS "$BASE/jobs/$SJOB" | sed -n 's/.*"progress":{[^}]*"percent":\([0-9.]*\).*/\1/p'; }
P1=$(pct)
if [ -z "$SJOB" ] || [ -z "$P1" ]; then
	say "SKIP progress bar: the running sleep job reports no progress (no progress support in this daemon yet)"
else
	bar_of() { # dom file -> the data-percent of the sleep job's bar
		sed -n "s#.*<tr data-job-id=\"$SJOB\"##p" "$1" | sed 's#</tr>.*##' |
		    sed -n 's/.*class="progress" data-percent="\([0-9.]*\)".*/\1/p'
	}
	B1=$(bar_of "$TMP/dom1.html")
	[ -n "$B1" ] || fail "no progress bar on the running sleep job $SJOB"
	# Bounded wait for the job's progress to move on, then look again.
	i=0
	while [ "$(pct)" = "$P1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	chrome --dump-dom "$BASE/" | tr -d '\n' >"$TMP/dom2.html" ||
		fail "chromium --dump-dom (progress) failed"
	B2=$(bar_of "$TMP/dom2.html")
	[ -n "$B2" ] && [ "$B2" != "$B1" ] ||
		fail "the progress bar of $SJOB did not move: '$B1' then '$B2'"
	say "progress bar of the sleep job moved from $B1% to $B2%"
fi

# ---- screenshot ----
mkdir -p "$OUT_DIR"
rm -f "$SHOT"
chrome --screenshot="$SHOT" --window-size=1280,900 "$BASE/" >/dev/null ||
	fail "chromium --screenshot failed: $(tail -20 "$TMP/chromium.log")"
[ -s "$SHOT" ] || fail "no screenshot at $SHOT"
[ "$(od -An -N4 -tx1 "$SHOT" | tr -d ' ')" = 89504e47 ] || fail "$SHOT is not a PNG"
mkdir -p "$ROOT/docs"
if [ "${JOBD_UPDATE_SCREENSHOT:-}" = 1 ]; then
	cp "$SHOT" "$ROOT/docs/dashboard.png"
	say "screenshot: tests/browser/out/dashboard.png (copied to docs/dashboard.png)"
else
	say "screenshot: tests/browser/out/dashboard.png"
fi
say "PASS"
