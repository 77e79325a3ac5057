//! `compat`: a plugin written against `qemu-plugin` 10.1.0-v2 the way its users write
//! them (`Register`, `HasCallbacks`, `register!`, closures that mutate what they
//! capture), touching the items both crates share. At exit it prints one line:
//!
//! ```text
//! compat[TAG]: insns I blocks B tbs_run U tb_first T first F reads R writes W syscalls S sysrets Q vcpus V regs G bytes D args A entry E
//! ```
//!
//! Arguments: `tag=NAME` (printed in the line), `verbose=on|off`, `limit=N` (numbers are
//! parsed into `Value::Integer`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use qemu_plugin::install::{Args, Info, Value};
use qemu_plugin::instruction::Instruction;
use qemu_plugin::memory::MemoryInfo;
use qemu_plugin::plugin::{HasCallbacks, Register};
use qemu_plugin::translation_block::{TranslationBlock, TranslationBlockIterator};
use qemu_plugin::{
    qemu_plugin_bool_parse, qemu_plugin_outs, qemu_plugin_register_atexit_cb,
    qemu_plugin_register_vcpu_insn_exec_cb, qemu_plugin_register_vcpu_mem_cb,
    qemu_plugin_register_vcpu_tb_exec_cb, register, CallbackFlags, Error, MemRW, PluginId,
    Result, VCPUIndex,
};
// What older plugin APIs lack, gated the way 10.1.0-v2 gates it (and its users do).
#[cfg(not(feature = "plugin-api-v0"))]
use qemu_plugin::qemu_plugin_entry_code;
#[cfg(not(any(feature = "plugin-api-v0", feature = "plugin-api-v1")))]
use qemu_plugin::{
    qemu_plugin_end_code, qemu_plugin_get_registers, qemu_plugin_num_vcpus,
    qemu_plugin_path_to_binary, qemu_plugin_start_code,
};
#[cfg(any(feature = "plugin-api-v4", feature = "plugin-api-v5"))]
use qemu_plugin::qemu_plugin_read_memory_vaddr;

static INSNS: AtomicU64 = AtomicU64::new(0);
static BLOCKS: AtomicU64 = AtomicU64::new(0);
/// Block executions counted a second way: the free function on the block's first
/// instruction.
static TB_FIRST: AtomicU64 = AtomicU64::new(0);
/// Translated blocks that executed at least once.
static TBS_RUN: AtomicU64 = AtomicU64::new(0);
/// Instructions (per translation) that executed at least once.
static FIRST: AtomicU64 = AtomicU64::new(0);
static READS: AtomicU64 = AtomicU64::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);
static SYSCALLS: AtomicU64 = AtomicU64::new(0);
static SYSRETS: AtomicU64 = AtomicU64::new(0);
static VCPUS: AtomicU64 = AtomicU64::new(0);
/// Registers QEMU listed at the first vCPU's init.
static REGS: AtomicU64 = AtomicU64::new(0);
/// Instruction bytes translated.
static BYTES: AtomicU64 = AtomicU64::new(0);
/// The program's entry point, asked on the first vCPU's thread (in linux-user QEMU answers
/// the layout queries from the calling vCPU's task state: at install it would crash).
static ENTRY: Mutex<Option<u64>> = Mutex::new(None);

#[derive(Default)]
struct Compat {
    tag: String,
    verbose: bool,
    args: usize,
}

