//! # qemu-plugin-any: one plugin file for every QEMU
//!
//! QEMU loads a plugin only if the plugin's exported `qemu_plugin_version` lies in
//! QEMU's own window of plugin APIs, and the APIs differ in the shapes of their
//! callbacks, so a `qemu-plugin` plugin is built for one API at a time (its
//! `plugin-api-vN` feature). This crate makes one file out of several such builds: the
//! `qemu-plugin-bundle` program appends the builds to this crate's loader (a small
//! shared object), and when QEMU loads the file:
//!
//! 1. the loader's constructor asks the process which plugin API functions QEMU exports
//!    (`detect`), chooses the bundled build for that API (`choose`), and stores its API
//!    in `qemu_plugin_version`, which QEMU reads right after;
//! 2. QEMU checks that number against its window, exactly as for any plugin, and calls
//!    the loader's `qemu_plugin_install`;
//! 3. that loads the chosen build from the file (`load`) and hands QEMU's call on to the
//!    build's own `qemu_plugin_install`, unchanged. From then on QEMU calls the build's
//!    callbacks directly: the loader is on no path after installation.
//!
//! Soundness rests on one rule: the loader never has a build speak an API that QEMU did
//! not accept. Each build's API is read from its own ELF exports (the bundler) and again
//! after loading it; the exported version is the chosen build's; and where the loader
//! cannot tell two APIs apart (6 and 7: QEMU 11.0 and 11.1 export the same functions) it
//! exports the one it chose and QEMU's own check refuses it if it is wrong.
//!
//! Set `QEMU_PLUGIN_ANY_VERBOSE=1` to have the loader say what it chose, on stderr.

mod choose;
mod detect;
mod ffi;
// Shared with the bundler (src/bin), which writes what the loader reads: each side
// leaves the other's half unused.
#[allow(dead_code)]
mod format;
mod load;

use std::ffi::{CString, c_char, c_int, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use choose::Choice;
use detect::Speaks;

/// The plugin API the chosen build speaks, read by QEMU after the loader's constructor
/// chose it (-1 until then, which every QEMU refuses).
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
pub static qemu_plugin_version: AtomicI32 = AtomicI32::new(-1);

/// What the constructor found and chose.
struct Decision {
    speaks: Speaks,
    bundle: Result<load::Bundle, load::LoadError>,
    choice: Choice,
}

static DECISION: OnceLock<Decision> = OnceLock::new();

/// Whether the running process exports `name` (QEMU exports its plugin API).
fn process_exports(name: &str) -> bool {
    let Ok(name) = CString::new(name) else {
        return false;
    };
    // SAFETY: `name` is NUL-terminated; `RTLD_DEFAULT` searches the global scope and
    // returns NULL when the symbol is absent. Nothing is called through the result.
    !unsafe { ffi::dlsym(ffi::RTLD_DEFAULT, name.as_ptr()) }.is_null()
}

fn decide() -> Decision {
    let speaks = detect::speaks(process_exports);
    let bundle = load::own_bundle();
    let choice = match &bundle {
        Ok(b) => {
            let apis: Vec<u32> = b.entries.iter().map(|e| e.api).collect();
            choose::choose(speaks, &apis)
        }
        Err(_) if speaks == Speaks::NotQemu => choose::choose(speaks, &[]),
        Err(e) => Choice::Refuse {
            export: speaks.candidates().first().map_or(-1, |&a| a as i32),
            why: e.to_string(),
        },
    };
    Decision {
        speaks,
        bundle,
        choice,
    }
}

/// Runs when the dynamic linker loads the file, before QEMU reads `qemu_plugin_version`.
extern "C" fn on_load() {
    // A panic must not unwind into the dynamic linker; if one happened the version stays
    // -1 and QEMU refuses the plugin with its own message.
    let _ = std::panic::catch_unwind(|| {
        let d = DECISION.get_or_init(decide);
        qemu_plugin_version.store(d.choice.exported_version(), Ordering::Release);
    });
}

#[used]
#[unsafe(link_section = ".init_array")]
static ON_LOAD: extern "C" fn() = on_load;

fn verbose() -> bool {
    std::env::var_os("QEMU_PLUGIN_ANY_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// QEMU's window of plugin APIs, from the start of `qemu_info_t` (`target_name`, then
/// `version.min` and `version.cur`, in that order in every API).
///
/// # Safety
/// `info` is the `qemu_info_t` QEMU passed to `qemu_plugin_install`.
unsafe fn qemu_window(info: *const c_void) -> (c_int, c_int) {
    // SAFETY: the caller passes QEMU's `qemu_info_t`, whose first fields are a pointer
    // and two `int`s in every API version; the reads stay within it.
    unsafe {
        let v = info
            .cast::<u8>()
            .add(std::mem::size_of::<*const c_char>())
            .cast::<c_int>();
        (v.read(), v.add(1).read())
    }
}

/// Finds the chosen build's `qemu_plugin_install`, or says why there is none.
fn prepare(window: (c_int, c_int)) -> Result<load::InstallFn, String> {
    let d = DECISION.get_or_init(decide);
    let api = match &d.choice {
        Choice::Load { api } => *api,
        Choice::Refuse { why, .. } => return Err(why.clone()),
    };
    let (min, cur) = window;
    if (api as c_int) < min || (api as c_int) > cur {
        return Err(format!(
            "QEMU accepts plugin APIs {min} to {cur}, not {api}"
        ));
    }
    let bundle = d.bundle.as_ref().map_err(|e| e.to_string())?;
    let install = load::load_build(bundle, api).map_err(|e| e.to_string())?;
    if verbose() {
        eprintln!(
            "qemu-plugin-any: QEMU accepts plugin APIs {min} to {cur} (detected {:?}); \
             loaded the API-{api} build of {}",
            d.speaks,
            bundle.path.display()
        );
    }
    Ok(install)
}

/// QEMU's entry point: loads the chosen build and passes QEMU's call on to it.
///
/// # Safety
/// Called by QEMU, once, with the arguments of its `qemu_plugin_install` declaration.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qemu_plugin_install(
    id: u64,
    info: *const c_void,
    argc: c_int,
    argv: *mut *mut c_char,
) -> c_int {
    // SAFETY: QEMU passes its `qemu_info_t` (caller contract above).
    let window = unsafe { qemu_window(info) };
    match std::panic::catch_unwind(|| prepare(window)) {
        // SAFETY: `install` is the chosen build's `qemu_plugin_install`, of QEMU's
        // declared signature; it gets QEMU's own arguments, on QEMU's thread, during
        // QEMU's install call, for a build of an API this QEMU accepted.
        Ok(Ok(install)) => unsafe { install(id, info, argc, argv) },
        Ok(Err(why)) => {
            eprintln!("qemu-plugin-any: {why}");
            -1
        }
        Err(_) => {
            eprintln!("qemu-plugin-any: internal error while choosing a build");
            -1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The constructor also ran in this test executable, which is not QEMU and has no
    /// bundle appended: it must have chosen to refuse, and exported -1.
    #[test]
    fn outside_qemu_the_constructor_refuses() {
        let d = DECISION.get().expect("the constructor ran at load");
        assert_eq!(d.speaks, Speaks::NotQemu);
        assert!(matches!(
            d.bundle,
            Err(load::LoadError::Format(format::FormatError::NoTrailer))
        ));
        assert_eq!(d.choice.exported_version(), -1);
        assert_eq!(qemu_plugin_version.load(Ordering::Acquire), -1);
        let why = prepare((0, 7)).expect_err("nothing to load");
        assert!(why.contains("not loaded by QEMU"), "{why}");
    }
}
