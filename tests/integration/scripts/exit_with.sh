#!/bin/sh
# exit_with.sh CODE - writes a line naming the attempt to stderr and exits
# with CODE.
echo "boom: attempt ${JOBD_ATTEMPT-?} of ${JOBD_MAX_ATTEMPTS-?}, exit $1" >&2
exit "$1"
