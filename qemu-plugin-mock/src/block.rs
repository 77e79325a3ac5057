//! Synthetic guest code: instructions, memory accesses, blocks and workloads
//! (which blocks each vCPU executes, how many times), deterministic from a seed.

use std::ffi::CString;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::exec::encode_meminfo;

/// One guest memory access made by an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemAccess {
    /// Guest virtual address accessed.
    pub vaddr: u64,
    /// log2 of the access size in bytes (0..=4: 1 to 16 bytes).
    pub size_shift: u8,
    /// Store (true) or load (false).
    pub store: bool,
    /// Value loaded or stored (low 64 bits).
    pub value: u64,
    /// High 64 bits of a 16-byte access.
    pub value_high: u64,
    /// Whether the load is sign-extended.
    pub sign_extended: bool,
    /// Whether the access is big-endian.
    pub big_endian: bool,
}

impl MemAccess {
    /// A little-endian, zero-extended load of `1 << size_shift` bytes.
    pub fn load(vaddr: u64, size_shift: u8, value: u64) -> Self {
        Self {
            vaddr,
            size_shift: size_shift.min(4),
            store: false,
            value,
            value_high: 0,
            sign_extended: false,
            big_endian: false,
        }
    }

    /// A little-endian store of `1 << size_shift` bytes.
    pub fn store(vaddr: u64, size_shift: u8, value: u64) -> Self {
        Self {
            store: true,
            ..Self::load(vaddr, size_shift, value)
        }
    }
}

/// One guest instruction of a synthetic block.
#[derive(Clone, Debug)]
pub struct Insn {
    /// Guest virtual address.
    pub vaddr: u64,
    /// Encoded bytes (its size is `bytes.len()`).
    pub bytes: Vec<u8>,
    /// Disassembly text returned by `qemu_plugin_insn_disas`.
    pub disas: String,
    /// Symbol returned by `qemu_plugin_insn_symbol`.
    pub symbol: Option<String>,
    /// Memory accesses it makes each time it executes, in order.
    pub mem: Vec<MemAccess>,
}

impl Insn {
    /// An instruction without symbol or memory accesses.
    pub fn new(vaddr: u64, bytes: &[u8], disas: &str) -> Self {
        Self {
            vaddr,
            bytes: bytes.to_vec(),
            disas: disas.to_owned(),
            symbol: None,
            mem: Vec::new(),
        }
    }

    /// Sets the symbol.
    pub fn with_symbol(mut self, symbol: &str) -> Self {
        self.symbol = Some(symbol.to_owned());
        self
    }

    /// Adds a memory access.
    pub fn with_mem(mut self, access: MemAccess) -> Self {
        self.mem.push(access);
        self
    }
}

/// A memory access as the execution path needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Access {
    pub(crate) vaddr: u64,
    pub(crate) meminfo: u32,
    /// `QEMU_PLUGIN_MEM_R` or `QEMU_PLUGIN_MEM_W`.
    pub(crate) rw: u32,
    pub(crate) value: u64,
    pub(crate) value_high: u64,
}

/// An instruction as the C API needs it (NUL-terminated strings).
#[derive(Debug)]
pub(crate) struct InsnData {
    pub(crate) vaddr: u64,
    pub(crate) bytes: Box<[u8]>,
    pub(crate) disas: CString,
    pub(crate) symbol: Option<CString>,
    pub(crate) mem: Box<[Access]>,
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

static NEXT_BLOCK_ID: AtomicU64 = AtomicU64::new(1);

/// A translation block: a straight run of instructions. Immutable once built; each
/// block has a unique id that keys the translation cache.
#[derive(Debug)]
pub struct Block {
    pub(crate) id: u64,
    pub(crate) vaddr: u64,
    pub(crate) insns: Box<[InsnData]>,
}

impl Block {
    /// A block of `insns` (at least one; an empty list gets one 1-byte `nop`).
    pub fn new(insns: Vec<Insn>) -> Self {
        let mut insns = insns;
        if insns.is_empty() {
            insns.push(Insn::new(0, &[0x90], "nop"));
        }
        let vaddr = insns[0].vaddr;
        let insns = insns
            .into_iter()
            .map(|i| InsnData {
                vaddr: i.vaddr,
                bytes: i.bytes.into_boxed_slice(),
                disas: cstring(&i.disas),
                symbol: i.symbol.as_deref().map(cstring),
                mem: i
                    .mem
                    .iter()
                    .map(|m| Access {
                        vaddr: m.vaddr,
                        meminfo: encode_meminfo(
                            m.size_shift,
                            m.sign_extended,
                            m.big_endian,
                            m.store,
                        ),
                        rw: if m.store { 2 } else { 1 },
                        value: m.value,
                        value_high: m.value_high,
                    })
                    .collect(),
            })
            .collect();
        Self {
            id: NEXT_BLOCK_ID.fetch_add(1, Ordering::Relaxed),
            vaddr,
            insns,
        }
    }

