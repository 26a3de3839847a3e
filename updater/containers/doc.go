// Package containers runs a release's container set on the gateway's Docker
// engine and switches it, health-gated and reversibly, to another release's
// set.
//
// The model. A container set is a list of services, each pinned to an image
// by digest in the signed release manifest (threats C1, S7). The Manager
// owns the containers of one project (default "ota"): each is named
// "<project>-<service>" (or "<project>-<service>-next" after a hand-over,
// since renaming a running container briefly drops its DNS alias), joined to the network "<project>" under the alias
// of its service name (so services find each other by name, as with
// compose), and labelled with the project, the release version, the service
// and a hash of the service's spec. The labels let the Manager find the
// running set after a reboot and leave unchanged services alone.
//
// A switch from the running set to a new one:
//
//	ensure    every image of the new set is present with its pinned digest:
//	          pulled by digest through the engine, which verifies the
//	          registry's manifest against it, then checked again in the
//	          image's RepoDigests; or loaded from the release's signed
//	          images payload. Nothing running is touched before all are
//	          present (C2), except with kill-then-download, whose point is
//	          to stop first.
//	journal   switch.json in Dir names the releases and the services that
//	          change, before the first container is stopped
//	stop      old containers stop gracefully (SIGTERM, SIGKILL after the
//	          service's StopTimeout), get restart policy "no" and are
//	          renamed "<name>-prev": kept, not removed, until the commit
//	backup    volumes marked Backup are snapshotted into
//	          Dir/backups/<release>/<volume>.tar, each capped at BackupLimit
//	start     new containers are created from the verified image ID and
//	          started
//
// Rollback undoes a journalled switch from whatever point it reached:
// removes the new containers, restores the snapshotted volumes, renames the
// "-prev" containers back and starts them (C3). Committed drops the journal,
// the "-prev" containers and the backups, records the release in
// history.json and prunes images of releases older than the last
// KeepReleases. Because old containers and images stay until the commit, a
// power cut at any point of a switch leaves either the old set or enough to
// bring it back, and the updater calls Rollback when it finds a journal on a
// boot that is not a trial.
//
// Strategies (balena's): download-then-kill (ensure; create the new
// container beside the old one under the other of the service's two
// container names, stop the old one, rename the new one to the plain name
// and start it, so the downtime is the old one's exit plus one start);
// kill-then-download (stop old first; if pulling runs out of space the
// old images are removed and the pull retried; a rollback pulls them again);
// hand-over (for services with HandOver whose new host ports do not collide
// with the old ones: the new container starts beside the old one under its
// container name only, takes the service name once it is healthy, and the
// old one is drained and stopped after that; other services switch as with
// download-then-kill). A hand-over loses no connection, which takes three
// things the engine does not do by itself, each done from the containers'
// network namespaces (it needs root on the engine's host and is skipped
// otherwise): the new address is announced by gratuitous ARP, since the
// engine makes a name resolve to a new endpoint a moment before its
// interface answers ARP; the old container's namespace refuses new TCP
// connections (an nftables rule, reset on SYN) and its listeners' accept
// queues are let empty before SIGTERM, so clients move to the next address
// the name resolves to and no queued connection is reset as the old
// service closes its listener; and the new container holds the old address
// from the old process's exit until the engine drops the old endpoint from
// the name, since the engine tears the interface down first.
//
// Volume snapshots are read through the engine's archive API from a helper
// container that is created (never started) with the volume mounted, so
// they work for images FROM scratch and for any engine. Restoring writes the
// snapshot into the volume's mountpoint on the host when the Manager can
// reach it (the updater runs as root next to dockerd on a gateway): the
// volume is emptied and the snapshot extracted through an os.Root, so
// entries cannot escape it (P1). When the mountpoint is not reachable
// (a remote engine) the snapshot is copied in through the archive API, which
// overwrites but cannot delete files the failed release added. Only named
// volumes are snapshotted; Backup on a bind mount is refused.
package containers
