#!/usr/bin/env bash
# Provisions everything the QEMU integration tests, the demo and the real-QEMU benches need:
#   * qemu-x86_64 (linux-user, plugins, API v5) built from Debian's QEMU 10.2.2 source,
#     plus QEMU's reference C plugins built from the same tree;
#   * qemu-system-x86_64 10.0.x (API v4) from bookworm-backports;
#   * a Linux guest: Debian's cloud kernel and a busybox initramfs;
#   * QEMU 7.2 (plugin API v1), Debian bookworm's: qemu-x86_64 plus reference plugins built
#     from bookworm's source (target qemu72-user), and bookworm's qemu-system-x86_64 unpacked
#     privately (qemu72-system, wrapper $CACHE/bin/qemu-system-x86_64-7.2);
#   * the newest QEMU Debian sid has (11.x, API 7): qemu-system-x86_64 and its dependency
#     closure unpacked into a sysroot (qemu11-system, wrapper $CACHE/bin/qemu-system-x86_64-11);
#     qemu11-system-extra adds qemu-system-aarch64/-riscv64 there;
#   * aarch64 and riscv64: qemu-aarch64/qemu-riscv64 10.2.2 linux-user built from the same
#     source in a second build directory, with reference plugins, and bookworm's cross
#     compilers (target arch-user); qemu-system-aarch64 10.0.x from bookworm-backports
#     (arch-system); an arm64 and a riscv64 Linux guest (arch-guests). `all` runs these and
#     qemu11-system-extra after the rest;
#   * QEMU's contrib plugins built again for plugin API 4, for qemu-system-x86_64 10.0
#     (contrib-v4, also in `all`);
#   * qemu-system-x86_64 10.2 (API 5) built from the same source (system102, wrapper
#     $CACHE/bin/qemu-system-x86_64-10.2): only benches/qemu/contrib.py --system102 uses it,
#     so it is not in `all`.
#   The 7.2, 11 and arm64/riscv64 guest pieces use private apt configurations under
#   $CACHE/apt (see scripts/provision/private-apt.sh): the system's apt state and QEMU stay
#   as they are.
# Everything is cached under $QEMU_PLUGIN_CACHE (default ~/.cache/qemu-plugin-rs); only
# what is missing is rebuilt. Prints the paths it provides as KEY=VALUE lines on success
# into $QEMU_PLUGIN_CACHE/env.
#
# Overrides: QEMU_PLUGIN_QEMU_USER / QEMU_PLUGIN_QEMU_SYSTEM point at your own binaries,
# which are then used as they are (the reference plugins still come from the cache).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

CACHE="${QEMU_PLUGIN_CACHE:-$HOME/.cache/qemu-plugin-rs}"
QEMU_VERSIONS=("1:10.2.2+ds-1" "1:10.2.1+ds-1" "1:10.1.3+ds-1")
mkdir -p "$CACHE"
log() { printf '[provision %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[provision] error: %s\n' "$*" >&2; exit 1; }

SUDO=""
need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else
      die "$1 needs root and apt-get. Install it yourself, or set QEMU_PLUGIN_QEMU_USER / QEMU_PLUGIN_QEMU_SYSTEM to plugin-capable QEMU binaries. Needed packages: $2"
    fi
  fi
  command -v apt-get >/dev/null || die "apt-get not found. $1 needs a Debian-like system; otherwise install $2 yourself and set QEMU_PLUGIN_QEMU_USER / QEMU_PLUGIN_QEMU_SYSTEM."
}

APT_UPDATED=0
apt_sources() {
  local f=/etc/apt/sources.list.d/qemu-plugin-rs.sources
  if [ ! -f "$f" ]; then
    log "adding apt sources (deb-src sid, deb bookworm-backports)"
    $SUDO tee "$f" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    APT_UPDATED=0
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    $SUDO apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
}

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root "installing packages" "${missing[*]}"
  apt_sources
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ninja_with_progress DIR LOG WHAT TARGET...: ninja TARGET... in build directory DIR, output
# appended to LOG, with a log line every minute saying how far it got.
ninja_with_progress() {
  local dir="$1" logf="$2" what="$3"; shift 3
  (cd "$dir" && exec ninja -j"$(nproc)" "$@") >>"$logf" 2>&1 &
  local pid=$! start=$SECONDS next=$((SECONDS + 60)) rc=0 step
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    if [ "$SECONDS" -ge "$next" ]; then
      step=$(grep -o '^\[[0-9]*/[0-9]*\]' "$logf" 2>/dev/null | tail -n1)
      log "  $what: ${step:-starting} after $((SECONDS - start)) s"
      next=$((SECONDS + 60))
    fi
  done
  wait "$pid" || rc=$?
  return "$rc"
}

