# Sourced by ../provision-qemu.sh. Private apt configurations: each one has its own
# sources, index lists, (empty) dpkg status and download cache under $CACHE/apt/NAME, so
# fetching sid binaries or source packages never touches the system's apt state and needs
# no root. Use as `apt-get -c "$(private_apt_conf NAME)" ...`.

APT_PRIVATE="$CACHE/apt"
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# private_apt_setup NAME ARCH SOURCE_LINE... : (re)write the configuration for NAME.
# Source lines are one-line-style entries without the signed-by option, which is added.
private_apt_setup() {
  local name="$1" arch="$2"; shift 2
  local d="$APT_PRIVATE/$name" line
  [ -f "$DEBIAN_KEYRING" ] || die "$DEBIAN_KEYRING is missing: install debian-archive-keyring"
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/sources.list.d" "$d/preferences.d"
  : >"$d/sources.list.new"
  for line in "$@"; do
    local type="${line%% *}" rest="${line#* }"
    printf '%s [signed-by=%s] %s\n' "$type" "$DEBIAN_KEYRING" "$rest" >>"$d/sources.list.new"
  done
  mv "$d/sources.list.new" "$d/sources.list"
  [ -f "$d/status" ] || : >"$d/status"
  cat >"$d/apt.conf" <<CONF
Dir::Etc::sourcelist "$d/sources.list";
Dir::Etc::sourceparts "$d/sources.list.d";
Dir::Etc::preferences "$d/preferences";
Dir::Etc::preferencesparts "$d/preferences.d";
Dir::State::Lists "$d/lists";
Dir::State::status "$d/status";
Dir::Cache "$d/cache";
Debug::NoLocking "true";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Sandbox::User "$(id -un)";
CONF
}

private_apt_conf() { printf '%s/%s/apt.conf' "$APT_PRIVATE" "$1"; }

# private_apt_update NAME [MAX_AGE_MINUTES]: fetch NAME's indexes unless they were fetched
# less than MAX_AGE_MINUTES ago (default 60). Retries once, since mirrors are sometimes
# caught mid-sync; after a second failure it goes on with whatever indexes did arrive.
private_apt_update() {
  local name="$1" age="${2:-60}" d="$APT_PRIVATE/$1"
  if [ -f "$d/updated" ] && [ -n "$(find "$d/updated" -mmin -"$age" 2>/dev/null)" ]; then return 0; fi
  log "apt-get update ($name indexes)"
  local try
  for try in 1 2; do
    if apt-get -c "$d/apt.conf" update -qq >"$d/update.log" 2>&1; then touch "$d/updated"; return 0; fi
    log "apt-get update ($name) failed (attempt $try, see $d/update.log)"
    sleep 3
  done
  # A configuration has binary indexes, source indexes or both: any one that arrived will do.
  ls "$d"/lists/*_Packages* >/dev/null 2>&1 || ls "$d"/lists/*_Sources* >/dev/null 2>&1 \
    || die "no $name indexes could be fetched from deb.debian.org; check the network (log: $d/update.log)"
  log "going on with the $name indexes that did arrive (missing: $(grep -o 'dists/[^ ]*' "$d/update.log" | sort -u | xargs))"
}

# retry_twice CMD...: run CMD, and once more if it fails.
retry_twice() {
  "$@" && return 0
  log "retrying: $*"
  sleep 3
  "$@"
}

# The two private configurations the provisioning uses. bookworm (amd64, with deb-src):
# QEMU 7.2's source and binaries; its indexes are refreshed at most once a day. sid (amd64):
# the newest QEMU, asked for its current version whenever a sysroot is (re)built.
PRIVATE_BOOKWORM_READY=0
private_apt_bookworm() {
  [ "$PRIVATE_BOOKWORM_READY" = 1 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found: QEMU 7.2 comes from Debian bookworm's archive, which needs apt"
  private_apt_setup bookworm amd64 \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" \
    "deb-src http://deb.debian.org/debian bookworm main"
  private_apt_update bookworm 1440
  PRIVATE_BOOKWORM_READY=1
}

PRIVATE_SID_READY=0
private_apt_sid() {
  [ "$PRIVATE_SID_READY" = 1 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found: QEMU 11 comes from Debian sid's archive, which needs apt"
  private_apt_setup sid amd64 "deb http://deb.debian.org/debian sid main"
  private_apt_update sid 60
  PRIVATE_SID_READY=1
}

# host_has PKG: PKG is installed on this system.
host_has() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }

# missing_dep_closure CONF PKG...: the packages (one per line) that PKG... need, directly or
# through each other, and that this system has not installed, resolved in CONF's indexes.
# For an alternative or a virtual package, one installed choice satisfies it; otherwise the
# first real candidate is taken.
missing_dep_closure() {
  local conf="$1"; shift
  local -A seen=()
  local queue=("$@") out=() p group alt chosen
  for p in "$@"; do seen[$p]=1; done
  while [ ${#queue[@]} -gt 0 ]; do
    local next=()
    # One line per dependency group: alternatives separated by spaces, a virtual
    # package replaced by its providers.
    while read -r group; do
      [ -n "$group" ] || continue
      chosen=""
      for alt in $group; do
        if [ -n "${seen[$alt]:-}" ] || host_has "$alt"; then chosen="-"; break; fi
      done
      [ -z "$chosen" ] || continue
      for alt in $group; do
        if apt-cache -c "$conf" show "$alt" >/dev/null 2>&1; then chosen="$alt"; break; fi
      done
      [ -n "$chosen" ] || { log "no candidate for dependency '$group'"; continue; }
      seen[$chosen]=1; next+=("$chosen"); out+=("$chosen")
    done < <(apt-cache -c "$conf" depends --no-recommends --no-suggests --no-conflicts \
               --no-breaks --no-replaces --no-enhances "${queue[@]}" 2>/dev/null | awk '
      function flush() { if (g != "") print g; g = "" }
      /^[^ ]/ { flush(); cont = 0; next }
      /^ [ |](Pre)?Depends:/ {
        name = $2; virt = (name ~ /^</); gsub(/[<>]/, "", name)
        if (!cont) flush()
        g = (g == "" ? "" : g " ") (virt ? "" : name)
        cont = ($1 ~ /^\|/); invirt = virt; next
      }
      /^    [^ ]/ { if (invirt) g = (g == "" ? "" : g " ") $1; next }
      { invirt = 0 }
      END { flush() }')
    queue=("${next[@]}")
  done
  [ ${#out[@]} -eq 0 ] || printf '%s\n' "${out[@]}"
}
