#!/bin/sh
# straggler.sh DIR - an exec handler for test_exec2.c that prints "done"
# and exits 0 while two background processes still hold its stdout:
#   DIR/straggler.pid  `sleep 300` in the command's own process group
#   DIR/escaped.pid    `sleep 60` in a session of its own (setsid), out of
#                      jobd's reach: it keeps stdout open after the exit
#   DIR/leader.pid     this shell: the group's leader, and its id
# It exits only once the escaped one has its own session (a fifo says so).
dir=$1
mkfifo "$dir/ready"
sleep 300 &
echo "$!" > "$dir/straggler.pid"
setsid sh -c 'echo "$$" > "$1/escaped.pid"; echo x > "$1/ready"; exec sleep 60' sh "$dir" &
read x < "$dir/ready"
echo "$$" > "$dir/leader.pid"
echo done
