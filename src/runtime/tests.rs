//! The runtime's tests, driven through the mock host: the crate's real `extern "C"`
//! hooks, called by a stand-in QEMU on real vCPU threads. Expected totals come from the
//! workload itself (blocks × instructions × repetitions), never from the runtime.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::runtime::shards::FIRST;
use crate::runtime::{self, InlineCounter, PerVcpu, Translation, Vcpu};
use crate::{Args, DisconTypes, Error, Info, Result, Syscall, SyscallReturn, VCPUIndex};
use qemu_plugin_mock::{Block, Churn, DisconKind, MockHost, Workload};

/// What one merged shard held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Merged {
    index: VCPUIndex,
    events: u64,
    weighted: u64,
    last_config: u64,
    inline: u64,
    syscalls: u64,
    errors: u64,
    idle: u64,
    resume: u64,
    discon: u64,
}

static TOTALS: Mutex<Option<Vec<Merged>>> = Mutex::new(None);
static NEW_SHARDS: AtomicU64 = AtomicU64::new(0);
/// vCPUs holding at their `hold_at`-th event, and whether the test has swapped the config.
static HELD: AtomicU64 = AtomicU64::new(0);
static SWAPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn take_totals() -> Option<Vec<Merged>> {
    TOTALS.lock().unwrap().take()
}

/// `inline=on` where the API has inline counters (API 2, QEMU 9.0, and later); under
/// APIs 0 and 1 the plugin counts by callback only, and the inline totals stay 0 (see
/// `inl`; `inline_on_without_scoreboards_is_refused_at_install` checks the refusal).
const INLINE: &str = if cfg!(since_api_2) {
    "inline=on"
} else {
    "inline=off"
};

/// What the inline count of `n` events is: `n`, or 0 without inline counters.
fn inl(n: u64) -> u64 {
    if cfg!(since_api_2) { n } else { 0 }
}

/// Counts events per vCPU, weighted by the configuration, optionally inline too.
struct Counter {
    inline: Option<InlineCounter>,
    capture: bool,
    panic_at: u64,
    hold_at: u64,
    fail_syscalls: bool,
}

#[derive(Default)]
struct Shard {
    m: Merged,
}

impl PerVcpu for Counter {
    type Config = u64;
    type Shard = Shard;
    type Total = Vec<Merged>;

    fn new(args: &Args, _info: &Info) -> Result<(Self, u64)> {
        args.expect_only(&[
            "weight",
            "inline",
            "capture",
            "panic_at",
            "hold_at",
            "fail_syscalls",
        ])?;
        let plugin = Counter {
            inline: args
                .bool("inline", false)?
                .then(InlineCounter::new)
                .transpose()?,
            capture: args.bool("capture", false)?,
            panic_at: args.u64("panic_at", 0, 0..=u64::MAX)?,
            hold_at: args.u64("hold_at", 0, 0..=u64::MAX)?,
            fail_syscalls: args.bool("fail_syscalls", false)?,
        };
        Ok((plugin, args.u64("weight", 1, 1..=1000)?))
    }

    fn new_shard(&self, vcpu: VCPUIndex) -> Result<Shard> {
        NEW_SHARDS.fetch_add(1, Ordering::Relaxed);
        Ok(Shard {
            m: Merged {
                index: vcpu,
                ..Merged::default()
            },
        })
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        let (panic_at, hold_at) = (self.panic_at, self.hold_at);
        for insn in tb.instructions() {
            if self.capture {
                let vaddr = insn.vaddr();
                insn.on_exec(move |cpu: &mut Vcpu<Self>| {
                    cpu.m.events += 1;
                    std::hint::black_box(vaddr);
                });
            } else if panic_at > 0 {
                insn.on_exec(move |cpu: &mut Vcpu<Self>| {
                    cpu.m.events += 1;
                    if cpu.index() == 1 && cpu.m.events == panic_at {
                        panic!("deliberate test panic at event {panic_at}");
                    }
                });
            } else if hold_at > 0 {
                // Weighted like the default, but each vCPU holds after its `hold_at`-th
                // event until the test has swapped the configuration.
                insn.on_exec(move |cpu: &mut Vcpu<Self>| {
                    let w = *cpu.config();
                    cpu.m.events += 1;
                    cpu.m.weighted += w;
                    cpu.m.last_config = w;
                    if cpu.m.events == hold_at {
                        HELD.fetch_add(1, Ordering::SeqCst);
                        let start = std::time::Instant::now();
                        while !SWAPPED.load(Ordering::SeqCst) {
                            assert!(start.elapsed().as_secs() < 120, "no swap came");
                            std::thread::yield_now();
                        }
                    }
                });
            } else {
                insn.on_exec(|cpu: &mut Vcpu<Self>| {
                    let w = *cpu.config();
                    cpu.m.events += 1;
                    cpu.m.weighted += w;
                    cpu.m.last_config = w;
                });
            }
            if let Some(c) = &self.inline {
                insn.inline_add(c, 1);
            }
        }
        Ok(())
    }

