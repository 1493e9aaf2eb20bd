#!/usr/bin/env bash
# ensure-postgres.sh — make a PostgreSQL server for the tests answer on this
# machine, idempotently, and print its DSN on stdout.
#
#   1. Debian's server is missing          → on Debian/Ubuntu as root: apt-get install postgresql
#                                            (through ensure-apt-program.sh); elsewhere say what to do.
#   2. no cluster in the data directory    → initdb one, owned by the non-root user postgres.
#   3. the server does not answer          → start it with pg_ctl and wait for pg_isready.
#
# The server is the tests' own, never the system's service: its own data
# directory, listening on a unix socket in that directory only
# (listen_addresses = '', so no TCP port at all, on loopback or elsewhere),
# local connections trusted (only users of this machine can reach the
# socket). Each test makes its own database from template0 and drops it.
#
# Safe to run several times at once: the check-and-start runs under flock.
#
# Environment:
#   CP_PG_DIR    data directory and socket directory (default /tmp/claude-parallel-pg)
#   CP_PG_PORT   the port number in the socket's name (default 55432)
#   CP_PG_USER   the OS user that runs the server (default postgres; the current user when not root)
set -euo pipefail

DIR="${CP_PG_DIR:-/tmp/claude-parallel-pg}"
PORT="${CP_PG_PORT:-55432}"
say() { printf 'ensure-postgres: %s\n' "$*" >&2; }

if [ "$(id -u)" = "0" ]; then
	RUNAS="${CP_PG_USER:-postgres}"
else
	RUNAS="$(id -un)"
fi
as_user() {
	if [ "$(id -un)" = "$RUNAS" ]; then "$@"; else runuser -u "$RUNAS" -- "$@"; fi
}

# Debian puts the server programs under /usr/lib/postgresql/<version>/bin.
find_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/postgres" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
	done
	if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
		dirname "$(command -v initdb)"; return 0
	fi
	return 1
}

dsn() { echo "host=$DIR port=$PORT user=$RUNAS dbname=postgres sslmode=disable"; }

LOCK="${TMPDIR:-/tmp}/claude-parallel-ensure-postgres.lock"
exec 9>"$LOCK"
flock -w 900 9 || { say "timed out waiting for the lock $LOCK"; exit 1; }

BINDIR="$(find_bindir || true)"
if [ -z "$BINDIR" ]; then
	# ensure-apt-program.sh installs Debian's package (postgresql pulls the
	# versioned server, whose programs are not on PATH: pg_ctlcluster is).
	bash "$(dirname "$0")/ensure-apt-program.sh" pg_ctlcluster postgresql >&2
	BINDIR="$(find_bindir)" || { say "postgresql installed but no initdb/postgres found under /usr/lib/postgresql"; exit 1; }
fi

if [ -S "$DIR/.s.PGSQL.$PORT" ] && "$BINDIR/pg_isready" -q -h "$DIR" -p "$PORT" -U "$RUNAS"; then
	say "PostgreSQL answers on $DIR/.s.PGSQL.$PORT"
	dsn
	exit 0
fi

mkdir -p "$DIR"
chown "$RUNAS" "$DIR"
chmod 0755 "$DIR"
if [ ! -s "$DIR/data/PG_VERSION" ]; then
	say "creating a cluster in $DIR/data (user $RUNAS)"
	rm -rf "$DIR/data"
	as_user "$BINDIR/initdb" -D "$DIR/data" -U "$RUNAS" --auth=trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 ||
		{ cat "$DIR/initdb.log" >&2; exit 1; }
	cat >>"$DIR/data/postgresql.conf" <<EOF
# claude-parallel tests: a unix socket in $DIR only, no TCP listener at all.
listen_addresses = ''
unix_socket_directories = '$DIR'
port = $PORT
max_connections = 300
# Test data: a crash loses the last commits, never the cluster's consistency.
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
EOF
fi

# A server killed hard leaves its pid file; pg_ctl start copes with a stale one.
say "starting PostgreSQL ($BINDIR) on $DIR/.s.PGSQL.$PORT"
# 9>&-: the server must not inherit (and so hold forever) the flock.
as_user "$BINDIR/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >&2 9>&- ||
	{ tail -n 30 "$DIR/server.log" >&2; exit 1; }
"$BINDIR/pg_isready" -q -h "$DIR" -p "$PORT" -U "$RUNAS" || { say "started but pg_isready does not answer"; exit 1; }
dsn
