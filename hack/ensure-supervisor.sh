#!/usr/bin/env bash
# ensure-supervisor.sh — make supervisord and supervisorctl (Debian package
# "supervisor") available, idempotently. The tests run their own supervisord
# from a generated configuration with its own socket; the system one is never
# used.
set -euo pipefail
exec bash "$(dirname "$0")/ensure-apt-program.sh" supervisord supervisor
