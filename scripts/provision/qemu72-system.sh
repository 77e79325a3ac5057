# Sourced by ../provision-qemu.sh. qemu-system-x86_64 7.2 (plugin API v1) from bookworm's
# binary packages, unpacked into $CACHE/qemu72-system (the system keeps whatever
# qemu-system-x86 it has), run through the wrapper $CACHE/bin/qemu-system-x86_64-7.2.
# Libraries the binary or its modules need and this system lacks are unpacked into
# $CACHE/qemu72-system/deps and put on the wrapper's LD_LIBRARY_PATH.

SYS_72="$CACHE/qemu72-system"
WRAP_SYS_72="$CACHE/bin/qemu-system-x86_64-7.2"
SYS_72_PKGS=(qemu-system-x86 qemu-system-common qemu-system-data seabios ipxe-qemu)

# unresolved_libs ROOT LIBPATH: sonames that ROOT's qemu-system-x86_64 or its modules cannot
# resolve with LIBPATH prepended, as "file: soname" lines.
unresolved_libs() {
  local root="$1" libpath="$2" f
  for f in "$root/usr/bin/qemu-system-x86_64" "$root"/usr/lib/x86_64-linux-gnu/qemu/*.so; do
    LD_LIBRARY_PATH="$libpath" ldd "$f" 2>/dev/null | awk -v f="${f##*/}" '/not found/ { print f ": " $1 }'
  done
}

qemu72_system() {
  if [ -x "$SYS_72/root/usr/bin/qemu-system-x86_64" ] && [ -f "$SYS_72/.done" ] && [ -x "$WRAP_SYS_72" ]; then
    log "QEMU 7.2 system mode cached: $WRAP_SYS_72"; return 0
  fi
  command -v dpkg-deb >/dev/null || die "dpkg-deb not found: QEMU 7.2's system emulator comes as Debian packages"
  private_apt_bookworm
  local conf; conf="$(private_apt_conf bookworm)"
  local dl="$SYS_72/dl" tmp="$SYS_72/root.tmp" deb
  mkdir -p "$dl"
  log "downloading bookworm's ${SYS_72_PKGS[*]} (about 14 MB)"
  (cd "$dl" && retry_twice apt-get -c "$conf" download "${SYS_72_PKGS[@]}" >"$SYS_72/download.log" 2>&1) \
    || die "apt-get download of ${SYS_72_PKGS[*]} (bookworm) failed, see $SYS_72/download.log"
  rm -rf "$tmp"; mkdir -p "$tmp"
  for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$tmp"; done
  rm -rf "$SYS_72/root"; mv "$tmp" "$SYS_72/root"

  local deps="$SYS_72/deps" libpath=""
  rm -rf "$deps"
  if [ -n "$(unresolved_libs "$SYS_72/root" "")" ]; then
    log "QEMU 7.2 needs libraries this system lacks: $(unresolved_libs "$SYS_72/root" "" | awk '{print $2}' | sort -u | tr '\n' ' ')"
    local missing; missing=$(missing_dep_closure "$conf" "${SYS_72_PKGS[@]}")
    if [ -n "$missing" ]; then
      log "downloading them privately: $(echo $missing)"
      mkdir -p "$SYS_72/dl-deps" "$deps"
      # shellcheck disable=SC2086
      (cd "$SYS_72/dl-deps" && retry_twice apt-get -c "$conf" download $missing >>"$SYS_72/download.log" 2>&1) \
        || die "apt-get download of QEMU 7.2's libraries failed, see $SYS_72/download.log"
      for deb in "$SYS_72"/dl-deps/*.deb; do dpkg-deb -x "$deb" "$deps"; done
      libpath="$deps/usr/lib/x86_64-linux-gnu:$deps/lib/x86_64-linux-gnu"
    fi
  fi
  local still; still=$(unresolved_libs "$SYS_72/root" "$libpath")
  if printf '%s\n' "$still" | grep -q '^qemu-system-x86_64:'; then
    die "QEMU 7.2's qemu-system-x86_64 still misses libraries: $(printf '%s\n' "$still" | grep '^qemu-system-x86_64:' | awk '{print $2}' | tr '\n' ' ')"
  fi
  [ -z "$still" ] || log "some optional QEMU 7.2 modules miss libraries (unused here): $(echo $still)"

  mkdir -p "$(dirname "$WRAP_SYS_72")"
  local r="$SYS_72/root"
  {
    echo '#!/bin/sh'
    echo '# qemu-system-x86_64 7.2 from bookworm packages, private copy. Written by scripts/provision-qemu.sh.'
    [ -z "$libpath" ] || echo "LD_LIBRARY_PATH=\"$libpath\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\"; export LD_LIBRARY_PATH"
    echo "QEMU_MODULE_DIR=\"$r/usr/lib/x86_64-linux-gnu/qemu\"; export QEMU_MODULE_DIR"
    echo "exec \"$r/usr/bin/qemu-system-x86_64\" -L \"$r/usr/share/qemu\" -L \"$r/usr/share/seabios\" -L \"$r/usr/lib/ipxe/qemu\" \"\$@\""
  } >"$WRAP_SYS_72.tmp"
  chmod +x "$WRAP_SYS_72.tmp"; mv "$WRAP_SYS_72.tmp" "$WRAP_SYS_72"
  "$WRAP_SYS_72" --version | grep -q 'version 7\.2' || die "$WRAP_SYS_72 --version does not report 7.2"
  rm -rf "$dl" "$SYS_72/dl-deps"
  touch "$SYS_72/.done"
}
