# Sourced by ../provision-qemu.sh. qemu-x86_64 7.2 (linux-user, plugin API v1) and QEMU's
# reference C plugins, built from bookworm's source package in $CACHE/qemu72-src.
#
# 7.2's configure refuses --python together with an outside meson, and the +dfsg tarball
# carries no meson of its own: it gets a venv with meson 1.0.1 (separate from the 1.9.0
# one the 10.2 build uses), first on PATH and passed as --meson. 7.2 keeps its reference
# plugins in tests/plugin/ (later QEMUs: tests/tcg/plugins/); contrib plugins are built by
# a plain Makefile there.

SRC_DIR_72="$CACHE/qemu72-src"
BUILD_72="$SRC_DIR_72/build"
MESON_VENV_72="$CACHE/meson-1.0.1-venv"
REF_PLUGINS_72="$BUILD_72/tests/plugin"
# Built if 7.2's tree has their sources; the others are skipped with a note.
REF_PLUGIN_NAMES_72=(insn bb mem syscall)

qemu72_have_all() {
  [ -x "$BUILD_72/qemu-x86_64" ] && [ -f "$BUILD_72/.plugins-done" ]
}

qemu72_fetch() {
  [ -f "$SRC_DIR_72/configure" ] && return 0
  private_apt_bookworm
  local dl="$CACHE/dl72"; mkdir -p "$dl"
  if ! ls "$dl"/qemu_7.2*.orig.tar.* >/dev/null 2>&1; then
    log "downloading QEMU 7.2 source (qemu/bookworm, about 24 MB)"
    (cd "$dl" && retry_twice apt-get -c "$(private_apt_conf bookworm)" source --download-only --tar-only qemu/bookworm >"$dl/download.log" 2>&1) \
      || die "could not download bookworm's QEMU source (see $dl/download.log); it needs http://deb.debian.org/debian reachable"
  fi
  local tarball; tarball=$(ls "$dl"/qemu_7.2*.orig.tar.* | head -n1)
  log "extracting $(basename "$tarball")"
  rm -rf "$SRC_DIR_72.tmp"; mkdir -p "$SRC_DIR_72.tmp"
  tar -xf "$tarball" -C "$SRC_DIR_72.tmp" --strip-components=1
  rm -rf "$SRC_DIR_72"; mv "$SRC_DIR_72.tmp" "$SRC_DIR_72"
}

qemu72_user() {
  if qemu72_have_all; then log "QEMU 7.2 user mode cached: $BUILD_72/qemu-x86_64"; return 0; fi
  apt_install ninja-build libglib2.0-dev pkg-config flex bison python3-venv xz-utils make gcc
  qemu72_fetch
  if [ ! -x "$MESON_VENV_72/bin/meson" ]; then
    log "creating the meson 1.0.1 venv"
    rm -rf "$MESON_VENV_72"
    python3 -m venv "$MESON_VENV_72"
    retry_twice "$MESON_VENV_72/bin/pip" install -q meson==1.0.1 \
      || die "pip could not install meson==1.0.1 (needs PyPI access)"
  fi
  local path72="$MESON_VENV_72/bin:$PATH"
  local logf="$CACHE/qemu72-build.log"
  if [ ! -f "$BUILD_72/build.ninja" ]; then
    log "configuring QEMU 7.2 (x86_64-linux-user, plugins)"
    rm -rf "$BUILD_72"; mkdir -p "$BUILD_72"
    (cd "$BUILD_72" && PATH="$path72" ../configure --meson="$MESON_VENV_72/bin/meson" \
        --target-list=x86_64-linux-user --enable-plugins --disable-docs --disable-werror \
        --disable-install-blobs >"$CACHE/qemu72-configure.log" 2>&1) \
      || die "QEMU 7.2 configure failed, see $CACHE/qemu72-configure.log"
  fi
  if [ ! -x "$BUILD_72/qemu-x86_64" ]; then
    log "building qemu-x86_64 7.2 (a few minutes on 2 cores; log: $logf)"
    (cd "$BUILD_72" && PATH="$path72" ninja -j"$(nproc)" qemu-x86_64 >"$logf" 2>&1) \
      || die "QEMU 7.2 build failed, see $logf"
  fi
  local targets=() name skipped=()
  for name in "${REF_PLUGIN_NAMES_72[@]}"; do
    if [ -f "$SRC_DIR_72/tests/plugin/$name.c" ]; then targets+=("tests/plugin/lib$name.so"); else skipped+=("$name"); fi
  done
  [ ${#skipped[@]} -eq 0 ] || log "QEMU 7.2 has no reference plugin(s): ${skipped[*]}"
  log "building QEMU 7.2's reference plugins: ${targets[*]}"
  (cd "$BUILD_72" && PATH="$path72" ninja "${targets[@]}" >>"$logf" 2>&1) \
    || die "QEMU 7.2 reference plugin build failed, see $logf"
  if [ -f "$SRC_DIR_72/contrib/plugins/hotblocks.c" ] && [ -f "$BUILD_72/contrib/plugins/Makefile" ]; then
    log "building QEMU 7.2's contrib hotblocks plugin"
    (cd "$BUILD_72/contrib/plugins" && PATH="$path72" make libhotblocks.so >>"$logf" 2>&1) \
      || die "QEMU 7.2 contrib/plugins/libhotblocks.so failed, see $logf"
  else
    log "QEMU 7.2 has no contrib hotblocks plugin; skipped"
  fi
  touch "$BUILD_72/.plugins-done"
}
