//! `uftrace`: QEMU's `contrib/plugins/uftrace.c` on the per-vCPU runtime. Records the
//! guest's function calls by following its frame pointer, into a directory that the
//! [uftrace](https://github.com/namhyung/uftrace) tool reads (`uftrace replay`, `dump`,
//! `report`, `tui`): `./uftrace.data/` in QEMU's working directory, with a trace file per
//! vCPU (`<id>.dat`, id = (vCPU + 1) * 100), `info`, `task.txt` and `sid-0.map` (in
//! linux-user a copy of QEMU's own `/proc/self/maps`, where the guest's program is mapped
//! at its own addresses; in system mode a map that keeps uftrace from reading kernel
//! addresses as its own, left alone if one exists already).
//!
//! x86_64 (`rbp`) and aarch64 (`x29`) guests. Argument, with the C plugin's spelling:
//! `trace-privilege-level=on|off` (default off): one trace per privilege level and vCPU
//! (id + level, named e.g. `cpu0 Ring3` or `cpu0 NS-EL1`), switched when a block starts
//! at another level. Needs QEMU 9.2 (plugin API 4) to read guest memory.
//!
//! How, as in the C plugin: the first instruction of each block, and each instruction
//! after one whose disassembly names the frame pointer, reads the frame pointer. Equal to
//! the top frame's: same function. Equal to the caller's: a return. The new frame's saved
//! pointer equal to the top frame's: a call. Otherwise the stack is unwound afresh from
//! memory (at most 1024 frames). Each vCPU's call stack and trace buffer are its shard;
//! a buffer is written out every 32 MiB and when its vCPU exits (merge). Differences:
//! where uftrace.c aborts QEMU (a register it needs is missing, a file cannot be
//! written, no `SCR_EL3` on an aarch64 cpu when tracing privilege levels), this plugin
//! refuses to install or reports the error once and stops; without `SCR_EL3` the
//! levels are the non-secure ones.

#[cfg(since_api_4)]
mod plugin {
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::time::{SystemTime, UNIX_EPOCH};

    use qemu_plugin::{
        Args, CallbackFlags, Failure, Info, PerVcpu, RegisterDescriptor, Result, Translation,
        VCPUIndex, Vcpu, find_register, per_vcpu, qemu_plugin_read_memory_vaddr,
    };

    /// uftrace.c's output directory, relative to QEMU's working directory.
    const DIR: &str = "./uftrace.data";
    /// A trace buffer is written out once it holds more than this.
    const FLUSH_BYTES: usize = 32 << 20;
    /// Trace ids: (vCPU + 1) * this + privilege level.
    const ID_SCALE: u32 = 100;
    /// The deepest stack an unwind reads.
    const UNWIND_MAX: usize = 1024;
    const READ_REGS: CallbackFlags = CallbackFlags::QEMU_PLUGIN_CB_R_REGS;

    /// uftrace's record types.
    #[derive(Clone, Copy)]
    enum Record {
        Entry = 0,
        Exit = 1,
    }

    /// The guest architectures uftrace.c knows.
    #[derive(Clone, Copy, PartialEq)]
    enum Arch {
        X86_64,
        Aarch64,
    }

    impl Arch {
        fn frame_pointer(self) -> &'static str {
            match self {
                Arch::X86_64 => "rbp",
                Arch::Aarch64 => "x29",
            }
        }