    fn syscall(&self, cpu: &mut Vcpu<Self>, _call: &Syscall) -> Result<()> {
        if self.fail_syscalls {
            return Err(Error::msg("deliberate syscall hook error"));
        }
        cpu.m.syscalls += 1;
        Ok(())
    }

    fn syscall_return(&self, cpu: &mut Vcpu<Self>, ret: &SyscallReturn) -> Result<()> {
        cpu.m.errors += u64::from(ret.ret < 0);
        Ok(())
    }

    fn idle(&self, cpu: &mut Vcpu<Self>) -> Result<()> {
        cpu.m.idle += 1;
        Ok(())
    }

    fn resume(&self, cpu: &mut Vcpu<Self>) -> Result<()> {
        cpu.m.resume += 1;
        Ok(())
    }

    fn merge(&self, total: &mut Vec<Merged>, cpu: Vcpu<Self>) -> Result<()> {
        let inline = self.inline.map_or(0, |c| cpu.take_inline(&c));
        let mut m = cpu.into_shard().m;
        m.inline = inline;
        total.push(m);
        Ok(())
    }

    fn on_exit(&self, total: Vec<Merged>) -> Result<()> {
        *TOTALS.lock().unwrap() = Some(total);
        Ok(())
    }
}

/// The installed `Counter`'s handle.
fn handle() -> runtime::Handle<Counter> {
    runtime::Handle::new(runtime::installed::Runtime::get().unwrap())
}

fn install(host: &mut MockHost, args: &[&str]) -> i32 {
    TOTALS.lock().unwrap().take();
    NEW_SHARDS.store(0, Ordering::Relaxed);
    crate::install::set_installer("counter", runtime::install::<Counter>);
    host.install(crate::install::qemu_plugin_install, args)
}

/// `n` times `QEMU_PLUGIN_STRESS_SCALE` (a number in (0, 1], default 1), at least 1: the
/// stress tests' event and vCPU counts, shrunk to fit under valgrind (scripts/race-check.sh)
/// while keeping their threads, config swaps, exits, index reuse and segment growth.
fn scaled(n: u64) -> u64 {
    let scale = match std::env::var("QEMU_PLUGIN_STRESS_SCALE") {
        Ok(s) => s
            .parse::<f64>()
            .ok()
            .filter(|x| *x > 0.0 && *x <= 1.0)
            .unwrap_or_else(|| panic!("QEMU_PLUGIN_STRESS_SCALE={s}: expected a number in (0, 1]")),
        Err(_) => 1.0,
    };
    ((n as f64 * scale).round() as u64).max(1)
}

/// 1,000,000 instructions per vCPU (scaled): 10-insn blocks × 50,000 plus 25-insn blocks
/// × 20,000.
fn million() -> Workload {
    Workload::new()
        .step(Block::synthetic(0x1000, 10), scaled(50_000))
        .step(Block::synthetic(0x2000, 25), scaled(20_000))
}

fn by_index(totals: &[Merged]) -> BTreeMap<VCPUIndex, Vec<&Merged>> {
    let mut m: BTreeMap<VCPUIndex, Vec<&Merged>> = BTreeMap::new();
    for t in totals {
        m.entry(t.index).or_default().push(t);
    }
    m
}

