//! `per_vcpu!`: the macro that makes a `PerVcpu` type the plugin of its shared object.

/// Registers `P` as the plugin of this shared object: `per_vcpu!(MyPlugin);`.
#[macro_export]
macro_rules! per_vcpu {
    ($ty:ty) => {
        #[cfg_attr(target_os = "linux", unsafe(link_section = ".text.startup"))]
        extern "C" fn __qemu_plugin_per_vcpu_ctor() {
            $crate::install::set_installer(
                env!("CARGO_CRATE_NAME"),
                $crate::runtime::install::<$ty>,
            );
        }

        #[used]
        #[cfg_attr(target_os = "linux", unsafe(link_section = ".init_array"))]
        static __QEMU_PLUGIN_PER_VCPU_CTOR: extern "C" fn() = __qemu_plugin_per_vcpu_ctor;
    };
}
