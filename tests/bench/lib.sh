# tests/bench/lib.sh - helpers shared by run.sh and smoke.sh (sourced, POSIX
# sh).  The caller sets ROOT (the source tree), JOBD (the daemon binary) and
# TMP (a private temp dir it removes on exit), and traps EXIT to call
# bench_cleanup.
#
# One daemon at a time: start_daemon sets DPID, DDIR, PORT and URL;
# stop_daemon stops it (SIGTERM, then SIGKILL after 15 s).  Every loop here
# is bounded in count and time.  Only 127.0.0.1 is ever contacted.
#
# STORE (sqlite, the default, or pg) selects the store of the next
# start_daemon.  For pg, pg_server_start first starts one private
# PostgreSQL (tests/pg/pg.sh; bench_cleanup stops it) and every
# start_daemon gets a fresh database on it, named after the scenario.

DPID=""
WPID=""
DAEMON_DIED=""
STORE=sqlite
PGDIR=""
PGBIN=""
PGPORT=""
PGDB=""
NODE=""        # [store] node of the next start_daemon (empty: none)
KEEP_DB=""     # set: start_daemon joins PGDB instead of making it afresh
NODE_PIDS=""   # start_nodes: the nodes' pids, dirs and URLs, in order
NODE_DIRS=""
NODE_URLS=""

now_ms() { date +%s%3N; }

die() {
	echo "bench: $*" >&2
	exit 1
}

# A TCP port in 20000..59999 that no local socket uses now (from
# /proc/net/tcp and tcp6; mawk has no strtonum, hence the hex loop).
free_port() {
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
	awk -v seed="$$$(date +%N)" '
	function hex(s,   i, n) {
		n = 0
		for (i = 1; i <= length(s); i++)
			n = n * 16 + index("0123456789ABCDEF", toupper(substr(s, i, 1))) - 1
		return n
	}
	NR > 1 && $2 ~ /:/ { split($2, a, ":"); used[hex(a[2])] = 1 }
	END {
		srand(seed)
		for (i = 0; i < 1000; i++) {
			p = 20000 + int(rand() * 40000)
			if (!(p in used)) { print p; exit }
		}
		print 0
	}'
}

# write_conf DIR PORT DURABILITY WORKERS MAX_QUEUED
# Handlers: noop (builtin), block (builtin sleep: holds a worker until it is
# cancelled, so a queue can be preloaded without being drained) and true
# (exec /bin/true), s50 (builtin sleep, for {"seconds":0.05} jobs), gate
# (exec cat of DIR/gate.fifo: runs until the bench opens and closes it).  With
# NODE set, the store gets "node = NODE" and "lease = 30s" (several nodes).
write_conf() {
	nodeconf=""
	[ -z "$NODE" ] || nodeconf="node = $NODE
lease = 30s"
	cat >"$1/jobd.conf" <<EOF
; written by tests/bench (make bench)
[server]
listen = 127.0.0.1:$2
log_level = warning
max_wait = 60s

[store]
path = $STORE_PATH
durability = $3
max_queued = $5
$nodeconf

[workers]
threads = $4
shutdown_grace = 2s

[handler.noop]
builtin = noop

[handler.block]
builtin = sleep
timeout = 10m
max_attempts = 1

[handler.true]
command = /bin/true

[handler.s50]
builtin = sleep

[handler.gate]
command = /bin/cat $1/gate.fifo
max_attempts = 1
EOF
}

# pg_server_start: start the private PostgreSQL once (a no-op when it
# runs).  Returns 0, 77 when there are no PostgreSQL binaries, or 1 (the
# reason is on stderr).  Sets PGDIR, PGBIN, PGPORT.
pg_server_start() {
	[ -n "$PGPORT" ] && return 0
	# Not under TMP: mktemp -d makes TMP 0700 and the server runs as
	# postgres, which must reach its directory.
	PGDIR=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/jobd-bench-pg.XXXXXX") ||
		return 1
	sh "$ROOT/tests/pg/pg.sh" start "$PGDIR" >/dev/null
	rc=$?
	if [ "$rc" -ne 0 ]; then
		# pg.sh removed what it made; an empty DIR may be left
		rmdir "$PGDIR" 2>/dev/null
		PGDIR=""
		return "$rc"
	fi
	PGBIN=$(cat "$PGDIR/pgbin")
	PGPORT=$(cat "$PGDIR/port")
	return 0
}

pg_server_stop() {
	[ -n "$PGDIR" ] || return 0
	sh "$ROOT/tests/pg/pg.sh" stop "$PGDIR" >&2
	PGDIR=""
	PGPORT=""
}

