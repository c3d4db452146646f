#!/usr/bin/env bash
# build-debs.sh BUILD_DIR OUT_DIR - the Debian packages tm-agent and tm-server from the
# binaries in BUILD_DIR ('make deb' runs it with OUT_DIR = BUILD_DIR/deb).
#
# Standard tools only, no debhelper: each package is staged in a scratch debian/PKG tree;
# dpkg-shlibdeps computes the shared-library Depends of its binaries (none for tm-agent,
# which is linked statically unless 'make AGENT_STATIC='), dpkg-gencontrol
# writes DEBIAN/control from deploy/debian/control (with Installed-Size), and
# dpkg-deb --root-owner-group builds it (every file root:root, no fakeroot needed). The
# maintainer scripts are deploy/debian/PKG.{postinst,prerm,postrm} with
# deploy/debian/maint-lib.sh put in at their #MAINT_LIB# line.
#
# The version comes from the VERSION file only; each binary's --version must print the
# same, or the build stops (the daemons still carry their own VERSION defines). tmctl goes
# into tm-server when BUILD_DIR has it. A sanitizer build is refused.
set -euo pipefail

die() {
  echo "build-debs: $*" >&2
  exit 1
}

[ $# -eq 2 ] || die "usage: $0 BUILD_DIR OUT_DIR"
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -d "$1" ] || die "build directory '$1' does not exist; run 'make' first"
build=$(cd "$1" && pwd)
out=$2
for tool in dpkg-deb dpkg-shlibdeps dpkg-gencontrol strip readelf md5sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (deploy/install-deps.sh installs dpkg-dev and binutils)"
done
version=$(tr -d '[:space:]' <"$src/VERSION")
[[ $version =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "VERSION '$version' is not a Debian upstream version"
arch=$(dpkg --print-architecture)
# File dates and the changelog date: the last commit's, so two builds of one commit match.
epoch=$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH=$epoch

agent_bins=(tm-agent)
server_bins=(tm-collector tm-aggregator tm-dashboard)
[ -x "$build/tmctl" ] && server_bins+=(tmctl)
for b in "${agent_bins[@]}" "${server_bins[@]}"; do
  [ -x "$build/$b" ] || die "'$build/$b' not found; run 'make' first"
  if readelf -d "$build/$b" | grep -qE 'lib(a|ub|t|l)san'; then
    die "'$build/$b' is a sanitizer build; package a plain one ('make deb' without SANITIZE)"
  fi
  said=$("$build/$b" --version 2>/dev/null | head -n 1 || true)
  [ "$said" = "$b $version" ] ||
    die "'$build/$b --version' says '$said', VERSION says '$version': change them together"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tm-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debian" "$out"
cp "$src/deploy/debian/control" "$work/debian/control"
{
  echo "tm-telemetry ($version) unstable; urgency=medium"
  echo
  echo "  * Built from the tm-telemetry source tree (version from its VERSION file)."
  echo
  echo " -- tm-telemetry developers <dev@tm-telemetry.invalid>  $(date -u -R -d "@$epoch")"
} >"$work/debian/changelog"

# put MODE SRC DEST: SRC of the source tree as DEST (relative to the package root).
put() {
  install -D -m "$1" "$src/$2" "$pkgdir/$3"
}

# put_bin NAME: a binary from BUILD_DIR as /usr/bin/NAME, without debug sections.
put_bin() {
  install -D -m 0755 "$build/$1" "$pkgdir/usr/bin/$1"
  strip --remove-section=.comment --remove-section=.note "$pkgdir/usr/bin/$1"
}

# The archives a static tm-agent links (the Makefile's AGENT_STATIC_LIBS, and libc and
# libgcc), as "source (= version)" of the -dev packages that hold them.
agent_static_devs=(libc6-dev libgcc-12-dev libevent-dev libjansson-dev libyajl-dev libinih-dev
  zlib1g-dev libmbedtls-dev)
static_built_using() {
  dpkg-query -W -f='${source:Package} (= ${source:Version})\n' "${agent_static_devs[@]}" |
    LC_ALL=C sort -u | paste -sd, | sed 's/,/, /g'
}

# maint SCRIPT: deploy/debian/PKG.SCRIPT as DEBIAN/SCRIPT, maint-lib.sh put in.
maint() {
  awk -v lib="$src/deploy/debian/maint-lib.sh" \
    '$0 == "#MAINT_LIB#" { while ((getline l < lib) > 0) print l; next } { print }' \
    "$src/deploy/debian/$pkg.$1" >"$pkgdir/DEBIAN/$1"
  chmod 0755 "$pkgdir/DEBIAN/$1"
}

# finish CONFFILE...: control, conffiles, maintainer scripts, md5sums; then the .deb.
finish() {
  local f
  mkdir -p "$pkgdir/DEBIAN"
  # Statically linked binaries (tm-agent by default) need no library packages.
  local dyn=()
  for f in "$pkgdir"/usr/bin/*; do
    readelf -d "$f" | grep NEEDED >/dev/null && dyn+=("debian/$pkg/usr/bin/${f##*/}")
  done
  if [ ${#dyn[@]} -gt 0 ]; then
    (cd "$work" && dpkg-shlibdeps -T"debian/$pkg.substvars" "${dyn[@]}")
  else
    echo "shlibs:Depends=" >"$work/debian/$pkg.substvars"
  fi
  local static_agent=false # a tm-agent linked statically (the default build)
  [ "$pkg" = tm-agent ] && [ ${#dyn[@]} -eq 0 ] && static_agent=true
  # Static-Built-Using names the source packages whose archives a static binary holds (a
  # fix in one of them needs a rebuilt package); empty, dpkg-gencontrol drops the field.
  if $static_agent; then
    echo "static:Built-Using=$(static_built_using)" >>"$work/debian/$pkg.substvars"
  fi
  (cd "$work" && dpkg-gencontrol -p"$pkg" -P"debian/$pkg" -T"debian/$pkg.substvars")
  : >"$pkgdir/DEBIAN/conffiles"
  for f in "$@"; do
    [ -f "$pkgdir$f" ] || die "conffile '$f' is not in $pkg"
    echo "$f" >>"$pkgdir/DEBIAN/conffiles"
  done
  maint postinst
  maint prerm
  maint postrm
  # Debian's per-package documents, and lintian overrides for what is meant: configs that
  # will hold passwords and keys are not world-readable (postinst gives them to the
  # daemon's group).
  put 0644 deploy/debian/copyright "usr/share/doc/$pkg/copyright"
  gzip -9n <"$work/debian/changelog" >"$pkgdir/usr/share/doc/$pkg/changelog.gz"
  chmod 0644 "$pkgdir/usr/share/doc/$pkg/changelog.gz"
  mkdir -p "$pkgdir/usr/share/lintian/overrides"
  {
    for f in "$@"; do
      echo "$pkg: non-standard-file-perm 0640 != 0644 [${f#/}]"
    done
    # A static tm-agent is meant (its RSS targets: docs/agent.md, "Footprint"), and
    # Static-Built-Using names what it holds.
    if $static_agent; then
      echo "$pkg: statically-linked-binary [usr/bin/tm-agent]"
      echo "$pkg: unknown-field Static-Built-Using" # dpkg knows it; bookworm's lintian not yet
      for l in mbedtls zlib; do echo "$pkg: embedded-library $l [usr/bin/tm-agent]"; done
    fi
  } >"$pkgdir/usr/share/lintian/overrides/$pkg"
  chmod 0644 "$pkgdir/usr/share/lintian/overrides/$pkg"
  (cd "$pkgdir" && find . -type f ! -path './DEBIAN/*' -printf '%P\n' | LC_ALL=C sort |
    xargs -d '\n' md5sum >DEBIAN/md5sums)
  chmod 0644 "$pkgdir/DEBIAN/control" "$pkgdir/DEBIAN/conffiles" "$pkgdir/DEBIAN/md5sums"
  find "$pkgdir" -type d -exec chmod 0755 {} +
  find "$pkgdir" -exec touch -h -d "@$epoch" {} +
  rm -f "$out/${pkg}_"*.deb
  dpkg-deb --root-owner-group -Zxz --build "$pkgdir" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
  echo "$out/${pkg}_${version}_${arch}.deb"
}

# ---- tm-agent -------------------------------------------------------------------------
pkg=tm-agent
pkgdir=$work/debian/$pkg
put_bin tm-agent
put 0640 deploy/tm-agent.ini etc/tm-agent/tm-agent.ini
put 0644 deploy/systemd/tm-agent.service lib/systemd/system/tm-agent.service
for d in agent config enrollment parsers schema; do
  put 0644 "docs/$d.md" "usr/share/doc/tm-agent/$d.md"
done
finish /etc/tm-agent/tm-agent.ini

# ---- tm-server ------------------------------------------------------------------------
pkg=tm-server
pkgdir=$work/debian/$pkg
for b in "${server_bins[@]}"; do
  put_bin "$b"
done
for d in collector aggregator dashboard; do
  put 0640 "deploy/production/tm-$d.ini" "etc/tm-$d/tm-$d.ini"
done
# Every unit of deploy/systemd but the agent's; tmctl's only with tmctl.
for f in "$src"/deploy/systemd/*.service "$src"/deploy/systemd/*.timer; do
  [ -f "$f" ] || continue
  u=${f##*/}
  case "$u" in
  tm-agent.service) continue ;;
  tmctl*) [ -x "$build/tmctl" ] || continue ;;
  esac
  put 0644 "deploy/systemd/$u" "lib/systemd/system/$u"
done
(cd "$src/dashboard/web" && find . -type f -printf '%P\n') | while read -r f; do
  put 0644 "dashboard/web/$f" "usr/share/tm-telemetry/web/$f"
done
for f in "$src"/deploy/production/*; do
  mode=0644
  [ -x "$f" ] && mode=0755
  put "$mode" "deploy/production/${f##*/}" "usr/share/tm-telemetry/production/${f##*/}"
done
for d in operations collector aggregator dashboard redis-keys config schema protocols planners enrollment; do
  put 0644 "docs/$d.md" "usr/share/doc/tm-server/$d.md"
done
finish /etc/tm-collector/tm-collector.ini /etc/tm-aggregator/tm-aggregator.ini \
  /etc/tm-dashboard/tm-dashboard.ini
