#!/bin/sh
# Measures service downtime during a container-only update: the updater's
# container manager with download-then-kill and hand-over, side by side
# with `docker compose up -d` (or docker-compose, or docker stop + run)
# recreating the same service. A prober polls the service every 10 ms from
# a container on its network. Needs the Docker engine and Go; pulls nothing
# from outside. Targets: download-then-kill longest gap <= 1s; hand-over
# zero failed probes.
#
#   -runs N   run each method N times and sum them up (default 1)
#   -only M   download-then-kill, hand-over or compose
#   -v        print the manager's steps and the first failed probes
#
# The "in DNS" column counts probes whose lookup of the service name failed
# (the engine's embedded DNS answered later than the prober's 300 ms dial
# timeout): on a machine saturated by other work they fail in the steady
# state before and after a switch as well.
set -eu
cd "$(dirname "$0")/.."
exec go run ./scripts/benchdowntime "$@"
