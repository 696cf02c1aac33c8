#!/bin/sh
# progress.sh FIFO - an exec handler for test_progress.c that reports its
# progress on the fd named by JOBD_PROGRESS_FD (3).  Its payload, a JSON
# string, names the scenario; FIFO is its gate: where the scenario says
# "gate", it blocks reading FIFO until the test opens and closes the write
# end.  Never evaluates its input.
fifo=$1
payload=$(cat)
fd=${JOBD_PROGRESS_FD:-3}
# a run of n x's
pad() { head -c "$1" /dev/zero | tr '\0' x; }
say() { printf '%s\n' "$1" >&"$fd"; }
case $payload in
*'"lines"'*)
	say '{"percent": 10}'
	say 'not json'
	say '{"percent": 40, "message": "resizing"}'
	cat "$fifo" > /dev/null
	say '{"percent": 60}'
	# none of these is a report: too long (an object all the same), not
	# an object, a NUL byte, not UTF-8, not JSON, nested too deep
	printf '{"pad": "%s"}\n' "$(pad 5000)" >&"$fd"
	say '[1, 2]'
	say '"just a string"'
	printf '{"percent": 61, "n": "a\000b"}\n' >&"$fd"
	printf '{"percent": 62, "m": "\377"}\n' >&"$fd"
	say '{"percent": 63,}'
	say '{"percent": 64'
	printf '{"a": %s%s}\n' "$(pad 40 | tr x '[')" "$(pad 40 | tr x ']')" >&"$fd"
	say ''
	echo '{"done": true}'
	;;
*'"resync"'*)
	# a line of 200 KB, many reads long, then the next line counts; a
	# last line without its newline is a line too (when it is a report)
	printf '{"pad": "%s"}\n' "$(pad 200000)" >&"$fd"
	say '{"percent": 70}'
	printf '[1]' >&"$fd"
	;;
*'"boundary"'*)
	# 4096 bytes: a report; 4097: too long; then "\r\n" is a newline too
	printf '{"p":"%s"}\n' "$(pad 4088)" >&"$fd"
	printf '{"p":"%s"}\n' "$(pad 4089)" >&"$fd"
	printf '{"q":"%s"}\r\n' "$(pad 4088)" >&"$fd"
	printf '{"q":"%s"}\r\n' "$(pad 4089)" >&"$fd"
	;;
*'"eof"'*)
	printf '{"percent": 80}' >&"$fd"
	;;
*'"quotes"'*)
	# what SQL and array literals must carry: quotes, backslashes,
	# braces, commas, an escaped NUL, UTF-8, NULL as a word
	say '{"m": "q\"b\\s {a,b} \u0000 é NULL", "n": null}'
	;;
*'"fd"'*)
	# which fds it got, into FIFO.fds (a child lists this shell's, as
	# record.sh does), and the variable
	sh -c 'ls -l "/proc/$PPID/fd" > "$1"' sh "$fifo.fds"
	printf '{"env": "%s"}\n' "$JOBD_PROGRESS_FD" >&3
	;;
*'"retry"'*)
	# attempt 1 reports and fails; attempt 2 waits for the gate first
	if [ "$JOBD_ATTEMPT" = 1 ]; then
		say '{"attempt": 1}'
		exit 1
	fi
	cat "$fifo" > /dev/null
	say '{"attempt": 2}'
	;;
*'"hold"'*)
	say '{"percent": 5}'
	cat "$fifo" > /dev/null
	exec sleep 300
	;;
*'"flood"'*)
	# reports as fast as it can, the last one known
	i=0
	while [ $i -lt 3000 ]; do
		say "{\"i\": $i}"
		i=$((i + 1))
	done
	say '{"i": "last"}'
	;;
esac
exit 0