#[test]
fn eight_vcpus_millions_of_events_with_a_config_swap() {
    let mut host = MockHost::system(8);
    assert_eq!(install(&mut host, &[INLINE]), 0, "{}", host.output());
    host.boot();
    assert_eq!(
        NEW_SHARDS.load(Ordering::Relaxed),
        8,
        "one shard per vCPU, created at init"
    );
    let w = million();
    let per = w.insns_per_vcpu();
    assert_eq!(per, 10 * scaled(50_000) + 25 * scaled(20_000));
    assert_eq!(host.run(&w).insns, 8 * per);
    handle().set_config(3);
    assert_eq!(host.run(&w).insns, 8 * per);
    host.atexit();
    let totals = take_totals().expect("on_exit ran");
    assert_eq!(totals.len(), 8);
    assert_eq!(
        NEW_SHARDS.load(Ordering::Relaxed),
        8,
        "no shard created lazily"
    );
    for t in &totals {
        assert_eq!(t.events, 2 * per, "vCPU {}", t.index);
        assert_eq!(t.inline, inl(2 * per), "inline count of vCPU {}", t.index);
        assert_eq!(
            t.weighted,
            per + 3 * per,
            "vCPU {} saw weight 1 then 3",
            t.index
        );
        assert_eq!(t.last_config, 3, "vCPU {} sees the swapped config", t.index);
    }
}

#[test]
fn config_swapped_while_vcpus_run_is_seen_by_every_vcpu() {
    // Every vCPU holds after `HOLD` events under weight 1; the swap to weight 2 happens
    // only once all four are held, so it lands mid-run by construction, and every later
    // event must see it. A vCPU that missed it (or saw it early) changes its weighted sum.
    const HOLD: u64 = 1000;
    HELD.store(0, Ordering::SeqCst);
    SWAPPED.store(false, Ordering::SeqCst);
    let mut host = MockHost::system(4);
    assert_eq!(install(&mut host, &[&format!("hold_at={HOLD}")]), 0);
    host.boot();
    let w = million();
    let swapper = std::thread::spawn(|| {
        let start = std::time::Instant::now();
        while HELD.load(Ordering::SeqCst) < 4 {
            assert!(start.elapsed().as_secs() < 120, "the vCPUs never all held");
            std::thread::yield_now();
        }
        handle().set_config(2);
        SWAPPED.store(true, Ordering::SeqCst);
    });
    host.run(&w);
    swapper.join().unwrap();
    host.atexit();
    let totals = take_totals().unwrap();
    assert_eq!(totals.len(), 4);
    for t in &totals {
        let n = w.insns_per_vcpu();
        assert_eq!(t.events, n, "no event lost on vCPU {}", t.index);
        assert_eq!(
            t.weighted,
            HOLD + 2 * (n - HOLD),
            "vCPU {}: {HOLD} events before the swap at weight 1, every later one at 2",
            t.index
        );
        assert_eq!(t.last_config, 2, "vCPU {}", t.index);
    }
}

#[test]
fn shard_is_created_lazily_on_an_event_before_init() {
    let mut host = MockHost::system(2);
    assert_eq!(install(&mut host, &[]), 0);
    // No vCPU booted: an exec-time event for vCPU 1 arrives first, on this thread.
    runtime::shard_access::on_exec::<Counter, true>(1, |cpu| cpu.m.events += 7);
    assert_eq!(NEW_SHARDS.load(Ordering::Relaxed), 1);
    host.atexit();
    let totals = take_totals().unwrap();
    assert_eq!(
        totals,
        vec![Merged {
            index: 1,
            events: 7,
            ..Merged::default()
        }]
    );
}

#[test]
fn exit_merges_and_a_reused_index_starts_from_a_fresh_shard() {
    let mut host = MockHost::user();
    assert_eq!(install(&mut host, &[INLINE]), 0);
    assert_eq!(host.spawn_vcpus(3), vec![0, 1, 2]);
    let w = Workload::new().step(Block::synthetic(0x1000, 4), 1000);
    host.run(&w);
    host.exit_vcpu(2);
    assert_eq!(host.spawn_vcpus(1), vec![2], "linux-user reuses the index");
    host.run_on(&[2], &Workload::new().step(Block::synthetic(0x3000, 3), 10));
    host.atexit();
    let totals = take_totals().unwrap();
    assert_eq!(NEW_SHARDS.load(Ordering::Relaxed), 4);
    let idx = by_index(&totals);
    assert_eq!(idx[&0][0].events, 4000);
    assert_eq!(idx[&1][0].events, 4000);
    let two: Vec<(u64, u64)> = idx[&2].iter().map(|m| (m.events, m.inline)).collect();
    assert_eq!(
        two,
        vec![(4000, inl(4000)), (30, inl(30))],
        "old shard merged at exit, new one fresh"
    );
}