        /// The names of the privilege levels, by number.
        fn levels(self) -> &'static [&'static str] {
            match self {
                Arch::X86_64 => &["Ring0", "Ring1", "Ring2", "Ring3", "RealMode"],
                Arch::Aarch64 => &[
                    "S-EL0", "NS-EL0", "R-EL0", "S-EL1", "NS-EL1", "R-EL1", "S-EL2", "NS-EL2",
                    "R-EL2", "EL3",
                ],
            }
        }

        /// Whether an instruction (by its disassembly) may change the frame pointer, so
        /// that the next one must look again. The space before `x29` keeps addresses in
        /// the text from matching.
        fn touches_frame_pointer(self, disas: &str) -> bool {
            match self {
                Arch::X86_64 => disas.contains("rbp"),
                Arch::Aarch64 => disas.contains(" x29"),
            }
        }
    }

    pub struct Uftrace {
        arch: Arch,
        /// `trace-privilege-level`.
        levels: bool,
        system: bool,
    }

    /// The registers that tell a vCPU's privilege level.
    enum LevelRegs {
        X86 {
            cs: RegisterDescriptor<'static>,
            cr0: RegisterDescriptor<'static>,
        },
        Aarch64 {
            cpsr: RegisterDescriptor<'static>,
            scr_el3: Option<RegisterDescriptor<'static>>,
        },
    }

    /// A frame of the call stack: the address it was entered at, and its frame pointer.
    #[derive(Clone, Copy, Default)]
    struct Frame {
        pc: u64,
        fp: u64,
    }

    /// One trace file and its unwritten records.
    struct Trace {
        id: u32,
        name: String,
        path: PathBuf,
        buf: Vec<u8>,
    }

    impl Trace {
        /// Writes the buffer out, appending (or truncating the file first).
        fn flush(&mut self, append: bool) -> std::io::Result<()> {
            fs::create_dir_all(DIR)?;
            let mut f = OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(&self.path)?;
            f.write_all(&self.buf)?;
            self.buf.clear();
            Ok(())
        }

        /// Adds a record in uftrace's binary format: the time, then the type, a magic
        /// number, the depth and the address packed into one word.
        fn add(&mut self, time: u64, pc: u64, depth: usize, kind: Record) {
            const MAGIC: u64 = 0x5;
            let data = (kind as u64 | (MAGIC << 3))
                .wrapping_add((depth as u64) << 6)
                .wrapping_add(pc << 16);
            self.buf.extend_from_slice(&time.to_ne_bytes());
            self.buf.extend_from_slice(&data.to_ne_bytes());
            if self.buf.len() > FLUSH_BYTES
                && let Err(e) = self.flush(true)
            {
                panic!("uftrace: writing {}: {e}", self.path.display());
            }
        }

        fn enter_stack(&mut self, time: u64, stack: &[Frame]) {
            for (i, f) in stack.iter().enumerate() {
                self.add(time, f.pc, i + 1, Record::Entry);
            }
        }

        fn exit_stack(&mut self, time: u64, stack: &[Frame]) {
            for (i, f) in stack.iter().enumerate().rev() {
                self.add(time, f.pc, i + 1, Record::Exit);
            }
        }
    }

    /// One vCPU's registers, traces and call stack.
    pub struct Shard {
        fp: RegisterDescriptor<'static>,
        level_regs: Option<LevelRegs>,
        traces: Vec<Trace>,
        /// The current privilege level: the index of the trace being written.
        level: usize,
        stack: Vec<Frame>,
    }

    /// The wall-clock time in ns, as uftrace.c takes it.
    fn now() -> u64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() * 1_000_000_000 + u64::from(d.subsec_nanos()),
            Err(_) => 0,
        }
    }

    /// A register's value, its bytes in host order (the targets here are little-endian,
    /// as the hosts). A register QEMU will not read is a bug in the setup: reported once.
    fn read_register(reg: &RegisterDescriptor<'_>) -> u64 {
        let mut word = [0; 8];
        if let Err(e) = reg.read_into(&mut word) {
            panic!("uftrace: reading register {}: {e}", reg.name);
        }
        u64::from_ne_bytes(word)
    }

    /// The 64-bit word at guest virtual address `addr`, or 0 where it cannot be read.
    fn read_word(addr: u64) -> u64 {
        let mut word = [0; 8];
        match qemu_plugin_read_memory_vaddr(addr, &mut word) {
            Ok(()) => u64::from_ne_bytes(word),
            Err(_) => 0,
        }
    }

    /// The call stack from memory, from frame `fp` at `pc` down, bottom frame first
    /// (uftrace.c's `cpu_unwind_stack`).
    fn unwind(stack: &mut Vec<Frame>, mut fp: u64, mut pc: u64) {
        debug_assert!(stack.is_empty());
        loop {
            stack.push(Frame { pc, fp });
            if fp != 0 {
                fp = read_word(fp);
            }
            pc = read_word(fp.wrapping_add(8)); // the caller's return address
            if fp == 0 || pc == 0 || stack.len() >= UNWIND_MAX {
                break;
            }
        }
        stack.reverse();
    }

    impl Uftrace {
        /// The vCPU's privilege level (an index into [`Arch::levels`]).
        fn level(&self, regs: &LevelRegs) -> usize {
            match regs {
                LevelRegs::X86 { cs, cr0 } => {
                    if read_register(cr0) & 1 == 0 {
                        4 // real mode
                    } else {
                        (read_register(cs) & 0b11) as usize
                    }
                }
                LevelRegs::Aarch64 { cpsr, scr_el3 } => {
                    // CurrentEL is not among QEMU's registers; CPSR carries it.
                    let el = (read_register(cpsr) as u32 >> 2 & 0b11) as usize;
                    if el == 3 {
                        return 9;
                    }
                    // Security state: 0 secure, 1 non-secure, 2 realm (SCR_EL3.{NSE,NS});
                    // the reserved NSE=1,NS=0 counts as secure.
                    let state = match scr_el3 {
                        None => 1,
                        Some(r) => {
                            let v = read_register(r);
                            match ((v >> 62) & 1, v & 1) {
                                (0, 1) => 1,
                                (1, 1) => 2,
                                _ => 0,
                            }
                        }
                    };
                    el * 3 + state
                }
            }
        }

        /// Before a block at `pc`: a new privilege level closes the stack in the old
        /// level's trace and opens the unwound one in the new level's.
        fn privilege_check(&self, cpu: &mut Vcpu<Self>, pc: u64) {
            let Some(regs) = &cpu.level_regs else { return };
            let level = self.level(regs);
            if level == cpu.level {
                return;
            }
            let time = now();
            let old = cpu.level;
            let Shard { traces, stack, .. } = &mut **cpu;
            traces[old].exit_stack(time, stack);
            stack.clear();
            cpu.level = level;
            let fp = read_register(&cpu.fp);
            let Shard { traces, stack, .. } = &mut **cpu;
            unwind(stack, fp, pc);
            traces[level].enter_stack(time, stack);
        }

        /// Before an instruction at `pc` where the frame pointer may have changed
        /// (uftrace.c's `track_callstack`).
        fn track(cpu: &mut Vcpu<Self>, pc: u64) {
            // uftrace.c reads the clock first, on every call; most calls find the same
            // function and record nothing, so here the clock is read only for a record.
            let fp = read_register(&cpu.fp);
            let level = cpu.level;
            let Shard { traces, stack, .. } = &mut **cpu;
            let trace = &mut traces[level];
            if fp == 0 && stack.is_empty() {
                // Only the pc: a change of function is not seen until a proper call.
                stack.push(Frame { pc, fp });
                trace.add(now(), pc, stack.len(), Record::Entry);
                return;
            }
            let top = stack.last().copied().unwrap_or_default();
            if fp == top.fp {
                return; // the same function
            }
            let time = now();
            let caller = match stack.len() {
                n if n >= 2 => stack[n - 2],
                _ => Frame::default(),
            };
            if fp == caller.fp {
                let done = stack.pop().unwrap_or_default();
                trace.add(time, done.pc, stack.len(), Record::Exit);
                return;
            }
            let saved = if fp != 0 { read_word(fp) } else { 0 };
            if saved == top.fp {
                stack.push(Frame { pc, fp });
                trace.add(time, pc, stack.len(), Record::Entry);
                return;
            }
            // A jump elsewhere (a longjmp, a new thread of control): start again.
            trace.exit_stack(time, stack);
            stack.clear();
            unwind(stack, fp, pc);
            trace.enter_stack(time, stack);
        }
    }

    impl PerVcpu for Uftrace {
        type Config = ();
        type Shard = Shard;
        /// Every trace written: id and name.
        type Total = Vec<(u32, String)>;

        fn new(args: &Args, info: &Info) -> Result<(Self, ())> {
            args.expect_only(&["trace-privilege-level"])?;
            let levels = args.bool("trace-privilege-level", false)?;
            let arch = match info.target_name.split('-').next() {
                Some("x86_64") => Arch::X86_64,
                Some("aarch64") => Arch::Aarch64,
                _ => {
                    return Err(Failure::Other(format!(
                        "uftrace: the {} target is not supported (x86_64 and aarch64 are)",
                        info.target_name
                    ))
                    .into());
                }
            };
            fs::create_dir_all(DIR).map_err(|e| {
                Failure::Other(format!(
                    "uftrace: cannot create {DIR} in {}: {e}",
                    std::env::current_dir()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                ))
            })?;
            let system = info.system.is_some();
            Ok((
                Uftrace {
                    arch,
                    levels,
                    system,
                },
                (),
            ))
        }

        /// Finds the registers and creates (truncates) the vCPU's trace files, as
        /// uftrace.c's vCPU init does.
        fn new_shard(&self, vcpu: VCPUIndex) -> Result<Shard> {
            let fp = find_register(self.arch.frame_pointer()).map_err(|e| {
                Failure::Other(format!(
                    "uftrace: frame pointer register ({}) is not available{}: {e}",
                    self.arch.frame_pointer(),
                    if self.arch == Arch::Aarch64 {
                        "; use an AArch64 cpu (or -cpu max)"
                    } else {
                        ""
                    }
                ))
            })?;
            let level_regs = match (self.levels, self.arch) {
                (false, _) => None,
                (true, Arch::X86_64) => Some(LevelRegs::X86 {
                    cs: find_register("cs")?,
                    cr0: find_register("cr0")?,
                }),
                (true, Arch::Aarch64) => Some(LevelRegs::Aarch64 {
                    cpsr: find_register("cpsr")?,
                    scr_el3: find_register("SCR_EL3").ok(),
                }),
            };
            let base = (vcpu + 1) * ID_SCALE;
            let names: Vec<String> = if self.levels {
                let levels = self.arch.levels().iter();
                levels.map(|l| format!("cpu{vcpu} {l}")).collect()
            } else {
                vec![format!("cpu{vcpu}")]
            };
            let mut traces = Vec::new();
            for (i, name) in names.into_iter().enumerate() {
                let id = base + i as u32;
                let mut t = Trace {
                    id,
                    name,
                    path: Path::new(DIR).join(format!("{id}.dat")),
                    buf: Vec::new(),
                };
                t.flush(false).map_err(|e| {
                    Failure::Other(format!("uftrace: creating {}: {e}", t.path.display()))
                })?;
                traces.push(t);
            }
            Ok(Shard {
                fp,
                level_regs,
                traces,
                level: 0,
                stack: Vec::new(),
            })
        }

        fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
            if self.levels {
                let pc = tb.vaddr();
                tb.on_exec_flags(READ_REGS, move |cpu: &mut Vcpu<Self>| {
                    cpu.handle().plugin().privilege_check(cpu, pc)
                });
            }
            // A callback runs before its instruction, so an instruction that may move the
            // frame pointer is followed by a look at the next one; and the last one of the
            // previous block may have moved it, so every block's first is looked at.
            let mut look = true;
            for insn in tb.instructions() {
                if look {
                    let pc = insn.vaddr();
                    insn.on_exec_flags(READ_REGS, move |cpu: &mut Vcpu<Self>| Self::track(cpu, pc));
                }
                look = self.arch.touches_frame_pointer(&insn.disas()?);
            }
            Ok(())
        }

        fn merge(&self, total: &mut Vec<(u32, String)>, cpu: Vcpu<Self>) -> Result<()> {
            for mut t in cpu.into_shard().traces {
                t.flush(true).map_err(|e| {
                    Failure::Other(format!("uftrace: writing {}: {e}", t.path.display()))
                })?;
                total.push((t.id, t.name));
            }
            Ok(())
        }

        fn on_exit(&self, mut traces: Vec<(u32, String)>) -> Result<()> {
            traces.sort();
            let dir = Path::new(DIR);
            let failed =
                |what: &str, e: std::io::Error| Failure::Other(format!("uftrace: {what}: {e}"));
            write_map(&dir.join("sid-0.map"), self.system).map_err(|e| failed("sid-0.map", e))?;
            fs::write(dir.join("info"), info(&traces)).map_err(|e| failed("info", e))?;
            fs::write(dir.join("task.txt"), tasks(&traces)).map_err(|e| failed("task.txt", e))?;
            Ok(())
        }
    }

    /// `sid-0.map`: in linux-user, QEMU's own memory map (the guest's program is mapped at
    /// its addresses); in system mode, unless one exists (made by uftrace_symbols.py, say),
    /// one whose stack sits at the top of the address space, so that uftrace reads no
    /// kernel address as its own.
    fn write_map(path: &Path, system: bool) -> std::io::Result<()> {
        if !system {
            return fs::write(path, fs::read("/proc/self/maps")?);
        }
        if path.exists() {
            return Ok(());
        }
        fs::write(
            path,
            "# map stack on highest address possible, to prevent uftrace\n\
             # from considering any kernel address\n\
             ffffffffffff-ffffffffffff rw-p 00000000 00:00 0 [stack]\n",
        )
    }

    /// The `info` file: uftrace's 40-byte header, then its sections, empty but for the
    /// tasks (as uftrace.c writes it).
    fn info(traces: &[(u32, String)]) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        out.extend_from_slice(b"Ftrace!\0");
        out.extend_from_slice(&4u32.to_le_bytes()); // file version
        out.extend_from_slice(&40u16.to_le_bytes()); // header size
        out.extend_from_slice(&[1, 2]); // little-endian, 64-bit
        // Features: PLTHOOK, TASK_SESSION, SYM_REL_ADDR, MAX_STACK, AUTO_ARGS.
        out.extend_from_slice(&0x1263u64.to_le_bytes());
        // Sections present, EXE_NAME to VERSION (those of the text below).
        out.extend_from_slice(&0x7bffu64.to_le_bytes());
        out.extend_from_slice(&1024u16.to_le_bytes()); // max stack depth
        out.extend_from_slice(&[0; 6]);
        let tids: Vec<String> = traces.iter().map(|(id, _)| id.to_string()).collect();
        let text = format!(
            "exename:\n\
             build_id:0000000000000000000000000000000000000000\n\
             exit_status:\n\
             cmdline:\n\
             cpuinfo:lines=2\n\
             cpuinfo:nr_cpus=\n\
             cpuinfo:desc=\n\
             meminfo:\n\
             osinfo:lines=3\n\
             osinfo:kernel=\n\
             osinfo:hostname=\n\
             osinfo:distro=\n\
             taskinfo:lines=2\n\
             taskinfo:nr_tid={}\n\
             taskinfo:tids={}\n\
             usageinfo:lines=6\n\
             usageinfo:systime=\n\
             usageinfo:usrtime=\n\
             usageinfo:ctxsw=\n\
             usageinfo:maxrss=\n\
             usageinfo:pagefault=\n\
             usageinfo:iops=\n\
             loadinfo:\n\
             record_date:\n\
             elapsed_time:\n\
             pattern_type:regex\n\
             uftrace_version:\n\
             utc_offset:\n",
            traces.len(),
            tids.join(",")
        );
        out.extend_from_slice(text.as_bytes());
        out
    }

    /// `task.txt`: a session and a task per trace, each trace its own process to uftrace.
    fn tasks(traces: &[(u32, String)]) -> String {
        traces
            .iter()
            .map(|(id, name)| {
                format!(
                    "SESS timestamp=0.0 pid={id} sid=0 exename=\"{name}\"\n\
                     TASK timestamp=0.0 tid={id} pid={id}\n"
                )
            })
            .collect()
    }

    per_vcpu!(Uftrace);
}

/// Before plugin API 4 (QEMU 9.2) guest memory cannot be read: the plugin refuses to
/// install.
#[cfg(not(since_api_4))]
#[macro_use]
#[path = "support/refuse.rs"]
mod refuse;

#[cfg(not(since_api_4))]
refuse_to_install!(Uftrace, "qemu_plugin_read_memory_vaddr", "9.2");
