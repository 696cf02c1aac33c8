#!/bin/sh
# tests/reliability/io_errors.sh - I/O errors in the store (issue 7 item 3;
# README "Guarantees": an I/O error never answers 202; jobd then exits with
# status 74, EX_IOERR, so that systemd restarts it on a cleanly reopened
# store).
#
# For KIND in write, fsync and N in 1..50, on a fresh store each time:
# start jobd with JOBD_FAULT_INJECT=KIND:N (the N-th write or fsync to the
# database or WAL fails with EIO, counted from the start, store creation
# included), then send 30 noop jobs one at a time, recording each answer.
# A few sticky runs (KIND:N,sticky: every operation from the N-th on
# fails) follow, then the two sweeps again with jobs delayed by an hour, so
# that every write and fsync after the start-up is a POST's.  Checks per
# run:
#   - if the fault stopped the start-up: jobd exited non-zero before
#     answering /healthz;
#   - every answer is 202, 503 (with Retry-After) or none (the daemon
#     exited);
#   - after the first answer that is not 202, no 202 (the daemon stopped
#     taking jobs), and jobd exits with status 74 within 5 s;
#   - with delayed jobs, that first answer is a 503 (README: every request
#     of the failed batch gets 503 with Retry-After), not a connection
#     closed without an answer;
#   - if every answer was 202: jobd exited with status 74 (the fault hit a
#     commit of attempt results) or still serves every acknowledged job
#     (GET 200), its store in WAL mode (the mode it asked for), and stops
#     on SIGTERM with status 0 or 74;
#   - restarted without the fault on the same store: it starts, every job
#     answered 202 is stored (sqlite3) and readable (GET), the store holds
#     no more jobs than were submitted (a job whose commit failed may be
#     there: after a failed fsync its durability is unknown), and PRAGMA
#     integrity_check says ok.
# Prints per sweep "KIND: N runs, M daemon exits, K 202s, L lost; ..." and
# exits non-zero on any failed check.  JOBD_BIN names the daemon (default
# build/jobd; it restarts the store), JOBD_TEST_BIN its test build that
# injects the faults (default build/jobd-test); JOBD_KEEP=1 keeps the temporary directory; IO_MAX_N=N
# sweeps 1..N instead of 1..50; IO_VERBOSE=1 prints the outcome of every
# run.  Takes about 80 s.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-ioerr-XXXXXX") || exit 1
. "$HERE/common.inc"

MAX_N=${IO_MAX_N:-50}
JOBS=30