#[test]
fn ten_thousand_vcpus_come_and_go_without_losing_a_count() {
    let mut host = MockHost::user();
    assert_eq!(install(&mut host, &[INLINE]), 0);
    let w = Workload::new().step(Block::synthetic(0x1000, 5), 10);
    // More than the first segment's slots alive at once, so that indexes go past it.
    let alive = FIRST as u64 + 16;
    let n = scaled(10_000).max(alive);
    let stats = host.churn(&Churn {
        total: n,
        max_alive: alive,
        workload: w.clone(),
    });
    assert_eq!(stats.vcpus, n);
    assert!(
        stats.max_index as usize >= FIRST,
        "grew past the first segment ({FIRST} slots)"
    );
    host.atexit();
    let totals = take_totals().unwrap();
    assert_eq!(totals.len() as u64, n, "every shard merged once");
    assert_eq!(
        totals.iter().map(|m| m.events).sum::<u64>(),
        n * w.insns_per_vcpu()
    );
    assert_eq!(
        totals.iter().map(|m| m.inline).sum::<u64>(),
        inl(n * w.insns_per_vcpu())
    );
    assert!(totals.iter().all(|m| m.events == w.insns_per_vcpu()));
    let slots = handle().allocated_slots();
    let peak = stats.max_index as usize + 1;
    assert!(
        slots >= peak && slots <= 2 * peak + FIRST,
        "{slots} slots for a peak index of {peak}"
    );
}

#[test]
fn syscall_idle_and_resume_hooks_reach_the_vcpus_shard() {
    let mut host = MockHost::system(2);
    assert_eq!(install(&mut host, &[]), 0);
    host.boot();
    host.syscall(0, 39, [0; 8], 1);
    host.syscall(1, 2, [0; 8], -2);
    host.syscall(1, 2, [0; 8], 3);
    host.idle(1);
    host.resume(1);
    host.atexit();
    let totals = take_totals().unwrap();
    let idx = by_index(&totals);
    assert_eq!((idx[&0][0].syscalls, idx[&0][0].errors), (1, 0));
    assert_eq!((idx[&1][0].syscalls, idx[&1][0].errors), (2, 1));
    assert_eq!((idx[&1][0].idle, idx[&1][0].resume), (1, 1));
}

#[test]
fn a_panic_on_one_vcpu_is_reported_once_and_uninstalls_the_plugin() {
    let mut host = MockHost::system(4);
    assert_eq!(install(&mut host, &["panic_at=1000"]), 0);
    let id = host.plugin_ids()[0];
    host.boot();
    let w = million();
    let stats = host.run(&w);
    assert_eq!(
        stats.insns,
        4 * w.insns_per_vcpu(),
        "every vCPU ran its workload to the end"
    );
    assert!(host.is_uninstalled(id));
    let out = host.output();
    let reports: Vec<&str> = out.lines().filter(|l| l.contains("panic")).collect();
    assert_eq!(reports.len(), 1, "{out}");
    let r = reports[0];
    assert!(r.contains("deliberate test panic at event 1000"), "{r}");
    assert!(r.contains("src/runtime/tests.rs:"), "location missing: {r}");
    assert!(
        r.contains("exec callback") && r.contains("uninstalling"),
        "{r}"
    );
    host.atexit();
    assert!(
        take_totals().is_none(),
        "an uninstalled plugin gets no atexit"
    );
}

#[test]
fn an_error_in_a_hook_is_reported_once_naming_the_hook() {
    let mut host = MockHost::user();
    assert_eq!(install(&mut host, &["fail_syscalls=on"]), 0);
    let id = host.plugin_ids()[0];
    host.spawn_vcpus(1);
    host.syscall(0, 1, [0; 8], 0);
    host.syscall(0, 1, [0; 8], 0);
    let out = host.output();
    let reports: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("deliberate syscall hook error"))
        .collect();
    assert_eq!(reports.len(), 1, "{out}");
    assert!(reports[0].contains("syscall callback"), "{}", reports[0]);
    assert!(host.is_uninstalled(id));
}

