//! Guest state through the mock host: memory reads into real glib arrays, register reads
//! and writes gated on the callback's register-access flags, and the errors when QEMU
//! refuses.

use std::sync::Mutex;

use crate::{
    CallbackFlags, HasCallbacks, PluginId, Register, RegisterDescriptor, Result, TranslationBlock,
    VCPUIndex, find_register, qemu_plugin_get_registers, qemu_plugin_read_memory_vaddr,
};
use qemu_plugin_mock::{Block, MockHost, Workload};

static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
static REGS: Mutex<Vec<RegisterDescriptor<'static>>> = Mutex::new(Vec::new());
/// What `find_register` answered at vcpu_init, for a listed and an unlisted name.
static FOUND: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note(s: String) {
    SEEN.lock().unwrap().push(s);
}

struct GuestState;

impl Register for GuestState {}

impl HasCallbacks for GuestState {
    fn on_vcpu_init(&mut self, _id: PluginId, _vcpu: VCPUIndex) -> Result<()> {
        *REGS.lock().unwrap() = qemu_plugin_get_registers()?;
        let mut found = FOUND.lock().unwrap();
        found.push(format!("{:?}", find_register("rbx").map(|r| r.name)));
        found.push(format!(
            "{:?}",
            find_register("x99").map_err(|e| e.to_string())
        ));
        Ok(())
    }

    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock,
    ) -> Result<()> {
        let insn = tb.instruction(0)?;
        insn.register_execute_callback_flags(
            |_vcpu| {
                let mut buf = [0u8; 8];
                note(format!(
                    "mem {:?}",
                    qemu_plugin_read_memory_vaddr(0x2000, &mut buf).map(|_| buf)
                ));
                let regs = REGS.lock().unwrap();
                let rbx = regs.iter().find(|r| r.name == "rbx").expect("rbx listed");
                note(format!("rbx {:?}", rbx.read().map(|v| v.to_vec())));
                // Into caller buffers, twice in a row (the per-thread scratch array is
                // emptied between reads): a short buffer gets the first bytes, a long one
                // the value and its untouched rest; both return the register's size.
                let (mut short, mut long) = ([0xaa_u8; 4], [0xaa_u8; 10]);
                let sizes = (rbx.read_into(&mut short), rbx.read_into(&mut long));
                note(format!("read_into {sizes:?} {short:?} {long:?}"));
                #[cfg(feature = "num-traits")]
                note(format!(
                    "rbx as integers: {:?} {:?} {:?}",
                    rbx.read_le::<u64>().map_err(|e| e.to_string()),
                    rbx.read_be::<u64>().map_err(|e| e.to_string()),
                    rbx.read_le::<u32>().map_err(|e| e.to_string()),
                ));
                #[cfg(since_api_5)]
                note(format!(
                    "write with R_REGS: {:?}",
                    rbx.write(&mut [9; 8]).map_err(|e| e.to_string())
                ));
            },
            CallbackFlags::QEMU_PLUGIN_CB_R_REGS,
        );
        #[cfg(since_api_5)]
        tb.instruction(1)?.register_execute_callback_flags(
            |_vcpu| {
                let regs = REGS.lock().unwrap();
                let rax = regs.iter().find(|r| r.name == "rax").expect("rax listed");
                note(format!(
                    "write with RW_REGS: {:?}",
                    rax.write(&mut 7u64.to_le_bytes())
                        .map_err(|e| e.to_string())
                ));
                // API 6 and later flag the PC read-only; QEMU 11 aborts on a write to it.
                let rip = regs.iter().find(|r| r.name == "rip").expect("rip listed");
                note(format!(
                    "write rip: read-only {} {:?}",
                    rip.is_read_only(),
                    rip.write(&mut 0x1000u64.to_le_bytes())
                        .map_err(|e| e.to_string())
                ));
            },
            CallbackFlags::QEMU_PLUGIN_CB_RW_REGS,
        );
        tb.instruction(2)?.register_execute_callback(|_vcpu| {
            let regs = REGS.lock().unwrap();
            let rax = regs.iter().find(|r| r.name == "rax").expect("rax listed");
            note(format!(
                "read without flags: {:?}",
                rax.read().map_err(|e| e.to_string())
            ));
        });
        Ok(())
    }
}

