#!/bin/sh
# record.sh DIR [ARG...] - an exec handler for test_exec.c that records how
# jobd ran it into DIR (which must come as an argument: jobd clears the
# environment).  Never evaluates its input.
#
#   DIR/fds    `ls -l` of this shell's open fds, taken before it redirects
#              anything (see below)
#   DIR/argv   $0 and every argument, one per line
#   DIR/env    the environment (`env`)
#   DIR/stdin  stdin, byte for byte
#
# The fd list must show what jobd passed, not what this shell opened.  dash
# applies a redirection such as `cmd > file` in the shell itself (saving
# the old fd on 10 or above) before it forks cmd, so `ls /proc/$$/fd >
# file` would show the redirection; and `ls /proc/self/fd` would list ls's
# own directory fd.  So a child shell does the redirection in its own
# process and lists its parent's (this shell's) fds, while this shell
# holds only what it inherited plus the script file dash reads from
# (opened by dash after exec, close-on-exec; test_exec.c allows that one).
dir=$1
sh -c 'ls -l "/proc/$PPID/fd" > "$1"' sh "$dir/fds"
printf '%s\n' "$0" "$@" > "$dir/argv"
env > "$dir/env"
cat > "$dir/stdin"
echo '{"recorded":true}'