#[test]
fn bad_arguments_refuse_the_install_with_one_clear_line() {
    for (args, expect) in [
        (
            &["weight=abc"][..],
            "invalid value for argument `weight`: `abc` (expected an integer from 1 to 1000)",
        ),
        (
            &["weight=0"][..],
            "`weight`: `0` (expected an integer from 1 to 1000)",
        ),
        (&["bogus=1"][..], "unknown argument `bogus`"),
        (
            &["inline=perhaps"][..],
            "invalid boolean for argument `inline`: `perhaps`",
        ),
        (&["inline"][..], "plugin argument `inline` has no value"),
        (
            &["weight=2", "weight=3"][..],
            "argument `weight` given more than once",
        ),
    ] {
        let mut host = MockHost::user();
        assert_ne!(install(&mut host, args), 0, "{args:?} must be refused");
        let out = host.output();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.starts_with("counter: ") && out.contains(expect),
            "{args:?}: {out}"
        );
    }
}

/// Receives discontinuities (QEMU >= 10.2 only).
struct Discons;

impl PerVcpu for Discons {
    type Config = ();
    type Shard = Vec<(u64, u64)>;
    type Total = Vec<(VCPUIndex, u64, u64)>;
    const DISCONTINUITIES: DisconTypes = DisconTypes::EXCEPTION.union(DisconTypes::INTERRUPT);
    const TRANSLATES: bool = false;

    fn new(_: &Args, _: &Info) -> Result<(Self, ())> {
        Ok((Discons, ()))
    }
    fn translate(&self, _: &mut crate::Translation<'_, Self>) -> Result<()> {
        Err(crate::Failure::Other("translate called with TRANSLATES = false".into()).into())
    }
    fn new_shard(&self, _: VCPUIndex) -> Result<Self::Shard> {
        Ok(Vec::new())
    }
    fn discontinuity(&self, cpu: &mut Vcpu<Self>, e: &crate::Discontinuity) -> Result<()> {
        cpu.push((e.from_pc, e.to_pc));
        Ok(())
    }
    fn merge(&self, total: &mut Self::Total, cpu: Vcpu<Self>) -> Result<()> {
        let i = cpu.index();
        total.extend(cpu.into_shard().into_iter().map(|(f, t)| (i, f, t)));
        Ok(())
    }
    fn on_exit(&self, total: Self::Total) -> Result<()> {
        crate::qemu_plugin_outs(format!("discons: {total:?}\n"))
    }
}

/// Where QEMU lacks the discontinuity callback (before 10.2) the install is refused;
/// that case runs in real QEMU 10.0 (`tests/qemu_system.rs`), since the mock host, like
/// QEMU 10.2, always exports the function.
#[test]
fn discontinuities_are_delivered_to_their_vcpu() {
    let mut host = MockHost::user();
    crate::install::set_installer("discons", runtime::install::<Discons>);
    assert_eq!(host.install(crate::install::qemu_plugin_install, &[]), 0);
    host.spawn_vcpus(2);
    host.discon(1, DisconKind::Exception, 0x10, 0x20);
    host.discon(0, DisconKind::Hostcall, 0x30, 0x40); // not asked for
    host.discon(0, DisconKind::Interrupt, 0x50, 0x60);
    host.atexit();
    assert!(
        host.output()
            .contains("discons: [(0, 80, 96), (1, 16, 32)]"),
        "{}",
        host.output()
    );
}

/// A plugin with `TRANSLATES = false` leaves QEMU's translation hook unregistered (its
/// `translate` fails if called), one with the default registers it.
#[test]
fn translation_hook_is_registered_only_for_plugins_that_translate() {
    let mut host = MockHost::user();
    crate::install::set_installer("discons", runtime::install::<Discons>);
    assert_eq!(host.install(crate::install::qemu_plugin_install, &[]), 0);
    assert_eq!(host.translation_hooks(), 0);
    host.spawn_vcpus(1);
    host.translate(&std::sync::Arc::new(Block::synthetic(0x1000, 4)));
    host.discon(0, DisconKind::Exception, 0x10, 0x20);
    host.atexit();
    assert!(
        host.output().contains("discons: [(0, 16, 32)]"),
        "{}",
        host.output()
    );
    drop(host);

    let mut host = MockHost::system(1);
    assert_eq!(install(&mut host, &[]), 0);
    assert_eq!(host.translation_hooks(), 1);
}

