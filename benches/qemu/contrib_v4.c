/*
 * One of QEMU's contrib/plugins/<name>.c, built for plugin API v4 (QEMU 9.2 / 10.0) from the
 * 10.2 source tree, whose header says version 5. benches/qemu/contrib.py builds every
 * contrib plugin this way and keeps only those whose imported qemu_plugin_* symbols
 * qemu-system-x86_64 10.0 all exports (`nm -D`): a plugin that uses an API-5 function
 * (e.g. traps.c's qemu_plugin_register_vcpu_discon_cb) fails that check and is not
 * timed in system mode. Exporting version 4 is honest for the others: QEMU 10.0 checks
 * the version number only, and they call nothing it lacks.
 *
 *   gcc -shared -fPIC -O2 -I$QEMU_SRC/include/qemu $(pkg-config --cflags glib-2.0) \
 *       -DCONTRIB_C='"'$QEMU_SRC/contrib/plugins/hotblocks.c'"' \
 *       -o libhotblocks-v4.so contrib_v4.c
 */
#include <qemu-plugin.h>
#undef QEMU_PLUGIN_VERSION
#define QEMU_PLUGIN_VERSION 4
#include CONTRIB_C
