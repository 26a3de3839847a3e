#!/bin/sh
# Measures service downtime during a container-only update: the updater's
# container manager with download-then-kill and hand-over, side by side
# with `docker compose up -d` (or docker-compose, or docker stop + run)
# recreating the same service. A prober polls the service every 10 ms from
# a container on its network. Needs the Docker engine and Go; pulls nothing
# from outside. Targets: download-then-kill longest gap <= 1s; hand-over
# zero failed probes.
set -eu
cd "$(dirname "$0")/.."
exec go run ./scripts/benchdowntime "$@"