impl Register for Compat {
    fn register(&mut self, id: PluginId, args: &Args, info: &Info) -> Result<()> {
        self.args = args.raw.len();
        debug_assert_eq!(manual_args().raw.len(), 1);
        for (key, value) in &args.parsed {
            match (key.as_str(), value) {
                ("tag", Value::String(s)) => self.tag = s.clone(),
                ("tag", Value::Integer(i)) => self.tag = i.to_string(),
                ("verbose", Value::Bool(b)) => self.verbose = *b,
                ("verbose", Value::String(s)) => {
                    self.verbose = qemu_plugin_bool_parse("verbose", s)?
                }
                ("limit", Value::Integer(_)) => {}
                (other, _) => {
                    return Err(Error::MissingArgValue {
                        argument: other.to_string(),
                    })
                }
            }
        }
        if self.verbose {
            qemu_plugin_outs(format!(
                "compat: target {} api {} (min {}) system {:?}\n",
                info.target_name,
                info.version.current,
                info.version.mininum,
                info.system.as_ref().map(|s| (s.smp_vcpus, s.max_vcpus)),
            ))?;
        }
        let tag = self.tag.clone();
        let args = self.args;
        qemu_plugin_register_atexit_cb(id, move |_id| {
            let n = |c: &AtomicU64| c.load(Ordering::SeqCst);
            let _ = qemu_plugin_outs(format!(
                "compat[{tag}]: insns {} blocks {} tbs_run {} tb_first {} first {} reads {} writes {} \
                 syscalls {} sysrets {} vcpus {} regs {} bytes {} args {args} entry {:#x}\n",
                n(&INSNS),
                n(&BLOCKS),
                n(&TBS_RUN),
                n(&TB_FIRST),
                n(&FIRST),
                n(&READS),
                n(&WRITES),
                n(&SYSCALLS),
                n(&SYSRETS),
                n(&VCPUS),
                n(&REGS),
                n(&BYTES),
                ENTRY.lock().unwrap().unwrap_or(0),
            ));
        })?;
        Ok(())
    }
}

/// An `Args` built by hand, as 10.1.0-v2's users may (its fields are public).
pub fn manual_args() -> Args {
    let mut parsed = std::collections::HashMap::new();
    parsed.insert("tag".to_string(), Value::String("manual".to_string()));
    Args {
        raw: vec!["tag=manual".to_string()],
        parsed,
    }
}

/// Counts the instruction's executions with a closure that mutates what it captures, and
/// its memory accesses.
fn instrument(insn: &Instruction) -> Result<()> {
    let data: Vec<u8> = insn.data();
    BYTES.fetch_add(data.len() as u64, Ordering::Relaxed);
    let _ = (insn.size(), insn.vaddr(), insn.haddr());
    let _disassembly: String = insn.disas()?;
    #[cfg(not(feature = "plugin-api-v0"))]
    let _symbol: Option<String> = insn.symbol()?;
    let mut executed = false;
    insn.register_execute_callback(move |_vcpu: VCPUIndex| {
        if !executed {
            executed = true;
            FIRST.fetch_add(1, Ordering::Relaxed);
        }
        INSNS.fetch_add(1, Ordering::Relaxed);
    });
    insn.register_memory_access_callback(
        |_vcpu: VCPUIndex, info: MemoryInfo, _vaddr: u64| {
            let _ = (info.size_shift(), info.sign_extended(), info.big_endian());
            let counter = if info.is_store() { &WRITES } else { &READS };
            counter.fetch_add(1, Ordering::Relaxed);
        },
        MemRW::QEMU_PLUGIN_MEM_RW,
    );
    Ok(())
}

impl HasCallbacks for Compat {
    fn on_vcpu_init(&mut self, _id: PluginId, vcpu_id: VCPUIndex) -> Result<()> {
        VCPUS.fetch_add(1, Ordering::Relaxed);
        // QEMU 7.2 (APIs 0 and 1) runs vCPU init before the vCPU's task state exists, and
        // crashes on a program-layout query there: those builds ask at the first syscall.
        #[cfg(not(any(feature = "plugin-api-v0", feature = "plugin-api-v1")))]
        if vcpu_id == 0 {
            *ENTRY.lock().unwrap() = qemu_plugin_entry_code();
        }
        #[cfg(not(any(feature = "plugin-api-v0", feature = "plugin-api-v1")))]
        if vcpu_id == 0 {
            let regs = qemu_plugin_get_registers()?;
            REGS.store(regs.len() as u64, Ordering::Relaxed);
            for reg in &regs {
                let _ = (&reg.name, &reg.feature);
            }
            if let Some(first) = regs.first() {
                let _bytes: Vec<u8> = first.read()?;
            }
            if self.verbose {
                qemu_plugin_outs(format!(
                    "compat: {} vCPUs so far; binary {:?} code {:?}..{:?} entry {:?}\n",
                    qemu_plugin_num_vcpus().unwrap_or(0),
                    qemu_plugin_path_to_binary()?,
                    qemu_plugin_start_code(),
                    qemu_plugin_end_code(),
                    *ENTRY.lock().unwrap(),
                ))?;
            }
        }
        Ok(())
    }

