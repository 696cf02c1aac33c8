#!/bin/sh
# tests/pg/with_server.sh - run a command with every jobd the integration
# harness starts on PostgreSQL (issue 13).
#
#   sh tests/pg/with_server.sh CMD [ARG...]
#
# Starts one private server for the whole command (tests/pg/pg.sh start,
# in a new directory under /tmp), runs CMD with
#   JOBD_TEST_STORE=pg                 (unless already set: =sqlite runs
#                                       the command on SQLite beside an
#                                       idle server)
#   JOBD_TEST_PG_URI=postgresql://postgres@127.0.0.1:PORT/jobd
#   JOBD_TEST_PG_BIN=<the directory of its psql>
#   JOBD_TEST_PG_DIR=<pg.sh's directory: the server's log is DIR/log>
# in its environment - the harness (tests/integration/harness.c) then
# gives every daemon a database of its own on that server - and stops the
# server (tests/pg/pg.sh stop) when CMD ends, however it ends: a failed
# test, an error here, ^C (CMD runs in the foreground and gets it too).
# A SIGTERM or SIGHUP sent to this script alone takes effect when CMD
# ends.  If this script is killed outright (SIGKILL), a guard process
# stops the server: it waits for the end of a pipe only this script
# holds.  Exits with CMD's status; 77 without running CMD when this
# machine has no PostgreSQL server binaries (JOBD_TEST_PG_SKIP_OK=1: exit
# 0 instead, for make check).
#
# Environment: JOBD_PG_SH (default: pg.sh beside this script), and what
# pg.sh reads (JOBD_PG_BIN, JOBD_PG_TIMEOUT, JOBD_PG_CONF).
set -u

me=with_server.sh
[ $# -ge 1 ] || { echo "usage: $me CMD [ARG...]" >&2; exit 2; }
pgsh=${JOBD_PG_SH:-$(dirname "$0")/pg.sh}

dir=$(mktemp -d /tmp/jobd-pg.XXXXXX) || { echo "$me: mktemp failed" >&2; exit 1; }
stopped=0
stop_server() {
	[ "$stopped" -eq 1 ] && return 0
	stopped=1
	sh "$pgsh" stop "$dir" || echo "$me: could not stop the server in $dir" >&2
	# pg.sh removes only a directory it made; ours may still be empty.
	rmdir "$dir" 2>/dev/null
	# Tell the guard it is done (it must not stop a server that may
	# later get the same directory name).
	{ echo stopped >&9; } 2>/dev/null
	return 0
}
trap 'stop_server' EXIT
trap 'stop_server; trap - EXIT; exit 130' INT
trap 'stop_server; trap - EXIT; exit 143' TERM
trap 'stop_server; trap - EXIT; exit 129' HUP

uri=$(sh "$pgsh" start "$dir")
rc=$?
if [ "$rc" -eq 77 ]; then
	echo "$me: no PostgreSQL server on this machine: not running $*" >&2
	[ "${JOBD_TEST_PG_SKIP_OK:-}" = 1 ] && exit 0
	exit 77
fi
if [ "$rc" -ne 0 ] || [ -z "$uri" ]; then
	echo "$me: the PostgreSQL server did not start (pg.sh exit $rc)" >&2
	exit 1
fi
echo "$me: PostgreSQL at $uri for: $*" >&2

# The guard: reads the fifo until its only writer, our fd 9, closes -
# when we exit, however we exit - and then, unless stop_server wrote
# that it has stopped the server, stops it.  It is an asynchronous list,
# so ^C does not reach it.
mkfifo "$dir.guard" || exit 1
sh -c '[ -n "$(cat "$1")" ] || exec sh "$2" stop "$3" 2>/dev/null' guard \
	"$dir.guard" "$pgsh" "$dir" </dev/null >/dev/null &
exec 9>"$dir.guard"
rm -f "$dir.guard"

JOBD_TEST_STORE=${JOBD_TEST_STORE:-pg}
JOBD_TEST_PG_URI=$uri
JOBD_TEST_PG_BIN=$(cat "$dir/pgbin")
JOBD_TEST_PG_DIR=$dir
export JOBD_TEST_STORE JOBD_TEST_PG_URI JOBD_TEST_PG_BIN JOBD_TEST_PG_DIR

# Not exec: the trap must outlive CMD.  CMD runs in the foreground, so
# ^C reaches it as well as us; it does not get the guard's pipe.
"$@" 9>&-
rc=$?
stop_server
exit $rc
