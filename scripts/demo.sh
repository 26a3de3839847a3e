#!/usr/bin/env bash
# The main job: a complete over-the-air update of a virtual Raspberry Pi, end
# to end, with nothing but the project's own binaries and embedded defaults.
#
#   1. keys and an empty repository
#   2. the boot layer by hand: bootctl try, reboot, commit on a factory card
#   3. a card image with release 1.0.0 in slot A; a manifest server in front
#      of the repository; a virtual Pi boots the card
#   4. release 2.0.0 is published; the gateway checks, updates, reboots into a
#      trial of slot B, confirms it healthy and commits; the server lists it
#   5. release 3.0.0, whose health check fails, is published; the gateway
#      installs it to slot A, the trial fails, it reboots back to 2.0.0 and
#      the server shows the rollback with its reason
#   6. containers (when a Docker engine answers): an image built FROM scratch
#      is published as a container-only release (`manifest-server
#      create-update --docker-image`, pushed to the server's registry and
#      pinned by digest); the gateway switches to it without a reboot; a
#      release whose container is unhealthy is rolled back to the previous one
#
# Usage: scripts/demo.sh [WORKDIR]   (default out/demo; binaries from ./bin or $BIN)
# Every step checks its outcome; the script exits non-zero at the first surprise.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$here/bin}
work=${1:-$here/out/demo}
export PATH="$BIN:$PATH"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600}

for tool in imagebuilder pisim bootctl ota-updater manifest-server; do
	[ -x "$BIN/$tool" ] || { echo "demo: $BIN/$tool missing: run 'make build' first" >&2; exit 1; }
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }
# expect JSON-FIELD-PATH WANT CMD...: runs CMD (which prints JSON) and checks one field.
expect() {
	local path=$1 want=$2; shift 2
	local got
	got=$("$@" | python3 -c "import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split('.'):
    v = v[int(k)] if isinstance(v, list) else v.get(k)
print(str(v).lower() if isinstance(v, bool) else v)" "$path")
	[ "$got" = "$want" ] || fail "$* : $path is '$got', want '$want'"
	echo "   ok: $path = $want"
}

rm -rf "$work"
mkdir -p "$work"
cd "$work"
server_pid=
docker_used=
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
	wait 2>/dev/null || true
	[ -n "$docker_used" ] && cleanup_docker
	true
}
trap cleanup EXIT

step "1. keys, repository, and a root file system and boot files for three releases"
imagebuilder keygen --out keys
imagebuilder init-repo --keys keys --repo repo
make_release_tree() { # DIR VERSION
	mkdir -p "$1/rootfs/etc" "$1/rootfs/usr/bin" "$1/rootfs/var/lib" "$1/boot"
	printf 'NAME="Gateway OS"\nVERSION_ID="%s"\n' "$2" >"$1/rootfs/etc/os-release"
	head -c 3000000 /dev/zero | tr '\0' 'x' >"$1/rootfs/usr/bin/mqtt-bridge"
	echo "$2" >>"$1/rootfs/usr/bin/mqtt-bridge"
	printf 'arm_64bit=1\ndtparam=watchdog=on\nkernel_watchdog_timeout=15\n' >"$1/boot/config.txt"
	echo "console=serial0,115200 root=PARTUUID=00000000-00 rootfstype=ext4 ro rootwait panic=10" >"$1/boot/cmdline.txt"
	head -c 2000000 /dev/zero >"$1/boot/kernel8.img"
}
for v in 1.0.0 2.0.0 3.0.0; do make_release_tree "src/$v" "$v"; done
sizes=(--root-size 64M --boot-size 40M)

step "2. the boot layer by hand: a factory card with 1.0.0 in both slots, on its own virtual Pi"
imagebuilder disk --rootfs src/1.0.0/rootfs --boot src/1.0.0/boot --version 1.0.0 --both-slots \
	--autoboot-size 16M --boot-size 40M --root-size 64M --data-size 32M --out factory.img --quiet
pisim create factory --image factory.img
pisim boot factory
bootctl --root factory status
expect booted A bootctl --root factory status --json
expect committed A bootctl --root factory status --json
expect slots.0.version 1.0.0 bootctl --root factory status --json
bootctl --root factory try                       # arm a one-shot trial of B
pisim reboot factory
expect booted B bootctl --root factory status --json
expect trial true bootctl --root factory status --json
pisim reboot factory                             # no commit: the firmware returns to A
expect booted A bootctl --root factory status --json
expect trial false bootctl --root factory status --json
bootctl --root factory try
pisim reboot factory
bootctl --root factory commit                    # B proved itself: commit it
pisim reboot factory
expect booted B bootctl --root factory status --json
expect committed B bootctl --root factory status --json
expect trial false bootctl --root factory status --json

