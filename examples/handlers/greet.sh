#!/bin/sh
# greet.sh - a complete jobd exec handler, in plain sh.
#
# Contract (README "Handlers"):
#   stdin    the job's payload as compact JSON
#   stdout   the result: JSON if it parses as JSON, else kept as a string
#   stderr   its last 4 KiB become the job's "error" when the attempt fails
#   exit 0   succeeded; exit 65 (EX_DATAERR) failed for good, never retried;
#            any other exit, a signal or the timeout: retried with backoff
#   env      only PATH, JOBD_JOB_ID, JOBD_JOB_TYPE, JOBD_ATTEMPT,
#            JOBD_MAX_ATTEMPTS and the handler's own env = ... words
#   SIGTERM  on timeout, DELETE or shutdown: clean up and exit; SIGKILL
#            follows after kill_grace (to the whole process group)
set -eu

payload=$(cat)
case "$payload" in
'{'*) ;;
*)
	echo "greet: the payload must be a JSON object, got: $payload" >&2
	exit 65 # bad input: retrying cannot help
	;;
esac

trap 'echo "greet: stopped" >&2; exit 143' TERM

# A real handler would use jq or a proper language to read the payload;
# this one only echoes it back with what jobd told it.
printf '{"hello":%s,"job":"%s","attempt":%s}\n' \
	"$payload" "$JOBD_JOB_ID" "$JOBD_ATTEMPT"