    fn on_vcpu_exit(&mut self, _id: PluginId, _vcpu_id: VCPUIndex) -> Result<()> {
        Ok(())
    }

    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock,
    ) -> Result<()> {
        let _ = (tb.size(), tb.vaddr());
        let mut executions = 0u64;
        tb.register_execute_callback(move |_vcpu| {
            executions += 1;
            if executions == 1 {
                TBS_RUN.fetch_add(1, Ordering::Relaxed);
            }
            BLOCKS.fetch_add(1, Ordering::Relaxed);
        });
        let insns: TranslationBlockIterator = tb.instructions();
        for insn in insns {
            instrument(&insn)?;
        }
        let first = tb.instruction(0)?;
        qemu_plugin_register_vcpu_insn_exec_cb(
            first,
            |_vcpu| {
                TB_FIRST.fetch_add(1, Ordering::Relaxed);
            },
            CallbackFlags::QEMU_PLUGIN_CB_NO_REGS,
        );
        qemu_plugin_register_vcpu_tb_exec_cb(
            tb.clone(),
            |_vcpu| {},
            CallbackFlags::QEMU_PLUGIN_CB_R_REGS,
        );
        let last = tb.instruction(tb.size() - 1)?;
        qemu_plugin_register_vcpu_mem_cb(
            last,
            |_vcpu, _info, _vaddr| {},
            CallbackFlags::QEMU_PLUGIN_CB_NO_REGS,
            MemRW::QEMU_PLUGIN_MEM_R,
        );
        Ok(())
    }

    fn on_flush(&mut self, _id: PluginId) -> Result<()> {
        Ok(())
    }

    fn on_syscall(
        &mut self,
        _id: PluginId,
        _vcpu_index: VCPUIndex,
        num: i64,
        a1: u64,
        _a2: u64,
        _a3: u64,
        _a4: u64,
        _a5: u64,
        _a6: u64,
        _a7: u64,
        _a8: u64,
    ) -> Result<()> {
        SYSCALLS.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "plugin-api-v1")]
        {
            let mut entry = ENTRY.lock().unwrap();
            if entry.is_none() {
                *entry = qemu_plugin_entry_code();
            }
        }
        // write(2): read the guest's buffer pointer's first byte (a vCPU callback).
        if num == 1 && a1 == 1 && self.verbose {
            let mut byte = [0u8; 1];
            #[cfg(any(feature = "plugin-api-v4", feature = "plugin-api-v5"))]
            let _ = qemu_plugin_read_memory_vaddr(_a2, &mut byte);
        }
        Ok(())
    }

    fn on_syscall_return(
        &mut self,
        _id: PluginId,
        _vcpu_index: VCPUIndex,
        _num: i64,
        _ret: i64,
    ) -> Result<()> {
        SYSRETS.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Names every variant of 10.1.0-v2's `Error` in one exhaustive `match` (no `_` arm), as
/// its users may: this compiles only if both crates have exactly these variants.
pub fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::MissingArgKey { .. } => "MissingArgKey",
        Error::MissingArgValue { .. } => "MissingArgValue",
        Error::InvalidBool { .. } => "InvalidBool",
        Error::ConcurrentPluginUninstallCallbackSet => "ConcurrentPluginUninstallCallbackSet",
        Error::ConcurrentPluginResetCallbackSet => "ConcurrentPluginResetCallbackSet",
        Error::PluginResetCallbackState => "PluginResetCallbackState",
        Error::InvalidInstructionIndex { .. } => "InvalidInstructionIndex",
        Error::NoDisassemblyString => "NoDisassemblyString",
        Error::InvalidRegisterReadSize { .. } => "InvalidRegisterReadSize",
        Error::RegisterReadError { .. } => "RegisterReadError",
        Error::RegisterWriteError { .. } => "RegisterWriteError",
        #[cfg(any(feature = "plugin-api-v4", feature = "plugin-api-v5"))]
        Error::VaddrReadError { .. } => "VaddrReadError",
        #[cfg(feature = "plugin-api-v5")]
        Error::VaddrWriteError { .. } => "VaddrWriteError",
        #[cfg(feature = "plugin-api-v5")]
        Error::HwaddrReadError { .. } => "HwaddrReadError",
        #[cfg(feature = "plugin-api-v5")]
        Error::HwaddrWriteError { .. } => "HwaddrWriteError",
        #[cfg(feature = "plugin-api-v5")]
        Error::VaddrTranslateError { .. } => "VaddrTranslateError",
        Error::PluginInstanceSetError => "PluginInstanceSetError",
        Error::StdUtf8Error(_) => "StdUtf8Error",
        Error::Infallible(_) => "Infallible",
        Error::LayoutError(_) => "LayoutError",
        Error::TryFromSliceError(_) => "TryFromSliceError",
        Error::BorrowError(_) => "BorrowError",
        Error::BorrowMutError(_) => "BorrowMutError",
        Error::CharTryFromError(_) => "CharTryFromError",
        Error::DecodeUtf16Error(_) => "DecodeUtf16Error",
        Error::ParseCharError(_) => "ParseCharError",
        Error::TryFromCharError(_) => "TryFromCharError",
        Error::TryReserveError(_) => "TryReserveError",
        Error::JoinPathsError(_) => "JoinPathsError",
        Error::VarError(_) => "VarError",
        Error::FromBytesUntilNulError(_) => "FromBytesUntilNulError",
        Error::FromBytesWithNulError(_) => "FromBytesWithNulError",
        Error::FromVecWithNulError(_) => "FromVecWithNulError",
        Error::IntoStringError(_) => "IntoStringError",
        Error::NulError(_) => "NulError",
        Error::FmtError(_) => "FmtError",
        Error::FsTryLockError(_) => "FsTryLockError",
        Error::IoError(_) => "IoError",
        Error::AddrParseError(_) => "AddrParseError",
        Error::ParseFloatError(_) => "ParseFloatError",
        Error::ParseIntError(_) => "ParseIntError",
        Error::TryFromIntError(_) => "TryFromIntError",
        Error::StripPrefixError(_) => "StripPrefixError",
        Error::ParseBoolError(_) => "ParseBoolError",
        Error::FromUtf8Error(_) => "FromUtf8Error",
        Error::FromUtf16Error(_) => "FromUtf16Error",
        Error::RecvError(_) => "RecvError",
        Error::RecvTimeoutError(_) => "RecvTimeoutError",
        Error::TryRecvError(_) => "TryRecvError",
        Error::AccessError(_) => "AccessError",
        Error::SystemTimeError(_) => "SystemTimeError",
        Error::TryFromFloatSecsError(_) => "TryFromFloatSecsError",
        Error::AnyhowError(_) => "AnyhowError",
        Error::BoxedError(_) => "BoxedError",
    }
}

