#!/bin/sh
# hang.sh DIR [ignore-term|exit] - an exec handler for test_exec.c that
# starts a grandchild (`sleep 300 &`), writes both pids to
# DIR/grandchild.pid and DIR/child.pid, then waits for it forever.
#   ignore-term  SIGTERM is ignored here and, inherited, in the grandchild:
#                only SIGKILL stops them.
#   exit         exits 0 at once instead, leaving the grandchild behind.
dir=$1
if [ "${2-}" = ignore-term ]; then
	trap '' TERM
fi
sleep 300 &
echo "$!" > "$dir/grandchild.pid"
echo "$$" > "$dir/child.pid"
if [ "${2-}" = exit ]; then
	exit 0
fi
wait
sleep 300
