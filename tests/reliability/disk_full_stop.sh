#!/bin/sh
# tests/reliability/disk_full_stop.sh - SIGTERM while the disk is full and
# attempt results cannot be written (issue 11, item 5: the daemon logged
# errors until SIGKILL).
#
# As root: a 4 MiB tmpfs holds the store.  Two sleep jobs start, then the
# disk is filled, so that their results cannot be committed.  Once the writer has logged a failed transaction with them,
# SIGTERM must stop jobd well within shutdown_grace + a few seconds (the
# limit here is a generous 20 s; it never stopped before); the results are
# given up, and after space is freed a restart requeues both jobs, which
# then succeed.
# (A reader holding one snapshot keeps the WAL growing, so that those
# commits need new space.)  Not root, or no permission to mount: prints
# SKIP and exits 0.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: disk-full stop test needs root (to mount a small tmpfs)"
	exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-fullstop-XXXXXX") || exit 1
MNT=$TMP/fs
MOUNTED=

. "$HERE/common.inc"

RPID=
cleanup() {
	[ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
	kill_jobd
	if [ -n "$MOUNTED" ]; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	fi
	if [ -n "${JOBD_KEEP:-}" ]; then
		echo "disk-full-stop: kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

die() {
	echo "disk-full-stop: FAIL: $*" >&2
	echo "---- tail of $TMP/jobd.log ----" >&2
	grep -v 'access:' "$TMP/jobd.log" | tail -n 20 >&2
	exit 1
}

[ -x "$JOBD" ] || die "no daemon at $JOBD (run make all)"
mkdir "$MNT" || exit 1
if ! mount -t tmpfs -o size=4m,mode=0755 tmpfs "$MNT" 2>"$TMP/mount.err"; then
	echo "SKIP: disk-full stop test: cannot mount a tmpfs" \
		"($(cat "$TMP/mount.err"))"
	exit 0
fi
MOUNTED=1
dd if=/dev/zero of="$MNT/filler" bs=64k count=40 2>/dev/null ||
	die "cannot write the filler file"

DB=$MNT/jobs.db
PORT=$(free_port)
cat >"$TMP/jobd.conf" <<EOF
; written by tests/reliability/disk_full_stop.sh
[server]
listen = 127.0.0.1:$PORT
log_level = notice
[store]
path = $DB
durability = full
[workers]
threads = 2
shutdown_grace = 1s
[handler.sleep]
builtin = sleep
[handler.noop]
builtin = noop
EOF

start_jobd "$TMP/jobd.conf"
wait_ready 10 || die "jobd did not become ready"

# A reader holding one snapshot keeps the WAL from starting over, so
# that every later commit needs new space (as on a busy store).
python3 -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN")
c.execute("SELECT count(*) FROM jobs").fetchall()
time.sleep(60)' "$DB" &
RPID=$!

: >"$TMP/sleepers"
for i in 1 2; do
	post '{"type":"sleep","payload":{"seconds":2}}'
	[ "$CODE" = 202 ] || die "POST sleep: $CODE"
	echo "$ID" >>"$TMP/sleepers"
done

# Both running, then no space left at all.
for id in $(cat "$TMP/sleepers"); do
	i=0
	until curl -s --noproxy '*' --max-time 5 \
		"http://127.0.0.1:$PORT/jobs/$id" | grep -q '"status":"running"'; do
		i=$((i + 1))
		[ "$i" -lt 1000 ] || die "job $id did not start within 10 s"
		sleep 0.01
	done
done
# Then wait (bounded) until a transaction fails: the sleepers' results.
dd if=/dev/zero of="$MNT/filler2" bs=4k 2>/dev/null
before=$(grep -c 'transaction of .* failed' "$TMP/jobd.log")
i=0
while [ "$(grep -c 'transaction of .* failed' "$TMP/jobd.log")" -le "$before" ]
do
	i=$((i + 1))
	[ "$i" -lt 1000 ] || die "no failed transaction within 10 s"
	sleep 0.01
done
t0=$(date +%s%N)
stop_jobd 20
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
[ "$DSTATUS" != -1 ] || die "SIGTERM did not stop jobd within 20 s on a" \
	"full disk"
grep -q 'giving up on unwritten attempt results' "$TMP/jobd.log" ||
	die "no log line says that results were given up"
echo "disk-full-stop: stopped $ms ms after SIGTERM (status $DSTATUS)"

kill "$RPID" 2>/dev/null
wait "$RPID" 2>/dev/null
RPID=
rm -f "$MNT/filler" "$MNT/filler2"
start_jobd "$TMP/jobd.conf"
wait_ready 10 || die "jobd did not restart"
for id in $(cat "$TMP/sleepers"); do
	i=0
	while :; do
		st=$(curl -s --noproxy '*' --max-time 5 \
			"http://127.0.0.1:$PORT/jobs/$id" |
			sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
		[ "$st" = succeeded ] && break
		i=$((i + 1))
		[ "$i" -lt 1000 ] || die "job $id is $st 10 s after the restart"
		sleep 0.01
	done
done
stop_jobd 20
[ "$DSTATUS" = 0 ] || die "the last stop ended with status $DSTATUS"
echo "disk-full-stop: ok"
