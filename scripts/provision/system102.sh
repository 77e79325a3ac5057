# Sourced by ../provision-qemu.sh. qemu-system-x86_64 built from the same QEMU 10.2 source
# tree as qemu-x86_64 ($SRC_DIR, from user_mode), in a third build directory,
# $SRC_DIR/build-system: a system-mode QEMU with plugin API 5, which the C contrib plugins
# of $BUILD/contrib/plugins (built from that tree) and the crate's API-5 examples both load
# as they are. QEMU 10.0 (API 4, the system QEMU of the tests) has no discontinuity
# callbacks, so this is where `traps` is timed in system mode (benches/qemu/contrib.py
# --system102). Not part of `all`: only that benchmark needs it.
#   system102  -> $CACHE/bin/qemu-system-x86_64-10.2 (QEMU_SYSTEM_10_2 in the env file)
#
# Debian's source tarball (+ds) leaves out QEMU's prebuilt firmware, so the wrapper points
# -L at the host's (/usr/share/qemu, /usr/share/seabios, and /usr/lib/ipxe/qemu for the
# default NIC's option ROM: system_mode's qemu-system-x86 installs them). meson unpacks
# the EDK2 images whenever bzip2 exists, and the tarball lacks them too: empty
# placeholders stand in (the x86 guest here boots with SeaBIOS).
# The build takes 2 minutes on an idle 2-core machine, up to 10 on a busy one.

BUILD_SYS_102="$SRC_DIR/build-system"
WRAP_SYS_102="$CACHE/bin/qemu-system-x86_64-10.2"

system102_ok() {
  [ -x "$BUILD_SYS_102/qemu-system-x86_64" ] && [ -x "$WRAP_SYS_102" ] \
    && "$WRAP_SYS_102" -help 2>/dev/null | grep -q -- '^-plugin'
}

system102() {
  if system102_ok; then log "QEMU 10.2 system mode cached: $WRAP_SYS_102"; return 0; fi
  user_mode
  system_mode
  [ -f /usr/share/seabios/bios-256k.bin ] && [ -f /usr/share/qemu/linuxboot_dma.bin ] \
    && [ -f /usr/lib/ipxe/qemu/efi-e1000e.rom ] \
    || die "the host's QEMU firmware (/usr/share/seabios, /usr/share/qemu, /usr/lib/ipxe/qemu) is missing: run $0 system"
  local venv="$CACHE/meson-venv" logf="$CACHE/build-system102.log" start=$SECONDS f
  [ -f "$SRC_DIR/configure" ] && [ -x "$venv/bin/python3" ] || die "user_mode left no QEMU source or meson venv"
  for f in $(sed -n '/fds = \[/,/\]/p' "$SRC_DIR/pc-bios/meson.build" | grep -o "'[^']*'" | tr -d "'"); do
    [ -e "$SRC_DIR/pc-bios/$f.bz2" ] || bzip2 -c </dev/null >"$SRC_DIR/pc-bios/$f.bz2"
  done
  if [ ! -f "$BUILD_SYS_102/build.ninja" ]; then
    log "configuring QEMU $(cat "$SRC_DIR/VERSION") (x86_64-softmmu, plugins, no optional features)"
    rm -rf "$BUILD_SYS_102"; mkdir -p "$BUILD_SYS_102"
    (cd "$BUILD_SYS_102" && ../configure --python="$venv/bin/python3" --target-list=x86_64-softmmu \
        --without-default-features --enable-tcg --enable-plugins --enable-capstone \
        --disable-docs --disable-werror --disable-install-blobs >"$CACHE/configure-system102.log" 2>&1) \
      || die "configure failed, see $CACHE/configure-system102.log"
  fi
  log "building qemu-system-x86_64 $(cat "$SRC_DIR/VERSION") in $BUILD_SYS_102 (2-10 minutes on 2 cores; log: $logf)"
  : >"$logf"
  ninja_with_progress "$BUILD_SYS_102" "$logf" "qemu-system-x86_64 10.2" qemu-system-x86_64 \
    || die "build of qemu-system-x86_64 failed, see $logf"
  mkdir -p "$CACHE/bin"
  cat >"$WRAP_SYS_102.tmp" <<WRAP
#!/bin/sh
# qemu-system-x86_64 $(cat "$SRC_DIR/VERSION") built from Debian's source with plugins (API 5), with the
# host's firmware. Written by scripts/provision-qemu.sh system102.
exec "$BUILD_SYS_102/qemu-system-x86_64" -L /usr/share/qemu -L /usr/share/seabios -L /usr/lib/ipxe/qemu "\$@"
WRAP
  chmod +x "$WRAP_SYS_102.tmp"; mv "$WRAP_SYS_102.tmp" "$WRAP_SYS_102"
  system102_ok || die "$WRAP_SYS_102 does not run, or has no -plugin option"
  log "QEMU 10.2 system mode built in $((SECONDS - start)) s: $("$WRAP_SYS_102" --version | head -n1)"
}
