//! `hotpages`: QEMU's `contrib/plugins/hotpages.c` on the per-vCPU runtime. Counts reads
//! and writes per page and prints the busiest pages at exit, as the C plugin does:
//!
//! ```text
//! Addr, RCPUs, Reads, WCPUs, Writes
//! 0x00000000004c6000, 0x0001, 4000, 0x0001, 3990
//! ```
//!
//! Arguments, with the C plugin's spellings: `sortby=reads|writes|address` (default: reads
//! plus writes, descending), `io=on|off` (count only I/O accesses, by virtual address; system
//! mode), `pagesize=N` (default 4096). Like the C plugin it prints at most 50 pages, and
//! never the last page of its sorted list (nor anything when only one page was touched).
//!
//! The C plugin updates one hash table under one global mutex on every memory access;
//! here every vCPU counts in a table of its own, with no lock, and the tables are merged
//! at exit. The `RCPUs`/`WCPUs` columns are the C plugin's bit masks of the vCPUs that
//! read or wrote the page (`1 << index`, in a C `int`).

#[path = "support/api1.rs"]
mod api1;

use api1::phys_addr;

use std::collections::HashMap;

use qemu_plugin::{
    Args, Failure, Info, MemRW, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu,
    qemu_plugin_bool_parse, qemu_plugin_outs,
};

/// How many pages the report lists at most (the C plugin's `limit`).
const LIMIT: usize = 50;

#[derive(Clone, Copy, PartialEq, Eq)]
enum SortBy {
    ReadsAndWrites,
    Reads,
    Writes,
    Address,
}

struct Hotpages {
    page_mask: u64,
    track_io: bool,
    sort_by: SortBy,
}

/// A page's counts: as a shard entry, one vCPU's; in the total, every vCPU's, with the
/// masks of the vCPUs that read and wrote it.
#[derive(Clone, Copy, Default)]
struct Page {
    cpu_read: u32,
    reads: u64,
    cpu_write: u32,
    writes: u64,
}

impl PerVcpu for Hotpages {
    type Config = ();
    type Shard = HashMap<u64, Page>;
    type Total = HashMap<u64, Page>;

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["sortby", "io", "pagesize"])?;
        if cfg!(not(since_api_1)) {
            return Err(Failure::Unsupported {
                api: "qemu_plugin_hwaddr_phys_addr",
                needs: "6.0",
            }
            .into());
        }
        let sort_by = match args.text("sortby") {
            None => SortBy::ReadsAndWrites,
            Some("reads") => SortBy::Reads,
            Some("writes") => SortBy::Writes,
            Some("address") => SortBy::Address,
            Some(other) => {
                return Err(Failure::InvalidArgument {
                    key: "sortby".into(),
                    value: other.into(),
                    expected: "reads, writes or address".into(),
                }
                .into());
            }
        };
        let track_io = match args.text("io") {
            None => false,
            Some(v) => qemu_plugin_bool_parse("io", v)?,
        };
        let page_size = args.u64("pagesize", 4096, 1..=(1 << 62))?;
        if !page_size.is_power_of_two() {
            return Err(Failure::InvalidArgument {
                key: "pagesize".into(),
                value: page_size.to_string(),
                expected: "a power of two".into(),
            }
            .into());
        }
        let plugin = Hotpages {
            page_mask: page_size - 1,
            track_io,
            sort_by,
        };
        Ok((plugin, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<HashMap<u64, Page>> {
        Ok(HashMap::new())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        let (track_io, mask) = (self.track_io, self.page_mask);
        for insn in tb.instructions() {
            insn.on_mem(
                MemRW::QEMU_PLUGIN_MEM_RW,
                move |cpu: &mut Vcpu<Self>, access| {
                    // Physical pages in system mode (RAM), virtual ones otherwise, as hotpages.c.
                    let hw = access.info.hwaddr(access.vaddr);
                    let page = match (&hw, track_io) {
                        (Some(h), true) if h.is_io() => access.vaddr,
                        (_, true) => return,
                        (Some(h), false) if !h.is_io() => phys_addr(h),
                        _ => access.vaddr,
                    } & !mask;
                    let entry = cpu.entry(page).or_default();
                    if access.info.is_store() {
                        entry.writes += 1;
                    } else {
                        entry.reads += 1;
                    }
                },
            );
        }
        Ok(())
    }

    fn merge(&self, total: &mut HashMap<u64, Page>, cpu: Vcpu<Self>) -> Result<()> {
        // `1 << index` in a 32-bit C int, as hotpages.c computes it.
        let bit = 1u32.wrapping_shl(cpu.index());
        for (&page, p) in cpu.iter() {
            let t = total.entry(page).or_default();
            if p.reads > 0 {
                t.reads += p.reads;
                t.cpu_read |= bit;
            }
            if p.writes > 0 {
                t.writes += p.writes;
                t.cpu_write |= bit;
            }
        }
        Ok(())
    }

    fn on_exit(&self, total: HashMap<u64, Page>) -> Result<()> {
        let mut pages: Vec<(u64, Page)> = total.into_iter().collect();
        // Descending; equal keys in address order (hotpages.c leaves their order to its
        // hash table).
        pages.sort_by(|(a, pa), (b, pb)| {
            let key = |p: &Page, addr: u64| match self.sort_by {
                SortBy::ReadsAndWrites => p.reads + p.writes,
                SortBy::Reads => p.reads,
                SortBy::Writes => p.writes,
                SortBy::Address => addr,
            };
            key(pb, *b).cmp(&key(pa, *a)).then(a.cmp(b))
        });
        let mut out = String::from("Addr, RCPUs, Reads, WCPUs, Writes\n");
        let shown = pages.len().saturating_sub(1).min(LIMIT);
        for (addr, p) in &pages[..shown] {
            out += &format!(
                "0x{addr:016x}, 0x{:04x}, {}, 0x{:04x}, {}\n",
                p.cpu_read, p.reads, p.cpu_write, p.writes
            );
        }
        qemu_plugin_outs(out)
    }
}

per_vcpu!(Hotpages);
