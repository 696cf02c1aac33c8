#!/bin/sh
# tests/ops/bash_completion.sh - packaging/bash-completion/jobd (issue 17):
# bash completes the client's commands, each command's options, the job
# statuses after --status, the help topics, and the daemon's options
# before any command.  77 (skip) without bash.
set -u
export LC_ALL=C
command -v bash >/dev/null 2>&1 || { echo "no bash"; exit 77; }
exec bash -c '
set -u
export LC_ALL=C
fail() { echo "bash-completion: FAIL: $*" >&2; exit 1; }
# shellcheck disable=SC1091
. packaging/bash-completion/jobd
complete -p jobd | grep -q -- "-F _jobd" || fail "not registered"
# complete WORDS...: COMPREPLY for the last word, sorted, on one line.
complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMPREPLY=()
	_jobd
	[ ${#COMPREPLY[@]} -eq 0 ] && return
	printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "
}
expect() {
	want=$1
	shift
	got=$(complete_words "$@")
	[ "$got" = "$want" ] || fail "jobd ${*}: got [$got], want [$want]"
}
expect "cancel " jobd ca
expect "schedules submit " jobd s
got=$(complete_words jobd "")
for c in submit get wait ls cancel retry schedules types nodes help; do
	case " $got " in *" $c "*) ;; *) fail "no command $c in [$got]" ;; esac
done
expect "--status " jobd ls --st
expect "cancelled " jobd ls --status ca
expect "failed " jobd --json ls --status f
expect "--delay --depends-on " jobd submit echo --de
expect "--wait " jobd wait ID --w
expect "" jobd cancel ID --w
expect "--config --config-reference " jobd --con
expect "--check-config " jobd --ch
expect "nodes " jobd help n
expect "--json " jobd --url http://x ls --j
expect "" jobd submit echo --priority ""
echo "bash-completion: ok"
'