step "3. card image with 1.0.0 in slot A, trusted root and updater config on the data partition"
cat >updater.yaml <<EOF
version: 1
channel: stable
poll_interval: 1h
EOF
imagebuilder disk --rootfs src/1.0.0/rootfs --boot src/1.0.0/boot --version 1.0.0 --counter 1 \
	--trusted-root keys/root.json --updater-config updater.yaml \
	--autoboot-size 16M --boot-size 40M --root-size 64M --data-size 32M --out card.img

step "4. manifest server on a free port, serving the repository and taking reports"
manifest-server serve --repo repo --db devices.db --keys keys --listen 127.0.0.1:0 >server.log 2>&1 &
server_pid=$!
for _ in $(seq 50); do
	addr=$(sed -n 's/.*msg=listening addr=\([^ ]*\).*/\1/p' server.log | head -1)
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { cat server.log; fail "manifest server did not start"; }
url="http://$addr"
echo "   serving $url"
export OTA_SERVER=$url OTA_REPORTS=$url

step "5. a virtual Pi boots the card"
pisim create pi --image card.img
pisim boot pi
expect booted A bootctl --root pi status --json
expect slots.0.version 1.0.0 bootctl --root pi status --json
ota-updater --root pi confirm # first boot: nothing to confirm, reports in
set +e; ota-updater --root pi check; rc=$?; set -e
[ $rc -eq 3 ] || fail "check before any release: exit $rc, want 3 (no update)"

step "6. publish 2.0.0 (health check: the update server is reachable)"
imagebuilder release --repo repo --keys keys --rootfs src/2.0.0/rootfs --boot src/2.0.0/boot \
	--version 2.0.0 --counter 2 "${sizes[@]}" --health-tcp "$addr" --health-deadline 30s
ota-updater --root pi check
expect version 2.0.0 ota-updater --root pi check --json

step "7. update: download, verify, write slot B, arm tryboot, reboot into the trial"
ota-updater --root pi update
expect booted B bootctl --root pi status --json
expect trial true bootctl --root pi status --json
expect committed A bootctl --root pi status --json

step "8. confirm at boot: health checks pass, slot B is committed"
ota-updater --root pi confirm
expect committed B bootctl --root pi status --json
pisim reboot pi
expect booted B bootctl --root pi status --json
expect trial false bootctl --root pi status --json
expect 0.release 2.0.0 manifest-server devices --db devices.db --json
expect 0.phase committed manifest-server devices --db devices.db --json
manifest-server devices --db devices.db

step "9. publish 3.0.0 whose service never comes up; the gateway updates slot A"
imagebuilder release --repo repo --keys keys --rootfs src/3.0.0/rootfs --boot src/3.0.0/boot \
	--version 3.0.0 --counter 3 "${sizes[@]}" --health-http "http://127.0.0.1:9/healthz" --health-deadline 5s
ota-updater --root pi update
expect booted A bootctl --root pi status --json
expect trial true bootctl --root pi status --json

step "10. confirm: the health check fails, the gateway reboots back to 2.0.0"
set +e; ota-updater --root pi confirm; rc=$?; set -e
[ $rc -eq 6 ] || fail "confirm of a failing release: exit $rc, want 6 (rolled back)"
expect booted B bootctl --root pi status --json
expect committed B bootctl --root pi status --json
ota-updater --root pi confirm # the boot-time confirmer of slot B records the rollback
expect state.phase rolled-back ota-updater --root pi status --json
expect 0.release 2.0.0 manifest-server devices --db devices.db --json
expect 0.phase rolled-back manifest-server devices --db devices.db --json
manifest-server devices --db devices.db

