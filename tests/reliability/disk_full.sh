#!/bin/sh
# tests/reliability/disk_full.sh - jobd on a full disk (issue 7 item 2;
# README "Guarantees": a full disk answers 503 + Retry-After, never a 202
# without a stored job, and intake resumes without a restart).
#
# As root: mounts a 4 MiB tmpfs for the store, takes 1 MiB of it with a
# filler file, and submits noop jobs with 3 KB payloads until POST answers
# 503.  Then:
#   - the next POSTs answer 503 with Retry-After, each in under 1 s;
#   - the store holds exactly the jobs answered 202 (sqlite3, read-only),
#     every one of them;
#   - GET /jobs/<id> answers 200 for every one of them, GET /readyz 503;
#   - once the filler is deleted, POST answers 202 again within 10 s of
#     retries, without a restart (the daemon is the same process), and the
#     store again holds exactly the jobs answered 202, /readyz answers
#     200, and every job runs to success within 10 s (attempt results
#     that could not be committed are kept and applied later);
#   - SIGTERM stops the daemon with status 0.
# Not root, or no permission to mount (an unprivileged container): prints
# SKIP and exits 0.  JOBD_BIN names the daemon (default build/jobd);
# JOBD_KEEP=1 keeps the temporary directory.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: disk-full test needs root (to mount a small tmpfs)"
	exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-diskfull-XXXXXX") || exit 1
MNT=$TMP/fs
MOUNTED=

. "$HERE/common.inc"

cleanup() {
	kill_jobd
	if [ -n "$MOUNTED" ]; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
	fi
	if [ -n "${JOBD_KEEP:-}" ]; then
		echo "disk-full: kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

FAILED=0
fail() {
	echo "disk-full: FAIL: $*" >&2
	FAILED=$((FAILED + 1))
}
die() {
	echo "disk-full: FAIL: $*" >&2
	echo "---- tail of $TMP/jobd.log ----" >&2
	grep -v 'access:' "$TMP/jobd.log" | tail -n 20 >&2
	exit 1
}

[ -x "$JOBD" ] || die "no daemon at $JOBD (run make all)"
command -v sqlite3 >/dev/null || die "sqlite3 (the CLI) is needed"
mkdir "$MNT" || exit 1
if ! mount -t tmpfs -o size=4m,mode=0755 tmpfs "$MNT" 2>"$TMP/mount.err"; then
	echo "SKIP: disk-full test: cannot mount a tmpfs" \
		"($(cat "$TMP/mount.err"))"
	exit 0
fi
MOUNTED=1
dd if=/dev/zero of="$MNT/filler" bs=64k count=16 2>/dev/null ||
	die "cannot write the filler file"

DB=$MNT/jobs.db
PORT=$(free_port)
cat >"$TMP/jobd.conf" <<EOF
; written by tests/reliability/disk_full.sh
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

start_jobd "$TMP/jobd.conf"
wait_ready 10 || die "jobd did not become ready"
PID0=$DPID

PAD=$(head -c 3000 /dev/zero | tr '\0' 'x')
job() { printf '{"type":"noop","payload":{"n":%d,"pad":"%s"}}' "$1" "$PAD"; }

# Stored jobs, and the acknowledged ones missing from the store.
stored() { sqlite3 -readonly "$DB" "SELECT count(*) FROM jobs"; }
missing() {
	sqlite3 -readonly -bail "$DB" <<EOF
CREATE TEMP TABLE acked(id TEXT);
.import '$TMP/acked' acked
SELECT count(*) FROM acked WHERE id NOT IN (SELECT id FROM jobs);
EOF
}

# 1. fill the disk
: >"$TMP/acked"
n=0
acked=0
full=
while [ "$n" -lt 3000 ]; do
	n=$((n + 1))
	post "$(job "$n")"
	case $CODE in
	202)	[ -n "$ID" ] || die "POST $n: 202 without an id"
		echo "$ID" >>"$TMP/acked"
		acked=$((acked + 1)) ;;
	503)	full=$n; break ;;
	*)	die "POST $n: answered $CODE before the disk was full:" \
			"$(cat "$TMP/post.body" 2>/dev/null)" ;;
	esac
done
[ -n "$full" ] || die "the disk never filled ($n POSTs)"
[ -n "$RA" ] || fail "the first 503 has no Retry-After"
echo "disk-full: $acked job(s) acknowledged, POST $full answered 503" \
	"(Retry-After: $RA): $(cat "$TMP/post.body")"

