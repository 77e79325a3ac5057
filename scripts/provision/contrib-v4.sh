# Sourced by ../provision-qemu.sh. QEMU's contrib plugins for system mode:
#   contrib_v4 -> each of $CONTRIB_PLUGINS built again from the 10.2 source for plugin
#                 API 4, so that qemu-system-x86_64 10.0 (API 4) loads it, into
#                 $CONTRIB_V4 (lib<name>.so). The 10.2 header says version 5; a forced
#                 include redefines QEMU_PLUGIN_VERSION as 4 before the plugin's own code.
#                 A plugin is kept only if that QEMU exports every qemu_plugin_* symbol it
#                 imports (`traps` needs API 5's discontinuity callbacks); the list of
#                 those left out, with the symbols they miss, goes to $CONTRIB_V4/skipped.
# Takes a few seconds; needs user_mode's source tree and system_mode's QEMU.

CONTRIB_V4="$CACHE/contrib-v4"

contrib_v4_ok() {
  [ -f "$CONTRIB_V4/done" ] && [ "$(cat "$CONTRIB_V4/done")" = "${CONTRIB_PLUGINS[*]}" ]
}

contrib_v4() {
  if contrib_v4_ok; then log "contrib plugins for API 4 cached: $CONTRIB_V4"; return 0; fi
  user_mode
  system_mode
  local qemu="${QEMU_PLUGIN_QEMU_SYSTEM:-$(command -v qemu-system-x86_64)}"
  [ -x "$qemu" ] || die "no qemu-system-x86_64 to check the API-4 contrib plugins against"
  log "building QEMU's contrib plugins for plugin API 4 (qemu-system-x86_64 10.0) in $CONTRIB_V4"
  rm -rf "$CONTRIB_V4"; mkdir -p "$CONTRIB_V4"
  printf '#include <qemu-plugin.h>\n#undef QEMU_PLUGIN_VERSION\n#define QEMU_PLUGIN_VERSION 4\n' \
    >"$CONTRIB_V4/api4.h"
  local have p lib missing
  have=$(nm -D --defined-only "$qemu" | awk '{print $NF}' | grep '^qemu_plugin_' | sort -u)
  : >"$CONTRIB_V4/skipped"
  for p in "${CONTRIB_PLUGINS[@]}"; do
    lib="$CONTRIB_V4/lib$p.so"
    # shellcheck disable=SC2046
    gcc -shared -fPIC -O2 -Wall -I"$SRC_DIR/include/qemu" $(pkg-config --cflags glib-2.0) \
        -include "$CONTRIB_V4/api4.h" -o "$lib" "$SRC_DIR/contrib/plugins/$p.c" \
        $(pkg-config --libs glib-2.0) >>"$CONTRIB_V4/build.log" 2>&1 \
      || die "building contrib/plugins/$p.c for API 4 failed, see $CONTRIB_V4/build.log"
    missing=$(nm -D --undefined-only "$lib" | awk '{print $NF}' | grep '^qemu_plugin_' | sort -u \
              | comm -23 - <(echo "$have") | tr '\n' ' ')
    if [ -n "$missing" ]; then
      echo "$p: $missing" >>"$CONTRIB_V4/skipped"
      rm -f "$lib"
    fi
  done
  echo "${CONTRIB_PLUGINS[*]}" >"$CONTRIB_V4/done"
  log "contrib plugins for API 4: $(ls "$CONTRIB_V4" | grep -c '\.so$') built; left out: $(cut -d: -f1 "$CONTRIB_V4/skipped" | tr '\n' ' ')"
}
