/*
 * cref: the minimal C reference plugin for the real-QEMU benchmark. Its per-instruction
 * exec callback adds 1 to the executing vCPU's slot of a static array of 128-byte
 * (cache-line-pair) padded counters: no scoreboard lookup, no lock, no atomic, no false
 * sharing. It is the practical floor for any per-instruction callback. At exit it prints
 * the lines of QEMU's tests/tcg/plugins/insn.c: `cpu N insns: X`, `total insns: T`.
 *
 * Build (API v5, QEMU >= 10.1):
 *   gcc -shared -fPIC -O2 -I$QEMU_SRC/include/qemu $(pkg-config --cflags glib-2.0) \
 *       -o libcref.so cref.c
 * Build (API v4, QEMU 9.2 / 10.0): add -DCREF_API=4. Only functions that exist in API v4
 * are used, so the same source serves both; the exported version is what QEMU checks.
 * Build (API v7, QEMU 11.1): add -DCREF_API=7; the declarations come from
 * qemu-plugin-api7.h beside this file instead of QEMU's header (callbacks get userdata,
 * not the plugin id).
 * Add -DCREF_CHECKED for the variant with the Rust runtime's hot-path checks (below).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

#include <glib.h>
#if defined(CREF_API) && CREF_API >= 7
#include "qemu-plugin-api7.h"
#else
#include <qemu-plugin.h>
#endif

#ifndef CREF_API
#define CREF_API QEMU_PLUGIN_VERSION
#endif

QEMU_PLUGIN_EXPORT int qemu_plugin_version = CREF_API;

#define MAX_VCPUS 1024

typedef struct {
    uint64_t insns;
    uint64_t occupied; /* used by the CREF_CHECKED variant only */
    char pad[128 - 2 * sizeof(uint64_t)];
} __attribute__((aligned(128))) Slot;

static Slot slots[MAX_VCPUS];
static unsigned int highest;

#ifndef CREF_CHECKED
static void insn_exec(unsigned int cpu_index, void *udata)
{
    slots[cpu_index & (MAX_VCPUS - 1)].insns++;
}
#else
/*
 * -DCREF_CHECKED: the same count behind the two checks the Rust runtime's hot path makes
 * before it touches a shard: the vCPU index is below a constant (the slots reached without
 * a load), and that vCPU's slot is occupied (set by vcpu_init). Anything else goes to an
 * out-of-line function, as the runtime's cold path does.
 */
#define CHECKED_SLOTS 64

static __attribute__((noinline)) void insn_exec_slow(unsigned int cpu_index)
{
    slots[cpu_index & (MAX_VCPUS - 1)].insns++;
}

static void insn_exec(unsigned int cpu_index, void *udata)
{
    if (__builtin_expect(cpu_index < CHECKED_SLOTS, 1)) {
        Slot *s = &slots[cpu_index];
        if (__builtin_expect(s->occupied != 0, 1)) {
            s->insns++;
            return;
        }
    }
    insn_exec_slow(cpu_index);
}
#endif

#if defined(CREF_API) && CREF_API >= 7
static void tb_trans(struct qemu_plugin_tb *tb, void *userdata)
#else
static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
#endif
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        qemu_plugin_register_vcpu_insn_exec_cb(qemu_plugin_tb_get_insn(tb, i), insn_exec,
                                               QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
}

#if defined(CREF_API) && CREF_API >= 7
static void vcpu_init(unsigned int vcpu_index, void *userdata)
#else
static void vcpu_init(qemu_plugin_id_t id, unsigned int vcpu_index)
#endif
{
    slots[vcpu_index & (MAX_VCPUS - 1)].occupied = 1;
    /* Only for the output's length; a racy max is fine at exit time. */
    if (vcpu_index + 1 > __atomic_load_n(&highest, __ATOMIC_RELAXED)) {
        __atomic_store_n(&highest, vcpu_index + 1, __ATOMIC_RELAXED);
    }
}

#if defined(CREF_API) && CREF_API >= 7
static void plugin_exit(void *p)
#else
static void plugin_exit(qemu_plugin_id_t id, void *p)
#endif
{
    GString *out = g_string_new(NULL);
    unsigned int n = highest;
    int vcpus = qemu_plugin_num_vcpus();
    uint64_t total = 0;
    if (vcpus > 0 && (unsigned int)vcpus > n) {
        n = vcpus;
    }
    if (n > MAX_VCPUS) {
        n = MAX_VCPUS;
    }
    for (unsigned int i = 0; i < n; i++) {
        g_string_append_printf(out, "cpu %u insns: %" PRIu64 "\n", i, slots[i].insns);
        total += slots[i].insns;
    }
    g_string_append_printf(out, "total insns: %" PRIu64 "\n", total);
    qemu_plugin_outs(out->str);
    g_string_free(out, TRUE);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    if (argc > 0) {
        fprintf(stderr, "cref: takes no arguments\n");
        return -1;
    }
#if defined(CREF_API) && CREF_API >= 7
    qemu_plugin_register_vcpu_init_cb(id, vcpu_init, NULL);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans, NULL);
#else
    qemu_plugin_register_vcpu_init_cb(id, vcpu_init);
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
#endif
    qemu_plugin_register_atexit_cb(id, plugin_exit, NULL);
    return 0;
}
