//! Build script of `qemu-plugin` (and, through `#[path]`, of `qemu-plugin-mock`).
//!
//! 1. **The plugin API cfgs.** The one selected `plugin-api-vN` feature becomes the cfgs
//!    `since_api_1` ... `since_api_N` ("this QEMU has what API k added", for every k <= N)
//!    and `qemu_api = "N"`. Code says `#[cfg(since_api_5)]` for an item QEMU 10.1 added,
//!    `#[cfg(not(since_api_7))]` for a shape QEMU 11.1 changed, so each API difference is
//!    one cfg on one item, and the versions compare as numbers. No feature, or more than
//!    one, sets `qemu_api_unselected` / `qemu_api_conflict`, which `lib.rs` turns into a
//!    `compile_error!` that says what to do.
//! 2. **`--export-dynamic`** lets the unit tests' mock host stand in for QEMU exactly as
//!    QEMU does. A plugin finds QEMU functions newer than its API (QEMU 10.2's
//!    discontinuity callback) with `dlsym` on the running process, where QEMU exports
//!    them. In the crate's own test and bench executables the mock host defines them, and
//!    `--export-dynamic` puts them in the executable's dynamic symbol table so that the
//!    same lookup finds them. For the shared objects (examples) the flag changes nothing:
//!    their exports are set by rustc's version script. It reaches no crate that depends on
//!    this one.

/// The newest plugin API a feature exists for.
const NEWEST_API: u32 = 7;

fn main() {
    for v in 1..=NEWEST_API {
        println!("cargo::rustc-check-cfg=cfg(since_api_{v})");
    }
    let values: Vec<String> = (0..=NEWEST_API).map(|v| format!("\"{v}\"")).collect();
    println!(
        "cargo::rustc-check-cfg=cfg(qemu_api, values({}))",
        values.join(", ")
    );
    println!("cargo::rustc-check-cfg=cfg(qemu_api_unselected)");
    println!("cargo::rustc-check-cfg=cfg(qemu_api_conflict)");

    let selected: Vec<u32> = (0..=NEWEST_API)
        .filter(|v| std::env::var_os(format!("CARGO_FEATURE_PLUGIN_API_V{v}")).is_some())
        .collect();
    match selected[..] {
        [api] => {
            println!("cargo::rustc-cfg=qemu_api=\"{api}\"");
            for v in 1..=api {
                println!("cargo::rustc-cfg=since_api_{v}");
            }
        }
        [] => println!("cargo::rustc-cfg=qemu_api_unselected"),
        _ => println!("cargo::rustc-cfg=qemu_api_conflict"),
    }

    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("qemu-plugin") {
        println!("cargo::rustc-link-arg=-Wl,--export-dynamic");
    }
}
