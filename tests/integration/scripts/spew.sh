#!/bin/sh
# spew.sh BYTES CHAR - writes BYTES copies of CHAR to stdout (its stdin,
# the payload, is left unread).
head -c "$1" /dev/zero | tr '\0' "$2"