#[test]
fn memory_and_registers_go_through_real_glib_arrays_and_respect_flags() {
    SEEN.lock().unwrap().clear();
    let mut host = MockHost::system(1);
    crate::plugin::register_plugin(GuestState);
    crate::install::set_installer("guest-state", crate::plugin::install);
    assert_eq!(host.install(crate::install::qemu_plugin_install, &[]), 0);
    host.write_phys(0x2000, &[1, 2, 3, 4, 5, 6, 7, 8]);
    host.boot();
    host.run(&Workload::new().step(Block::synthetic(0x1000, 3), 1));
    let mut seen = SEEN.lock().unwrap().clone();
    let found = FOUND.lock().unwrap().clone();
    assert_eq!(found[0], "Ok(\"rbx\")");
    assert!(
        found[1].contains("no register named `x99` (it has: rax, rbx"),
        "{}",
        found[1]
    );
    assert_eq!(seen[0], "mem Ok([1, 2, 3, 4, 5, 6, 7, 8])");
    let into = seen
        .iter()
        .position(|l| l.starts_with("read_into"))
        .unwrap();
    assert_eq!(
        seen.remove(into),
        "read_into (Ok(8), Ok(8)) [1, 0, 0, 0] [1, 0, 0, 0, 0, 0, 0, 0, 170, 170]"
    );
    // The mock's register file holds (vcpu << 16) | register number: rbx is register 1.
    assert_eq!(
        seen[1],
        format!("rbx Ok({:?})", 1u64.to_le_bytes().to_vec())
    );
    // Feature `num-traits`: the same bytes as integers, and a wrong size is an error.
    #[cfg(feature = "num-traits")]
    let seen = {
        assert_eq!(
            seen[2],
            format!(
                "rbx as integers: Ok(1) Ok({}) Err(\"invalid size 4 for a read of register rbx\")",
                1u64 << 56
            )
        );
        let mut seen = seen;
        seen.remove(2);
        seen
    };
    #[cfg(since_api_5)]
    {
        assert_eq!(
            seen[2],
            "write with R_REGS: Err(\"writing register rbx failed (does the callback have QEMU_PLUGIN_CB_RW_REGS?)\")"
        );
        assert_eq!(seen[3], "write with RW_REGS: Ok(())");
        assert_eq!(host.register(0, "rax"), Some(7u64.to_le_bytes().to_vec()));
        // Refused by the crate under API 6+, before QEMU sees it (the mock records a
        // violation, as QEMU 11 aborts, if a write reaches it); API 5 does not say.
        let expect = if cfg!(since_api_6) {
            "write rip: read-only true Err(\"register rip is read-only (QEMU 11 aborts on a write to it; a callback changes the PC by returning the new one from `InsnTranslation::on_exec_redirect`)\")"
        } else {
            "write rip: read-only false Ok(())"
        };
        assert_eq!(seen[4], expect);
    }
    assert_eq!(
        seen.last().unwrap(),
        "read without flags: Err(\"reading register rax failed (does the callback have register access?)\")"
    );
    assert!(host.violations().is_empty(), "{:?}", host.violations());
}

/// Time control: QEMU hands it to the first plugin that asks (system mode only), and the
/// handle moves the virtual clock, through the method and the free function alike.
#[test]
fn time_control_goes_to_the_first_asker_and_moves_the_virtual_clock() {
    let host = MockHost::system(1);
    assert_eq!(host.virtual_time_ns(), None);
    let time = crate::qemu_plugin_request_time_control().expect("the first request is granted");
    assert!(
        crate::qemu_plugin_request_time_control().is_none(),
        "a second request is refused"
    );
    time.update_ns(1_500);
    assert_eq!(host.virtual_time_ns(), Some(1_500));
    crate::qemu_plugin_update_ns(&time, 2_000);
    assert_eq!(host.virtual_time_ns(), Some(2_000));
}
