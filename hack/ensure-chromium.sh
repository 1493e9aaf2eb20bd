#!/usr/bin/env bash
# ensure-chromium.sh — make Debian's chromium available, idempotently, for
# the dashboard test (driven headless from Go with chromedp).
set -euo pipefail
exec bash "$(dirname "$0")/ensure-apt-program.sh" chromium chromium
