#!/bin/bash
# podman-setup.sh - make podman ready to build and run ctrd's image on a
# Debian 12 host with no Docker engine and no access to a container registry.
# Idempotent: when everything is in place it takes well under a second.
#
#   1. Installs podman, runc and debootstrap (apt-get) if missing.
#   2. Writes a private containers.conf, build/container/containers.conf
#      (the host's /etc/containers is left alone): runc (crun fails on hybrid cgroup v1/v2 hosts), the cgroupfs
#      manager and the file events logger (no systemd needed), and default
#      ulimits equal to this host's hard nofile/nproc limits (podman's own
#      defaults exceed them on some hosts and every container fails to start).
#   3. Builds the base image `debian:bookworm-slim` locally, since no registry
#      is reachable: debootstrap --variant=minbase from the Debian mirror this
#      host's apt already uses (read from /etc/apt/sources.list* at run time,
#      or $CTRD_DEBIAN_MIRROR), slimmed like the official slim image, then
#      `podman import`ed as localhost/debian:bookworm-slim. Its
#      /etc/apt/sources.list names that same mirror, so apt-get works inside
#      `podman build`. The rootfs tarball is kept in $CTRD_CONTAINER_CACHE
#      (default /var/tmp/ctrd-container), the image in podman's own storage
#      (/var/lib/containers): neither is rebuilt unless the mirror changes.
#
# Callers must export CONTAINERS_CONF=$PWD/build/container/containers.conf
# for their podman commands; scripts/container-test.sh does. Needs root (apt-get, debootstrap, rootful
# podman).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=localhost/debian:bookworm-slim
CACHE=${CTRD_CONTAINER_CACHE:-/var/tmp/ctrd-container}
CONF=$PWD/build/container/containers.conf

say() { echo "podman-setup: $*"; }
die() { echo "podman-setup: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (apt-get, debootstrap and rootful podman)"

# --- 1. packages -----------------------------------------------------------
missing=""
for p in podman runc debootstrap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing missing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- 2. containers.conf ----------------------------------------------------
hard_nofile=$(ulimit -Hn)
hard_nproc=$(ulimit -Hu)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
[ "$hard_nproc" = unlimited ] && hard_nproc=32768
[ "$hard_nproc" -gt 32768 ] && hard_nproc=32768
conf_text="# Written by scripts/podman-setup.sh; rewritten when the host's limits change.
[containers]
default_ulimits = [\"nofile=$hard_nofile:$hard_nofile\", \"nproc=$hard_nproc:$hard_nproc\"]

[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
mkdir -p "$(dirname "$CONF")"
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$conf_text" ]; then
    printf '%s\n' "$conf_text" >"$CONF"
    say "wrote $CONF (nofile=$hard_nofile nproc=$hard_nproc)"
fi
export CONTAINERS_CONF=$CONF

# --- 3. base image ---------------------------------------------------------
# Prints "URI SUITE" for every enabled deb source of this host, one-line
# sources.list format and deb822 *.sources alike.
host_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2, $3 }'
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush(   i, j, nu, ns, u, s) {
                if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
                    nu = split(uris, u, " "); ns = split(suites, s, " ")
                    for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
                }
                types = uris = suites = ""; enabled = "yes"
            }
            BEGIN { enabled = "yes" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { key = tolower($1); sub(/^[^:]*:[ \t]*/, "") }
            key == "types:"   { types = $0 }
            key == "uris:"    { uris = $0 }
            key == "suites:"  { suites = $0 }
            key == "enabled:" { enabled = $0 }
            END { flush() }' "$f"
    done
}

# The base's /etc/apt/sources.list: the host's bookworm mirror (plus its
# -updates and -security suites where the host uses them).
base_sources() {
    local srcs main sec upd
    srcs=$(host_sources)
    if [ -n "${CTRD_DEBIAN_MIRROR:-}" ]; then
        main=$CTRD_DEBIAN_MIRROR
    else
        main=$(awk '$2 == "bookworm" { print $1; exit }' <<<"$srcs")
    fi
    [ -n "$main" ] || die "no 'bookworm' source in /etc/apt/sources.list*; set CTRD_DEBIAN_MIRROR=http://.../debian"
    upd=$(awk -v m="$main" '$1 == m && $2 == "bookworm-updates" { print $1; exit }' <<<"$srcs")
    sec=$(awk '$2 == "bookworm-security" { print $1; exit }' <<<"$srcs")
    echo "deb $main bookworm main"
    [ -z "$upd" ] || echo "deb $upd bookworm-updates main"
    [ -z "$sec" ] || echo "deb $sec bookworm-security main"
}

sources=$(base_sources)
mirror=$(awk 'NR == 1 { print $2 }' <<<"$sources")
sources_sum=$(printf '%s\n' "$sources" | sha256sum | cut -c1-16)
have=$(podman image inspect --format '{{index .Config.Labels "org.ctrd.base.sources"}}' \
       "$BASE_IMAGE" 2>/dev/null || true)
[ "$have" = "$sources_sum" ] && exit 0

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9
tarball=$CACHE/debian-bookworm-slim.tar
if [ ! -s "$tarball" ] || [ "$(cat "$tarball.sources" 2>/dev/null)" != "$sources" ]; then
    rootfs=$CACHE/rootfs
    unmount_rootfs() {
        # debootstrap mounts /proc and /sys in the target; never rm -rf
        # through a live mount.
        awk -v r="$rootfs" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts |
            sort -r | while read -r m; do umount -l "$m"; done
    }
    unmount_rootfs
    rm -rf "$rootfs" "$tarball" "$tarball.sources"
    say "debootstrap --variant=minbase bookworm from $mirror (once; takes a few minutes)"
    t0=$(date +%s)
    if ! debootstrap --variant=minbase --components=main bookworm "$rootfs" "$mirror" \
            >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 20 "$CACHE/debootstrap.log" >&2
        unmount_rootfs
        die "debootstrap failed (full log: $CACHE/debootstrap.log)"
    fi
    unmount_rootfs

    # Slim it the way the official debian:*-slim images are: no docs (but
    # keep the copyright files), man pages, info or locales, now and for
    # every package installed later; no apt caches or lists.
    printf '%s\n' "$sources" >"$rootfs/etc/apt/sources.list"
    rm -f "$rootfs"/etc/apt/sources.list.d/*
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
    printf 'APT::AutoRemove::SuggestsImportant "false";\n' \
        >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/groff/* \
           "$rootfs"/usr/share/lintian/* "$rootfs"/usr/share/linda/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
        -exec rm -rf {} +
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
           "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/* "$rootfs"/root/.cache
    mkdir -p "$rootfs/var/lib/apt/lists/partial" "$rootfs/var/cache/apt/archives/partial"
    : >"$rootfs/etc/machine-id"
    : >"$rootfs/etc/resolv.conf"
    rm -f "$rootfs/etc/hostname"

    tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    printf '%s\n' "$sources" >"$tarball.sources"
    rm -rf "$rootfs"
    say "base rootfs $tarball ($(du -m "$tarball" | cut -f1) MB) in $(( $(date +%s) - t0 ))s"
fi

podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL org.ctrd.base.sources=$sources_sum" \
    "$tarball" "$BASE_IMAGE" >/dev/null
say "imported $BASE_IMAGE ($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE" |
    awk '{ printf "%.1f MB", $1 / 1e6 }'))"
