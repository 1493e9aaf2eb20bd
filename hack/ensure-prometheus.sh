#!/usr/bin/env bash
# ensure-prometheus.sh — make the Prometheus server (Debian package
# "prometheus") available, idempotently. The tests run their own instance on
# a loopback port with a temporary data directory; the system one is never
# used.
set -euo pipefail
exec bash "$(dirname "$0")/ensure-apt-program.sh" prometheus prometheus
