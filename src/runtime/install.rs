//! Installing a `PerVcpu` plugin: build it from its arguments, publish its runtime,
//! register the hooks, then hand the plugin its [`Handle`].

use super::handle::Handle;
use super::installed::Runtime;
use super::per_vcpu::PerVcpu;
use super::{barrier, hooks, inline, process, target};
use crate::error::Result;
use crate::{Args, Info, PluginId};

/// Installs plugin type `P`: the installer that [`per_vcpu!`](crate::per_vcpu) registers.
#[doc(hidden)]
pub fn install<P: PerVcpu>(id: PluginId, args: &Args, info: &Info) -> Result<()> {
    barrier::init();
    // Counters left by an install that failed are not this runtime's.
    drop(inline::take_created());
    let (plugin, config) = P::new(args, info)?;
    let exec_syscalls = if info.is_user_mode() {
        target::exec_syscalls(info).unwrap_or_else(|| {
            crate::api::misc::outs_raw(&format!(
                "{}: the runtime does not know target {}'s execve syscalls: a successful \
                 execve will lose what was counted since the last report\n",
                crate::identity::name(),
                info.target_name
            ));
            [-1, -1]
        })
    } else {
        [-1, -1]
    };
    let rt = Runtime::publish(plugin, config, id, exec_syscalls);
    hooks::register::<P>(id, rt)?;
    process::arm();
    rt.plugin.started(Handle::new(rt))
}
