#!/usr/bin/env bash
# Installs the Debian packages the tools and tests use. Run as root (or with sudo).
#   e2fsprogs   mkfs.ext4, e2fsck, debugfs: root and data file systems
#   dosfstools  mkfs.vfat, fsck.vfat: boot partitions
#   mtools      mcopy, mmd: files into FAT images without mounting
#   fdisk       sfdisk: checks the partition tables
#   xz-utils    xz: payload compression
#   nginx       the plain static host the updater is tested against
#   time        GNU time: peak memory in the benchmarks
#   python3     the demo's JSON checks
#   systemd, dbus-daemon  systemd-analyze verify of the units; a private bus for the D-Bus tests
#   docker.io   only where no Docker engine is installed yet
set -euo pipefail
pkgs=(e2fsprogs dosfstools mtools fdisk xz-utils nginx-light time python3 ca-certificates systemd dbus-daemon)
command -v docker >/dev/null 2>&1 || pkgs+=(docker.io)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all packages present"
	exit 0
fi
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
