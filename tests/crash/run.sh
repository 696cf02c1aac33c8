#!/bin/sh
# placeholder until the crash test lands
echo "crash test: not written yet"
