//! Placeholder: the 10.1.0-v2-style instruction counter (state behind the plugin mutex)
//! used by the real-QEMU performance comparison is being written.
use qemu_plugin::{HasCallbacks, Register, register};
struct Placeholder;
impl Register for Placeholder {}
impl HasCallbacks for Placeholder {}
register!(Placeholder);
