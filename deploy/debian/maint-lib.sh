# maint-lib.sh - helpers shared by the maintainer scripts of tm-agent and tm-server.
# build-debs.sh puts this text where a script has the line #MAINT_LIB# (as debhelper
# does with its own token), so each installed script stays self-contained POSIX sh.
#
# DPKG_ROOT: dpkg sets it when it installs into another root with --root and
# --force-script-chrootless (tests/deploy/test_packages.sh does). The scripts then act on
# the files under it, never on the running system: users are made with useradd/groupadd
# --prefix, owners are given as numbers read from the target's /etc/passwd and
# /etc/group (chown would look names up in the host's databases), and systemctl is not
# called. On a normal install DPKG_ROOT is empty and the system's own databases (NSS)
# are used.

root=${DPKG_ROOT:-}

has_user() {
  [ -n "$(uid_of "$1")" ]
}

has_group() {
  [ -n "$(gid_of "$1")" ]
}

# ensure_user NAME HOME COMMENT: a system user with its own group of the same name, no
# password, no login shell, no home directory made. Kept as it is when it exists.
ensure_user() {
  if ! has_group "$1"; then
    groupadd --system ${root:+--prefix "$root"} "$1"
  fi
  if ! has_user "$1"; then
    useradd --system ${root:+--prefix "$root"} --gid "$1" --no-create-home \
      --home-dir "$2" --shell /usr/sbin/nologin --comment "$3" "$1"
  fi
}

uid_of() {
  if [ -z "$root" ]; then
    getent passwd "$1" | cut -d: -f3
  else
    awk -F: -v n="$1" '$1 == n { print $3 }' "$root/etc/passwd"
  fi
}

gid_of() {
  if [ -z "$root" ]; then
    getent group "$1" | cut -d: -f3
  else
    awk -F: -v n="$1" '$1 == n { print $3 }' "$root/etc/group"
  fi
}

# set_perms OWNER GROUP MODE PATH: owner, group and mode of PATH (an absolute path on the
# target), unless PATH is missing (an admin may delete a conffile) or the admin set its
# own with dpkg-statoverride, which always wins.
set_perms() {
  [ -e "$root$4" ] || return 0
  if dpkg-statoverride ${root:+--root "$root"} --list "$4" >/dev/null 2>&1; then
    return 0
  fi
  chown "$(uid_of "$1"):$(gid_of "$2")" "$root$4"
  chmod "$3" "$root$4"
}

# A booted systemd to talk to: never while installing into another root.
systemd_running() {
  [ -z "$root" ] && [ -d /run/systemd/system ]
}

# invoke ACTION UNIT: stop or try-restart a unit through deb-systemd-invoke, which honours
# policy-rc.d (an image build or chroot that forbids starting services); errors are only
# reported, a package operation never fails on them.
invoke() {
  if systemd_running && command -v deb-systemd-invoke >/dev/null; then
    deb-systemd-invoke "$1" "$2" || true
  fi
}

# daemon_reload: systemd rereads the unit files (after they were added or removed).
daemon_reload() {
  if systemd_running; then
    systemctl --system daemon-reload >/dev/null || true
  fi
}

# units_of PACKAGE: the systemd units PACKAGE installed (names only), from dpkg's list.
units_of() {
  dpkg-query ${root:+--root "$root"} -L "$1" 2>/dev/null | sed -n 's#^/lib/systemd/system/\([^/]*\)$#\1#p'
}
