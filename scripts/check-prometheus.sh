#!/usr/bin/env bash
# The Prometheus configuration and alert rules checked by the real tool (promtool, Debian's `prometheus`
# package; installs nothing):
#   promtool check config docker/prometheus/prometheus.yml   from the repository and from elsewhere: the rule
#                                                             file is named relative to the config file
#   promtool check rules  docker/prometheus/alerts.yml
#   promtool test rules   tests/prometheus/alerts_test.yml    every alert, firing and not firing
# When promtool is missing this says so loudly and skips (exit 0); any failure of a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null; then
  echo "!! check-prometheus: SKIPPED: no promtool on the PATH (Debian: apt-get install prometheus)" >&2
  exit 0
fi
echo "== promtool ($(promtool --version 2>&1 | head -1))"
promtool check config docker/prometheus/prometheus.yml
(cd / && promtool check config "$OLDPWD/docker/prometheus/prometheus.yml" >/dev/null) \
  || { echo "check-prometheus: the config's rule path does not resolve from another directory" >&2; exit 1; }
promtool check rules docker/prometheus/alerts.yml
promtool test rules tests/prometheus/alerts_test.yml
echo "check-prometheus: config, rules and rule unit tests pass"