# ---------------------------------------------------------------- QEMU 7.2 and 11 (API v1, v7)
# One job per file; they use log, die, apt_install, ninja_with_progress and $CACHE from above.
. "$HERE/provision/private-apt.sh"
. "$HERE/provision/qemu72-user.sh"
. "$HERE/provision/qemu72-system.sh"
. "$HERE/provision/qemu11-system.sh"

# ---------------------------------------------------------------- user mode (API v5)
SRC_DIR="$CACHE/qemu-src"
BUILD="$SRC_DIR/build"
# QEMU's contrib plugins (contrib/plugins/meson.build), the C originals of the examples
# that rewrite them.
CONTRIB_PLUGINS=(bbv cache cflow drcov execlog hotblocks hotpages howvec hwprofile ips lockstep stoptrigger traps uftrace)
contrib_built() {
  local p
  for p in "${CONTRIB_PLUGINS[@]}"; do [ -f "$1/contrib/plugins/lib$p.so" ] || return 1; done
}
user_mode() {
  if [ -x "$BUILD/qemu-x86_64" ] && [ -f "$BUILD/tests/tcg/plugins/libinsn.so" ] \
     && contrib_built "$BUILD" \
     && grep -q '^#define CONFIG_CAPSTONE\b' "$BUILD/config-host.h" 2>/dev/null; then
    log "user-mode QEMU cached: $BUILD/qemu-x86_64"
    return 0
  fi
  apt_install ninja-build libglib2.0-dev pkg-config flex bison device-tree-compiler libfdt-dev python3-venv dpkg-dev xz-utils libcapstone-dev
  if [ ! -f "$SRC_DIR/configure" ]; then
    need_root "downloading QEMU's source package" "dpkg-dev"
    apt_sources
    local dl="$CACHE/dl"; mkdir -p "$dl"
    local got=""
    for v in "${QEMU_VERSIONS[@]}"; do
      log "downloading QEMU source qemu=$v (about 39 MB)"
      if (cd "$dl" && apt-get source --download-only --tar-only "qemu=$v" >/dev/null 2>&1); then got="$v"; break; fi
      log "qemu=$v not available, trying the next version"
    done
    [ -n "$got" ] || die "could not download any of: ${QEMU_VERSIONS[*]}"
    local tarball; tarball=$(ls "$dl"/qemu_*.orig.tar.* | head -n1)
    log "extracting $(basename "$tarball")"
    rm -rf "$SRC_DIR.tmp"; mkdir -p "$SRC_DIR.tmp"
    tar -xf "$tarball" -C "$SRC_DIR.tmp" --strip-components=1
    rm -rf "$SRC_DIR"; mv "$SRC_DIR.tmp" "$SRC_DIR"
  fi
  local venv="$CACHE/meson-venv"
  if [ ! -x "$venv/bin/meson" ]; then
    log "creating meson venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q meson==1.9.0 pycotap==1.3.1
  fi
  # capstone gives plugins instruction disassembly; reconfigure a build made without it
  if [ -f "$BUILD/config-host.h" ] && ! grep -q '^#define CONFIG_CAPSTONE\b' "$BUILD/config-host.h"; then
    rm -f "$BUILD/build.ninja"
  fi
  if [ ! -f "$BUILD/build.ninja" ]; then
    log "configuring QEMU (x86_64-linux-user, plugins)"
    mkdir -p "$BUILD"
    (cd "$BUILD" && ../configure --python="$venv/bin/python3" --target-list=x86_64-linux-user \
        --enable-plugins --enable-capstone --disable-docs --disable-werror --disable-install-blobs >"$CACHE/configure.log" 2>&1) \
      || die "configure failed, see $CACHE/configure.log"
  fi
  log "building qemu-x86_64 (about a minute on 2 cores)"
  (cd "$BUILD" && make -j"$(nproc)" qemu-x86_64 >"$CACHE/build.log" 2>&1) || die "build failed, see $CACHE/build.log"
  log "building QEMU's reference plugins"
  (cd "$BUILD" && ninja tests/tcg/plugins/libinsn.so tests/tcg/plugins/libbb.so tests/tcg/plugins/libmem.so \
      tests/tcg/plugins/libsyscall.so contrib-plugins >>"$CACHE/build.log" 2>&1) \
    || die "plugin build failed, see $CACHE/build.log"
}