# pg_psql DB ARGS...: the server's own psql on database DB, as postgres.
pg_psql() {
	db=$1
	shift
	PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q \
		-v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$db" "$@"
}

# pg_fresh_db NAME: drop and create database NAME.
pg_fresh_db() {
	pg_psql postgres -c "DROP DATABASE IF EXISTS $1" \
		-c "CREATE DATABASE $1" >/dev/null ||
		die "cannot create database $1 on the private PostgreSQL"
}

# drop_store: remove the current scenario's store (its directory and, on
# PostgreSQL, its database).  After stop_daemon.
drop_store() {
	if [ "$STORE" = pg ] && [ -n "$PGDB" ] && [ -n "$PGPORT" ]; then
		pg_psql postgres -c "DROP DATABASE IF EXISTS $PGDB" >/dev/null
		PGDB=""
	fi
	rm -rf "$DDIR"
}

# start_daemon NAME DURABILITY WORKERS [MAX_QUEUED]
start_daemon() {
	DDIR="$TMP/$1"
	rm -rf "$DDIR"
	mkdir -p "$DDIR" || die "cannot create $DDIR"
	DAEMON_DIED=""
	if [ "$STORE" = pg ]; then
		[ -n "$PGPORT" ] || die "start_daemon: STORE=pg without pg_server_start"
		[ -n "$KEEP_DB" ] ||
			PGDB=bench_$(echo "$1" | tr -c 'a-z0-9\n' '_')
		STORE_PATH="postgresql://postgres@127.0.0.1:$PGPORT/$PGDB"
	else
		STORE_PATH="$DDIR/jobs.db"
	fi
	tries=0
	while [ "$tries" -lt 5 ]; do
		tries=$((tries + 1))
		PORT=$(free_port)
		[ "$PORT" -gt 0 ] 2>/dev/null || continue
		URL="http://127.0.0.1:$PORT"
		rm -f "$DDIR"/jobs.db*
		[ "$STORE" = pg ] && [ -z "$KEEP_DB" ] && pg_fresh_db "$PGDB"
		write_conf "$DDIR" "$PORT" "$2" "$3" "${4:-1000000}"
		"$JOBD" --config "$DDIR/jobd.conf" >"$DDIR/jobd.log" 2>&1 &
		DPID=$!
		i=0
		while [ "$i" -lt 200 ]; do    # 200 x 50 ms = 10 s
			if ! kill -0 "$DPID" 2>/dev/null; then
				wait "$DPID" 2>/dev/null
				DPID=""
				break
			fi
			# On PostgreSQL, /healthz answers before the store
			# is connected and migrated: wait for /readyz.
			if [ "$STORE" = pg ]; then
				curl -sf -m 1 -o /dev/null "$URL/readyz" && return 0
			elif curl -sf -m 1 -o /dev/null "$URL/healthz"; then
				return 0
			fi
			sleep 0.05
			i=$((i + 1))
		done
		if [ -n "$DPID" ]; then
			echo "bench: jobd ($1) did not answer /healthz (on PostgreSQL /readyz) in 10 s" >&2
			tail -n 20 "$DDIR/jobd.log" >&2
			stop_daemon
			exit 1
		fi
		# it exited: a port race is worth another try, anything else not
		if ! grep -qi "in use" "$DDIR/jobd.log"; then
			echo "bench: jobd ($1) exited at start-up:" >&2
			tail -n 20 "$DDIR/jobd.log" >&2
			exit 1
		fi
	done
	die "no free port for jobd ($1) after 5 tries"
}

# stop_daemon: SIGTERM, wait up to 15 s, then SIGKILL.  Sets DAEMON_DIED
# when the daemon was already gone (crashed during the measurement).
stop_daemon() {
	[ -n "$DPID" ] || return 0
	if ! kill -0 "$DPID" 2>/dev/null; then
		wait "$DPID" 2>/dev/null
		DAEMON_DIED="exited with status $? during the run"
		echo "bench: jobd (pid $DPID) $DAEMON_DIED; log tail:" >&2
		tail -n 20 "$DDIR/jobd.log" >&2
		DPID=""
		return 0
	fi
	kill -TERM "$DPID" 2>/dev/null
	i=0
	while [ "$i" -lt 150 ] && kill -0 "$DPID" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$DPID" 2>/dev/null; then
		echo "bench: jobd (pid $DPID) ignored SIGTERM for 15 s; SIGKILL" >&2
		kill -KILL "$DPID" 2>/dev/null
	fi
	wait "$DPID" 2>/dev/null
	DPID=""
}