cleanup() {
	kill_jobd
	if [ -n "${JOBD_KEEP:-}" ]; then
		echo "io-errors: kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

FAILED=0
DUMPS=0     # runs whose answers and log were shown (the first 5 failed)
fail() {
	echo "io-errors: FAIL: $SPEC: $*" >&2
	FAILED=$((FAILED + 1))
	RUN_FAILED=1
}

[ -x "$JOBD" ] || { echo "io-errors: no daemon at $JOBD" >&2; exit 1; }
[ -x "$JOBD_TEST" ] ||
	{ echo "io-errors: no test build at $JOBD_TEST (make test-build)" >&2
	  exit 1; }
command -v sqlite3 >/dev/null ||
	{ echo "io-errors: sqlite3 (the CLI) is needed" >&2; exit 1; }

PORT=$(free_port)
STORE=$TMP/store
DB=$STORE/jobs.db
cat >"$TMP/jobd.conf" <<EOF
; written by tests/reliability/io_errors.sh
[server]
listen = 127.0.0.1:$PORT
log_level = notice
[store]
path = $DB
durability = full
[workers]
threads = 2
shutdown_grace = 2s
[handler.noop]
builtin = noop
EOF

# The store's journal mode from its header (bytes 18-19: 2 2 is WAL).
wal_header() {
	[ "$(od -An -tu1 -j18 -N2 "$DB" 2>/dev/null | tr -s ' ')" = " 2 2" ]
}

missing_ids() {
	sqlite3 -readonly -bail "$DB" <<EOF
CREATE TEMP TABLE acked(id TEXT);
.import '$TMP/acked' acked
SELECT count(*) FROM acked WHERE id NOT IN (SELECT id FROM jobs);
EOF
}

# One run of JOBD_FAULT_INJECT=$1 with $JOB as the job; with STRICT=1 the
# first POST that is not answered 202 must be answered 503 (see the top).  Adds to RUNS, EXITS, STARTUP_EXITS,
# ACKED, LOST, NOTWAL, N503 and N000 (the first failing POST of the run
# answered 503, or not answered at all: the daemon exited first).
run_one() {
	SPEC=$1
	RUN_FAILED=
	rm -rf "$STORE"
	mkdir "$STORE"
	: >"$TMP/jobd.log"
	: >"$TMP/acked"
	RUNS=$((RUNS + 1))

	start_jobd "$TMP/jobd.conf" "$SPEC"
	wait_ready 10
	ready=$?
	n202=0
	nbad=0
	outcome=
	codes=
	if [ "$ready" = 2 ]; then
		# The fault stopped the start-up.
		[ "$DSTATUS" != 0 ] ||
			fail "start-up failed but jobd exited with status 0"
		EXITS=$((EXITS + 1))
		STARTUP_EXITS=$((STARTUP_EXITS + 1))
		outcome="start-up exit $DSTATUS"
	elif [ "$ready" != 0 ]; then
		fail "jobd neither became ready nor exited within 10 s"
		kill_jobd
		outcome="hung at start-up"
	else
		first_bad=
		i=0
		while [ "$i" -lt "$JOBS" ]; do
			i=$((i + 1))
			post "$JOB"
			codes="$codes $CODE"
			case $CODE in
			202)	[ -n "$ID" ] || fail "POST $i: 202 without an id"
				echo "$ID" >>"$TMP/acked"
				n202=$((n202 + 1))
				[ -z "$first_bad" ] ||
					fail "POST $i: 202 after POST $first_bad" \
						"failed" ;;
			503)	[ -n "$RA" ] || fail "POST $i: 503 without Retry-After"
				[ -n "$first_bad" ] || N503=$((N503 + 1))
				nbad=$((nbad + 1))
				first_bad=${first_bad:-$i} ;;
			000)	if [ -z "$first_bad" ]; then
					N000=$((N000 + 1))
					[ -z "$STRICT" ] ||
						fail "POST $i: its commit failed but it got" \
							"no answer (no 503): jobd exited first"
				fi
				nbad=$((nbad + 1))
				first_bad=${first_bad:-$i}
				# no daemon: the rest would not be answered either
				alive || break ;;
			*)	fail "POST $i: answered $CODE"
				nbad=$((nbad + 1))
				first_bad=${first_bad:-$i} ;;
			esac
		done
		if [ -n "$first_bad" ]; then
			reap 5
			[ "$DSTATUS" = 74 ] ||
				fail "after a failed POST ($first_bad) jobd ended" \
					"with status $DSTATUS, not 74 (-1: still" \
					"running after 5 s)"
			EXITS=$((EXITS + 1))
			outcome="POST $first_bad failed, exit $DSTATUS"
		else
			# Let the attempts of the last jobs commit.
			sleep 0.1
			if ! alive; then
				reap 1
				[ "$DSTATUS" = 74 ] ||
					fail "jobd exited with status $DSTATUS"
				EXITS=$((EXITS + 1))
				outcome="all 202, then exit $DSTATUS"
			else
				bad=$(get_ids "$TMP/acked")
				[ "$bad" = 0 ] ||
					fail "$bad acknowledged job(s) not readable" \
						"while jobd still runs"
				if ! wal_header; then
					NOTWAL="$NOTWAL $SPEC"
					fail "jobd serves with its store not in WAL" \
						"mode (header bytes 18-19:" \
						"$(od -An -tu1 -j18 -N2 "$DB" |
							tr -s ' ')): the error of" \
						"PRAGMA journal_mode = WAL went unnoticed"
				fi
				stop_jobd 10
				case $DSTATUS in
				0) outcome="kept serving" ;;
				74) outcome="kept serving, exit 74 at stop"
				    EXITS=$((EXITS + 1)) ;;
				*) fail "SIGTERM: jobd exited with status $DSTATUS"
				   outcome="exit $DSTATUS at stop" ;;
				esac
			fi
		fi
	fi
	ACKED=$((ACKED + n202))

	# Restart without the fault on the same store.
	start_jobd "$TMP/jobd.conf"
	if ! wait_ready 10; then
		fail "jobd does not restart without the fault (status" \
			"$DSTATUS)"
		grep -v 'access:' "$TMP/jobd.log" | tail -n 5 >&2
		kill_jobd
		LOST=$((LOST + n202))
		echo "  $SPEC: $outcome; 202s=$n202; RESTART FAILED"
		return
	fi
	m=$(missing_ids)
	if [ "$m" != 0 ]; then
		fail "$m acknowledged job(s) missing from the store after the" \
			"restart"
		LOST=$((LOST + m))
	fi
	bad=$(get_ids "$TMP/acked")
	[ "$bad" = 0 ] || fail "$bad acknowledged job(s) not readable after" \
		"the restart"
	stored=$(sqlite3 -readonly "$DB" "SELECT count(*) FROM jobs")
	[ "$stored" -le $((n202 + nbad)) ] ||
		fail "$stored job(s) stored but only $((n202 + nbad)) submitted"
	ic=$(sqlite3 -readonly "$DB" "PRAGMA integrity_check" 2>&1)
	[ "$ic" = ok ] || fail "integrity_check after the restart: $ic"
	wal_header || fail "the store is not in WAL mode after the restart"
	stop_jobd 10
	[ "$DSTATUS" = 0 ] ||
		fail "the restarted jobd exited with status $DSTATUS on SIGTERM"
	if [ -n "$RUN_FAILED" ] && [ "$DUMPS" -lt 5 ]; then
		DUMPS=$((DUMPS + 1))
		echo "  $SPEC: answers:$codes; its log:" >&2
		grep -v 'access:' "$TMP/jobd.log" | tail -n 8 >&2
	fi
	[ -n "${IO_VERBOSE:-}" ] &&
		echo "  $SPEC: $outcome; 202s=$n202 stored=$stored"
	return 0
}

