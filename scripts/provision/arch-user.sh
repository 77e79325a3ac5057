# Sourced by ../provision-qemu.sh. The aarch64 and riscv64 linux-user side:
#   arch_user        -> qemu-aarch64 and qemu-riscv64 (linux-user, plugins, API v5) built from
#                       the same QEMU source tree as qemu-x86_64 ($SRC_DIR, from user_mode) in
#                       a second build directory, $SRC_DIR/build-arch, with QEMU's reference
#                       plugins built there too (host code: one .so serves both targets);
#   cross_compilers  -> bookworm's aarch64/riscv64 cross gcc and libc (system-wide apt), to
#                       build guest programs (link them -static).
# The build takes 4 minutes on an idle 2-core machine, up to 12 on a busy one.

BUILD_ARCH="$SRC_DIR/build-arch"
REF_PLUGINS_ARCH="$BUILD_ARCH/tests/tcg/plugins"
CONTRIB_PLUGINS_ARCH="$BUILD_ARCH/contrib/plugins"
# QEMU's reference plugins, and its contrib plugins ($CONTRIB_PLUGINS, from
# ../provision-qemu.sh), built from the tree of the QEMUs that load them.
ARCH_USER_PLUGINS=(tests/tcg/plugins/libinsn.so tests/tcg/plugins/libbb.so tests/tcg/plugins/libmem.so
                   tests/tcg/plugins/libsyscall.so)
for p in "${CONTRIB_PLUGINS[@]}"; do ARCH_USER_PLUGINS+=("contrib/plugins/lib$p.so"); done
CC_AARCH64=/usr/bin/aarch64-linux-gnu-gcc
CC_RISCV64=/usr/bin/riscv64-linux-gnu-gcc
CROSS_PKGS=(gcc-aarch64-linux-gnu gcc-riscv64-linux-gnu libc6-dev-arm64-cross libc6-dev-riscv64-cross)

arch_user_have_all() {
  local p
  [ -x "$BUILD_ARCH/qemu-aarch64" ] && [ -x "$BUILD_ARCH/qemu-riscv64" ] || return 1
  for p in "${ARCH_USER_PLUGINS[@]}"; do [ -f "$BUILD_ARCH/$p" ] || return 1; done
  grep -q '^#define CONFIG_CAPSTONE\b' "$BUILD_ARCH/config-host.h" 2>/dev/null
}

arch_user() {
  if arch_user_have_all; then
    log "aarch64/riscv64 user-mode QEMU cached: $BUILD_ARCH/qemu-{aarch64,riscv64}"
    return 0
  fi
  # The source tree, the meson 1.9.0 venv and the build dependencies are user_mode's.
  user_mode
  local venv="$CACHE/meson-venv" logf="$CACHE/build-arch.log" start=$SECONDS
  [ -f "$SRC_DIR/configure" ] && [ -x "$venv/bin/python3" ] || die "user_mode left no QEMU source or meson venv"
  log "building qemu-aarch64 and qemu-riscv64 $(cat "$SRC_DIR/VERSION") in $BUILD_ARCH (4-12 minutes on 2 cores; log: $logf)"
  if [ -f "$BUILD_ARCH/config-host.h" ] && ! grep -q '^#define CONFIG_CAPSTONE\b' "$BUILD_ARCH/config-host.h"; then
    rm -f "$BUILD_ARCH/build.ninja"
  fi
  if [ ! -f "$BUILD_ARCH/build.ninja" ]; then
    log "configuring QEMU (aarch64-linux-user, riscv64-linux-user, plugins)"
    rm -rf "$BUILD_ARCH"; mkdir -p "$BUILD_ARCH"
    (cd "$BUILD_ARCH" && ../configure --python="$venv/bin/python3" \
        --target-list=aarch64-linux-user,riscv64-linux-user --enable-plugins --enable-capstone \
        --disable-docs --disable-werror --disable-install-blobs >"$CACHE/configure-arch.log" 2>&1) \
      || die "configure failed, see $CACHE/configure-arch.log"
  fi
  : >"$logf"
  ninja_with_progress "$BUILD_ARCH" "$logf" "qemu-aarch64 qemu-riscv64" qemu-aarch64 qemu-riscv64 \
    || die "build of qemu-aarch64/qemu-riscv64 failed, see $logf"
  log "building QEMU's reference plugins in $BUILD_ARCH"
  ninja_with_progress "$BUILD_ARCH" "$logf" "reference plugins" "${ARCH_USER_PLUGINS[@]}" \
    || die "plugin build failed, see $logf"
  arch_user_have_all || die "the build in $BUILD_ARCH finished without everything it should make"
  log "aarch64/riscv64 user-mode QEMU built in $((SECONDS - start)) s"
}

cross_compilers() {
  if [ -x "$CC_AARCH64" ] && [ -x "$CC_RISCV64" ] && dpkg -s "${CROSS_PKGS[@]}" >/dev/null 2>&1; then
    log "cross compilers present: $CC_AARCH64, $CC_RISCV64"; return 0
  fi
  log "installing the aarch64/riscv64 cross compilers (about 20 s)"
  apt_install "${CROSS_PKGS[@]}"
  [ -x "$CC_AARCH64" ] && [ -x "$CC_RISCV64" ] || die "cross compilers installed, but $CC_AARCH64 or $CC_RISCV64 is missing"
}
