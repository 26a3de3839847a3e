#!/usr/bin/env bash
# bench-apply.sh: apply a full xz payload of a slot image (default 1 GiB) and compare,
# side by side in one run, the Go applier (payload.WriteImage + payload.VerifyRegion,
# as ota-updater runs them; scripts/benchapply) with the shell pipeline
# `xz -dc payload | dd of=slot bs=4M` followed by `sha256sum slot`.
#
# Prints wall time, throughput (MiB/s of uncompressed image) and peak RSS (GNU time)
# of each, and the throughput ratio. Targets: peak RSS under 64 MiB, ratio >= 0.8.
#
# Needs: go, xz (xz-utils), mkfs.ext4 (e2fsprogs), GNU time (time), coreutils.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: scripts/bench-apply.sh [--size MIB] [--block-size SIZE] [--single-block]
                              [--runs N] [--src DIR] [--workdir DIR]

  --size MIB        slot image size in MiB (default 1024)
  --block-size SIZE xz block size of the payload (default 8MiB); blocks decode in
                    parallel in the Go applier
  --single-block    also measure a single-block payload (xz -6 -T1), which both
                    sides decode on one core
  --runs N          runs of each side, alternating; the best is reported (default 2)
  --src DIR         tree whose files fill the image (default /usr)
  --workdir DIR     where the image, payload and slots go (default: a temp dir,
                    removed at the end); needs about 4x --size free
USAGE
}

size_mib=1024 block=8MiB single=0 runs=2 src=/usr workdir=""
while [ $# -gt 0 ]; do
	case "$1" in
	--size) size_mib=$2; shift 2 ;;
	--block-size) block=$2; shift 2 ;;
	--single-block) single=1; shift ;;
	--runs) runs=$2; shift 2 ;;
	--src) src=$2; shift 2 ;;
	--workdir) workdir=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
for tool in go xz mkfs.ext4 dd sha256sum /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench-apply: $tool not found" >&2; exit 1; }
done

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$workdir" ]; then
	workdir=$(mktemp -d)
	trap 'rm -rf "$workdir"' EXIT
fi
mkdir -p "$workdir"
size=$((size_mib * 1024 * 1024))

echo "== building a ${size_mib} MiB ext4 slot image from $src" >&2
tree=$workdir/tree
rm -rf "$tree" && mkdir -p "$tree"
# About 40% files from $src (a truncated tar stream is fine: whatever was
# extracted is content), 8% random bytes (incompressible: media, keys, packed
# binaries), the rest free space.
tar -C "$src" -cf - . 2>/dev/null | head -c $((size * 40 / 100)) | tar -C "$tree" -xf - 2>/dev/null || true
head -c $((size * 8 / 100)) /dev/urandom >"$tree/random.bin"
image=$workdir/slot.ext4
rm -f "$image"
E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -q -F -T default -U 6f1d2c3b-0000-4000-8000-000000000001 \
	-E hash_seed=6f1d2c3b-0000-4000-8000-000000000002,root_owner=0:0 -d "$tree" "$image" "${size_mib}M"
rm -rf "$tree"
image_sha=$(sha256sum "$image" | cut -c1-64)

echo "== compressing: xz -6 -T0 --block-size=$block" >&2
payload=$workdir/payload.xz
t0=$(date +%s.%N)
xz -6 -T0 --block-size="$block" -c "$image" >"$payload"
t1=$(date +%s.%N)
payloads=("$payload:xz -6 --block-size=$block")
if [ "$single" = 1 ]; then
	echo "== compressing: xz -6 -T1 (single block)" >&2
	xz -6 -T1 -c "$image" >"$workdir/payload1.xz"
	payloads+=("$workdir/payload1.xz:xz -6 -T1 single block")
fi
rm -f "$image"

echo "== building scripts/benchapply" >&2
(cd "$repo" && go build -o "$workdir/benchapply" ./scripts/benchapply)

# measure NAME CMD...: runs CMD under GNU time, prints "seconds rss_kib".
measure() {
	local out=$workdir/time.out
	/usr/bin/time -v -o "$out" "$@" >/dev/null
	local wall rss
	wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out" |
		awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }')
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
	echo "$wall $rss"
}

slot_go=$workdir/slot-go.img slot_sh=$workdir/slot-sh.img
truncate -s "$size" "$slot_go" "$slot_sh"
export image_sha slot_sh
rows=()
for entry in "${payloads[@]}"; do
	p=${entry%%:*} label=${entry#*:}
	psha=$(sha256sum "$p" | cut -c1-64)
	export p
	best_go="" best_sh="" rss_go=0 rss_sh=0
	for ((i = 0; i < runs; i++)); do
		echo "== run $((i + 1))/$runs: $label" >&2
		read -r w r < <(measure bash -c 'xz -dc "$p" | dd of="$slot_sh" bs=4M conv=notrunc status=none &&
			test "$(sha256sum "$slot_sh" | cut -c1-64)" = "$image_sha"')
		[ -z "$best_sh" ] || awk "BEGIN{exit !($w < $best_sh)}" && best_sh=$w
		[ "$r" -gt "$rss_sh" ] && rss_sh=$r
		read -r w r < <(measure "$workdir/benchapply" --slot "$slot_go" --image-size "$size" \
			--image-sha256 "$image_sha" --payload-sha256 "$psha" "$p")
		[ -z "$best_go" ] || awk "BEGIN{exit !($w < $best_go)}" && best_go=$w
		[ "$r" -gt "$rss_go" ] && rss_go=$r
	done
	cmp -s "$slot_go" "$slot_sh" || { echo "bench-apply: the two slots differ" >&2; exit 1; }
	rows+=("$label|$(stat -c %s "$p")|$best_go|$rss_go|$best_sh|$rss_sh")
done

echo
echo "slot image: ${size_mib} MiB ext4 (40% files from $src, 8% random, rest free); $(nproc) CPUs; xz $(xz --version | awk 'NR==1{print $4}')"
echo "compression (xz -6 -T0 --block-size=$block): $(awk "BEGIN{printf \"%.1f\", $t1 - $t0}") s"
echo "best of $runs runs each; peak RSS is the largest of the runs (for the pipeline: its largest process)"
printf '\n%-34s %-44s %8s %9s %10s\n' "payload" "applier" "wall s" "MiB/s" "peak RSS"
for row in "${rows[@]}"; do
	IFS='|' read -r label psize go_w go_r sh_w sh_r <<<"$row"
	go_t=$(awk "BEGIN{printf \"%.1f\", $size_mib / $go_w}")
	sh_t=$(awk "BEGIN{printf \"%.1f\", $size_mib / $sh_w}")
	printf '%-34s %-44s %8.2f %9s %7.1f MiB\n' "$label" "ota payload (WriteImage+VerifyRegion)" "$go_w" "$go_t" "$(awk "BEGIN{print $go_r/1024}")"
	printf '%-34s %-44s %8.2f %9s %7.1f MiB\n' "  ($((psize / 1024 / 1024)) MiB)" "xz -dc | dd bs=4M; sha256sum" "$sh_w" "$sh_t" "$(awk "BEGIN{print $sh_r/1024}")"
	printf '%-34s %-44s %8s %9s\n' "" "ratio (Go / shell throughput)" "" "$(awk "BEGIN{printf \"%.2fx\", $sh_w / $go_w}")"
done
