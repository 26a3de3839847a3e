#!/usr/bin/env bash
# bench-delta.sh: the rootfs delta benchmark of issue 5.
#
#   sudo scripts/bench-delta.sh [WORKDIR]     (default /var/tmp/bench-delta)
#
# Builds a realistic pair of root trees with debootstrap: Debian bookworm
# minbase + ca-certificates, mosquitto, openssh-server, curl, iproute2 from
# the bookworm suite of the mirror ("old"), then the same tree after
# `apt-get upgrade` from bookworm-updates, bookworm-security and
# bookworm-proposed-updates (the next point release) plus jq ("new"). Apt
# lists and caches are removed from both, as an image build would.
#
# Then, on two pairs of 600 MiB ext4 images made from the two trees:
#   project  the root images `imagebuilder release` builds for releases 1.0.0
#            and 2.0.0 (2.0.0 with --delta-from 1: its delta payload is checked
#            to be the one measured here)
#   plain    plain `mkfs.ext4 -d` images, which the project did not lay out
# it measures in one run: our delta (scripts/benchdelta, the code imagebuilder
# and ota-updater use), `xdelta3 -9 -s old new`, `zstd -19 --long=30
# --patch-from=old` and the full image with `xz -6`: the payload size, the
# time to make it, and the time and peak RSS (GNU time) to apply it. Every
# applied image is compared with the new image. It prints one table and
# checks the targets of the issue.
#
# Needs root (debootstrap, chroot) and the Debian packages debootstrap,
# xdelta3, zstd, xz-utils, e2fsprogs, dosfstools, mtools, time, and Go.
# MIRROR overrides the Debian mirror (default: the first deb.debian.org-style
# URI in /etc/apt/sources.list*, else http://deb.debian.org/debian); trees and
# images already in WORKDIR are reused (delete them to rebuild).
set -euo pipefail
cd "$(dirname "$0")/.."
repo_root=$PWD
work=${1:-/var/tmp/bench-delta}
mkdir -p "$work"
work=$(cd "$work" && pwd)
size=600M
epoch=1767225600
export SOURCE_DATE_EPOCH=$epoch

