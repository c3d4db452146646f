#!/usr/bin/env bash
# test_packages.sh - the Debian packages and the systemd units, as an admin gets them.
#
# Builds tm-agent and tm-server from $TM_BUILD with deploy/debian/build-debs.sh into a
# scratch directory, then:
#   - `dpkg-deb --info` / `--contents`: fields, version (the VERSION file, and each
#     binary's --version), Depends (shared libraries from dpkg-shlibdeps), conffiles,
#     maintainer scripts (sh -n), and the exact list of files with their modes and owners;
#   - installs each package with `dpkg --root=DIR --force-script-chrootless` into a fresh
#     directory tree: a dpkg database holding only the host's status entries of the
#     packages' dependencies (so dpkg checks that every Depends names an installed
#     package of this release), and an /etc with root's passwd, group, shadow and gshadow.
#     dpkg runs the real maintainer scripts without chroot and with DPKG_ROOT=DIR, so they
#     create the system users with useradd/groupadd --prefix in DIR/etc and chown by the
#     numeric ids found there; nothing on the host changes (checked). Then the files,
#     modes, owners (resolved through DIR/etc/passwd and group), the users, the
#     registered conffiles, `dpkg --verify`, the installed binary running its installed
#     config, a reinstall (idempotent, keeps an edited conffile and a dpkg-statoverride),
#     remove (keeps conffiles and the spool) and purge (removes them);
#   - `systemd-analyze verify --root=DIR` of every unit in deploy/systemd/ as the packages
#     installed it (the ExecStart binaries exist there; DIR also gets the host's
#     /lib/systemd/system for the targets the units name, and /bin/kill, which procps
#     provides on a real system), failing on any message at all; and the hardening
#     directives of every unit, with `systemd-analyze security --offline` exposure;
#   - lintian, when installed: no error.
# Not covered: systemctl calls of the maintainer scripts (no systemd runs in a directory
# tree; the scripts skip them when DPKG_ROOT is set or systemd is not running) and the
# units' sandbox at run time. Takes a few seconds.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

version=$(tr -d '[:space:]' <"$TM_ROOT/VERSION")
arch=$(dpkg --print-architecture 2>/dev/null)
deb=$T/deb
agent_deb=$deb/tm-agent_${version}_${arch}.deb
server_deb=$deb/tm-server_${version}_${arch}.deb
# The units the packages ship: every one in deploy/systemd (tmctl's only when tmctl is
# built); the daemons' among them get the hardening checks.
units=()
for u in "$TM_ROOT"/deploy/systemd/*.service "$TM_ROOT"/deploy/systemd/*.timer; do
  [ -f "$u" ] || continue
  case "${u##*/}" in tmctl*) [ -x "$TM_BUILD/tmctl" ] || continue ;; esac
  units+=("${u##*/}")
done
daemons=(tm-agent.service tm-collector.service tm-aggregator.service tm-dashboard.service)

# ---- helpers ----------------------------------------------------------------------------

# name_of passwd|group ID DIR: the name ID has in DIR/etc/passwd or group.
name_of() {
  awk -F: -v id="$2" '$3 == id { print $1; exit }' "$3/etc/$1"
}

# expect_path DIR PATH TYPE MODE OWNER GROUP: PATH in the tree DIR is a TYPE (f or d)
# with exactly MODE (octal), owned by OWNER:GROUP as DIR's own passwd and group name them.
expect_path() {
  local r=$1 p=$2 got
  [ -e "$r$p" ] || fail "$p is missing" || return 1
  [ "$3" != f ] || [ -f "$r$p" ] || fail "$p is not a regular file" || return 1
  [ "$3" != d ] || [ -d "$r$p" ] || fail "$p is not a directory" || return 1
  read -r mode uid gid <<<"$(stat -c '%a %u %g' "$r$p")"
  got="$mode $(name_of passwd "$uid" "$r"):$(name_of group "$gid" "$r")"
  expect_eq "$p mode and owner" "$got" "$(printf '%o' "0$4") $5:$6"
}

