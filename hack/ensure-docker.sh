#!/usr/bin/env bash
# ensure-docker.sh — make a Docker engine answer on this machine, idempotently.
#
#   1. `docker version` answers            → nothing to do, exit 0.
#   2. dockerd is missing                  → on Debian/Ubuntu as root: apt-get install docker.io;
#                                            elsewhere: say what to do and exit 1.
#   3. nothing answers on the socket       → start dockerd in the background and wait
#                                            (up to ENSURE_DOCKER_TIMEOUT seconds, default 60)
#                                            until `docker version` answers.
#
# A daemon this script starts runs with live-restore, so containers (and the
# claude-parallel tasks in them) keep running through a restart of the daemon:
# when /etc/docker/daemon.json does not exist it is written as
# {"live-restore": true}; when it exists without a "live-restore" key, dockerd
# gets --live-restore; when it sets the key, its choice stands. Nothing is
# changed for a daemon that already answers, nor in swarm mode (live-restore is
# incompatible with it).
#
# Safe to run several times at once: the whole check-and-start runs under flock, so
# two concurrent callers never start two daemons; the second one finds the first's
# daemon answering and exits 0.
#
# Environment:
#   ENSURE_DOCKER_TIMEOUT   seconds to wait for the daemon (default 60)
#   DOCKERD_LOG             daemon log file (default /var/log/dockerd.log, else $TMPDIR)
#   DOCKERD_EXTRA_FLAGS     extra flags appended to dockerd's command line
#   ENSURE_DOCKER_LIVE_RESTORE  1 (default) to start dockerd with live-restore, 0 not to
#   DOCKERD_CONFIG          daemon configuration file (default /etc/docker/daemon.json)
set -euo pipefail

TIMEOUT="${ENSURE_DOCKER_TIMEOUT:-60}"

say() { printf 'ensure-docker: %s\n' "$*" >&2; }

docker_answers() {
	# `docker version` exits non-zero when the server part cannot be reached.
	command -v docker >/dev/null 2>&1 && timeout 10 docker version >/dev/null 2>&1
}

# warn_live_restore says so when the daemon that answers would stop every running
# task if it restarted; it changes nothing (the daemon is not this script's to restart).
warn_live_restore() {
	if [ "$(docker info --format '{{.LiveRestoreEnabled}}' 2>/dev/null)" = "false" ]; then
		say "note: live-restore is off: a restart of the Docker daemon stops running tasks" \
			"(enable it with {\"live-restore\": true} in /etc/docker/daemon.json, then reload or restart dockerd)"
	fi
}

# Fast path, without taking the lock: the common case once the engine runs.
if docker_answers; then
	say "Docker engine answers ($(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo '?'))"
	warn_live_restore
	exit 0
fi

# If DOCKER_HOST points somewhere other than the local socket, starting a local daemon
# would not help the caller: report and stop.
if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != "unix:///var/run/docker.sock" ]; then
	say "DOCKER_HOST=${DOCKER_HOST} does not answer; start that engine or unset DOCKER_HOST."
	exit 1
fi

LOCKDIR="${TMPDIR:-/tmp}"
LOCK="${LOCKDIR}/claude-parallel-ensure-docker.lock"
exec 9>"$LOCK"
if command -v flock >/dev/null 2>&1; then
	# Wait long enough for another caller's full install + start to finish.
	flock -w $((TIMEOUT + 600)) 9 || { say "timed out waiting for the lock $LOCK"; exit 1; }
fi

# Another caller may have started it while we waited for the lock.
if docker_answers; then
	say "Docker engine answers (started by a concurrent caller)"
	exit 0
fi

is_root() { [ "$(id -u)" = "0" ]; }
is_debian_like() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
	if is_debian_like && is_root; then
		say "dockerd not found: installing docker.io with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq docker.io >/dev/null
		say "installed: $(dockerd --version 2>/dev/null || echo docker.io)"
	else
		cat >&2 <<'EOF'