# ---------------------------------------------------------------- system mode (API v4)
system_mode() {
  if [ -n "${QEMU_PLUGIN_QEMU_SYSTEM:-}" ]; then log "system QEMU from QEMU_PLUGIN_QEMU_SYSTEM"; return 0; fi
  if command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 -help 2>/dev/null | grep -q -- '^-plugin'; then
    log "system QEMU present: $(command -v qemu-system-x86_64)"; return 0
  fi
  need_root "installing qemu-system-x86 from bookworm-backports" "qemu-system-x86 (>= 9.2, with -plugin)"
  apt_sources
  log "installing qemu-system-x86 from bookworm-backports"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
}

# ---------------------------------------------------------------- Linux guest
# write_guest_init FILE [CASES]: the guest's /init (every architecture's): mount the pseudo
# filesystems, say how many CPUs there are, run CASES (shell code that may act on the
# kernel command line and power off), else run a compute loop pinned to every CPU and
# power off.
write_guest_init() {
  {
    cat <<'HEAD'
#!/bin/sh
# Guest init: mount the pseudo filesystems, run a compute loop pinned to every CPU, power off.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
n=$(nproc)
echo "guest: $n cpus"
HEAD
    [ -z "${2:-}" ] || printf '%s\n' "$2"
    cat <<'TAIL'
c=0
while [ $c -lt $n ]; do
  taskset -c $c sh -c 'i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo "guest: cpu '$c' done"' &
  c=$((c+1))
done
wait
echo "guest: all work done"
poweroff -f
TAIL
  } >"$1"
}

GUEST="$CACHE/guest"
# Bump when the initramfs below changes, so that cached guests are rebuilt.
GUEST_VERSION=6
guest() {
  if [ -f "$GUEST/vmlinuz" ] && [ -f "$GUEST/initrd.gz" ] \
     && [ "$(cat "$GUEST/version" 2>/dev/null)" = "$GUEST_VERSION" ]; then
    log "guest cached: $GUEST"; return 0
  fi
  apt_install cpio gzip gcc libc6-dev
  mkdir -p "$GUEST/dl"
  if [ ! -f "$GUEST/vmlinuz" ]; then
    need_root "downloading the guest kernel" "linux-image-cloud-amd64"
    apt_sources
    local img; img=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$img" ] || die "cannot resolve linux-image-cloud-amd64's kernel package"
    log "downloading kernel package $img"
    (cd "$GUEST/dl" && apt-get download "$img" >/dev/null 2>&1) || die "apt-get download $img failed"
    rm -rf "$GUEST/kroot"; mkdir -p "$GUEST/kroot"
    dpkg-deb -x "$GUEST"/dl/linux-image-*.deb "$GUEST/kroot"
    cp "$(ls "$GUEST"/kroot/boot/vmlinuz-* | head -n1)" "$GUEST/vmlinuz"
    rm -rf "$GUEST/kroot"
  fi
  if [ ! -f "$GUEST/busybox" ]; then
    need_root "downloading busybox-static" "busybox-static"
    apt_sources
    log "downloading busybox-static"
    (cd "$GUEST/dl" && apt-get download busybox-static >/dev/null 2>&1) || die "apt-get download busybox-static failed"
    rm -rf "$GUEST/bbroot"; mkdir -p "$GUEST/bbroot"
    dpkg-deb -x "$GUEST"/dl/busybox-static_*.deb "$GUEST/bbroot"
    cp "$GUEST/bbroot/bin/busybox" "$GUEST/busybox"
    rm -rf "$GUEST/bbroot"
  fi
  log "building the guest initramfs"
  local root="$GUEST/initramfs"
  rm -rf "$root"; mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
  cp "$GUEST/busybox" "$root/bin/busybox"
  for a in sh mount poweroff nproc taskset seq cat echo sync sleep; do ln -sf busybox "$root/bin/$a"; done
  # debugexit: exits QEMU through the isa-debug-exit device (the guest kernel has no
  # /dev/port), with no libc: iopl(3), outb 1 to port 0xf4.
  cat >"$GUEST/debugexit.c" <<'C'
void _start(void) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(172L), "D"(3L) : "rcx", "r11", "memory");
    __asm__ volatile("outb %b0, %w1" : : "a"(1), "Nd"(0xf4));
    __asm__ volatile("syscall" : : "a"(60L), "D"(1L) : "rcx", "r11", "memory");
    for (;;) {
    }
}
C
  gcc -static -nostdlib -O1 -o "$root/bin/debugexit" "$GUEST/debugexit.c" || die "gcc failed on debugexit.c"
  # ud2probe: executes `ud2` (an invalid opcode: the kernel kills it with SIGILL), then
  # says it survived. It survives only if a plugin moves the PC past the `ud2`.
  cat >"$GUEST/ud2probe.c" <<'C'
