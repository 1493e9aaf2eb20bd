#!/usr/bin/env bash
# ensure-apt-program.sh PROGRAM PACKAGE — make PROGRAM available on this
# machine, idempotently: if it is on PATH, nothing happens; otherwise, on
# Debian/Ubuntu as root, the Debian package PACKAGE is installed with apt
# (without recommended packages); elsewhere the script says what to install
# and exits 1. The ensure-*.sh scripts for the tests' real programs
# (supervisord, prometheus) are thin callers of this one.
#
# Safe to run several times at once: the check-and-install runs under flock,
# and apt waits for a dpkg lock held by someone else (up to 10 minutes).
# On a machine whose init starts services, Debian's package starts its
# system service as usual; the tests never use that one (they run their own
# instance, with its own configuration, in a temporary directory).
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 PROGRAM DEBIAN-PACKAGE" >&2
	exit 2
fi
PROGRAM="$1"
PACKAGE="$2"

say() { printf 'ensure-%s: %s\n' "$PROGRAM" "$*" >&2; }

if command -v "$PROGRAM" >/dev/null 2>&1; then
	exit 0
fi

LOCK="${TMPDIR:-/tmp}/claude-parallel-ensure-apt.lock"
exec 9>"$LOCK"
if command -v flock >/dev/null 2>&1; then
	flock -w 900 9 || { say "timed out waiting for the lock $LOCK"; exit 1; }
fi
if command -v "$PROGRAM" >/dev/null 2>&1; then
	exit 0
fi

if [ "$(id -u)" != "0" ] || ! [ -r /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
	say "$PROGRAM is not installed; install it (on Debian/Ubuntu: sudo apt-get install $PACKAGE) and run again"
	exit 1
fi

say "installing Debian package $PACKAGE"
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }
if ! apt_get install --no-install-recommends "$PACKAGE" >/dev/null; then
	# The package lists may be missing or stale (a fresh container has none).
	apt_get update >/dev/null
	apt_get install --no-install-recommends "$PACKAGE" >/dev/null
fi
if ! command -v "$PROGRAM" >/dev/null 2>&1; then
	say "package $PACKAGE installed but $PROGRAM is still not on PATH"
	exit 1
fi
say "$PROGRAM installed ($PACKAGE)"