/// Function items named with 10.1.0-v2's exact types, as its users may (fn pointers).
pub fn signatures() {
    #[cfg(any(feature = "plugin-api-v4", feature = "plugin-api-v5"))]
    let _read: fn(u64, &mut [u8]) -> Result<()> = qemu_plugin::qemu_plugin_read_memory_vaddr;
    #[cfg(feature = "plugin-api-v5")]
    {
        let _write: fn(u64, &mut [u8]) -> Result<()> =
            qemu_plugin::memory::qemu_plugin_write_memory_vaddr;
        let _write_hw: fn(u64, &mut [u8]) -> Result<()> =
            qemu_plugin::qemu_plugin_write_memory_hwaddr;
        let _reg_write: fn(
            &qemu_plugin::register::RegisterDescriptor<'static>,
            &mut [u8],
        ) -> Result<()> = qemu_plugin::RegisterDescriptor::write;
    }
    let _store = |p: Compat| qemu_plugin::register_plugin(p);
    // The scoreboard type as 10.1.0-v2 names it, with its lifetime parameter.
    #[cfg(not(any(feature = "plugin-api-v0", feature = "plugin-api-v1")))]
    let _board: Option<qemu_plugin::scoreboard::Scoreboard<'static, u64>> = None;
}

register!(Compat::default());
