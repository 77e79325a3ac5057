//! `tiny`: a plugin in the style of the `qemu-plugin` 10.1.0-v2 crate, unchanged: it
//! prints each translated instruction's address and disassembly, and (with `exec=on`)
//! each executed instruction's vCPU and address. Any other argument is refused at install.
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
        // Refuse a key it does not know: a misspelt `exce=on` would otherwise run quietly
        // without the per-execution lines it asked for.
        let mut keys = args
            .raw
            .iter()
            .map(|a| a.split_once('=').map_or(&a[..], |(k, _)| k));
        if let Some(key) = keys.find(|k| *k != "exec") {
            let message = format!("unknown argument `{key}` (known arguments: exec)");
            return Err(Error::BoxedError(message.into()));
        }
        self.exec = match args.parsed.get("exec") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                // The text as given (the parsed `Value` would show `exec=02` as 2).
                let val = args.raw.iter().find_map(|a| a.strip_prefix("exec="));
                return Err(Error::InvalidBool {
                    name: "exec".into(),
                    val: val.unwrap_or_default().to_string(),
                });
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