# contents DEB: "mode owner path" lines of `dpkg-deb --contents`, directories left out.
contents() {
  dpkg-deb --contents "$1" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $1, $2, $6 }' | sort
}

unit_value() { # FILE KEY: every value KEY= has in FILE, one per line
  sed -n "s/^$2=//p" "$1"
}

# ---- checks -----------------------------------------------------------------------------

test_packages_build() {
  need dpkg-deb dpkg-shlibdeps dpkg-gencontrol || return 1
  "$TM_ROOT/deploy/debian/build-debs.sh" "$TM_BUILD" "$deb" >"$T/build.log" 2>&1 ||
    fail "build-debs.sh: $(cat "$T/build.log")" || return 1
  [ -f "$agent_deb" ] || fail "$agent_deb was not built" || return 1
  [ -f "$server_deb" ] || fail "$server_deb was not built" || return 1
  expect_eq "packages built" "$(ls "$deb" | wc -l)" 2
}

# The version lives in VERSION; each binary says the same, and so does each package.
test_packages_version_from_one_place() {
  local b said
  for b in tm-agent tm-collector tm-aggregator tm-dashboard tmctl; do
    [ -x "$TM_BUILD/$b" ] || continue
    said=$("$TM_BUILD/$b" --version 2>/dev/null | head -n 1)
    expect_eq "$b --version" "$said" "$b $version" || return 1
  done
  expect_eq "tm-agent Version" "$(dpkg-deb -f "$agent_deb" Version)" "$version" &&
    expect_eq "tm-server Version" "$(dpkg-deb -f "$server_deb" Version)" "$version"
}

test_packages_control_fields() {
  local info d
  for d in "$agent_deb" "$server_deb"; do
    info=$(dpkg-deb --info "$d")
    expect_has "${d##*/} info" "$info" "Architecture: $arch" || return 1
    expect_has "${d##*/} info" "$info" "Maintainer: " || return 1
    expect_has "${d##*/} info" "$info" "Installed-Size: " || return 1
    for s in conffiles postinst prerm postrm md5sums; do
      expect_has "${d##*/} control members" "$info" " $s " || return 1
    done
  done
  d=$(dpkg-deb -f "$agent_deb" Depends)
  if readelf -d "$TM_BUILD/tm-agent" | grep -q NEEDED; then
    # make AGENT_STATIC=: dpkg-shlibdeps names what the binary links (--as-needed).
    for p in libc6 libevent-2.1-7 libmbedtls14 libjansson4 libinih1 zlib1g passwd; do
      expect_has "tm-agent Depends" "$d" "$p" || return 1
    done
    expect_eq "tm-agent Static-Built-Using" "$(dpkg-deb -f "$agent_deb" Static-Built-Using)" "" ||
      return 1
  else
    # The default static tm-agent: no library packages, and the sources it holds named.
    expect_eq "tm-agent Depends" "$d" "passwd" || return 1
    d=$(dpkg-deb -f "$agent_deb" Static-Built-Using)
    for p in "glibc (= " "libevent (= " "mbedtls (= " "zlib (= " "jansson (= " "yajl (= "; do
      expect_has "tm-agent Static-Built-Using" "$d" "$p" || return 1
    done
  fi
  expect_lacks "tm-agent Depends" "$d" libssl || return 1
  expect_lacks "tm-agent Depends" "$d" librdkafka || return 1
  expect_lacks "tm-agent Depends" "$d" hiredis || return 1
  d=$(dpkg-deb -f "$server_deb" Depends)
  for p in librdkafka1 libhiredis libevent-pthreads-2.1-7 libssl3 passwd procps; do
    expect_has "tm-server Depends" "$d" "$p" || return 1
  done
  expect_eq "tm-agent conffiles" "$(dpkg-deb --info "$agent_deb" conffiles)" \
    "/etc/tm-agent/tm-agent.ini" || return 1
  expect_eq "tm-server conffiles" "$(dpkg-deb --info "$server_deb" conffiles | sort | tr '\n' ' ')" \
    "/etc/tm-aggregator/tm-aggregator.ini /etc/tm-collector/tm-collector.ini /etc/tm-dashboard/tm-dashboard.ini "
}