#[test]
fn flush_frees_captured_closures_and_capture_free_ones_cost_nothing() {
    let mut host = MockHost::system(1);
    assert_eq!(install(&mut host, &[]), 0);
    host.boot();
    host.flush();
    assert_eq!(crate::callbacks::live_closures(), 0);
    let block = std::sync::Arc::new(Block::synthetic(0x1000, 20));
    host.translate(&block);
    assert_eq!(
        crate::callbacks::live_closures(),
        0,
        "capture-free closures are not allocated"
    );
    drop(host);

    let mut host = MockHost::system(1);
    assert_eq!(install(&mut host, &["capture=on"]), 0);
    host.boot();
    host.translate(&block);
    assert_eq!(
        crate::callbacks::live_closures(),
        20,
        "one box per instruction closure"
    );
    host.flush();
    assert_eq!(crate::callbacks::live_closures(), 0, "freed at the flush");
    let w = Workload::new().step(Block::synthetic(0x1000, 20), 100);
    assert_eq!(host.run(&w).insns, 2000);
    host.atexit();
    assert_eq!(
        take_totals().unwrap()[0].events,
        2000,
        "retranslated after the flush"
    );
}

/// Conditional callbacks need API 3 (QEMU 9.1).
#[cfg(since_api_3)]
mod threshold {
    use super::*;

    /// Counts inline, and calls back only once a vCPU's inline count reaches a threshold.
    struct Threshold {
        counter: InlineCounter,
    }

    impl PerVcpu for Threshold {
        type Config = ();
        type Shard = u64;
        type Total = Vec<(VCPUIndex, u64, u64)>;

        fn new(_: &Args, _: &Info) -> Result<(Self, ())> {
            Ok((
                Threshold {
                    counter: InlineCounter::new()?,
                },
                (),
            ))
        }
        fn new_shard(&self, _: VCPUIndex) -> Result<u64> {
            Ok(0)
        }
        fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
            for insn in tb.instructions() {
                // Registration order is execution order: the add happens before the check.
                insn.inline_add(&self.counter, 1);
                insn.on_exec_if(
                    &self.counter,
                    crate::Condition::Ge,
                    100,
                    |cpu: &mut Vcpu<Self>| **cpu += 1,
                );
            }
            Ok(())
        }
        fn merge(&self, total: &mut Self::Total, cpu: Vcpu<Self>) -> Result<()> {
            total.push((cpu.index(), cpu.take_inline(&self.counter), *cpu));
            Ok(())
        }
        fn on_exit(&self, total: Self::Total) -> Result<()> {
            crate::qemu_plugin_outs(format!("threshold: {total:?}\n"))
        }
    }

    #[test]
    fn conditional_callbacks_fire_from_the_inline_threshold_on() {
        let mut host = MockHost::system(2);
        crate::install::set_installer("threshold", runtime::install::<Threshold>);
        assert_eq!(host.install(crate::install::qemu_plugin_install, &[]), 0);
        host.boot();
        // 1,000 instructions per vCPU: the k-th sees count k, so counts 100..=1000 call back.
        host.run(&Workload::new().step(Block::synthetic(0x1000, 10), 100));
        host.atexit();
        assert_eq!(
            host.output(),
            "threshold: [(0, 1000, 901), (1, 1000, 901)]\n"
        );
    }
}

#[test]
fn a_shard_array_without_an_owner_is_an_error_not_a_runtime() {
    // Only `install` sets the owner; the exec cold path must not trust a missing one.
    let shards: &'static super::shards::Shards<super::slot::Slot<Counter>> =
        Box::leak(Box::new(super::shards::Shards::new()));
    let err = super::installed::Runtime::<Counter>::of_first(shards.first())
        .err()
        .expect("no runtime");
    assert!(matches!(
        err.failure(),
        Some(crate::error::Failure::RuntimeNotInstalled { .. })
    ));
}

/// Under APIs 0 and 1 (QEMU 7.2 to 8.2) there are no scoreboards: a plugin that asks for
/// an inline counter is refused at install, with a message naming the QEMU it needs.
#[cfg(not(since_api_2))]
#[test]
fn inline_on_without_scoreboards_is_refused_at_install() {
    let mut host = MockHost::user();
    assert_ne!(install(&mut host, &["inline=on"]), 0);
    let out = host.output();
    assert!(
        out.contains("qemu_plugin_scoreboard_new (InlineCounter) needs QEMU >= 9.0"),
        "{out}"
    );
}