void _start(void) {
    static const char ok[] = "guest: ud2 skipped\n";
    __asm__ volatile("ud2");
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(1L), "D"(1L), "S"(ok), "d"(sizeof ok - 1) : "rcx", "r11", "memory");
    __asm__ volatile("syscall" : : "a"(60L), "D"(0L) : "rcx", "r11", "memory");
    for (;;) {
    }
}
C
  gcc -static -nostdlib -O1 -o "$root/bin/ud2probe" "$GUEST/ud2probe.c" || die "gcc failed on ud2probe.c"
  write_guest_init "$root/init" "$(cat <<'CASES'
# With `setpc` on the kernel command line: run /bin/ud2probe (which dies of SIGILL unless
# a plugin skips its `ud2`), say how it exited, power off.
case "$(cat /proc/cmdline)" in *setpc*)
  /bin/ud2probe
  echo "guest: ud2probe exit $?"
  poweroff -f
esac
# With `ipsprobe` on the kernel command line: time a 5,000-turn shell loop on CPU 0 by
# the guest's own clock (/proc/uptime, before and after), print both readings, power off.
case "$(cat /proc/cmdline)" in *ipsprobe*)
  read t0 rest </proc/uptime
  i=0; while [ $i -lt 5000 ]; do i=$((i+1)); done
  read t1 rest </proc/uptime
  echo "guest: ipsprobe uptime $t0 $t1"
  poweroff -f
esac
# With `debugexit` on the kernel command line: spin on every CPU but the last, and exit
# QEMU from the last one through the isa-debug-exit device at port 0xf4 (QEMU exits with
# status (1 << 1) | 1 = 3), with the other vCPUs still executing.
case "$(cat /proc/cmdline)" in *debugexit*)
  last=$((n-1))
  c=0
  while [ $c -lt $last ]; do
    taskset -c $c sh -c 'while :; do :; done' &
    c=$((c+1))
  done
  taskset -c $last sh -c 'i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; echo "guest: exiting through isa-debug-exit"; /bin/debugexit'
  echo "guest: isa-debug-exit did not exit"
  poweroff -f
esac
CASES
)"
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -9 >"$GUEST/initrd.gz.tmp")
  mv "$GUEST/initrd.gz.tmp" "$GUEST/initrd.gz"
  echo "$GUEST_VERSION" >"$GUEST/version"
}

# ---------------------------------------------------------------- uftrace
# Debian's uftrace tool: the uftrace plugin's test reads both plugins' traces with it.
uftrace_tool() {
  if command -v uftrace >/dev/null 2>&1; then log "uftrace present: $(command -v uftrace)"; return 0; fi
  apt_install uftrace
}

# ---------------------------------------------------------------- aarch64 and riscv64
# One job per file, like the QEMU 7.2 and 11 ones; sourced here because they use $SRC_DIR
# and user_mode from above.
. "$HERE/provision/arch-user.sh"
. "$HERE/provision/arch-guests.sh"
. "$HERE/provision/contrib-v4.sh"
. "$HERE/provision/system102.sh"