die() { echo "bench-delta: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot)"
for t in debootstrap xdelta3 zstd xz mkfs.ext4 debugfs mkfs.vfat mcopy go; do
	command -v "$t" >/dev/null || die "$t not found (apt-get install debootstrap xdelta3 zstd xz-utils e2fsprogs dosfstools mtools time)"
done
[ -x /usr/bin/time ] || die "GNU time not found (apt-get install time)"

if [ -z "${MIRROR:-}" ]; then
	MIRROR=$( (grep -shoE '(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/* || true) |
		awk '{print $2}' | head -1)
	MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
security=${SECURITY_MIRROR:-${MIRROR%/debian*}/debian-security}
echo "bench-delta: mirror $MIRROR, security $security, work $work" >&2

echo "bench-delta: building the tools" >&2
go build -o "$work/benchdelta" ./scripts/benchdelta
go build -o "$work/imagebuilder" ./imagebuilder/cmd/imagebuilder

# clean_tree removes what an image build leaves out: apt lists and caches,
# logs of the build, and device nodes (/dev is a devtmpfs on the device).
clean_tree() {
	find "$1" \( -type c -o -type b -o -type p -o -type s \) -delete
	rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb "$1"/var/log/apt/* "$1"/var/log/dpkg.log
}

if [ ! -f "$work/old.tree.done" ]; then
	echo "bench-delta: debootstrap old tree" >&2
	rm -rf "$work/old.tree"
	debootstrap --variant=minbase --include=ca-certificates,mosquitto,openssh-server,curl,iproute2 \
		bookworm "$work/old.tree" "$MIRROR" >"$work/debootstrap.log" 2>&1 || die "debootstrap failed: see $work/debootstrap.log"
	clean_tree "$work/old.tree"
	touch "$work/old.tree.done"
fi
if [ ! -f "$work/new.tree.done" ]; then
	echo "bench-delta: new tree: upgrades and jq" >&2
	rm -rf "$work/new.tree"
	cp -a "$work/old.tree" "$work/new.tree"
	cat >"$work/new.tree/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $security bookworm-security main
deb $MIRROR bookworm-proposed-updates main
EOF
	mount --bind /proc "$work/new.tree/proc"
	trap 'umount "$work/new.tree/proc" 2>/dev/null || true' EXIT
	chroot "$work/new.tree" sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt list --upgradable 2>/dev/null && apt-get -y -q upgrade && apt-get -y -q install jq && apt-get clean' \
		>"$work/upgrade.log" 2>&1 || die "upgrade failed: see $work/upgrade.log"
	umount "$work/new.tree/proc"
	trap - EXIT
	clean_tree "$work/new.tree"
	touch "$work/new.tree.done"
fi
upgraded=$(grep -c 'upgradable from' "$work/upgrade.log" || true)
changed=$(cd "$work" && diff -rq --no-dereference old.tree new.tree 2>/dev/null | grep -cE '^(Files|Only in) ' || true)
files=$(find "$work/new.tree" -type f | wc -l)

# The project's images: two releases built with imagebuilder.
if [ ! -f "$work/project-new.img" ]; then
	echo "bench-delta: imagebuilder release 1.0.0 and 2.0.0" >&2
	rm -rf "$work/keys" "$work/repo" "$work/cache" "$work/boot"
	mkdir -p "$work/boot"
	printf 'arm_64bit=1\n' >"$work/boot/config.txt"
	printf 'console=serial0,115200 root=PARTUUID=00000000-00 rootfstype=ext4 ro rootwait\n' >"$work/boot/cmdline.txt"
	head -c 8M /dev/zero >"$work/boot/kernel8.img"
	"$work/imagebuilder" keygen --out "$work/keys" >/dev/null
	"$work/imagebuilder" init-repo --repo "$work/repo" --keys "$work/keys" >/dev/null
	for r in "old 1.0.0 1" "new 2.0.0 2"; do
		set -- $r
		"$work/imagebuilder" release -q --repo "$work/repo" --keys "$work/keys" --rootfs "$work/$1.tree" --boot "$work/boot" \
			--version "$2" --counter "$3" --root-size $size --boot-size 64M --delta-from 1 --cache "$work/cache" >"$work/release-$2.txt"
	done
	sha() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rootfs"]["sha256"])' "$1"; }
	for r in "old 1.0.0" "new 2.0.0"; do
		set -- $r
		m=$(ls "$work"/repo/targets/releases/$2/*.release.json)
		cp "$work/cache/$(sha "$m").ext4" "$work/project-$1.img"
	done
	cp "$(ls "$work"/repo/targets/releases/2.0.0/*.rootfs-from-1.0.0.delta.xz)" "$work/project-release.delta.xz"
fi
# The plain images.
for t in old new; do
	if [ ! -f "$work/plain-$t.img" ]; then
		rm -f "$work/plain-$t.img"
		E2FSPROGS_FAKE_TIME=$epoch mkfs.ext4 -q -F -t ext4 -b 4096 -O ^has_journal \
			-U "$([ $t = old ] && echo 6d2f5f0e-0000-4000-8000-000000000001 || echo 6d2f5f0e-0000-4000-8000-000000000002)" \
			-E hash_seed=6d2f5f0e-0000-4000-8000-0000000000ff -d "$work/$t.tree" "$work/plain-$t.img" $size
	fi
done

# measure NAME CMD...: runs CMD under GNU time, sets secs and rss_kb.
measure() {
	local out=$work/time.txt
	/usr/bin/time -o "$out" -f '%e %M' "$@"
	read -r secs rss_kb <"$out"
}

results=()
row() { results+=("$(printf '%-8s %-26s %12s %7s %9s %9s %9s' "$@")"); }
check() {
	if awk "BEGIN{exit !($2)}"; then echo "  PASS  $1"; else echo "  FAIL  $1"; fi
}
targets=()

for pair in project plain; do
	old=$work/$pair-old.img new=$work/$pair-new.img out=$work/$pair-out.img
	echo "bench-delta: $pair pair" >&2
	sync
	measure xz -6 -T0 -k -c "$new" >"$work/$pair.full.xz"
	full_bytes=$(stat -c %s "$work/$pair.full.xz") full_make=$secs
	measure sh -c "xz -dc '$work/$pair.full.xz' >'$out'"
	cmp -s "$out" "$new" || die "$pair: xz round trip differs"
	row "$pair" "full, xz -6" "$full_bytes" "100%" "$full_make" "$secs" "$((rss_kb / 1024))"

	measure "$work/benchdelta" encode "$old" "$new" "$work/$pair.delta.xz" 2>"$work/$pair.encode.log"
	ours_bytes=$(stat -c %s "$work/$pair.delta.xz") ours_make=$secs
	measure "$work/benchdelta" apply "$old" "$work/$pair.delta.xz" "$out"
	cmp -s "$out" "$new" || die "$pair: our delta made another image"
	ours_apply=$secs ours_rss=$((rss_kb / 1024))
	row "$pair" "ota delta (this project)" "$ours_bytes" "$(awk "BEGIN{printf \"%.1f%%\", 100*$ours_bytes/$full_bytes}")" "$ours_make" "$secs" "$ours_rss"
	if [ $pair = project ] && ! cmp -s "$work/$pair.delta.xz" "$work/project-release.delta.xz"; then
		die "the delta imagebuilder release published differs from the one measured"
	fi

	measure xdelta3 -9 -f -s "$old" "$new" "$work/$pair.xd3"
	xd_bytes=$(stat -c %s "$work/$pair.xd3") xd_make=$secs
	measure xdelta3 -d -f -s "$old" "$work/$pair.xd3" "$out"
	cmp -s "$out" "$new" || die "$pair: xdelta3 round trip differs"
	xd_apply=$secs
	row "$pair" "xdelta3 -9" "$xd_bytes" "$(awk "BEGIN{printf \"%.1f%%\", 100*$xd_bytes/$full_bytes}")" "$xd_make" "$secs" "$((rss_kb / 1024))"

	measure zstd -q -f -19 --long=30 --patch-from="$old" "$new" -o "$work/$pair.zst"
	zs_bytes=$(stat -c %s "$work/$pair.zst") zs_make=$secs
	measure zstd -q -f -d --long=30 --patch-from="$old" "$work/$pair.zst" -o "$out"
	cmp -s "$out" "$new" || die "$pair: zstd round trip differs"
	row "$pair" "zstd -19 --long=30 patch" "$zs_bytes" "$(awk "BEGIN{printf \"%.1f%%\", 100*$zs_bytes/$full_bytes}")" "$zs_make" "$secs" "$((rss_kb / 1024))"
	rm -f "$out"

	peer=$((xd_bytes < zs_bytes ? xd_bytes : zs_bytes))
	if [ $pair = project ]; then
		targets+=("$(check "project: delta <= 0.9 x smallest peer ($ours_bytes <= 0.9 x $peer)" "$ours_bytes <= 0.9*$peer")")
		targets+=("$(check "project: delta <= 16% of full ($ours_bytes <= 0.16 x $full_bytes)" "$ours_bytes <= 0.16*$full_bytes")")
		targets+=("$(check "project: apply peak RSS < 64 MiB (${ours_rss} MiB)" "$ours_rss < 64")")
		targets+=("$(check "project: apply no slower than xdelta3 -d (${ours_apply} s <= ${xd_apply} s)" "$ours_apply <= $xd_apply")")
		targets+=("$(check "project: make faster than zstd --patch-from (${ours_make} s < ${zs_make} s)" "$ours_make < $zs_make")")
	else
		targets+=("$(check "plain: delta valid and <= xdelta3 -9 ($ours_bytes <= $xd_bytes)" "$ours_bytes <= $xd_bytes")")
	fi
done

echo
echo "Pair: Debian bookworm minbase + ca-certificates mosquitto openssh-server curl iproute2"
echo "      -> $upgraded packages upgraded (bookworm-updates, -security, -proposed-updates) + jq;"
echo "      $changed of $files files differ; images of $size; $(nproc) cores"
printf '%-8s %-26s %12s %7s %9s %9s %9s\n' pair payload bytes share make_s apply_s apply_MiB
for r in "${results[@]}"; do echo "$r"; done
echo
echo "Targets:"
for t in "${targets[@]}"; do echo "$t"; done
! printf '%s\n' "${targets[@]}" | grep -q FAIL
