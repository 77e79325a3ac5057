/*
 * QEMU's tests/tcg/plugins/insn.c, built for plugin API v4 (QEMU 9.2 / 10.0) from the
 * 10.2 source tree, whose header says version 5. insn.c uses only API v2 functions, so
 * exporting version 4 is honest; run.py checks with `nm -D` that qemu-system-x86_64
 * 10.0 exports every qemu_plugin_* symbol the result imports.
 *
 *   gcc -shared -fPIC -O2 -I$QEMU_SRC/include/qemu $(pkg-config --cflags glib-2.0) \
 *       -DINSN_C='"'$QEMU_SRC/tests/tcg/plugins/insn.c'"' -o libinsn-v4.so insn_v4.c
 */
#include <qemu-plugin.h>
#undef QEMU_PLUGIN_VERSION
#define QEMU_PLUGIN_VERSION 4
#include INSN_C
