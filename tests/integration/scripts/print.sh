#!/bin/sh
# print.sh TEXT - prints TEXT and a newline.
printf '%s\n' "$1"