# 2. full: every POST answers 503 + Retry-After, quickly
n503=1
slow=0
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	n=$((n + 1))
	post "$(job "$n")"
	case $CODE in
	503)	n503=$((n503 + 1))
		[ -n "$RA" ] || fail "POST $n: 503 without Retry-After" ;;
	202)	fail "POST $n: 202 on a full disk (it must stay 503 until" \
			"space is freed)"
		[ -n "$ID" ] && echo "$ID" >>"$TMP/acked"
		acked=$((acked + 1)) ;;
	*)	fail "POST $n: answered $CODE on a full disk" ;;
	esac
	if [ "$(echo "$SECS" | awk '{ print ($1 >= 1.0) }')" = 1 ]; then
		slow=$((slow + 1))
		fail "POST $n: the 503 took $SECS s (>= 1 s)"
	fi
done
alive || die "jobd exited on a full disk (status: see the log)"
rc=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 5 \
	"http://127.0.0.1:$PORT/readyz")
[ "$rc" = 503 ] || fail "full: GET /readyz answered $rc, not 503"
s=$(stored)
m=$(missing)
[ "$s" = "$acked" ] ||
	fail "full: $acked job(s) acknowledged but $s stored"
[ "$m" = 0 ] || fail "full: $m acknowledged job(s) not in the store"
bad=$(get_ids "$TMP/acked")
[ "$bad" = 0 ] || fail "full: $bad GET /jobs/<id> did not answer 200"
echo "disk-full: full: $n503 x 503 with Retry-After ($slow slow)," \
	"202s=$acked stored=$s, GET of every acknowledged job: $bad failed"

# 3. free space: intake resumes without a restart
rm -f "$MNT/filler"
resumed=
i=0
while [ "$i" -lt 50 ]; do
	i=$((i + 1))
	n=$((n + 1))
	post "$(job "$n")"
	if [ "$CODE" = 202 ]; then
		echo "$ID" >>"$TMP/acked"
		acked=$((acked + 1))
		resumed=$i
		break
	fi
	[ "$CODE" = 503 ] || fail "POST $n: answered $CODE after freeing space"
	sleep 0.2
done
[ -n "$resumed" ] || fail "intake did not resume within 10 s of freeing space"
after=0
for i in 1 2 3 4 5 6 7 8 9 10; do
	n=$((n + 1))
	post "$(job "$n")"
	if [ "$CODE" = 202 ]; then
		echo "$ID" >>"$TMP/acked"
		acked=$((acked + 1))
		after=$((after + 1))
	else
		fail "POST $n: answered $CODE after intake resumed"
	fi
done
alive || die "jobd exited after space was freed"
[ "$DPID" = "$PID0" ] || fail "jobd was restarted"
s=$(stored)
m=$(missing)
[ "$s" = "$acked" ] || fail "freed: $acked job(s) acknowledged but $s stored"
[ "$m" = 0 ] || fail "freed: $m acknowledged job(s) not in the store"
bad=$(get_ids "$TMP/acked")
[ "$bad" = 0 ] || fail "freed: $bad GET /jobs/<id> did not answer 200"
rc=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 5 \
	"http://127.0.0.1:$PORT/readyz")
[ "$rc" = 200 ] || fail "freed: GET /readyz answered $rc, not 200"
# Attempt results that could not be committed on the full disk are kept
# and applied once it can write again: every job ends up succeeded.
i=0
while :; do
	left=$(sqlite3 -readonly "$DB" \
		"SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
	[ "$left" = 0 ] && break
	if [ "$i" -ge 100 ]; then
		fail "freed: $left job(s) not succeeded 10 s after space was freed"
		break
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "disk-full: freed: intake resumed at retry ${resumed:-never}, then" \
	"$after/10 x 202; 202s=$acked stored=$s; same process: yes"

stop_jobd 20
[ "$DSTATUS" = 0 ] || fail "jobd exited with status $DSTATUS on SIGTERM"
ic=$(sqlite3 -readonly "$DB" "PRAGMA integrity_check" 2>&1)
[ "$ic" = ok ] || fail "integrity_check: $ic"

if [ "$FAILED" -gt 0 ]; then
	echo "disk-full: FAIL ($FAILED check(s))" >&2
	grep -v 'access:' "$TMP/jobd.log" | tail -n 20 >&2
	exit 1
fi
echo "disk-full: ok"
