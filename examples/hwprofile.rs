//! `hwprofile`: QEMU's `contrib/plugins/hwprofile.c` on the per-vCPU runtime. Counts the
//! guest's accesses to I/O devices (system emulation only), and prints at exit, busiest
//! device first:
//!
//! ```text
//! Device, Address, RCPUs, Reads,  WCPUs, Writes
//! serial, 0xffffffff81234000, 1, 4411, 1, 7034
//! ```
//!
//! (`RCPUs`/`WCPUs`: hexadecimal masks of the vCPUs that read or wrote, `1 << index` in a
//! C `int`, as hwprofile.c computes them; the address is the virtual address of the first
//! access, by any vCPU, minus its offset into the device.) Like hwprofile.c it lists devices only when
//! at least two were accessed.
//!
//! Arguments, with the C plugin's spellings: `track=read|write` (default both),
//! `pattern=on` (counts per offset into each device), `source=on` (counts per guest PC
//! that made the access; not with `pattern`), `match=NAME` (may repeat: count only those
//! devices, and print a line at each of their accesses; the "previous hits" that line
//! shows are the accessing vCPU's, where hwprofile.c's are all vCPUs' so far).
//!
//! hwprofile.c updates one hash table under one mutex on every I/O access; here each vCPU
//! counts in tables of its own, merged at exit. Nearly every access goes to RAM: a filter
//! (`on_mem_filtered`) turns those down before the vCPU's shard is entered, so they cost
//! what they cost hwprofile.c (QEMU's lookup of the access's host address).

#[path = "support/api1.rs"]
mod api1;

use api1::{device_name, phys_addr};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use qemu_plugin::{
    Args, Failure, HwAddr, Info, MemAccess, MemRW, PerVcpu, Result, Translation, VCPUIndex, Vcpu,
    per_vcpu, qemu_plugin_outs,
};

/// Reads and writes, with the masks of the vCPUs that made them.
#[derive(Clone, Copy, Default)]
struct IoCounts {
    cpu_read: u64,
    cpu_write: u64,
    reads: u64,
    writes: u64,
}

impl IoCounts {
    fn count(&mut self, is_write: bool, vcpu: VCPUIndex) {
        // `1 << cpu_index` in a C int, widened to the 64-bit field (sign-extended).
        let bit = i64::from(1i32.wrapping_shl(vcpu)) as u64;
        if is_write {
            self.writes += 1;
            self.cpu_write |= bit;
        } else {
            self.reads += 1;
            self.cpu_read |= bit;
        }
    }

    fn add(&mut self, o: &IoCounts) {
        self.cpu_read |= o.cpu_read;
        self.cpu_write |= o.cpu_write;
        self.reads += o.reads;
        self.writes += o.writes;
    }
}

/// One device's counts, and per offset or source PC with `pattern` or `source`.
#[derive(Clone, Default)]
struct Device {
    base: u64,
    /// When the vCPU first accessed the device, in the order of all vCPUs' first accesses:
    /// the base of the earliest is the one hwprofile.c keeps (a device can be mapped at
    /// different virtual addresses on different vCPUs).
    first: u64,
    totals: IoCounts,
    detail: HashMap<u64, IoCounts>,
}

/// Devices by name; in the total, with the order in which they were first accessed.
#[derive(Default)]
struct Devices {
    by_name: HashMap<String, Device>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Detail {
    None,
    Pattern,
    Source,
}

struct Hwprofile {
    /// Numbers the vCPUs' first accesses to each device (off the hot path: once per
    /// device and vCPU).
    firsts: AtomicU64,
    rw: MemRW,
    detail: Detail,
    matches: Vec<String>,
}

impl Hwprofile {
    fn tracks_reads(&self) -> bool {
        self.rw != MemRW::QEMU_PLUGIN_MEM_W
    }

    fn tracks_writes(&self) -> bool {
        self.rw != MemRW::QEMU_PLUGIN_MEM_R
    }

    /// hwprofile.c's `fmt_iocount_record`.
    fn counts_text(&self, c: &IoCounts) -> String {
        let mut s = String::new();
        if self.tracks_reads() {
            s += &format!(", {:x}, {}", c.cpu_read, c.reads);
        }
        if self.tracks_writes() {
            s += &format!(", {:x}, {}", c.cpu_write, c.writes);
        }
        s
    }

    /// hwprofile.c's `fmt_dev_record`.
    fn device_line(&self, name: &str, d: &Device) -> String {
        format!("{name}, 0x{:x}{}\n", d.base, self.counts_text(&d.totals))
    }
}

impl PerVcpu for Hwprofile {
    type Config = ();
    type Shard = Devices;
    type Total = Devices;

