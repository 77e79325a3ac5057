# Sourced by ../provision-qemu.sh. The aarch64 and riscv64 system-mode side:
#   arch_system  -> qemu-system-aarch64 10.0.x (plugin API v4) from bookworm-backports,
#                   installed system-wide like system_mode's qemu-system-x86_64;
#   arch_guests  -> two Linux guests, each a kernel and a busybox initramfs:
#                   $CACHE/guest-aarch64: bookworm's arm64 cloud kernel (its gzip-compressed
#                     vmlinuz unpacked to a plain Image), console=ttyAMA0 on `-M virt -cpu max`;
#                   $CACHE/guest-riscv64: trixie's riscv64 kernel, console=ttyS0 on `-M virt`.
# The arm64 and riscv64 packages come through private apt configurations (bookworm-arm64,
# trixie-riscv64 under $CACHE/apt, see private-apt.sh): no foreign architecture is added to
# the system. The init is the x86_64 guest's (provision-qemu.sh guest()) without its
# x86-only debugexit/setpc probes: one busy loop pinned to every CPU, then poweroff -f.

# Bump when the initramfs below changes, so that cached guests are rebuilt.
GUEST_ARCH_VERSION=1
GUEST_AARCH64="$CACHE/guest-aarch64"
GUEST_RISCV64="$CACHE/guest-riscv64"
QEMU_SYSTEM_AARCH64_BIN=/usr/bin/qemu-system-aarch64

# arch_system_ok: the system's qemu-system-aarch64 takes -plugin.
arch_system_ok() {
  [ -x "$QEMU_SYSTEM_AARCH64_BIN" ] && "$QEMU_SYSTEM_AARCH64_BIN" -help 2>/dev/null | grep -q -- '^-plugin'
}

arch_system() {
  if arch_system_ok; then
    log "aarch64 system QEMU present: $QEMU_SYSTEM_AARCH64_BIN ($("$QEMU_SYSTEM_AARCH64_BIN" --version | head -n1))"
    return 0
  fi
  need_root "installing qemu-system-arm from bookworm-backports" "qemu-system-arm (>= 9.2, with -plugin)"
  apt_sources
  log "installing qemu-system-arm from bookworm-backports"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-arm >/dev/null
  arch_system_ok || die "$QEMU_SYSTEM_AARCH64_BIN has no -plugin option after installing qemu-system-arm"
}

# arch_guest_ok DIR: DIR holds a complete guest of the current version.
arch_guest_ok() {
  [ -f "$1/Image" ] && [ -f "$1/initrd.gz" ] && [ "$(cat "$1/version" 2>/dev/null)" = "$GUEST_ARCH_VERSION" ]
}

# elf_machine FILE: the ELF e_machine number of FILE (183 aarch64, 243 riscv), or nothing.
elf_machine() {
  [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ] || return 0
  od -An -t u2 -j 18 -N 2 "$1" | tr -d ' '
}

