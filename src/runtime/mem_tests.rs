//! Memory closures on the shards (`InsnTranslation::on_mem` and `on_mem_filtered`),
//! driven through the mock host in system mode, where accesses in its MMIO window are
//! I/O. Expected counts come from the accesses the test's blocks declare.

use std::sync::Mutex;

use crate::runtime::{self, MemAccess, PerVcpu, Translation, Vcpu};
use crate::{Args, Info, MemRW, Result, VCPUIndex};
use qemu_plugin_mock::{Block, Insn, MMIO_BASE, MMIO_END, MemAccess as Access, MockHost, Workload};

/// What one vCPU's closures saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    /// Every access (`on_mem`).
    all: u64,
    /// I/O accesses picked by the filter (`on_mem_filtered`).
    io: u64,
    /// Sum of the picked accesses' addresses, as the filter passed them on.
    io_vaddr: u64,
    /// Picked accesses that were stores.
    io_stores: u64,
}

static TOTALS: Mutex<Vec<(VCPUIndex, Seen)>> = Mutex::new(Vec::new());

/// The address at which the filter panics (`panic_at`), or 0.
struct Mem {
    panic_at: u64,
}

impl PerVcpu for Mem {
    type Config = ();
    type Shard = Seen;
    type Total = Vec<(VCPUIndex, Seen)>;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["panic_at"])?;
        let panic_at = args.u64("panic_at", 0, 0..=u64::MAX)?;
        Ok((Mem { panic_at }, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Seen> {
        Ok(Seen::default())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        let panic_at = self.panic_at;
        for insn in tb.instructions() {
            insn.on_mem(MemRW::QEMU_PLUGIN_MEM_RW, |cpu: &mut Vcpu<Self>, _| {
                cpu.all += 1;
            });
            let pick = move |a: MemAccess<'_>| {
                a.info.hwaddr(a.vaddr).filter(|hw| hw.is_io())?;
                if a.vaddr == panic_at {
                    panic!("deliberate filter panic at {panic_at:#x}");
                }
                Some(a.vaddr)
            };
            insn.on_mem_filtered(
                MemRW::QEMU_PLUGIN_MEM_RW,
                pick,
                |cpu: &mut Vcpu<Self>, a, vaddr| {
                    cpu.io += 1;
                    cpu.io_vaddr += vaddr;
                    cpu.io_stores += u64::from(a.info.is_store());
                },
            );
        }
        Ok(())
    }

    fn merge(&self, total: &mut Self::Total, cpu: Vcpu<Self>) -> Result<()> {
        total.push((cpu.index(), *cpu));
        Ok(())
    }

    fn on_exit(&self, total: Self::Total) -> Result<()> {
        *TOTALS.lock().unwrap() = total;
        Ok(())
    }
}

fn install(host: &mut MockHost, args: &[&str]) -> i32 {
    TOTALS.lock().unwrap().clear();
    crate::install::set_installer("mem", runtime::install::<Mem>);
    host.install(crate::install::qemu_plugin_install, args)
}

/// Three instructions: RAM loads and stores, and I/O loads and stores at `io`.
fn accesses(io: &[u64]) -> Vec<Vec<Access>> {
    vec![
        vec![Access::load(0x1000, 3, 7), Access::store(0x2008, 2, 9)],
        io.iter().map(|&a| Access::load(a, 2, 1)).collect(),
        io.iter()
            .map(|&a| Access::store(a, 0, 2))
            .chain([Access::store(0x3000, 3, 5)])
            .collect(),
    ]
}

fn block(insns: &[Vec<Access>]) -> Block {
    Block::new(
        insns
            .iter()
            .enumerate()
            .map(|(i, mem)| {
                let insn = Insn::new(0x40_0000 + 4 * i as u64, &[0x90, 0, 0, i as u8], "op");
                mem.iter().fold(insn, |insn, a| insn.with_mem(*a))
            })
            .collect(),
    )
}

/// Each vCPU's closures see its own accesses: `on_mem` every one, `on_mem_filtered`'s
/// closure only the I/O ones its filter picked, with what the filter passed on.
#[test]
fn a_filtered_memory_closure_sees_only_the_accesses_its_filter_picks() {
    let io = [MMIO_BASE + 0x10, MMIO_BASE + 0x2000, MMIO_END - 8];
    let insns = accesses(&io);
    let reps = 5_000;
    let w = Workload::new().step(block(&insns), reps);
    let mut host = MockHost::system(2);
    assert_eq!(install(&mut host, &[]), 0, "{}", host.output());
    host.boot();
    host.run(&w);
    host.atexit();

    let declared: Vec<&Access> = insns.iter().flatten().collect();
    let is_io = |a: &&&Access| (MMIO_BASE..MMIO_END).contains(&a.vaddr);
    let per_run = Seen {
        all: declared.len() as u64,
        io: declared.iter().filter(is_io).count() as u64,
        io_vaddr: declared.iter().filter(is_io).map(|a| a.vaddr).sum(),
        io_stores: declared.iter().filter(is_io).filter(|a| a.store).count() as u64,
    };
    assert_eq!(per_run.io, 6, "the blocks declare six I/O accesses");
    let expected = Seen {
        all: per_run.all * reps,
        io: per_run.io * reps,
        io_vaddr: per_run.io_vaddr * reps,
        io_stores: per_run.io_stores * reps,
    };
    let mut totals = TOTALS.lock().unwrap().clone();
    totals.sort();
    assert_eq!(totals, [(0, expected), (1, expected)]);
    assert_eq!(w.mem_per_vcpu().0 + w.mem_per_vcpu().1, expected.all);
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// A panic in a filter is caught at the memory trampoline, reported once naming the
/// memory callback, and uninstalls the plugin; no vCPU stops.
#[test]
fn a_panic_in_a_memory_filter_is_reported_and_uninstalls_the_plugin() {
    let io = [MMIO_BASE + 0x40];
    let w = Workload::new().step(block(&accesses(&io)), 1_000);
    let mut host = MockHost::system(2);
    let arg = format!("panic_at={}", MMIO_BASE + 0x40);
    assert_eq!(install(&mut host, &[&arg]), 0, "{}", host.output());
    let id = host.plugin_ids()[0];
    host.boot();
    let stats = host.run(&w);
    assert_eq!(
        stats.insns,
        2 * w.insns_per_vcpu(),
        "both vCPUs ran to the end"
    );
    assert!(host.is_uninstalled(id));
    let out = host.output();
    let reports: Vec<&str> = out.lines().filter(|l| l.contains("panic")).collect();
    assert_eq!(reports.len(), 1, "{out}");
    let r = reports[0];
    assert!(r.contains("deliberate filter panic at 0xfe000040"), "{r}");
    assert!(
        r.contains("src/runtime/mem_tests.rs:"),
        "location missing: {r}"
    );
    assert!(
        r.contains("(in the memory callback)") && r.contains("uninstalling"),
        "{r}"
    );
    host.atexit();
    assert!(
        TOTALS.lock().unwrap().is_empty(),
        "an uninstalled plugin gets no atexit"
    );
}
