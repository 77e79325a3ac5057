//! `qemu-plugin-bundle`: makes one plugin file for every QEMU out of a plugin's builds
//! for several plugin APIs.
//!
//! ```text
//! qemu-plugin-bundle -o libicount-any.so [--loader libqemu_plugin_any.so] BUILD.so...
//! ```
//!
//! Each build's API is read from its own exported `qemu_plugin_version`; the builds are
//! appended, with an index, to a copy of the loader (by default the
//! `libqemu_plugin_any.so` next to this program, where cargo puts both).

#[path = "../elf.rs"]
mod elf;
// Shared with the loader, which reads what this writes.
#[allow(dead_code)]
#[path = "../format.rs"]
mod format;

use std::path::PathBuf;
use std::process::ExitCode;

use format::Entry;

const USAGE: &str = "usage: qemu-plugin-bundle -o OUT.so [--loader LOADER.so] BUILD.so...";

struct Options {
    out: PathBuf,
    loader: Option<PathBuf>,
    builds: Vec<PathBuf>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut out = None;
    let mut loader = None;
    let mut builds = Vec::new();
    let mut args = args;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-o" | "--output" => out = Some(args.next().ok_or("-o needs a path")?.into()),
            "--loader" => loader = Some(args.next().ok_or("--loader needs a path")?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => builds.push(a.into()),
        }
    }
    let out = out.ok_or_else(|| format!("no output file\n{USAGE}"))?;
    if builds.is_empty() {
        return Err(format!("no plugin builds given\n{USAGE}"));
    }
    Ok(Options {
        out,
        loader,
        builds,
    })
}

fn default_loader() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    Ok(exe.with_file_name("libqemu_plugin_any.so"))
}

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn bundle(o: &Options) -> Result<String, String> {
    let loader_path = match &o.loader {
        Some(p) => p.clone(),
        None => default_loader()?,
    };
    let mut file = read(&loader_path)?;
    if file.ends_with(&format::MAGIC) {
        return Err(format!(
            "{} is already a bundle; give the bare loader",
            loader_path.display()
        ));
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut summary = Vec::new();
    for path in &o.builds {
        let bytes = read(path)?;
        let exports =
            elf::plugin_exports(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let api = u32::try_from(exports.version)
            .ok()
            .filter(|&a| a <= format::NEWEST_API)
            .ok_or_else(|| {
                format!(
                    "{}: declares plugin API {}, which no QEMU has",
                    path.display(),
                    exports.version
                )
            })?;
        if let Some(twin) = entries.iter().position(|e| e.api == api) {
            return Err(format!(
                "{} and {} are both built for plugin API {api}",
                o.builds[twin].display(),
                path.display()
            ));
        }
        entries.push(Entry {
            api,
            offset: file.len() as u64,
            len: bytes.len() as u64,
        });
        summary.push(format!("v{api} {} ({} bytes)", path.display(), bytes.len()));
        file.extend_from_slice(&bytes);
    }
    file.extend_from_slice(&format::encode_index(&entries));
    let tmp = o.out.with_extension("so.tmp");
    std::fs::write(&tmp, &file).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    Ok(format!(
        "{}: {} builds\n  {}",
        o.out.display(),
        entries.len(),
        summary.join("\n  ")
    ))
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)).and_then(|o| bundle(&o)) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qemu-plugin-bundle: {e}");
            ExitCode::FAILURE
        }
    }
}