# start_nodes NAME COUNT WORKERS [MAX_QUEUED]: COUNT daemons (STORE=pg)
# on one fresh database bench_NAME, nodes n1..nCOUNT, lease 30 s, each
# with its own directory and port.  Sets NODE_PIDS, NODE_DIRS, NODE_URLS
# and URL (the first node's); DPID is left empty.
start_nodes() {
	[ "$STORE" = pg ] || die "start_nodes: several nodes need STORE=pg"
	NODE_PIDS="" NODE_DIRS="" NODE_URLS=""
	k=1
	while [ "$k" -le "$2" ]; do
		NODE=n$k
		[ "$k" -eq 1 ] || KEEP_DB=1
		start_daemon "$1-n$k" full "$3" "${4:-1000000}"
		NODE="" KEEP_DB=""
		NODE_PIDS="$NODE_PIDS $DPID"
		NODE_DIRS="$NODE_DIRS $DDIR"
		NODE_URLS="$NODE_URLS $URL"
		[ "$k" -eq 1 ] && PGDB1=$PGDB
		DPID=""
		k=$((k + 1))
	done
	PGDB=$PGDB1
	# shellcheck disable=SC2086 # the first word
	set -- $NODE_URLS
	URL=$1
}

# stop_nodes: SIGTERM to every node at once, wait up to 15 s for each,
# then SIGKILL.  DAEMON_DIED names the nodes that were already gone
# (crashed during the measurement).
stop_nodes() {
	died=""
	# shellcheck disable=SC2086 # one word per node
	set -- $NODE_DIRS
	for p in $NODE_PIDS; do
		if ! kill -0 "$p" 2>/dev/null; then
			died="$died ${1##*/} exited during the run;"
			echo "bench: jobd node ${1##*/} (pid $p) exited during the run; log tail:" >&2
			tail -n 20 "$1/jobd.log" >&2
		fi
		shift
	done
	for p in $NODE_PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $NODE_PIDS; do
		i=0
		while [ "$i" -lt 150 ] && kill -0 "$p" 2>/dev/null; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$p" 2>/dev/null; then
			echo "bench: jobd (pid $p) ignored SIGTERM for 15 s; SIGKILL" >&2
			kill -KILL "$p" 2>/dev/null
		fi
		wait "$p" 2>/dev/null
	done
	DAEMON_DIED=$died
	NODE_PIDS=""
}

bench_cleanup() {
	for p in $NODE_PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $NODE_PIDS; do wait "$p" 2>/dev/null; done
	NODE_PIDS=""
	if [ -n "$WPID" ]; then
		kill -TERM "$WPID" 2>/dev/null
		wait "$WPID" 2>/dev/null
		WPID=""
	fi
	stop_daemon
	pg_server_stop
	[ -n "${TMP:-}" ] && rm -rf "$TMP"
}

# bench_val FILE KEY: a value from the "BENCH k=v ..." line a wrk script
# printed (empty when wrk printed none).
bench_val() {
	awk -v k="$2" '/^BENCH /{ for (i = 2; i <= NF; i++) {
		n = index($i, "="); if (substr($i, 1, n - 1) == k) print substr($i, n + 1) } }' "$1"
}

# readyz FIELD: queued or running, from GET /readyz (empty on failure).
readyz() {
	json_int "$(curl -s -m 2 "$URL/readyz")" "$1"
}

# json_int JSON KEY: the integer value of "KEY": in a flat JSON object.
json_int() {
	printf '%s\n' "$1" | sed -n "s/.*\"$2\": *\([0-9]*\).*/\1/p"
}

# run_wrk OUT ARGS...: run wrk against the current daemon, output to OUT.
run_wrk() {
	out=$1
	shift
	wrk "$@" >"$out" 2>&1
	if [ -z "$(bench_val "$out" requests)" ]; then
		echo "bench: wrk $* printed no summary:" >&2
		cat "$out" >&2
	fi
}

# post_job BODY [HEADER]: POST /jobs, print the new job's id.
post_job() {
	if [ $# -gt 1 ]; then
		curl -s -m 10 -H 'Content-Type: application/json' -H "$2" \
			-d "$1" "$URL/jobs"
	else
		curl -s -m 10 -H 'Content-Type: application/json' -d "$1" \
			"$URL/jobs"
	fi | sed -n 's/.*"id":"\([^"]*\)".*/\1/p'
}