step "11. containers: a service image, published as a container-only release"
# Everything the demo makes in the engine carries one of these labels or
# names, and goes at exit.
demo_project=otademo
cleanup_docker() {
	local ids
	ids=$(docker ps -aq --filter label=com.healthguard.ota.project=$demo_project 2>/dev/null)
	[ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
	ids=$(docker volume ls -q --filter label=com.healthguard.ota.project=$demo_project 2>/dev/null)
	[ -n "$ids" ] && docker volume rm -f $ids >/dev/null 2>&1
	docker network rm $demo_project >/dev/null 2>&1 || true
	ids=$(docker images -q --filter label=com.healthguard.ota.demo=1 2>/dev/null | sort -u)
	[ -n "$ids" ] && docker rmi -f $ids >/dev/null 2>&1
	true
}
why=
if ! command -v docker >/dev/null; then
	why="the docker command is not installed"
elif ! docker info >/dev/null 2>&1; then
	why="no Docker engine answers (is dockerd running, may this user use it?)"
elif ! command -v go >/dev/null; then
	why="the go tool is needed to build the service image"
fi
if [ -n "$why" ]; then
	echo "   skipped: $why"
else
	docker_used=1
	cleanup_docker
	# The service: the container tests' small HTTP server, static, FROM scratch.
	# /healthz fails when UNHEALTHY is set; the image's HEALTHCHECK asks it.
	mkdir -p svc
	(cd "$here/updater/containers/testdata/svc" && CGO_ENABLED=0 go build -trimpath -o "$work/svc/svc" .)
	build_image() { # TAG VERSION [UNHEALTHY]
		printf 'FROM scratch\nCOPY svc /svc\nENV VERSION=%s UNHEALTHY=%s\nLABEL com.healthguard.ota.demo=1\nHEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["/svc", "probe"]\nENTRYPOINT ["/svc"]\n' \
			"$2" "${3:-}" >svc/Dockerfile
		docker build -q -t "$1" svc >svc/build.log 2>&1 || { cat svc/build.log; fail "docker build $1"; }
	}
	build_image healthguard/mqtt-bridge:1.2.0 1.2.0
	# The gateway runs its containers under its own project name.
	printf 'containers:\n  project: %s\n' "$demo_project" >>pi/data/ota/updater.yaml

	step "12. create-update: push the image to the server's registry, pin it by digest, sign, publish 2.1.0"
	manifest-server create-update --version 2.1.0 --docker-image healthguard/mqtt-bridge:1.2.0 \
		--repo repo --keys keys --registry-url "$url" --health-deadline 30s
	ota-updater --root pi check
	expect version 2.1.0 ota-updater --root pi check --json

	step "13. update: pull by digest, start the container, wait for its health; no reboot"
	ota-updater --root pi update
	expect booted B bootctl --root pi status --json
	expect trial false bootctl --root pi status --json
	expect state.phase committed ota-updater --root pi status --json
	expect state.version 2.1.0 ota-updater --root pi status --json
	expect containers.0.name mqtt-bridge ota-updater --root pi status --json
	expect containers.0.state running ota-updater --root pi status --json
	expect containers.0.health healthy ota-updater --root pi status --json
	want=$(ota-updater --root pi status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['containers'][0]['desired_image'])")
	expect containers.0.running_image "$want" ota-updater --root pi status --json
	ota-updater --root pi status

	step "14. publish 2.2.0 whose service is unhealthy; the gateway switches, waits, and restores 2.1.0's container"
	build_image healthguard/mqtt-bridge:1.3.0 1.3.0 1
	manifest-server create-update --version 2.2.0 --docker-image healthguard/mqtt-bridge:1.3.0 \
		--repo repo --keys keys --registry-url "$url" --health-deadline 20s
	set +e; ota-updater --root pi update; rc=$?; set -e
	[ $rc -eq 6 ] || fail "update to an unhealthy container set: exit $rc, want 6 (rolled back)"
	# The restored container runs its image's health check again: a second or two.
	for _ in $(seq 30); do
		ota-updater --root pi status --json | grep -q '"health": "starting"' || break
		sleep 0.5
	done
	expect state.phase rolled-back ota-updater --root pi status --json
	expect containers.0.release 2.1.0 ota-updater --root pi status --json
	expect containers.0.running_image "$want" ota-updater --root pi status --json
	expect containers.0.health healthy ota-updater --root pi status --json
	expect 0.phase rolled-back manifest-server devices --db devices.db --json
	ota-updater --root pi status
fi

step "done: the gateway runs 2.0.0 from slot B; 3.0.0 was tried and rolled back (and, with Docker, container set 2.1.0 runs; 2.2.0 was rolled back)"
ota-updater --root pi status
