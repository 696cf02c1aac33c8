#!/bin/sh
# tests/pg/pg.sh - a private, throwaway PostgreSQL for tests (issue 13).
#
#   tests/pg/pg.sh start DIR   initdb into DIR/data, start a server on
#                              127.0.0.1 at a free port (its unix socket in
#                              DIR), create the database jobd, and print
#                              its URI: postgresql://postgres@127.0.0.1:PORT/jobd
#   tests/pg/pg.sh stop DIR    stop that server (pg_ctl stop -m fast, then
#                              its pid from DIR/data/postmaster.pid) and
#                              remove DIR
#
# Only the URI goes to stdout; everything else to stderr.  Exit 0, 1
# (failed: the server's log is printed, nothing is left running, DIR is
# removed), or 77 (no PostgreSQL server binaries: the caller skips).
#
# As root the server runs as the user postgres (initdb and postgres refuse
# root): DIR is given to postgres and every server command runs through
# runuser.  As anyone else it runs as that user.  DIR may exist (empty,
# e.g. from mktemp -d) or not; every directory above it must be
# searchable by postgres (/tmp is), and DIR may hold only A-Z a-z 0-9 / . _ -
# (at most 90 bytes).
#
# The server is configured like production as far as durability goes
# (fsync = on, synchronous_commit = on, full_page_writes = on), with small
# memory (shared_buffers = 32MB) and loopback only: listen_addresses =
# 127.0.0.1, pg_hba trust for local sockets and 127.0.0.1/::1 only.  initdb
# itself runs with --no-sync (its own files only; the server fsyncs).
#
# Environment: JOBD_PG_BIN (the directory of initdb, pg_ctl, postgres,
# psql; default the newest /usr/lib/postgresql/*/bin), JOBD_PG_TIMEOUT
# (seconds to wait for start or stop, default 60), JOBD_PG_CONF (extra
# postgresql.conf lines, appended), JOBD_PG_PORT (the port to try first;
# tests of the port race set it to a taken one).
#
# Files in DIR: data/ (the cluster), log (the server's log), port, uri,
# pgbin (the binaries' directory), jobd-pg (a marker: stop removes only a
# DIR that has it).
set -u

me=pg.sh
timeout=${JOBD_PG_TIMEOUT:-60}

die() { echo "$me: $*" >&2; exit 1; }

usage() { echo "usage: $me start|stop DIR" >&2; exit 2; }

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case $dir in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac

find_bin() {
	if [ -n "${JOBD_PG_BIN:-}" ]; then
		[ -x "$JOBD_PG_BIN/initdb" ] || die "JOBD_PG_BIN=$JOBD_PG_BIN has no initdb"
		echo "$JOBD_PG_BIN"
		return 0
	fi
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r b; do
		[ -x "$b/initdb" ] && [ -x "$b/pg_ctl" ] && echo "$b"
	done | tail -n 1
}

# as_pg CMD...: runs CMD as the server's user.
if [ "$(id -u)" -eq 0 ]; then
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi

# The postmaster's pid from its pid file, or nothing.
server_pid() {
	[ -r "$dir/data/postmaster.pid" ] || return 0
	head -n 1 "$dir/data/postmaster.pid" 2>/dev/null | tr -dc 0-9
}

# A zombie counts as gone (its parent, or init, has yet to reap it).
alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
		! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null
}