test_packages_maintainer_scripts() {
  local d s
  for d in "$agent_deb" "$server_deb"; do
    rm -rf "$T/ctrl" && dpkg-deb --control "$d" "$T/ctrl" || fail "cannot extract ${d##*/}" || return 1
    for s in postinst prerm postrm; do
      expect_eq "${d##*/} $s mode" "$(stat -c %a "$T/ctrl/$s")" 755 || return 1
      expect_eq "${d##*/} $s interpreter" "$(head -n 1 "$T/ctrl/$s")" "#!/bin/sh" || return 1
      sh -n "$T/ctrl/$s" || fail "${d##*/} $s: not valid sh" || return 1
      ! grep -q '^#MAINT_LIB#$' "$T/ctrl/$s" || fail "${d##*/} $s: #MAINT_LIB# left in" || return 1
      grep -q '^ensure_user()' "$T/ctrl/$s" || fail "${d##*/} $s: maint-lib.sh not put in" || return 1
    done
    (cd "$T/ctrl/.." && rm -rf x && mkdir x && dpkg-deb -x "$d" x && cd x && md5sum --quiet -c ../ctrl/md5sums) ||
      fail "${d##*/}: md5sums do not match the files" || return 1
  done
}

test_packages_agent_contents() {
  local want
  want=$(
    cat <<'EOF' | sort
-rw-r----- root/root /etc/tm-agent/tm-agent.ini
-rw-r--r-- root/root /lib/systemd/system/tm-agent.service
-rwxr-xr-x root/root /usr/bin/tm-agent
-rw-r--r-- root/root /usr/share/doc/tm-agent/agent.md
-rw-r--r-- root/root /usr/share/doc/tm-agent/changelog.gz
-rw-r--r-- root/root /usr/share/doc/tm-agent/config.md
-rw-r--r-- root/root /usr/share/doc/tm-agent/enrollment.md
-rw-r--r-- root/root /usr/share/doc/tm-agent/copyright
-rw-r--r-- root/root /usr/share/doc/tm-agent/parsers.md
-rw-r--r-- root/root /usr/share/doc/tm-agent/schema.md
-rw-r--r-- root/root /usr/share/lintian/overrides/tm-agent
EOF
  )
  expect_eq "tm-agent files" "$(contents "$agent_deb")" "$want"
}

test_packages_server_contents() {
  local got want f b
  got=$(contents "$server_deb")
  want=$(
    {
      for b in tm-collector tm-aggregator tm-dashboard tmctl; do
        if [ "$b" != tmctl ] || [ -x "$TM_BUILD/tmctl" ]; then
          echo "-rwxr-xr-x root/root /usr/bin/$b"
        fi
      done
      for d in collector aggregator dashboard; do
        echo "-rw-r----- root/root /etc/tm-$d/tm-$d.ini"
      done
      for u in "${units[@]}"; do
        [ "$u" = tm-agent.service ] || echo "-rw-r--r-- root/root /lib/systemd/system/$u"
      done
      (cd "$TM_ROOT/dashboard/web" && find . -type f -printf '-rw-r--r-- root/root /usr/share/tm-telemetry/web/%P\n')
      for f in "$TM_ROOT"/deploy/production/*; do
        if [ -x "$f" ]; then echo "-rwxr-xr-x root/root /usr/share/tm-telemetry/production/${f##*/}"; else
          echo "-rw-r--r-- root/root /usr/share/tm-telemetry/production/${f##*/}"; fi
      done
      for d in operations collector aggregator dashboard redis-keys config schema protocols planners enrollment; do
        echo "-rw-r--r-- root/root /usr/share/doc/tm-server/$d.md"
      done
      echo "-rw-r--r-- root/root /usr/share/doc/tm-server/changelog.gz"
      echo "-rw-r--r-- root/root /usr/share/doc/tm-server/copyright"
      echo "-rw-r--r-- root/root /usr/share/lintian/overrides/tm-server"
    } | sort
  )
  expect_eq "tm-server files" "$got" "$want"
}