    fn new(args: &Args, info: &Info) -> Result<(Self, ())> {
        args.expect_lists(&["track", "pattern", "source"], &["match"])?;
        let rw = match args.text("track") {
            None => MemRW::QEMU_PLUGIN_MEM_RW,
            Some(_) => match args.choice("track", "read", &["read", "write"])? {
                "write" => MemRW::QEMU_PLUGIN_MEM_W,
                _ => MemRW::QEMU_PLUGIN_MEM_R,
            },
        };
        let (pattern, source) = (args.bool("pattern", false)?, args.bool("source", false)?);
        if pattern && source {
            return Err(Failure::InvalidArgument {
                key: "source".into(),
                value: "on".into(),
                expected: "not with pattern=on: hwprofile tracks either source or pattern".into(),
            }
            .into());
        }
        if info.is_user_mode() {
            return Err(Failure::Other(
                "hwprofile: plugin only useful for system emulation".into(),
            )
            .into());
        }
        if cfg!(not(since_api_1)) {
            return Err(Failure::Unsupported {
                api: "qemu_plugin_hwaddr_device_name",
                needs: "6.0",
            }
            .into());
        }
        // hwprofile.c joins the `match=` values with commas and splits them again.
        let matches: Vec<String> = args
            .all("match")
            .iter()
            .flat_map(|m| m.split(','))
            .map(String::from)
            .collect();
        let detail = match (pattern, source) {
            (true, _) => Detail::Pattern,
            (_, true) => Detail::Source,
            _ => Detail::None,
        };
        Ok((
            Hwprofile {
                firsts: AtomicU64::new(0),
                rw,
                detail,
                matches,
            },
            (),
        ))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Devices> {
        Ok(Devices::default())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        for insn in tb.instructions() {
            let pc = insn.vaddr();
            // Only device accesses are counted: the filter turns down the rest (nearly
            // all of them) before the shard is entered.
            let device = |a: MemAccess<'_>| {
                let hw = a.info.hwaddr(a.vaddr).filter(|hw| hw.is_io())?;
                Some(name_and_offset(&hw))
            };
            insn.on_mem_filtered(
                self.rw,
                device,
                move |cpu: &mut Vcpu<Self>, a, (name, off)| {
                    let is_write = a.info.is_store();
                    let index = cpu.index();
                    let plugin = cpu.handle().plugin();
                    let dev = cpu.by_name.entry(name.clone()).or_insert_with(|| Device {
                        base: a.vaddr.wrapping_sub(off),
                        first: plugin.firsts.fetch_add(1, Ordering::Relaxed),
                        ..Device::default()
                    });
                    if plugin.matches.is_empty() {
                        dev.totals.count(is_write, index);
                    } else if plugin.matches.contains(&name) {
                        // hwprofile.c's line shows the device's counts before this hit.
                        let _ = qemu_plugin_outs(format!(
                            "hwprofile: match @ offset{off:x}, previous hits\n{}",
                            plugin.device_line(&name, dev)
                        ));
                        dev.totals.count(is_write, index);
                    }
                    let key = match plugin.detail {
                        Detail::None => return,
                        Detail::Pattern => off,
                        Detail::Source => pc,
                    };
                    dev.detail.entry(key).or_default().count(is_write, index);
                },
            );
        }
        Ok(())
    }

    fn merge(&self, total: &mut Devices, cpu: Vcpu<Self>) -> Result<()> {
        for (name, d) in cpu.into_shard().by_name {
            let t = total.by_name.entry(name).or_insert_with(|| Device {
                base: d.base,
                first: d.first,
                ..Device::default()
            });
            if d.first < t.first {
                (t.base, t.first) = (d.base, d.first);
            }
            t.totals.add(&d.totals);
            for (k, c) in &d.detail {
                t.detail.entry(*k).or_default().add(c);
            }
        }
        Ok(())
    }

    fn on_exit(&self, total: Devices) -> Result<()> {
        let mut report = String::new();
        if self.detail == Detail::None {
            report += "Device, Address";
            if self.tracks_reads() {
                report += ", RCPUs, Reads";
            }
            if self.tracks_writes() {
                report += ",  WCPUs, Writes";
            }
            report += "\n";
        }
        let mut devices: Vec<(&String, &Device)> = total.by_name.iter().collect();
        if devices.len() > 1 {
            // Busiest first; hwprofile.c leaves ties in its hash table's order, here by
            // name.
            devices.sort_by(|a, b| {
                let n = |d: &Device| d.totals.reads + d.totals.writes;
                n(b.1).cmp(&n(a.1)).then(a.0.cmp(b.0))
            });
            for (name, d) in devices {
                if self.detail == Detail::None {
                    report += &self.device_line(name, d);
                    continue;
                }
                report += &format!("{name} @ 0x{:x}\n", d.base);
                let prefix = if self.detail == Detail::Pattern {
                    "off"
                } else {
                    "pc"
                };
                let mut locations: Vec<(&u64, &IoCounts)> = d.detail.iter().collect();
                locations.sort_by_key(|l| *l.0);
                for (at, c) in locations {
                    report += &format!("  {prefix}:{at:08x}{}\n", self.counts_text(c));
                }
            }
        }
        qemu_plugin_outs(report)
    }
}

/// The device an I/O access went to, and the offset into it: out of the filter's path,
/// which turns down every access to RAM.
#[cold]
#[inline(never)]
fn name_and_offset(hw: &HwAddr<'_>) -> (String, u64) {
    (device_name(hw), phys_addr(hw))
}

per_vcpu!(Hwprofile);