# sweep KIND N... : one run per N, then the summary line.
sweep() {
	label=$1
	kind=${1%%[, ]*}
	shift
	RUNS=0 EXITS=0 STARTUP_EXITS=0 ACKED=0 LOST=0 NOTWAL= N503=0 N000=0
	for n in "$@"; do
		case $label in
		*,sticky*) run_one "$kind:$n,sticky" ;;
		*) run_one "$kind:$n" ;;
		esac
	done
	echo "$label: $RUNS runs, $EXITS daemon exits ($STARTUP_EXITS at" \
		"start-up), $ACKED 202s, $LOST lost; failing POSTs: $N503 x 503," \
		"$N000 unanswered${NOTWAL:+; not WAL:$NOTWAL}"
}

T0=$(date +%s)
ALL_N=$(seq 1 "$MAX_N")
STICKY_N="1 4 8 16 32 48"

# Jobs that run: the fault may hit a commit of a claim or of an attempt's
# result, and the next POST then finds no daemon.
JOB='{"type":"noop"}'
STRICT=
for kind in write fsync; do
	sweep "$kind" $ALL_N
done
for kind in write fsync; do
	sweep "$kind,sticky" $STICKY_N
done

# Jobs delayed by an hour: nothing runs, so after the start-up every
# write and fsync belongs to the commit of a POST, and the first POST not
# answered 202 is the one whose commit failed: it must get its 503.
JOB='{"type":"noop","delay":3600}'
STRICT=1
for kind in write fsync; do
	sweep "$kind (delayed jobs)" $ALL_N
done
echo "io-errors: $(($(date +%s) - T0)) s"
if [ "$FAILED" -gt 0 ]; then
	echo "io-errors: FAIL ($FAILED failed check(s))" >&2
	exit 1
fi
echo "io-errors: ok"