    /// `n` 4-byte instructions `nop{i}` starting at `vaddr`, no memory accesses.
    pub fn synthetic(vaddr: u64, n: usize) -> Self {
        Self::new(
            (0..n.max(1))
                .map(|i| {
                    Insn::new(
                        vaddr + 4 * i as u64,
                        &[0x0f, 0x1f, 0x40, i as u8],
                        &format!("nop{i}"),
                    )
                })
                .collect(),
        )
    }

    /// Guest address of the first instruction.
    pub fn vaddr(&self) -> u64 {
        self.vaddr
    }

    /// Number of instructions.
    pub fn n_insns(&self) -> usize {
        self.insns.len()
    }

    /// (loads, stores) made by one execution of the block.
    pub fn mem_accesses(&self) -> (u64, u64) {
        let all = self.insns.iter().flat_map(|i| i.mem.iter());
        let stores = all.clone().filter(|a| a.rw == 2).count() as u64;
        (all.count() as u64 - stores, stores)
    }
}

/// What each vCPU executes: a list of steps `(block, repetitions)`. vCPU `i` starts
/// at step `i % steps` and wraps, so vCPUs translate different blocks concurrently
/// while every vCPU executes exactly the same totals.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    pub(crate) blocks: Vec<Arc<Block>>,
    pub(crate) steps: Vec<(usize, u64)>,
}

/// A tiny deterministic PRNG (xorshift64*), so workloads depend only on the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

impl Workload {
    /// An empty workload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a step: execute `block` `reps` times in a row.
    pub fn step(mut self, block: Block, reps: u64) -> Self {
        self.blocks.push(Arc::new(block));
        self.steps.push((self.blocks.len() - 1, reps));
        self
    }

    /// Appends a step executing an already shared block (e.g. one passed to
    /// `MockHost::translate`) `reps` times.
    pub fn push_shared(&mut self, block: Arc<Block>, reps: u64) {
        self.blocks.push(block);
        self.steps.push((self.blocks.len() - 1, reps));
    }

    /// Appends a step that re-executes the block of an earlier step `index`.
    pub fn repeat_step(mut self, index: usize, reps: u64) -> Self {
        let b = self.steps[index].0;
        self.steps.push((b, reps));
        self
    }

    /// `n_blocks` random blocks (1..=`max_insns` instructions each, about one memory
    /// access per `mem_every` instructions, 0 for none), each executed 1..=`max_reps`
    /// times. Same seed, same workload.
    pub fn random(
        seed: u64,
        n_blocks: usize,
        max_insns: usize,
        max_reps: u64,
        mem_every: u64,
    ) -> Self {
        let mut rng = Rng(seed | 1);
        let mut w = Self::new();
        for b in 0..n_blocks as u64 {
            let base = 0x40_0000 + b * 0x1000;
            let n = 1 + rng.below(max_insns as u64) as usize;
            let insns = (0..n as u64)
                .map(|i| {
                    let size = 1 + rng.below(8) as usize;
                    let vaddr = base + i * 16;
                    let mut insn = Insn::new(
                        vaddr,
                        &vec![0x90; size],
                        &format!("op{} {}", rng.below(100), i),
                    );
                    if i == 0 {
                        insn = insn.with_symbol(&format!("fn_{b}"));
                    }
                    if mem_every > 0 && rng.below(mem_every) == 0 {
                        let addr = 0x80_0000 + rng.below(0x1000) * 8;
                        let shift = rng.below(4) as u8;
                        let acc = if rng.below(2) == 0 {
                            MemAccess::load(addr, shift, rng.next())
                        } else {
                            MemAccess::store(addr, shift, rng.next())
                        };
                        insn = insn.with_mem(acc);
                    }
                    insn
                })
                .collect();
            let reps = 1 + rng.below(max_reps);
            w = w.step(Block::new(insns), reps);
        }
        w
    }

    /// Blocks executed by each vCPU that runs this workload.
    pub fn blocks_per_vcpu(&self) -> u64 {
        self.steps.iter().map(|&(_, r)| r).sum()
    }

    /// Instructions executed by each vCPU that runs this workload.
    pub fn insns_per_vcpu(&self) -> u64 {
        self.steps
            .iter()
            .map(|&(b, r)| r * self.blocks[b].n_insns() as u64)
            .sum()
    }

    /// (loads, stores) made by each vCPU that runs this workload.
    pub fn mem_per_vcpu(&self) -> (u64, u64) {
        self.steps.iter().fold((0, 0), |(l, s), &(b, r)| {
            let (bl, bs) = self.blocks[b].mem_accesses();
            (l + bl * r, s + bs * r)
        })
    }
}
