#!/bin/sh
# First start: initdb with POSTGRES_USER / POSTGRES_PASSWORD, create
# POSTGRES_DB, accept password logins from the Compose network. Then run
# postgres as PID 1 (it handles SIGTERM/SIGINT itself).
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
	echo "pg-entrypoint: POSTGRES_PASSWORD is required" >&2
	exit 1
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
		--auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
	rm -f "$pwfile"
	printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
	if [ "$POSTGRES_DB" != postgres ]; then
		pg_ctl -o "-c listen_addresses=''" -w start >/dev/null
		createdb --username="$POSTGRES_USER" "$POSTGRES_DB"
		pg_ctl -m fast -w stop >/dev/null
	fi
	echo "pg-entrypoint: initialised $PGDATA"
fi
exec postgres "$@"
