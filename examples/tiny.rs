//! `tiny`: a plugin in the style of the `qemu-plugin` 10.1.0-v2 crate, unchanged: it
//! prints each translated instruction's address and disassembly, and (with `exec=on`)
//! each executed instruction's vCPU and address.
//!
//! Usage: `qemu-x86_64 -plugin target/release/examples/libtiny.so[,exec=on] -d plugin ./prog`

use qemu_plugin::{
    Error, HasCallbacks, Info, PluginId, Register, Result, TranslationBlock, Value, install::Args,
    qemu_plugin_outs, register,
};

#[derive(Default)]
struct TinyTrace {
    exec: bool,
}

impl Register for TinyTrace {
    fn register(&mut self, _id: PluginId, args: &Args, _info: &Info) -> Result<()> {
        self.exec = match args.parsed.get("exec") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::msg(format!("exec must be on or off, not {other:?}")));
            }
        };
        Ok(())
    }
}

impl HasCallbacks for TinyTrace {
    fn on_translation_block_translate(
        &mut self,
        _id: PluginId,
        tb: TranslationBlock,
    ) -> Result<()> {
        for (idx, insn) in tb.instructions().enumerate() {
            let vaddr = insn.vaddr();
            let disas = insn.disas()?;
            if idx == 0 {
                qemu_plugin_outs(format!("====TB: {vaddr:08x}\n"))?;
            }
            qemu_plugin_outs(format!("{vaddr:08x}: {disas}\n"))?;
            if self.exec {
                insn.register_execute_callback(move |vcpu| {
                    let _ = qemu_plugin_outs(format!("[{vcpu}] exec {vaddr:08x}\n"));
                });
            }
        }
        Ok(())
    }
}

register!(TinyTrace::default());