# arch_guest NAME DIR CONF META ELF_MACHINE IMAGE_MAGIC: kernel of META's package and busybox
# (for ELF_MACHINE) from the private apt configuration CONF, and the initramfs, into DIR.
# IMAGE_MAGIC is the 4 bytes at offset 0x38 of the architecture's Linux boot Image.
arch_guest() {
  local name="$1" dir="$2" conf="$3" meta="$4" mach="$5" magic="$6"
  mkdir -p "$dir/dl"
  if [ ! -f "$dir/Image" ]; then
    local img; img=$(apt-cache -c "$conf" depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$img" ] || die "cannot resolve $meta's kernel package in the $name indexes"
    log "downloading $name kernel package $img"
    rm -f "$dir"/dl/linux-image-*.deb
    (cd "$dir/dl" && retry_twice apt-get -c "$conf" download "$img" >"$dir/download.log" 2>&1) \
      || die "apt-get download $img ($name) failed, see $dir/download.log"
    rm -rf "$dir/kroot"; mkdir -p "$dir/kroot"
    dpkg-deb --fsys-tarfile "$dir"/dl/linux-image-*.deb | tar -x -C "$dir/kroot" --wildcards './boot/vmlinu*' \
      || die "no boot/vmlinu* in $img"
    local k; k=$(ls "$dir"/kroot/boot/vmlinu[xz]-* 2>/dev/null | head -n1)
    [ -n "$k" ] || die "no boot/vmlinu[xz]-* in $img"
    # arm64's vmlinuz is a gzip-compressed Image: unpack it.
    if [ "$(head -c 2 "$k" | od -An -t x1 | tr -d ' ')" = 1f8b ]; then
      gzip -dc "$k" >"$dir/Image.tmp" || die "cannot decompress $k"
    else
      cp "$k" "$dir/Image.tmp"
    fi
    [ "$(tail -c +57 "$dir/Image.tmp" | head -c 4)" = "$magic" ] \
      || die "$(basename "$k") from $img is not a $name Linux Image (no '$magic' magic at 0x38)"
    basename "$k" >"$dir/kernel-release"
    mv "$dir/Image.tmp" "$dir/Image"
    rm -rf "$dir/kroot" "$dir"/dl/linux-image-*.deb
  fi
  if [ ! -f "$dir/busybox" ]; then
    log "downloading $name busybox-static"
    rm -f "$dir"/dl/busybox-static_*.deb
    (cd "$dir/dl" && retry_twice apt-get -c "$conf" download busybox-static >"$dir/download.log" 2>&1) \
      || die "apt-get download busybox-static ($name) failed, see $dir/download.log"
    rm -rf "$dir/bbroot"; mkdir -p "$dir/bbroot"
    dpkg-deb -x "$dir"/dl/busybox-static_*.deb "$dir/bbroot"
    # bin/busybox (bookworm) or usr/bin/busybox (trixie); the largest regular file of that
    # name is the binary, not a small same-named helper.
    local bb; bb=$(find "$dir/bbroot" -name busybox -type f -printf '%s %p\n' | sort -n | tail -n1 | cut -d' ' -f2-)
    [ -n "$bb" ] || die "busybox-static ($name) holds no busybox binary"
    [ "$(elf_machine "$bb")" = "$mach" ] || die "${bb#"$dir/bbroot/"} from busybox-static ($name) is not a $name ELF binary"
    cp "$bb" "$dir/busybox.tmp"; mv "$dir/busybox.tmp" "$dir/busybox"
    rm -rf "$dir/bbroot" "$dir"/dl/busybox-static_*.deb
  fi
  log "building the $name guest initramfs"
  arch_guest_initramfs "$dir"
  echo "$GUEST_ARCH_VERSION" >"$dir/version"
  rmdir "$dir/dl" 2>/dev/null || true
}

# arch_guest_initramfs DIR: DIR/initrd.gz from DIR/busybox.
arch_guest_initramfs() {
  local dir="$1" root="$1/initramfs" a
  rm -rf "$root"; mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
  cp "$dir/busybox" "$root/bin/busybox"
  chmod +x "$root/bin/busybox"
  for a in sh mount poweroff nproc taskset seq cat echo sync sleep; do ln -sf busybox "$root/bin/$a"; done
  write_guest_init "$root/init"
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -9 >"$dir/initrd.gz.tmp")
  mv "$dir/initrd.gz.tmp" "$dir/initrd.gz"
  rm -rf "$root"
}

PRIVATE_ARCH_READY=0
private_apt_arch() {
  [ "$PRIVATE_ARCH_READY" = 1 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found: the arm64/riscv64 guests come from Debian's archive, which needs apt"
  private_apt_setup bookworm-arm64 arm64 \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  private_apt_update bookworm-arm64 1440
  # riscv64 is a release architecture from trixie on. Its trixie-security (and trixie-updates)
  # indexes have been seen mid-sync; the kernel then comes from the point release.
  private_apt_setup trixie-riscv64 riscv64 \
    "deb http://deb.debian.org/debian trixie main" \
    "deb http://deb.debian.org/debian trixie-updates main" \
    "deb http://deb.debian.org/debian-security trixie-security main"
  private_apt_update trixie-riscv64 1440
  PRIVATE_ARCH_READY=1
}

arch_guests() {
  if arch_guest_ok "$GUEST_AARCH64" && arch_guest_ok "$GUEST_RISCV64"; then
    log "aarch64/riscv64 guests cached: $GUEST_AARCH64, $GUEST_RISCV64"; return 0
  fi
  apt_install cpio gzip
  command -v dpkg-deb >/dev/null || die "dpkg-deb not found: the guests come as Debian packages"
  if ! [ -f "$GUEST_AARCH64/Image" ] || ! [ -f "$GUEST_AARCH64/busybox" ] \
     || ! [ -f "$GUEST_RISCV64/Image" ] || ! [ -f "$GUEST_RISCV64/busybox" ]; then
    private_apt_arch
  fi
  arch_guest_ok "$GUEST_AARCH64" \
    || arch_guest aarch64 "$GUEST_AARCH64" "$(private_apt_conf bookworm-arm64)" linux-image-cloud-arm64 183 'ARMd'
  arch_guest_ok "$GUEST_RISCV64" \
    || arch_guest riscv64 "$GUEST_RISCV64" "$(private_apt_conf trixie-riscv64)" linux-image-riscv64 243 "$(printf 'RSC\005')"
  log "aarch64 guest: $(cat "$GUEST_AARCH64/kernel-release"), riscv64 guest: $(cat "$GUEST_RISCV64/kernel-release")"
}
