#!/bin/sh
# tests/ops/pg_server.sh - `make check` runs tests/pg/smoke.sh through the
# ops loop: the private test PostgreSQL (tests/pg/pg.sh) starts, answers,
# is durable and loopback-only, survives a port race, fails cleanly, and
# stops without leaving a process or a directory.  77 = skip.
exec sh "$(dirname "$0")/../pg/smoke.sh"
