#!/bin/sh
# spew_then_read.sh DIR BYTES - writes BYTES 'b's to stdout before it reads
# anything, then copies stdin to DIR/stdin.  Deadlocks unless jobd reads
# stdout while it writes stdin.
head -c "$2" /dev/zero | tr '\0' b
cat > "$1/stdin"
