//! Core scenarios: exact totals under parallel vCPUs, churn, growth, uninstall, flush.
// The plugin side is deliberately C-style FFI; each call's contract is the C API's.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::sync::atomic::Ordering::*;

use super::plugin::*;
use crate::sys::{qemu_plugin_scoreboard_find, qemu_plugin_u64_sum};
use crate::{Block, Churn, MockHost, Workload};

#[test]
fn eight_vcpus_million_events_each() {
    let mut host = MockHost::system(8);
    assert_eq!(host.install(super::plugin::install, &["cb=on"]), 0);
    assert_eq!(host.boot(), (0..8).collect::<Vec<_>>());
    assert_eq!(INITS.load(SeqCst), 8);
    // 4 blocks of 10, 25, 40, 25 insns = 100 insns per round, 10,000 rounds.
    let w = Workload::new()
        .step(Block::synthetic(0x1000, 10), 10_000)
        .step(Block::synthetic(0x2000, 25), 10_000)
        .step(Block::synthetic(0x3000, 40), 10_000)
        .step(Block::synthetic(0x4000, 25), 10_000);
    assert_eq!(w.insns_per_vcpu(), 1_000_000);
    let t = std::time::Instant::now();
    let stats = host.run(&w);
    let el = t.elapsed();
    eprintln!(
        "8 x 1M events (inline + callback): {el:?}, {:.2} ns/event/vCPU",
        el.as_nanos() as f64 / 1e6
    );
    assert_eq!(stats.insns, 8_000_000);
    for v in 0..8 {
        assert_eq!(get(0, v), 1_000_000, "inline count of vCPU {v}");
        assert_eq!(get(8, v), 1_000_000, "callback count of vCPU {v}");
    }
    // System mode translates in parallel: a block may be translated by several vCPUs
    // at once (first one cached wins), never more than once per vCPU.
    let t = TRANS.load(SeqCst);
    assert!((4..=32).contains(&t), "{t}");
    host.atexit();
    assert_eq!(ATEXIT_INLINE.load(SeqCst), 8_000_000);
    assert_eq!(ATEXIT_CB.load(SeqCst), 8_000_000);
    assert_eq!(host.output(), "insns: 8000000 8000000\n");
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

#[test]
fn inline_only_is_fast_and_exact() {
    let mut host = MockHost::system(4);
    assert_eq!(host.install(super::plugin::install, &["cb=off"]), 0);
    host.boot();
    let w = Workload::new().step(Block::synthetic(0x1000, 20), 500_000);
    let t = std::time::Instant::now();
    host.run(&w);
    eprintln!("4 x 10M inline events: {:?}", t.elapsed());
    for v in 0..4 {
        assert_eq!(get(0, v), 10_000_000);
        assert_eq!(get(8, v), 0);
    }
}

#[test]
fn user_mode_index_reuse() {
    let mut host = MockHost::user();
    assert_eq!(host.install(super::plugin::install, &[]), 0);
    assert_eq!(host.spawn_vcpus(3), vec![0, 1, 2]);
    host.exit_vcpu(2);
    assert_eq!(host.spawn_vcpus(1), vec![2], "highest live + 1");
    host.exit_vcpu(0);
    assert_eq!(host.spawn_vcpus(1), vec![3], "a hole below is not reused");
    host.exit_vcpu(3);
    host.exit_vcpu(2);
    host.exit_vcpu(1);
    assert_eq!(host.spawn_vcpus(1), vec![0]);
    assert_eq!(INITS.load(SeqCst), 6);
    assert_eq!(EXITS.load(SeqCst), 5);
    assert_eq!(host.num_vcpus(), 4, "num_vcpus never shrinks");
}

#[test]
fn user_mode_churn_10000_threads() {
    let mut host = MockHost::user();
    assert_eq!(host.install(super::plugin::install, &[]), 0);
    let w = Workload::new()
        .step(Block::synthetic(0x1000, 3), 2)
        .step(Block::synthetic(0x2000, 5), 1);
    let t = std::time::Instant::now();
    let s = host.churn(&Churn {
        total: 10_000,
        max_alive: 4,
        workload: w.clone(),
    });
    eprintln!(
        "churn: {:?}, max index {}, {} distinct",
        t.elapsed(),
        s.max_index,
        s.distinct_indexes
    );
    assert_eq!(s.vcpus, 10_000);
    assert_eq!(s.run.insns, 10_000 * w.insns_per_vcpu());
    assert_eq!(INITS.load(SeqCst), 10_000);
    assert_eq!(EXITS.load(SeqCst), 10_000);
    assert!(s.distinct_indexes < 10_000, "indexes were reused");
    host.atexit();
    assert_eq!(ATEXIT_INLINE.load(SeqCst), 10_000 * w.insns_per_vcpu());
    assert_eq!(ATEXIT_CB.load(SeqCst), 10_000 * w.insns_per_vcpu());
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

#[test]
fn scoreboard_growth_moves_base_and_flushes() {
    let mut host = MockHost::user();
    assert_eq!(host.install(super::plugin::install, &[]), 0);
    host.spawn_vcpus(16);
    assert_eq!(host.scoreboard_capacity(), 16);
    let w = Workload::new().step(Block::synthetic(0x1000, 7), 100);
    host.run(&w);
    let sb = SB.load(SeqCst);
    let before = unsafe { qemu_plugin_scoreboard_find(sb, 0) };
    assert_eq!(FLUSHES.load(SeqCst), 0);
    assert_eq!(host.spawn_vcpus(1), vec![16]);
    assert_eq!(host.scoreboard_capacity(), 32);
    let after = unsafe { qemu_plugin_scoreboard_find(sb, 0) };
    assert_ne!(before, after, "base pointer moved");
    assert_eq!(FLUSHES.load(SeqCst), 1, "growth flushed all TBs");
    assert_eq!(get(0, 0), 700, "contents copied");
    let trans = TRANS.load(SeqCst);
    host.run(&w);
    assert_eq!(
        TRANS.load(SeqCst),
        trans + 1,
        "retranslated after the flush"
    );
    for v in 0..16 {
        assert_eq!(get(0, v), 1400);
    }
    assert_eq!(get(0, 16), 700);
    assert_eq!(unsafe { qemu_plugin_u64_sum(entry(8)) }, 16 * 1400 + 700);
}

#[test]
fn growth_while_other_vcpus_run() {
    // Churn grows the boards while other threads execute: totals must stay exact.
    let mut host = MockHost::user();
    assert_eq!(host.install(super::plugin::install, &[]), 0);
    let w = Workload::new().step(Block::synthetic(0x1000, 4), 20_000);
    let s = host.churn(&Churn {
        total: 200,
        max_alive: 40,
        workload: w.clone(),
    });
    assert!(
        host.scoreboard_capacity() >= 64,
        "capacity {}",
        host.scoreboard_capacity()
    );
    assert!(FLUSHES.load(SeqCst) >= 2);
    assert_eq!(unsafe { qemu_plugin_u64_sum(entry(0)) }, s.run.insns);
    assert_eq!(unsafe { qemu_plugin_u64_sum(entry(8)) }, s.run.insns);
}

#[test]
fn uninstall_from_callback_stops_callbacks() {
    let mut host = MockHost::system(4);
    assert_eq!(
        host.install(super::plugin::install, &["uninstall_after=1000"]),
        0
    );
    host.boot();
    let id = host.plugin_ids()[0];
    let w = Workload::new().step(Block::synthetic(0x1000, 10), 10_000);
    let stats = host.run(&w);
    assert_eq!(stats.insns, 400_000);
    assert_eq!(UNINSTALL_DONE_CALLS.load(SeqCst), 1);
    assert!(host.is_uninstalled(id));
    assert_eq!(
        CBS_AFTER_DONE.load(SeqCst),
        0,
        "no callback after the uninstall callback"
    );
    let total = CB_TOTAL.load(SeqCst);
    assert!((1000..400_000).contains(&total), "{total}");
    host.run(&w);
    assert_eq!(
        CB_TOTAL.load(SeqCst),
        total,
        "nothing delivered after uninstall"
    );
    host.atexit();
    assert_eq!(host.output(), "", "atexit of an uninstalled plugin is gone");
}

#[test]
fn flush_drops_tbs_and_calls_flush_cb() {
    let mut host = MockHost::system(2);
    assert_eq!(host.install(super::plugin::install, &[]), 0);
    host.boot();
    let w = Workload::new()
        .step(Block::synthetic(0x1000, 3), 10)
        .step(Block::synthetic(0x2000, 3), 10);
    host.run_on(&[0], &w);
    assert_eq!(TRANS.load(SeqCst), 2);
    host.run_on(&[1], &w);
    assert_eq!(TRANS.load(SeqCst), 2, "TBs are shared by vCPUs");
    host.flush();
    assert_eq!(FLUSHES.load(SeqCst), 1);
    host.run_on(&[0], &w);
    host.run_on(&[1], &w);
    assert_eq!(TRANS.load(SeqCst), 4);
    assert_eq!(unsafe { qemu_plugin_u64_sum(entry(0)) }, 2 * 2 * 60);
}

#[test]
fn failed_install_unregisters() {
    let mut host = MockHost::user();
    assert_eq!(host.install(super::plugin::install, &["bogus=1"]), -2);
    assert_eq!(host.install(super::plugin::install, &["cb=maybe"]), -1);
    assert!(host.plugin_ids().is_empty());
}

#[test]
fn single_vcpu_overhead() {
    let mut host = MockHost::user();
    assert_eq!(host.install(super::plugin::install, &["cb=off"]), 0);
    host.spawn_vcpus(1);
    let w = Workload::new().step(Block::synthetic(0x1000, 20), 500_000);
    let t = std::time::Instant::now();
    host.run(&w);
    eprintln!(
        "1 vCPU, inline only: {:.2} ns/event",
        t.elapsed().as_nanos() as f64 / 1e7
    );
    assert_eq!(get(0, 0), 10_000_000);
}
