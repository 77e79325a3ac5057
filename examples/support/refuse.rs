//! A plugin that only refuses to install, for the examples whose QEMU function does not
//! exist under the plugin API they are built for (`ips` before API 4, say): QEMU then
//! prints one line naming the function and the first QEMU that has it. Shared through
//! `#[path]`.

/// Declares `pub struct $name` as a [`PerVcpu`](qemu_plugin::PerVcpu) plugin whose
/// install fails with [`Failure::Unsupported`](qemu_plugin::Failure::Unsupported) for
/// `$api`, first in QEMU `$needs`, and registers it.
macro_rules! refuse_to_install {
    ($name:ident, $api:literal, $needs:literal) => {
        /// The plugin, which refuses to install under this plugin API.
        pub struct $name;

        impl qemu_plugin::PerVcpu for $name {
            type Config = ();
            type Shard = ();
            type Total = ();

            fn new(
                _: &qemu_plugin::Args,
                _: &qemu_plugin::Info,
            ) -> qemu_plugin::Result<(Self, ())> {
                Err(qemu_plugin::Failure::Unsupported {
                    api: $api,
                    needs: $needs,
                }
                .into())
            }

            fn new_shard(&self, _: qemu_plugin::VCPUIndex) -> qemu_plugin::Result<()> {
                Ok(())
            }

            fn merge(&self, _: &mut (), _: qemu_plugin::Vcpu<Self>) -> qemu_plugin::Result<()> {
                Ok(())
            }

            fn on_exit(&self, _: ()) -> qemu_plugin::Result<()> {
                Ok(())
            }
        }

        qemu_plugin::per_vcpu!($name);
    };
}