write_env() {
  local user="${QEMU_PLUGIN_QEMU_USER:-$BUILD/qemu-x86_64}"
  local sys="${QEMU_PLUGIN_QEMU_SYSTEM:-$(command -v qemu-system-x86_64 || true)}"
  cat >"$CACHE/env" <<ENV
QEMU_USER=$user
QEMU_SYSTEM=$sys
QEMU_SRC=$SRC_DIR
QEMU_REF_PLUGINS=$BUILD/tests/tcg/plugins
QEMU_CONTRIB_PLUGINS=$BUILD/contrib/plugins
GUEST_KERNEL=$GUEST/vmlinuz
GUEST_INITRD=$GUEST/initrd.gz
ENV
  # QEMU 7.2 and 11: written only once provisioned, so a missing key means "not here".
  if [ -x "$BUILD_72/qemu-x86_64" ] && [ -f "$BUILD_72/.plugins-done" ]; then
    cat >>"$CACHE/env" <<ENV
QEMU_USER_7_2=$BUILD_72/qemu-x86_64
QEMU_REF_PLUGINS_7_2=$REF_PLUGINS_72
QEMU_SRC_7_2=$SRC_DIR_72
ENV
  fi
  [ ! -x "$WRAP_SYS_72" ] || echo "QEMU_SYSTEM_7_2=$WRAP_SYS_72" >>"$CACHE/env"
  ! contrib_v4_ok || echo "QEMU_CONTRIB_PLUGINS_V4=$CONTRIB_V4" >>"$CACHE/env"
  [ ! -x "$WRAP_SYS_11" ] || echo "QEMU_SYSTEM_11=$WRAP_SYS_11" >>"$CACHE/env"
  ! system102_ok || echo "QEMU_SYSTEM_10_2=$WRAP_SYS_102" >>"$CACHE/env"
  [ ! -x "$WRAP_SYS_11_AARCH64" ] || echo "QEMU_SYSTEM_AARCH64_11=$WRAP_SYS_11_AARCH64" >>"$CACHE/env"
  [ ! -x "$WRAP_SYS_11_RISCV64" ] || echo "QEMU_SYSTEM_RISCV64_11=$WRAP_SYS_11_RISCV64" >>"$CACHE/env"
  # aarch64 and riscv64: likewise, each key only once its thing is provisioned.
  if arch_user_have_all; then
    cat >>"$CACHE/env" <<ENV
QEMU_USER_AARCH64=$BUILD_ARCH/qemu-aarch64
QEMU_USER_RISCV64=$BUILD_ARCH/qemu-riscv64
QEMU_REF_PLUGINS_ARCH=$REF_PLUGINS_ARCH
QEMU_CONTRIB_PLUGINS_ARCH=$CONTRIB_PLUGINS_ARCH
ENV
  fi
  [ ! -x "$CC_AARCH64" ] || [ ! -f /usr/aarch64-linux-gnu/lib/libc.a ] || echo "CC_AARCH64=$CC_AARCH64" >>"$CACHE/env"
  [ ! -x "$CC_RISCV64" ] || [ ! -f /usr/riscv64-linux-gnu/lib/libc.a ] || echo "CC_RISCV64=$CC_RISCV64" >>"$CACHE/env"
  ! arch_system_ok || echo "QEMU_SYSTEM_AARCH64=$QEMU_SYSTEM_AARCH64_BIN" >>"$CACHE/env"
  if arch_guest_ok "$GUEST_AARCH64"; then
    printf 'GUEST_KERNEL_AARCH64=%s\nGUEST_INITRD_AARCH64=%s\n' "$GUEST_AARCH64/Image" "$GUEST_AARCH64/initrd.gz" >>"$CACHE/env"
  fi
  if arch_guest_ok "$GUEST_RISCV64"; then
    printf 'GUEST_KERNEL_RISCV64=%s\nGUEST_INITRD_RISCV64=%s\n' "$GUEST_RISCV64/Image" "$GUEST_RISCV64/initrd.gz" >>"$CACHE/env"
  fi
  log "ready; paths in $CACHE/env"
}

what="${1:-all}"
case "$what" in
  user) user_mode ;;
  system) system_mode ;;
  guest) guest ;;
  qemu72-user) qemu72_user ;;
  qemu72-system) qemu72_system ;;
  qemu11-system) qemu11_system ;;
  qemu11-system-extra) qemu11_system_extra ;;
  arch-user) cross_compilers; arch_user ;;
  arch-system) arch_system ;;
  arch-guests) arch_guests ;;
  contrib-v4) contrib_v4 ;;
  uftrace) uftrace_tool ;;
  system102) system102 ;;
  all) user_mode; system_mode; guest; qemu72_user; qemu72_system; qemu11_system
       cross_compilers; arch_user; arch_system; arch_guests; qemu11_system_extra; contrib_v4
       uftrace_tool ;;
  *) die "usage: $0 [all|user|system|guest|qemu72-user|qemu72-system|qemu11-system|qemu11-system-extra|arch-user|arch-system|arch-guests|contrib-v4|uftrace|system102]" ;;
esac
write_env