test_packages_agent_install() {
  local r=$T/agent-root host_before line
  host_before=$(getent passwd tm-agent || true)
  fresh_root "$r" "$agent_deb" "$server_deb"
  dpkg_root "$r" -i "$agent_deb" || return 1
  expect_eq "dpkg status" "$(dpkg-query --root="$r" -W -f '${db:Status-Abbrev}' tm-agent)" "ii " || return 1
  line=$(grep '^tm-agent:' "$r/etc/passwd") || fail "no tm-agent user in the tree" || return 1
  IFS=: read -r _ _ uid gid _ home shell <<<"$line"
  [ "$uid" -lt 1000 ] || fail "tm-agent uid $uid is not a system uid" || return 1
  expect_eq "tm-agent's group" "$(name_of group "$gid" "$r")" tm-agent || return 1
  expect_eq "tm-agent's home" "$home" /var/lib/tm-agent || return 1
  expect_eq "tm-agent's shell" "$shell" /usr/sbin/nologin || return 1
  grep -q '^tm-agent:' "$r/etc/shadow" || fail "tm-agent has no shadow entry" || return 1
  expect_path "$r" /usr/bin/tm-agent f 0755 root root || return 1
  expect_path "$r" /etc/tm-agent d 0750 root tm-agent || return 1
  expect_path "$r" /etc/tm-agent/tm-agent.ini f 0640 root tm-agent || return 1
  expect_path "$r" /var/lib/tm-agent d 0750 tm-agent tm-agent || return 1
  expect_path "$r" /lib/systemd/system/tm-agent.service f 0644 root root || return 1
  cmp -s "$r/lib/systemd/system/tm-agent.service" "$TM_ROOT/deploy/systemd/tm-agent.service" ||
    fail "the installed unit differs from deploy/systemd/tm-agent.service" || return 1
  expect_eq "registered conffiles" \
    "$(dpkg-query --root="$r" -W -f '${Conffiles}' tm-agent | awk 'NF { print $1, $2 }')" \
    "/etc/tm-agent/tm-agent.ini $(md5sum <"$r/etc/tm-agent/tm-agent.ini" | cut -d' ' -f1)" || return 1
  dpkg --root="$r" --verify tm-agent >"$T/verify.log" 2>&1 ||
    fail "dpkg --verify: $(cat "$T/verify.log")" || return 1
  [ ! -s "$T/verify.log" ] || fail "dpkg --verify: $(cat "$T/verify.log")" || return 1
  expect_eq "installed tm-agent --version" "$("$r/usr/bin/tm-agent" --version)" "tm-agent $version" || return 1
  "$r/usr/bin/tm-agent" -c "$r/etc/tm-agent/tm-agent.ini" --check-config >"$T/cc.log" 2>&1 ||
    fail "installed config: $(cat "$T/cc.log")" || return 1
  expect_eq "the host's tm-agent user" "$(getent passwd tm-agent || true)" "$host_before"
}