ensure-docker: no Docker engine answers and `dockerd` is not installed.
  - Linux: install Docker Engine (Debian/Ubuntu: `sudo apt-get install docker.io`,
    others: https://docs.docker.com/engine/install/) and start it
    (`sudo systemctl start docker`), or re-run this script as root on Debian/Ubuntu.
  - macOS/Windows: install and start Docker Desktop.
  - Remote engine: set DOCKER_HOST to it.
Then run this script again.
EOF
		exit 1
	fi
fi

if ! is_root; then
	say "no Docker engine answers and starting dockerd needs root."
	say "start it yourself (e.g. \`sudo systemctl start docker\` or \`sudo bash $0\`), or start Docker Desktop."
	exit 1
fi

# live-restore: containers survive a restart of the daemon (without it, the daemon
# stops every container on its way down and the tasks in them are cut short).
# Sets LIVE_RESTORE_FLAGS for a dockerd started directly.
LIVE_RESTORE_FLAGS=()
DAEMON_JSON="${DOCKERD_CONFIG:-/etc/docker/daemon.json}"
configure_live_restore() {
	if [ "${ENSURE_DOCKER_LIVE_RESTORE:-1}" = "0" ]; then
		return 0
	fi
	case " ${DOCKERD_EXTRA_FLAGS:-} " in
	*" --live-restore"*) return 0 ;; # the caller chose
	esac
	if [ -e /var/lib/docker/swarm/state.json ]; then
		say "swarm state found: not enabling live-restore (incompatible with swarm mode)"
		return 0
	fi
	if [ ! -e "$DAEMON_JSON" ]; then
		if { mkdir -p "$(dirname "$DAEMON_JSON")" && printf '{\n  "live-restore": true\n}\n' >"$DAEMON_JSON"; } 2>/dev/null; then
			say "wrote $DAEMON_JSON with live-restore enabled"
		else
			say "cannot write $DAEMON_JSON; passing --live-restore instead"
			LIVE_RESTORE_FLAGS=(--live-restore)
		fi
	elif grep -q '"live-restore"' "$DAEMON_JSON"; then
		say "$DAEMON_JSON sets live-restore; keeping its choice"
	else
		# A flag and the same key in the file would conflict; the key is absent.
		LIVE_RESTORE_FLAGS=(--live-restore)
	fi
}
configure_live_restore

# A service manager, when there is one, is the proper owner of the daemon.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	say "starting docker with systemctl"
	if systemctl start docker >/dev/null 2>&1; then
		for _ in $(seq 1 "$TIMEOUT"); do
			if docker_answers; then
				say "Docker engine answers (systemd)"
				exit 0
			fi
			sleep 1
		done
	fi
	say "systemctl did not bring docker up; starting dockerd directly"
fi

LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
if ! touch "$LOG" 2>/dev/null; then
	LOG="${TMPDIR:-/tmp}/dockerd.log"
fi

# A stale pid file from a daemon that died (e.g. the machine was handed over) makes
# dockerd refuse to start; remove it only when its process is gone.
PIDFILE=/var/run/docker.pid
if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE" 2>/dev/null)" 2>/dev/null; then
	rm -f "$PIDFILE"
fi

start_dockerd() {
	# $@: extra flags for this attempt
	set -- ${LIVE_RESTORE_FLAGS[@]+"${LIVE_RESTORE_FLAGS[@]}"} "$@"
	say "starting: dockerd${*:+ $*}${DOCKERD_EXTRA_FLAGS:+ $DOCKERD_EXTRA_FLAGS} (log: $LOG)"
	# setsid + nohup: the daemon must outlive this script and the shell that ran it.
	# 9>&-: the daemon must not inherit the lock. It would hand it on to containerd
	# and to every container's shim, and with live-restore those outlive the daemon:
	# after a daemon restart the next caller would wait for the lock in vain.
	# shellcheck disable=SC2086
	setsid nohup dockerd "$@" ${DOCKERD_EXTRA_FLAGS:-} >>"$LOG" 2>&1 </dev/null 9>&- &
	DOCKERD_PID=$!
	for _ in $(seq 1 "$TIMEOUT"); do
		if docker_answers; then
			return 0
		fi
		if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
			say "dockerd exited early; last log lines:"
			tail -n 15 "$LOG" >&2 || true
			return 1
		fi
		sleep 1
	done
	say "dockerd did not answer within ${TIMEOUT}s; last log lines:"
	tail -n 15 "$LOG" >&2 || true
	kill "$DOCKERD_PID" 2>/dev/null || true
	wait "$DOCKERD_PID" 2>/dev/null || true
	return 1
}

# First the defaults; then, for sandboxes where iptables/bridge setup is not allowed
# (containers here use network "none" anyway), without them.
if start_dockerd; then
	:
elif start_dockerd --iptables=false --ip6tables=false --bridge=none; then
	:
elif start_dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs; then
	:
else
	say "could not start dockerd; see $LOG"
	exit 1
fi

say "Docker engine answers: $(docker version --format 'server {{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null)"
