//! Build script: lets the unit tests' mock host stand in for QEMU exactly as QEMU does.
//!
//! A plugin finds QEMU functions newer than its API (QEMU 10.2's discontinuity callback)
//! with `dlsym` on the running process, where QEMU exports them. In the crate's own test
//! and bench executables the mock host defines them, and `--export-dynamic` puts them in
//! the executable's dynamic symbol table so that the same lookup finds them. For the
//! shared objects (examples) the flag changes nothing: their exports are set by rustc's
//! version script. It reaches no crate that depends on this one.

fn main() {
    println!("cargo::rustc-link-arg=-Wl,--export-dynamic");
}