# wait_gone PID SECONDS: 0 once PID is gone, 1 if still there after SECONDS.
wait_gone() {
	i=0
	while alive "$1"; do
		[ "$i" -ge $(($2 * 10)) ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 0
}

do_stop() {
	[ -d "$dir" ] || return 0
	if [ ! -e "$dir/jobd-pg" ]; then
		echo "$me: $dir was not made by $me start; not touching it" >&2
		return 1
	fi
	pid=$(server_pid)
	bin=$(cat "$dir/pgbin" 2>/dev/null || true)
	if alive "$pid"; then
		if [ -n "$bin" ] && [ -x "$bin/pg_ctl" ]; then
			as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w \
				-t "$timeout" stop >/dev/null 2>&1
		fi
		# pg_ctl failed or timed out: by the pid, fast shutdown
		# (SIGINT), then SIGQUIT (immediate), then SIGKILL.
		for sig in INT QUIT KILL; do
			wait_gone "$pid" 10 && break
			echo "$me: server $pid still running; SIG$sig" >&2
			kill -s "$sig" "$pid" 2>/dev/null
		done
		wait_gone "$pid" 10 || { echo "$me: server $pid survived SIGKILL" >&2; return 1; }
	fi
	rm -rf "$dir"
}

# fail_start WHY: prints the server's log, stops what runs, removes DIR.
fail_start() {
	echo "$me: $1" >&2
	if [ -s "$dir/log" ]; then
		echo "$me: --- $dir/log ---" >&2
		tail -n 50 "$dir/log" >&2
		echo "$me: --- end of log ---" >&2
	fi
	do_stop
	exit 1
}

# A random port in 20000..59999 (the Linux ephemeral range starts at 32768:
# a clash is possible and handled by retrying).
random_port() {
	n=$(od -An -N2 -tu2 /dev/urandom | tr -dc 0-9)
	echo $((20000 + n % 40000))
}

do_start() {
	bin=$(find_bin)
	if [ -z "$bin" ]; then
		echo "$me: no PostgreSQL server (initdb under /usr/lib/postgresql/*/bin);" \
			"install Debian's postgresql (scripts/deps.sh does)" >&2
		exit 77
	fi
	# DIR goes into postgresql.conf and names the unix socket
	# (DIR/.s.PGSQL.PORT, at most 107 bytes): plain characters only.
	case $dir in
	*[!A-Za-z0-9/._-]*) die "DIR may hold only A-Z a-z 0-9 / . _ - (got '$dir')" ;;
	esac
	[ ${#dir} -le 90 ] || die "DIR is longer than 90 bytes (the socket path would be too long)"
	if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
		die "$dir is not empty"
	fi
	mkdir -p "$dir" || die "cannot create $dir"
	: > "$dir/jobd-pg"
	echo "$bin" > "$dir/pgbin"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 ||
			fail_start "no user postgres (Debian's postgresql package makes it)"
		chown postgres: "$dir" "$dir/jobd-pg" "$dir/pgbin" ||
			fail_start "cannot give $dir to postgres"
		as_pg test -w "$dir" ||
			fail_start "postgres cannot reach $dir (a directory above it is not searchable; use /tmp)"
	fi
	chmod 700 "$dir"

	if ! as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
		--no-locale --no-sync >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		fail_start "initdb failed"
	fi
	# Loopback only: nothing but the socket in DIR and 127.0.0.1/::1.
	as_pg sh -c "cat > '$dir/data/pg_hba.conf'" <<-EOF
	local all all trust
	host all all 127.0.0.1/32 trust
	host all all ::1/128 trust
	EOF
	as_pg sh -c "cat >> '$dir/data/postgresql.conf'" <<-EOF
	# tests/pg/pg.sh
	listen_addresses = '127.0.0.1'
	unix_socket_directories = '$dir'
	fsync = on
	synchronous_commit = on
	full_page_writes = on
	shared_buffers = 32MB
	max_connections = 100
	logging_collector = off
	log_min_messages = warning
	${JOBD_PG_CONF:-}
	EOF

	# Port race: another process may take the port between our pick and
	# the server's bind; the server then fails at once with "could not
	# bind" / "could not create any TCP/IP sockets": pick another.
	tries=0
	while :; do
		tries=$((tries + 1))
		if [ "$tries" -eq 1 ] && [ -n "${JOBD_PG_PORT:-}" ]; then
			port=$JOBD_PG_PORT
		else
			port=$(random_port)
		fi
		: > "$dir/log"
		chown postgres: "$dir/log" 2>/dev/null || true
		if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t "$timeout" \
			-o "-p $port" start >/dev/null 2>&1; then
			break
		fi
		if grep -Eq 'could not bind|could not create any TCP/IP sockets|could not create lock file' \
			"$dir/log" && [ "$tries" -lt 10 ]; then
			echo "$me: port $port taken; retrying" >&2
			# A postmaster that failed to bind exits by itself;
			# make sure before the next try.
			pid=$(server_pid)
			wait_gone "$pid" 10 || fail_start "server $pid did not exit after failing to bind"
			continue
		fi
		fail_start "the server did not start within ${timeout}s (try $tries, port $port)"
	done
	echo "$port" > "$dir/port"

	# Connect over TCP, as jobd will: proves the port is the one we meant.
	i=0
	until as_pg "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
		-c 'select 1' >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -ge $((timeout * 10)) ] && fail_start "the server does not answer on 127.0.0.1:$port"
		sleep 0.1
	done
	as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres \
		-d postgres -c 'CREATE DATABASE jobd' >/dev/null 2>"$dir/createdb.log" ||
		{ cat "$dir/createdb.log" >&2; fail_start "CREATE DATABASE jobd failed"; }
	uri="postgresql://postgres@127.0.0.1:$port/jobd"
	echo "$uri" > "$dir/uri"
	echo "$uri"
}

case $cmd in
start) do_start ;;
stop) do_stop ;;
*) usage ;;
esac