# Reinstalling changes nothing an admin did: no second user, the edited conffile and a
# dpkg-statoverride stay.
test_packages_agent_reinstall() {
  local r=$T/agent-root
  [ -f "$r/usr/bin/tm-agent" ] || fail "needs test_packages_agent_install" || return 1
  echo "; edited by the admin" >>"$r/etc/tm-agent/tm-agent.ini"
  # Numeric ids: dpkg-statoverride would look names up in the host's databases.
  dpkg-statoverride --root="$r" --add "#$(grep '^tm-agent:' "$r/etc/passwd" | cut -d: -f3)" \
    "#$(grep '^tm-agent:' "$r/etc/group" | cut -d: -f3)" 0700 /var/lib/tm-agent ||
    fail "dpkg-statoverride --add" || return 1
  chmod 0700 "$r/var/lib/tm-agent"
  dpkg_root "$r" -i "$agent_deb" || return 1
  expect_eq "tm-agent users" "$(grep -c '^tm-agent:' "$r/etc/passwd")" 1 || return 1
  expect_eq "tm-agent groups" "$(grep -c '^tm-agent:' "$r/etc/group")" 1 || return 1
  expect_eq "edited conffile" "$(tail -n 1 "$r/etc/tm-agent/tm-agent.ini")" "; edited by the admin" || return 1
  expect_path "$r" /var/lib/tm-agent d 0700 tm-agent tm-agent || return 1
  expect_path "$r" /etc/tm-agent/tm-agent.ini f 0640 root tm-agent
}

test_packages_agent_remove_and_purge() {
  local r=$T/agent-root
  [ -f "$r/usr/bin/tm-agent" ] || fail "needs test_packages_agent_install" || return 1
  echo spooled >"$r/var/lib/tm-agent/spool-file"
  dpkg_root "$r" -r tm-agent || return 1
  [ ! -e "$r/usr/bin/tm-agent" ] || fail "remove left /usr/bin/tm-agent" || return 1
  [ ! -e "$r/lib/systemd/system/tm-agent.service" ] || fail "remove left the unit" || return 1
  [ -f "$r/etc/tm-agent/tm-agent.ini" ] || fail "remove deleted the conffile" || return 1
  [ -f "$r/var/lib/tm-agent/spool-file" ] || fail "remove deleted the spool" || return 1
  expect_eq "status after remove" "$(dpkg-query --root="$r" -W -f '${db:Status-Abbrev}' tm-agent)" "rc " || return 1
  dpkg_root "$r" -P tm-agent || return 1
  [ ! -e "$r/etc/tm-agent" ] || fail "purge left /etc/tm-agent" || return 1
  [ ! -e "$r/var/lib/tm-agent" ] || fail "purge left /var/lib/tm-agent" || return 1
  grep -q '^tm-agent:' "$r/etc/passwd" || fail "purge removed the user (Debian keeps it)"
}

test_packages_server_install() {
  local r=$T/server-root d
  fresh_root "$r" "$agent_deb" "$server_deb"
  dpkg_root "$r" -i "$server_deb" || return 1
  expect_eq "dpkg status" "$(dpkg-query --root="$r" -W -f '${db:Status-Abbrev}' tm-server)" "ii " || return 1
  for d in collector aggregator dashboard; do
    grep -q "^tm-$d:x:[0-9]*:[0-9]*:[^:]*:/nonexistent:/usr/sbin/nologin\$" "$r/etc/passwd" ||
      fail "no system user tm-$d (nologin, no home)" || return 1
    expect_path "$r" "/usr/bin/tm-$d" f 0755 root root || return 1
    expect_path "$r" "/etc/tm-$d" d 0750 root "tm-$d" || return 1
    expect_path "$r" "/etc/tm-$d/tm-$d.ini" f 0640 root "tm-$d" || return 1
    expect_path "$r" "/lib/systemd/system/tm-$d.service" f 0644 root root || return 1
    expect_eq "installed tm-$d --version" "$("$r/usr/bin/tm-$d" --version)" "tm-$d $version" || return 1
  done
  expect_path "$r" /etc/tm-collector/identities.ini f 0640 root tm-collector || return 1
  if [ -e "$r/lib/systemd/system/tmctl-priorities.service" ]; then
    grep -q '^tmctl:x:[0-9]*:[0-9]*:[^:]*:/nonexistent:/usr/sbin/nologin$' "$r/etc/passwd" ||
      fail "no system user tmctl for tmctl-priorities.service" || return 1
  fi
  # tm-dashboard's default web root when no web_root is set and there is no build tree.
  expect_path "$r" /usr/share/tm-telemetry/web/index.html f 0644 root root || return 1
  dpkg --root="$r" --verify tm-server >"$T/verify.log" 2>&1 && [ ! -s "$T/verify.log" ] ||
    fail "dpkg --verify: $(cat "$T/verify.log")" || return 1
  # An identity map an admin (or enrollment) wrote survives a reinstall.
  echo "; enrolled" >>"$r/etc/tm-collector/identities.ini"
  dpkg_root "$r" -i "$server_deb" || return 1
  expect_eq "identity map after reinstall" "$(tail -n 1 "$r/etc/tm-collector/identities.ini")" "; enrolled" || return 1
  expect_eq "tm-collector users" "$(grep -c '^tm-collector:' "$r/etc/passwd")" 1 || return 1
  dpkg_root "$r" -P tm-server || return 1
  for d in collector aggregator dashboard; do
    [ ! -e "$r/etc/tm-$d" ] || fail "purge left /etc/tm-$d: $(ls -A "$r/etc/tm-$d")" || return 1
  done
}

