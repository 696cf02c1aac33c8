#!/bin/sh
# flaky.sh DIR - fails (exit 1) on attempts 1 and 2, succeeds on the third;
# appends JOBD_ATTEMPT to DIR/attempts on every run.
echo "$JOBD_ATTEMPT" >> "$1/attempts"
if [ "$JOBD_ATTEMPT" -lt 3 ]; then
	echo "not yet: attempt $JOBD_ATTEMPT" >&2
	exit 1
fi
echo "{\"attempt\":$JOBD_ATTEMPT}"
