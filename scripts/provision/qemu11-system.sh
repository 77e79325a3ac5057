# Sourced by ../provision-qemu.sh. The newest qemu-system-* Debian sid has (11.1.3 when this
# was written; sid's index is asked, nothing is pinned), with its whole dependency closure
# unpacked into one sysroot, $CACHE/qemu11-sysroot/root. The binaries need sid's glibc, so
# the wrappers run them through the sysroot's own dynamic loader. QEMU_MODULE_DIR keeps
# them off the host's (older) modules, which would abort them.
#   qemu11_system        -> qemu-system-x86 -> $CACHE/bin/qemu-system-x86_64-11
#   qemu11_system_extra  -> also qemu-system-arm and qemu-system-riscv in the same sysroot
#                           -> $CACHE/bin/qemu-system-{aarch64,riscv64}-11

SYS_11="$CACHE/qemu11-sysroot"
WRAP_SYS_11="$CACHE/bin/qemu-system-x86_64-11"
WRAP_SYS_11_AARCH64="$CACHE/bin/qemu-system-aarch64-11"
WRAP_SYS_11_RISCV64="$CACHE/bin/qemu-system-riscv64-11"

# sysroot_loader ROOT: the sysroot's own ld.so (a real file inside ROOT).
sysroot_loader() {
  local c real
  for c in "$1/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$1/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$1/lib64/ld-linux-x86-64.so.2"; do
    [ -e "$c" ] || continue
    real=$(readlink -f "$c")
    case "$real" in "$1"/*) printf '%s\n' "$real"; return 0 ;; esac
  done
  return 1
}

# qemu11_sysroot PKG...: make sure the sysroot holds PKG... (and what it held before), all at
# sid's current version of qemu-system-x86 (the sysroot is rebuilt when that changes).
qemu11_sysroot() {
  local want=("$@") have=() p missing=0
  local -A held=()
  [ -f "$SYS_11/packages" ] && mapfile -t have < <(tail -n +2 "$SYS_11/packages")
  for p in "${have[@]}"; do held[$p]=1; done
  for p in "${want[@]}"; do [ -n "${held[$p]:-}" ] || missing=1; done
  [ -d "$SYS_11/root" ] && [ "$missing" = 0 ] && return 0
  command -v dpkg-deb >/dev/null || die "dpkg-deb not found: QEMU 11 comes as Debian sid packages"

  private_apt_sid
  local conf; conf="$(private_apt_conf sid)"
  local ver; ver=$(apt-cache -c "$conf" policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')
  [ -n "$ver" ] && [ "$ver" != "(none)" ] || die "sid's index has no qemu-system-x86 (see $APT_PRIVATE/sid/update.log)"
  local all=() specs=()
  mapfile -t all < <(printf '%s\n' "${have[@]}" "${want[@]}" | awk 'NF && !seen[$0]++')
  for p in "${all[@]}"; do specs+=("$p=$ver"); done
  log "resolving sid's ${all[*]} $ver with all dependencies"
  local uris; uris=$(apt-get -c "$conf" install --download-only -y -qq --print-uris "${specs[@]}" 2>"$SYS_11.resolve.log") \
    || die "apt cannot resolve ${specs[*]} in sid (see $SYS_11.resolve.log); sid may be mid-transition, try again later"
  local files=() size
  mapfile -t files < <(printf '%s\n' "$uris" | awk '/^'"'"'/ { print $2 }')
  size=$(printf '%s\n' "$uris" | awk '/^'"'"'/ { s += $3 } END { printf "%.0f", s / 1e6 }')
  [ ${#files[@]} -gt 0 ] || die "apt listed no packages to download for ${specs[*]}"
  log "downloading ${#files[@]} sid packages (${size} MB)"
  retry_twice apt-get -c "$conf" install --download-only -y -qq "${specs[@]}" >"$SYS_11.download.log" 2>&1 \
    || die "downloading sid packages failed, see $SYS_11.download.log"

  log "unpacking ${#files[@]} packages into $SYS_11/root"
  local tmp="$SYS_11/root.tmp" f
  rm -rf "$tmp"; mkdir -p "$tmp"
  for f in "${files[@]}"; do dpkg-deb -x "$APT_PRIVATE/sid/cache/archives/$f" "$tmp"; done
  local ld; ld=$(sysroot_loader "$tmp") || die "the sid sysroot has no dynamic loader of its own (libc6 missing from the closure?)"
  local lp="$tmp/usr/lib/x86_64-linux-gnu:$tmp/lib/x86_64-linux-gnu" bin
  for bin in "$tmp"/usr/bin/qemu-system-*; do
    if "$ld" --library-path "$lp" --list "$bin" 2>&1 | grep -q 'not found'; then
      die "$(basename "$bin") from sid misses libraries inside the sysroot: $("$ld" --library-path "$lp" --list "$bin" 2>&1 | awk '/not found/ { print $1 }' | tr '\n' ' ')"
    fi
  done
  rm -rf "$SYS_11/root"; mv "$tmp" "$SYS_11/root"
  { echo "$ver"; printf '%s\n' "${all[@]}"; } >"$SYS_11/packages"
  apt-get -c "$conf" clean
  rm -f "$SYS_11/.wrappers"
}

# sys11_wrapper NAME WRAPPER [extra -L dirs relative to the sysroot]...
sys11_wrapper() {
  local name="$1" wrap="$2"; shift 2
  local r="$SYS_11/root" ld d args=""
  ld=$(sysroot_loader "$r") || die "no dynamic loader in $r; remove $SYS_11 and rerun"
  for d in usr/share/qemu "$@"; do [ ! -d "$r/$d" ] || args="$args -L \"$r/$d\""; done
  mkdir -p "$(dirname "$wrap")"
  cat >"$wrap.tmp" <<WRAP
#!/bin/sh
# $name $(head -n1 "$SYS_11/packages") from Debian sid, run from its sysroot through the sysroot's own
# dynamic loader. Written by scripts/provision-qemu.sh.
QEMU_MODULE_DIR="$r/usr/lib/x86_64-linux-gnu/qemu"; export QEMU_MODULE_DIR
exec "$ld" --library-path "$r/usr/lib/x86_64-linux-gnu:$r/lib/x86_64-linux-gnu" "$r/usr/bin/$name"$args "\$@"
WRAP
  chmod +x "$wrap.tmp"; mv "$wrap.tmp" "$wrap"
  "$wrap" --version >/dev/null 2>&1 || die "$wrap --version fails"
}

qemu11_system() {
  if [ -x "$WRAP_SYS_11" ] && [ -f "$SYS_11/.wrappers" ] && [ -x "$SYS_11/root/usr/bin/qemu-system-x86_64" ]; then
    log "QEMU 11 system mode cached: $WRAP_SYS_11 ($(head -n1 "$SYS_11/packages"))"; return 0
  fi
  qemu11_sysroot qemu-system-x86
  qemu11_write_wrappers
}

qemu11_system_extra() {
  if [ -x "$WRAP_SYS_11_AARCH64" ] && [ -x "$WRAP_SYS_11_RISCV64" ] && [ -f "$SYS_11/.wrappers" ] \
     && [ -x "$SYS_11/root/usr/bin/qemu-system-aarch64" ] && [ -x "$SYS_11/root/usr/bin/qemu-system-riscv64" ]; then
    log "QEMU 11 aarch64/riscv64 system mode cached: $WRAP_SYS_11_AARCH64, $WRAP_SYS_11_RISCV64"; return 0
  fi
  qemu11_sysroot qemu-system-x86 qemu-system-arm qemu-system-riscv
  qemu11_write_wrappers
}

# One wrapper per system emulator the sysroot holds; rewritten whenever the sysroot is.
qemu11_write_wrappers() {
  local r="$SYS_11/root"
  [ ! -x "$r/usr/bin/qemu-system-x86_64" ] || sys11_wrapper qemu-system-x86_64 "$WRAP_SYS_11" usr/share/seabios usr/lib/ipxe/qemu
  [ ! -x "$r/usr/bin/qemu-system-aarch64" ] || sys11_wrapper qemu-system-aarch64 "$WRAP_SYS_11_AARCH64"
  [ ! -x "$r/usr/bin/qemu-system-riscv64" ] || sys11_wrapper qemu-system-riscv64 "$WRAP_SYS_11_RISCV64"
  touch "$SYS_11/.wrappers"
  log "QEMU 11 system mode: $("$WRAP_SYS_11" --version | head -n1)"
}