# Every unit of deploy/systemd/ is shipped (tmctl's when tmctl is built), and
# systemd-analyze verify says nothing about it as installed.
test_packages_units_verify() {
  local r=$T/units-root u out
  need systemd-analyze || return 1
  fresh_root "$r" "$agent_deb" "$server_deb"
  dpkg_root "$r" -i "$agent_deb" "$server_deb" || return 1
  mkdir -p "$r/lib/systemd/system" "$r/usr/bin"
  for u in /lib/systemd/system/*; do
    [ -e "$r$u" ] || cp -a "$u" "$r$u"
  done
  cp /bin/kill "$r/usr/bin/kill" && ln -s usr/bin "$r/bin"
  for u in "${units[@]}"; do
    cmp -s "$r/lib/systemd/system/$u" "$TM_ROOT/deploy/systemd/$u" ||
      fail "$u is not shipped as it is in deploy/systemd" || return 1
    out=$(systemd-analyze verify --root="$r" "$u" 2>&1) || fail "verify $u: $out" || return 1
    [ -z "$out" ] || fail "verify $u: $out" || return 1
  done
  # The same verify does complain about a broken copy, so silence above means something.
  sed 's/^ProtectSystem=strict$/ProtectSystem=stricter/' "$r/lib/systemd/system/tm-collector.service" \
    >"$r/lib/systemd/system/tm-broken.service"
  out=$(systemd-analyze verify --root="$r" tm-broken.service 2>&1)
  expect_has "verify of a broken unit" "$out" "stricter"
}

# The hardening each unit keeps (docs/operations.md, "systemd units").
test_packages_units_hardened() {
  local r=$T/units-root u f name exposure
  [ -f "$r/usr/bin/tm-agent" ] || fail "needs test_packages_units_verify" || return 1
  for u in "${daemons[@]}"; do
    f=$TM_ROOT/deploy/systemd/$u
    name=${u%.service}
    expect_eq "$u ExecStart" "$(unit_value "$f" ExecStart)" \
      "/usr/bin/$name -c /etc/$name/$name.ini" || return 1
    expect_eq "$u User" "$(unit_value "$f" User)" "$name" || return 1
    expect_eq "$u Group" "$(unit_value "$f" Group)" "$name" || return 1
    expect_eq "$u ProtectSystem" "$(unit_value "$f" ProtectSystem)" strict || return 1
    expect_eq "$u ProtectHome" "$(unit_value "$f" ProtectHome)" true || return 1
    expect_eq "$u PrivateTmp" "$(unit_value "$f" PrivateTmp)" true || return 1
    expect_eq "$u NoNewPrivileges" "$(unit_value "$f" NoNewPrivileges)" true || return 1
    expect_eq "$u RestrictAddressFamilies" "$(unit_value "$f" RestrictAddressFamilies)" \
      "AF_INET AF_INET6 AF_UNIX" || return 1
    expect_eq "$u SystemCallFilter" "$(unit_value "$f" SystemCallFilter)" "@system-service" || return 1
    expect_eq "$u Restart" "$(unit_value "$f" Restart)" on-failure || return 1
    if [ "$name" = tm-agent ]; then
      # Only to bind a syslog input on 514; its only writable place is its state dir.
      expect_eq "$u CapabilityBoundingSet" "$(unit_value "$f" CapabilityBoundingSet)" \
        CAP_NET_BIND_SERVICE || return 1
      expect_eq "$u ReadWritePaths" "$(unit_value "$f" ReadWritePaths)" /var/lib/tm-agent || return 1
    else
      expect_eq "$u CapabilityBoundingSet" "$(unit_value "$f" CapabilityBoundingSet)" "" || return 1
      grep -q '^CapabilityBoundingSet=$' "$f" || fail "$u: CapabilityBoundingSet= (empty) missing" || return 1
      expect_eq "$u ReadWritePaths" "$(unit_value "$f" ReadWritePaths)" "" || return 1
    fi
    # A reload that reloads: the collector's identity map, the dashboard's tokens. The
    # agent and the aggregator have nothing to reload, so they have no ExecReload.
    case "$name" in
    tm-collector | tm-dashboard)
      expect_eq "$u ExecReload" "$(unit_value "$f" ExecReload)" '/bin/kill -HUP $MAINPID' || return 1
      ;;
    *) expect_eq "$u ExecReload" "$(unit_value "$f" ExecReload)" "" || return 1 ;;
    esac
    exposure=$(systemd-analyze security --offline=yes --root="$r" --threshold=25 "$u" 2>&1 | tail -n 1) ||
      fail "$u: exposure over 2.5: $exposure" || return 1
    echo "    $exposure"
  done
}

# lintian, when it is installed (it is optional: deploy/install-deps.sh does not pull
# its many dependencies in): no error. Its warnings are listed; the one left is that the
# programs have no manual pages.
test_packages_lintian() {
  if ! command -v lintian >/dev/null; then
    echo "    lintian not installed: not run (apt-get install lintian to run it)"
    return 0
  fi
  lintian --tag-display-limit 0 "$agent_deb" "$server_deb" >"$T/lintian.log" 2>&1
  sed 's/^/    /' "$T/lintian.log" | grep -v 'root privileges'
  ! grep -q '^E: ' "$T/lintian.log" || fail "lintian reports errors"
}

# The assertions above catch what they are for: a wrong mode, a wrong owner, a missing file.
test_packages_checks_catch_breakage() {
  local r=$T/breakage
  fresh_root "$r" "$agent_deb" "$server_deb"
  mkdir -p "$r/usr/bin" && : >"$r/usr/bin/x" && chmod 0644 "$r/usr/bin/x"
  if expect_path "$r" /usr/bin/x f 0755 root root 2>/dev/null; then fail "wrong mode not seen"; return 1; fi
  chmod 0755 "$r/usr/bin/x"
  expect_path "$r" /usr/bin/x f 0755 root root || return 1
  chown 4:4 "$r/usr/bin/x"
  if expect_path "$r" /usr/bin/x f 0755 root root 2>/dev/null; then fail "wrong owner not seen"; return 1; fi
  if expect_path "$r" /usr/bin/y f 0755 root root 2>/dev/null; then fail "missing file not seen"; return 1; fi
  return 0
}

[ "$(id -u)" = 0 ] || { echo "test_packages: needs root (dpkg --root, chown in the tree)" >&2; }
check test_packages_build
if [ -f "$agent_deb" ] && [ -f "$server_deb" ]; then
  check test_packages_version_from_one_place
  check test_packages_control_fields
  check test_packages_maintainer_scripts
  check test_packages_agent_contents
  check test_packages_server_contents
  check test_packages_agent_install
  check test_packages_agent_reinstall
  check test_packages_agent_remove_and_purge
  check test_packages_server_install
  check test_packages_units_verify
  check test_packages_units_hardened
  check test_packages_lintian
fi
check test_packages_checks_catch_breakage
finish
