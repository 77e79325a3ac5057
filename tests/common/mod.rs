//! Harness for the real-QEMU integration tests: finds the provisioned QEMU, builds the
//! example plugins and the guest programs once, runs QEMU with plugins and parses the
//! output formats of our examples and of QEMU's own reference plugins.
//!
//! Nothing here skips: if QEMU or the guest is missing, the test fails and says how to
//! provision it (`scripts/provision-qemu.sh`).

// Each integration test binary compiles this module and uses only part of it.
#![allow(dead_code)]
#![allow(unused_macros)]

/// `#[test]`s running each named function of the test file in one linux-user QEMU: a module
/// `$module` with one `#[test]` per function, calling it with `$q`.
macro_rules! tests_on {
    ($module:ident, $q:expr, [$($t:ident),* $(,)?]) => {
        mod $module {
            use super::*;
            $(
                #[test]
                fn $t() {
                    super::$t($q)
                }
            )*
        }
    };
}

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
/// `<target dir>/tmp`, which cargo provides to integration tests.
const TARGET_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");

/// How long one linux-user run may take before it counts as hung.
pub const USER_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one system-mode boot may take before it counts as hung.
pub const SYSTEM_TIMEOUT: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------- environment

/// Paths written by `scripts/provision-qemu.sh` into `$QEMU_PLUGIN_CACHE/env`.
#[derive(Debug)]
pub struct QemuEnv {
    pub qemu_user: PathBuf,
    pub qemu_system: PathBuf,
    pub qemu_src: PathBuf,
    pub ref_plugins: PathBuf,
    pub contrib_plugins: PathBuf,
    pub guest_kernel: PathBuf,
    pub guest_initrd: PathBuf,
    /// qemu-system-x86_64 11.1 (plugin API 7), from Debian sid in a private sysroot.
    pub qemu_system_11: PathBuf,
    /// qemu-x86_64 7.2 (plugin API 1), built from Debian bookworm's source.
    pub qemu_user_7_2: PathBuf,
    /// QEMU 7.2's reference plugins (`tests/plugin` there).
    pub ref_plugins_7_2: PathBuf,
    /// QEMU 7.2's source tree (its contrib plugins are built in `build/contrib/plugins`).
    pub qemu_src_7_2: PathBuf,
    /// qemu-system-x86_64 7.2 (plugin API 1), bookworm's binary in a private directory.
    pub qemu_system_7_2: PathBuf,
    /// qemu-aarch64 and qemu-riscv64 10.2 (plugin API 5), one build from QEMU 10.2's source.
    pub qemu_user_aarch64: PathBuf,
    pub qemu_user_riscv64: PathBuf,
    /// The reference and contrib plugins of that build (host code: they serve both).
    pub ref_plugins_arch: PathBuf,
    pub contrib_plugins_arch: PathBuf,
    /// Debian's cross compilers, for the aarch64 and riscv64 guest programs.
    pub cc_aarch64: PathBuf,
    pub cc_riscv64: PathBuf,
    /// qemu-system-aarch64 10.0 (plugin API 4, bookworm-backports) and 11.1 (API 7, sid).
    pub qemu_system_aarch64: PathBuf,
    pub qemu_system_aarch64_11: PathBuf,
    /// qemu-system-riscv64 11.1 (plugin API 7, sid).
    pub qemu_system_riscv64_11: PathBuf,
    /// The arm64 and riscv64 Linux guests: Debian kernels and busybox initramfs.
    pub guest_kernel_aarch64: PathBuf,
    pub guest_initrd_aarch64: PathBuf,
    pub guest_kernel_riscv64: PathBuf,
    pub guest_initrd_riscv64: PathBuf,
    /// QEMU 10.2's contrib plugins built for plugin API 4, for qemu-system-x86_64 10.0
    /// (those whose imports QEMU 10.0 has: all but `traps`).
    pub contrib_plugins_v4: PathBuf,
}

/// A guest architecture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arch {
    #[default]
    X86_64,
    Aarch64,
    Riscv64,
}

impl Arch {
    /// The C compiler for static guest programs of this architecture.
    pub fn cc(self) -> PathBuf {
        match self {
            Arch::X86_64 => PathBuf::from("gcc"),
            Arch::Aarch64 => qemu_env().cc_aarch64.clone(),
            Arch::Riscv64 => qemu_env().cc_riscv64.clone(),
        }
    }

    /// The binutils `nm` that reads this architecture's ELF files (beside the compiler).
    pub fn nm(self) -> PathBuf {
        match self {
            Arch::X86_64 => PathBuf::from("nm"),
            _ => {
                let cc = self.cc();
                let name = cc.file_name().expect("a file name").to_string_lossy();
                cc.with_file_name(name.replace("-gcc", "-nm"))
            }
        }
    }

    /// Lower-case name, as in target triples and file names.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
        }
    }
}

/// One of the provisioned linux-user QEMUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserQemu {
    /// qemu-x86_64 10.2.2 (plugin API 5).
    V10_2,
    /// qemu-x86_64 7.2 (plugin API 1).
    V7_2,
    /// qemu-aarch64 10.2.2 (plugin API 5).
    Aarch64,
    /// qemu-riscv64 10.2.2 (plugin API 5).
    Riscv64,
}

impl UserQemu {
    /// The binary.
    pub fn binary(self) -> &'static Path {
        let env = qemu_env();
        match self {
            UserQemu::V10_2 => &env.qemu_user,
            UserQemu::V7_2 => &env.qemu_user_7_2,
            UserQemu::Aarch64 => &env.qemu_user_aarch64,
            UserQemu::Riscv64 => &env.qemu_user_riscv64,
        }
    }

    /// The guest architecture it runs.
    pub fn arch(self) -> Arch {
        match self {
            UserQemu::V10_2 | UserQemu::V7_2 => Arch::X86_64,
            UserQemu::Aarch64 => Arch::Aarch64,
            UserQemu::Riscv64 => Arch::Riscv64,
        }
    }

    /// A reference plugin of this QEMU's own source, e.g. `insn` -> `libinsn.so`.
    pub fn ref_plugin(self, name: &str) -> PathBuf {
        let env = qemu_env();
        let dir = match self {
            UserQemu::V10_2 => &env.ref_plugins,
            UserQemu::V7_2 => &env.ref_plugins_7_2,
            UserQemu::Aarch64 | UserQemu::Riscv64 => &env.ref_plugins_arch,
        };
        plugin_file(dir, name)
    }

    /// A contrib plugin of this QEMU's own source, e.g. `hotblocks`.
    pub fn contrib_plugin(self, name: &str) -> PathBuf {
        let env = qemu_env();
        let dir = match self {
            UserQemu::V10_2 => env.contrib_plugins.clone(),
            UserQemu::V7_2 => env.qemu_src_7_2.join("build/contrib/plugins"),
            UserQemu::Aarch64 | UserQemu::Riscv64 => env.contrib_plugins_arch.clone(),
        };
        plugin_file(&dir, name)
    }

    /// The plugin API the examples are built for to load into this QEMU.
    pub fn api(self) -> Api {
        match self {
            UserQemu::V10_2 | UserQemu::Aarch64 | UserQemu::Riscv64 => Api::V5,
            UserQemu::V7_2 => Api::V1,
        }
    }
}

fn plugin_file(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("lib{name}.so"));
    assert!(
        p.is_file(),
        "QEMU plugin {} is missing; {}",
        p.display(),
        provision_hint()
    );
    p
}

fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("QEMU_PLUGIN_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME is not set; set QEMU_PLUGIN_CACHE");
    Path::new(&home).join(".cache/qemu-plugin-rs")
}

fn provision_hint() -> String {
    format!(
        "run `{MANIFEST_DIR}/scripts/provision-qemu.sh` first (it builds a plugin-capable \
         qemu-x86_64, installs qemu-system-x86_64 and a guest, and writes {}/env)",
        cache_dir().display()
    )
}

/// The provisioned QEMU environment; panics with a provisioning hint if anything is missing.
pub fn qemu_env() -> &'static QemuEnv {
    static ENV: OnceLock<QemuEnv> = OnceLock::new();
    ENV.get_or_init(load_env)
}

fn load_env() -> QemuEnv {
    let file = cache_dir().join("env");
    let text = fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "cannot read the QEMU environment file {}: {e}; {}",
            file.display(),
            provision_hint()
        )
    });
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            vars.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let get = |key: &str, override_var: Option<&str>| -> PathBuf {
        if let Some(ov) = override_var.and_then(std::env::var_os) {
            return PathBuf::from(ov);
        }
        match vars.get(key) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => panic!("{} has no {key}=...; {}", file.display(), provision_hint()),
        }
    };
    let env = QemuEnv {
        qemu_user: get("QEMU_USER", Some("QEMU_PLUGIN_QEMU_USER")),
        qemu_system: get("QEMU_SYSTEM", Some("QEMU_PLUGIN_QEMU_SYSTEM")),
        qemu_src: get("QEMU_SRC", None),
        ref_plugins: get("QEMU_REF_PLUGINS", None),
        contrib_plugins: get("QEMU_CONTRIB_PLUGINS", None),
        guest_kernel: get("GUEST_KERNEL", None),
        guest_initrd: get("GUEST_INITRD", None),
        qemu_system_11: get("QEMU_SYSTEM_11", Some("QEMU_PLUGIN_QEMU_SYSTEM_11")),
        qemu_user_7_2: get("QEMU_USER_7_2", Some("QEMU_PLUGIN_QEMU_USER_7_2")),
        ref_plugins_7_2: get("QEMU_REF_PLUGINS_7_2", None),
        qemu_src_7_2: get("QEMU_SRC_7_2", None),
        qemu_system_7_2: get("QEMU_SYSTEM_7_2", Some("QEMU_PLUGIN_QEMU_SYSTEM_7_2")),
        qemu_user_aarch64: get("QEMU_USER_AARCH64", None),
        qemu_user_riscv64: get("QEMU_USER_RISCV64", None),
        ref_plugins_arch: get("QEMU_REF_PLUGINS_ARCH", None),
        contrib_plugins_arch: get("QEMU_CONTRIB_PLUGINS_ARCH", None),
        cc_aarch64: get("CC_AARCH64", None),
        cc_riscv64: get("CC_RISCV64", None),
        qemu_system_aarch64: get("QEMU_SYSTEM_AARCH64", None),
        qemu_system_aarch64_11: get("QEMU_SYSTEM_AARCH64_11", None),
        qemu_system_riscv64_11: get("QEMU_SYSTEM_RISCV64_11", None),
        guest_kernel_aarch64: get("GUEST_KERNEL_AARCH64", None),
        guest_initrd_aarch64: get("GUEST_INITRD_AARCH64", None),
        guest_kernel_riscv64: get("GUEST_KERNEL_RISCV64", None),
        guest_initrd_riscv64: get("GUEST_INITRD_RISCV64", None),
        contrib_plugins_v4: get("QEMU_CONTRIB_PLUGINS_V4", None),
    };
    for (what, path) in [
        ("qemu-x86_64 (QEMU_USER)", &env.qemu_user),
        ("qemu-system-x86_64 (QEMU_SYSTEM)", &env.qemu_system),
        ("guest kernel (GUEST_KERNEL)", &env.guest_kernel),
        ("guest initramfs (GUEST_INITRD)", &env.guest_initrd),
        (
            "qemu-system-x86_64 11.1 wrapper (QEMU_SYSTEM_11)",
            &env.qemu_system_11,
        ),
        ("qemu-x86_64 7.2 (QEMU_USER_7_2)", &env.qemu_user_7_2),
        (
            "qemu-system-x86_64 7.2 wrapper (QEMU_SYSTEM_7_2)",
            &env.qemu_system_7_2,
        ),
        ("qemu-aarch64 (QEMU_USER_AARCH64)", &env.qemu_user_aarch64),
        ("qemu-riscv64 (QEMU_USER_RISCV64)", &env.qemu_user_riscv64),
        ("aarch64 cross compiler (CC_AARCH64)", &env.cc_aarch64),
        ("riscv64 cross compiler (CC_RISCV64)", &env.cc_riscv64),
        (
            "qemu-system-aarch64 (QEMU_SYSTEM_AARCH64)",
            &env.qemu_system_aarch64,
        ),
        (
            "qemu-system-aarch64 11.1 wrapper (QEMU_SYSTEM_AARCH64_11)",
            &env.qemu_system_aarch64_11,
        ),
        (
            "qemu-system-riscv64 11.1 wrapper (QEMU_SYSTEM_RISCV64_11)",
            &env.qemu_system_riscv64_11,
        ),
        (
            "arm64 guest kernel (GUEST_KERNEL_AARCH64)",
            &env.guest_kernel_aarch64,
        ),
        (
            "arm64 guest initramfs (GUEST_INITRD_AARCH64)",
            &env.guest_initrd_aarch64,
        ),
        (
            "riscv64 guest kernel (GUEST_KERNEL_RISCV64)",
            &env.guest_kernel_riscv64,
        ),
        (
            "riscv64 guest initramfs (GUEST_INITRD_RISCV64)",
            &env.guest_initrd_riscv64,
        ),
    ] {
        assert!(
            path.is_file(),
            "{what} not found at {}; {}",
            path.display(),
            provision_hint()
        );
    }
    env
}

/// A reference plugin built from QEMU 10.2's tests/tcg/plugins, e.g. `insn` →
/// `libinsn.so`.
pub fn ref_plugin(name: &str) -> PathBuf {
    UserQemu::V10_2.ref_plugin(name)
}

/// A contrib plugin built for plugin API 4, for qemu-system-x86_64 10.0 (system mode).
pub fn contrib_plugin_v4(name: &str) -> PathBuf {
    plugin_file(&qemu_env().contrib_plugins_v4, name)
}

/// A plugin built from QEMU's contrib/plugins, e.g. `hotblocks`.
pub fn contrib_plugin(name: &str) -> PathBuf {
    let p = qemu_env().contrib_plugins.join(format!("lib{name}.so"));
    assert!(
        p.is_file(),
        "QEMU contrib plugin {} is missing; {}",
        p.display(),
        provision_hint()
    );
    p
}

// ---------------------------------------------------------------- building

/// The cargo target directory the tests build into.
pub fn target_dir() -> PathBuf {
    Path::new(TARGET_TMPDIR)
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_path_buf()
}

/// Which plugin API the examples are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Default features, for qemu-x86_64 10.2 (linux-user).
    V5,
    /// `--no-default-features --features plugin-api-v4`, for qemu-system-x86_64 10.0.
    V4,
    /// `--no-default-features --features plugin-api-v7`, for qemu-system-x86_64 11.1.
    V7,
    /// `--no-default-features --features plugin-api-v1`, for QEMU 7.2.
    V1,
    /// Plugin API 0 (QEMU 4.2 to 7.1; QEMU 7.2 still loads it).
    V0,
    /// Plugin API 2 (QEMU 9.0; QEMU 10.2 still loads it).
    V2,
    /// Plugin API 3 (QEMU 9.1; QEMU 10.2 still loads it).
    V3,
}

impl Api {
    /// The provisioned linux-user QEMU that loads plugins of this API: 7.2 accepts APIs
    /// 0 and 1, 10.2 accepts 2 to 5. (None here accepts 6 or 7.)
    pub fn user_qemu(self) -> UserQemu {
        match self {
            Api::V0 | Api::V1 => UserQemu::V7_2,
            Api::V2 | Api::V3 | Api::V4 | Api::V5 => UserQemu::V10_2,
            Api::V7 => panic!("no linux-user QEMU with plugin API 7 can be had here"),
        }
    }

    /// The plugin API version number.
    pub fn number(self) -> u32 {
        match self {
            Api::V0 => 0,
            Api::V1 => 1,
            Api::V2 => 2,
            Api::V3 => 3,
            Api::V4 => 4,
            Api::V5 => 5,
            Api::V7 => 7,
        }
    }

    /// The cargo feature that selects this API.
    pub fn feature(self) -> &'static str {
        match self {
            Api::V4 => "plugin-api-v4",
            Api::V5 => "plugin-api-v5",
            Api::V7 => "plugin-api-v7",
            Api::V1 => "plugin-api-v1",
            Api::V0 => "plugin-api-v0",
            Api::V2 => "plugin-api-v2",
            Api::V3 => "plugin-api-v3",
        }
    }
}

fn build_examples(api: Api) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(MANIFEST_DIR)
        .args(["build", "--release", "--examples"]);
    // A target dir per API, so that this build never waits on (or invalidates) the
    // `cargo test` build that runs it, nor another API's.
    let t = target_dir().join(format!("api-{:?}", api).to_lowercase());
    cmd.args(["--no-default-features", "--features", api.feature()])
        .arg("--target-dir")
        .arg(&t);
    let out_dir = t.join("release/examples");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the examples: {e}"));
    assert!(
        out.status.success(),
        "building the example plugins ({api:?}) failed: {:?}\n--- stderr ---\n{}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out_dir
}

/// Path of an example plugin (`target/.../examples/lib<name>.so`), building all examples
/// for `api` once per test binary.
pub fn example(api: Api, name: &str) -> PathBuf {
    static V5: OnceLock<PathBuf> = OnceLock::new();
    static V4: OnceLock<PathBuf> = OnceLock::new();
    static V7: OnceLock<PathBuf> = OnceLock::new();
    static V1: OnceLock<PathBuf> = OnceLock::new();
    let dir = match api {
        Api::V5 => V5.get_or_init(|| build_examples(Api::V5)),
        Api::V4 => V4.get_or_init(|| build_examples(Api::V4)),
        Api::V7 => V7.get_or_init(|| build_examples(Api::V7)),
        Api::V1 => V1.get_or_init(|| build_examples(Api::V1)),
        other => panic!("the examples are not built for {other:?}"),
    };
    let p = dir.join(format!("lib{name}.so"));
    assert!(
        p.is_file(),
        "example plugin {} was not produced by the build",
        p.display()
    );
    p
}

/// Compiles `tests/guests/<name>.c` with `gcc -O1 -static -pthread`, caching the binary
/// under the target dir and rebuilding it when the source is newer.
pub fn guest(name: &str) -> PathBuf {
    guest_for(Arch::X86_64, name)
}

/// The defined symbols of the ELF file `program`, by binutils' `nm`: (address, type
/// letter, name) in `nm`'s order.
pub fn elf_symbols(arch: Arch, program: &Path) -> Vec<(u64, String, String)> {
    let out = Command::new(arch.nm())
        .arg(program)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", arch.nm().display()));
    assert!(out.status.success(), "nm failed on {}", program.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [addr, kind, name] => Some((
                u64::from_str_radix(addr, 16).expect("hex address"),
                kind.to_string(),
                name.to_string(),
            )),
            _ => None,
        })
        .collect()
}

/// The address of the global symbol `name` in the ELF file `program`, by binutils' `nm`.
pub fn symbol_address(arch: Arch, program: &Path, name: &str) -> u64 {
    elf_symbols(arch, program)
        .into_iter()
        .find(|(_, _, n)| n == name)
        .unwrap_or_else(|| panic!("{name} not in {}'s symbols", program.display()))
        .0
}

/// [`guest`] for `arch`, with that architecture's cross compiler (x86_64 guests stay in
/// `guests/`, others go to `guests/<arch>/`).
pub fn guest_for(arch: Arch, name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let src = Path::new(MANIFEST_DIR).join(format!("tests/guests/{name}.c"));
    let mut dir = Path::new(TARGET_TMPDIR).join("guests");
    if arch != Arch::X86_64 {
        dir = dir.join(arch.name());
    }
    fs::create_dir_all(&dir).expect("create guest dir");
    let bin = dir.join(name);
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let src_time = mtime(&src).unwrap_or_else(|| panic!("guest source {} missing", src.display()));
    if mtime(&bin).is_some_and(|t| t >= src_time) {
        return bin;
    }
    // Other test binaries may compile the same guest concurrently: write a private file
    // and rename it into place.
    let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
    let out = Command::new(arch.cc())
        .args(["-O1", "-static", "-pthread", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} to compile the guest programs: {e}; {}",
                arch.cc().display(),
                provision_hint()
            )
        });
    assert!(
        out.status.success(),
        "gcc failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    fs::rename(&tmp, &bin).expect("rename guest binary");
    bin
}

// ---------------------------------------------------------------- running

/// One `-plugin` option: a shared object and its `key=value` arguments.
#[derive(Clone, Debug)]
pub struct Plugin {
    pub path: PathBuf,
    pub args: Vec<String>,
}

impl Plugin {
    pub fn new(path: PathBuf, args: &[&str]) -> Self {
        Plugin {
            path,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn option(&self) -> String {
        let mut s = self.path.display().to_string();
        // `path,key=value,...`; QEMU's option syntax escapes a comma by doubling it.
        // (`arg=key=value` also works but is deprecated.)
        for a in &self.args {
            s.push(',');
            s.push_str(&a.replace(',', ",,"));
        }
        s
    }
}

/// What one QEMU run produced.
#[derive(Debug)]
pub struct Run {
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The `-d plugin -D <file>` log: everything plugins wrote with `qemu_plugin_outs`.
    pub log: String,
    pub elapsed: Duration,
    pub dir: PathBuf,
}

impl Run {
    /// A description for assertion messages (output truncated to keep failures readable).
    pub fn describe(&self) -> String {
        fn tail(s: &str) -> &str {
            let max = 4000;
            if s.len() <= max {
                s
            } else {
                let mut i = s.len() - max;
                while !s.is_char_boundary(i) {
                    i += 1;
                }
                &s[i..]
            }
        }
        format!(
            "command: {}\nstatus: {:?}, {:.2?}\n--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}\n--- plugin log (tail) ---\n{}",
            self.cmdline,
            self.status,
            self.elapsed,
            tail(&self.stdout),
            tail(&self.stderr),
            tail(&self.log)
        )
    }

    /// Panics unless QEMU refused a plugin at install: exit status 1, QEMU's "Could not
    /// load plugin" on stderr, and none of the guest's output (`guest_mark`). Returns
    /// stderr and stdout together, for the caller to check what the message names.
    pub fn assert_refused_at_install(&self, guest_mark: &str) -> String {
        assert_eq!(
            self.status.code(),
            Some(1),
            "the plugin should be refused\n{}",
            self.describe()
        );
        assert!(
            self.stderr.contains("Could not load plugin"),
            "{}",
            self.describe()
        );
        assert!(
            !self.stdout.contains(guest_mark),
            "the guest ran\n{}",
            self.describe()
        );
        format!("{}\n{}", self.stderr, self.stdout)
    }

    /// Panics unless QEMU exited with status 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "QEMU did not exit successfully\n{}",
            self.describe()
        );
        self
    }
}

/// A fresh directory for one run's files, under the target dir.
pub fn run_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(TARGET_TMPDIR)
        .join("qemu-runs")
        .join(format!("{label}-{n}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create run dir");
    dir
}

/// Runs the command made by `make_cmd` (given the plugin log path, which it must pass
/// as `-d plugin -D <log>`), with stdout and stderr captured in files and a timeout.
fn run(label: &str, timeout: Duration, make_cmd: impl FnOnce(&Path) -> Command) -> Run {
    let dir = run_dir(label);
    let log_path = dir.join("plugin.log");
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let mut cmd = make_cmd(&log_path);
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"));
    let cmdline = format!("{cmd:?}");
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}; {}", provision_hint()));
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for QEMU") {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "QEMU did not finish within {timeout:?}: {cmdline}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    Run {
        cmdline,
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
        log: read(&log_path),
        elapsed,
        dir,
    }
}

fn plugin_args(cmd: &mut Command, plugins: &[Plugin]) {
    for p in plugins {
        cmd.arg("-plugin").arg(p.option());
    }
}

/// Every QEMU run has the `qemu-plugin-any` loader say on stderr which build it loaded
/// (it is the only reader of this variable; `tests/qemu_any.rs` checks the line).
const ANY_VERBOSE: (&str, &str) = ("QEMU_PLUGIN_ANY_VERBOSE", "1");

/// Runs `qemu-x86_64` with `plugins` on a guest program compiled from `tests/guests`.
///
/// The environment is cleared (only `PATH=/usr/bin:/bin` and `LC_ALL=C` remain) because
/// linux-user hands QEMU's environment to the guest, and its size changes how many
/// instructions libc start-up executes; with a fixed environment single-threaded runs
/// are exactly repeatable.
pub fn run_user(label: &str, plugins: &[Plugin], guest_name: &str, guest_args: &[&str]) -> Run {
    run_user_on(UserQemu::V10_2, label, plugins, guest_name, guest_args)
}

/// [`run_user`] in the linux-user QEMU `qemu`.
pub fn run_user_on(
    qemu: UserQemu,
    label: &str,
    plugins: &[Plugin],
    guest_name: &str,
    guest_args: &[&str],
) -> Run {
    run_user_at(qemu, None, label, plugins, guest_name, guest_args)
}

/// [`run_user_on`] with QEMU's working directory `cwd` (for plugins that write their
/// files where QEMU runs, as `uftrace` does).
pub fn run_user_in(
    qemu: UserQemu,
    cwd: &Path,
    label: &str,
    plugins: &[Plugin],
    guest_name: &str,
    guest_args: &[&str],
) -> Run {
    run_user_at(qemu, Some(cwd), label, plugins, guest_name, guest_args)
}

/// A linux-user run in `qemu`, in `cwd` (default: the target's temporary directory).
fn run_user_at(
    qemu: UserQemu,
    cwd: Option<&Path>,
    label: &str,
    plugins: &[Plugin],
    guest_name: &str,
    guest_args: &[&str],
) -> Run {
    let program = guest_for(qemu.arch(), guest_name);
    let label = match qemu {
        UserQemu::V10_2 => label.to_string(),
        other => format!("{label}-{other:?}"),
    };
    run(&label, USER_TIMEOUT, |log| {
        let mut argv = user_command(&[], plugins, log, &program, guest_args);
        argv[0] = qemu.binary().into();
        let mut cmd = user_process(&argv);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd
    })
}

/// The command of a linux-user run, with the environment cleared (see [`run_user`]).
fn user_process(argv: &[std::ffi::OsString]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .env(ANY_VERBOSE.0, ANY_VERBOSE.1)
        .current_dir(TARGET_TMPDIR)
        .args(&argv[1..]);
    cmd
}

/// The `qemu-x86_64` command line [`run_user`] runs, for any host program, with extra
/// QEMU options (`qemu_opts`, e.g. `-tb-size 1`) and the plugin log at `log`.
pub fn user_command(
    qemu_opts: &[&str],
    plugins: &[Plugin],
    log: &Path,
    program: &Path,
    args: &[&str],
) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec![qemu_env().qemu_user.clone().into()];
    v.extend(qemu_opts.iter().map(|s| s.into()));
    for p in plugins {
        v.push("-plugin".into());
        v.push(p.option().into());
    }
    v.extend(["-d".into(), "plugin".into(), "-D".into(), log.into()]);
    v.push(program.into());
    v.extend(args.iter().map(|s| s.into()));
    v
}

/// [`run_user`] for any host program, with extra QEMU options.
pub fn run_user_program(
    label: &str,
    qemu_opts: &[&str],
    plugins: &[Plugin],
    program: &Path,
    args: &[&str],
) -> Run {
    run(label, USER_TIMEOUT, |log| {
        user_process(&user_command(qemu_opts, plugins, log, program, args))
    })
}

/// [`run_user_program`], also measuring QEMU's peak resident set size (KiB): QEMU runs
/// as the only child of a small `python3` wrapper, which reports
/// `getrusage(RUSAGE_CHILDREN).ru_maxrss` (the kernel's own peak-RSS accounting) on
/// stderr after it exits.
pub fn run_user_rss(
    label: &str,
    qemu_opts: &[&str],
    plugins: &[Plugin],
    program: &Path,
    args: &[&str],
) -> (Run, u64) {
    const WRAPPER: &str = "import resource, subprocess, sys\n\
        code = subprocess.call(sys.argv[1:])\n\
        sys.stderr.write('peak-rss-kib=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(code if code >= 0 else 128 - code)\n";
    let r = run(label, USER_TIMEOUT, |log| {
        let mut cmd = Command::new(PYTHON3);
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .current_dir(TARGET_TMPDIR)
            .args(["-c", WRAPPER])
            .args(user_command(qemu_opts, plugins, log, program, args));
        cmd
    });
    let kib = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .unwrap_or_else(|| panic!("the RSS wrapper printed no peak\n{}", r.describe()));
    let kib = num(kib, "peak-rss-kib");
    (r, kib)
}

/// The system's Python, used as a large guest program and to measure peak RSS.
pub const PYTHON3: &str = "/usr/bin/python3";

/// The guest init's last line before it powers off.
pub const GUEST_DONE: &str = "guest: all work done";

/// Boots the provisioned Linux guest in `qemu-system-x86_64` under MTTCG with 4 vCPUs.
///
/// Boots are serialised within a test binary: each one keeps 4 vCPU threads busy, and
/// two at once on a 2-core machine would only make both slow.
pub fn run_system(label: &str, plugins: &[Plugin]) -> Run {
    run_system_with(label, plugins, &SystemExtras::default())
}

/// What a boot adds to [`run_system`]'s command line.
#[derive(Default)]
pub struct SystemExtras<'a> {
    /// Words appended to the kernel command line (the guest init reads them).
    pub append: &'a [&'a str],
    /// Further QEMU arguments.
    pub args: &'a [&'a str],
    /// The qemu-system binary (default: the environment's `QEMU_SYSTEM`, 10.0).
    pub qemu: Option<&'a Path>,
    /// The guest's architecture (default x86_64): its machine, kernel, initramfs and
    /// console. Give `qemu` too for another architecture.
    pub arch: Arch,
    /// The vCPUs (`-smp`; default 4).
    pub smp: Option<u32>,
}

/// [`run_system`] with `extras` on the command lines.
pub fn run_system_with(label: &str, plugins: &[Plugin], extras: &SystemExtras<'_>) -> Run {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _held = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // qemu-system-x86_64 10.0.2 aborted once, early in a boot under MTTCG, on an assertion
    // in its own softmmu memory-map lookup (`system/physmem.c: iotlb_to_section: Assertion
    // `section_index < d->map.sections_nb' failed`), in about 30 boots of this project's
    // runs, with the icount example loaded (which only registers exec callbacks and vCPU
    // hooks; nothing a plugin can call touches that map). Only that exact abort is
    // retried, at most twice, and each retry is printed; any other failure is returned.
    const QEMU_FLAKE: &str = "iotlb_to_section: Assertion";
    let mut attempt = 1;
    loop {
        let r = run_system_once(label, plugins, extras);
        let flaked =
            !r.status.success() && (r.stderr.contains(QEMU_FLAKE) || r.stdout.contains(QEMU_FLAKE));
        if !flaked || attempt == 3 {
            return r;
        }
        eprintln!(
            "{label}: qemu-system aborted on its known iotlb_to_section assertion; retrying (attempt {attempt})"
        );
        attempt += 1;
    }
}

fn run_system_once(label: &str, plugins: &[Plugin], extras: &SystemExtras<'_>) -> Run {
    let env = qemu_env();
    let (machine, console, kernel, initrd): (&[&str], _, _, _) = match extras.arch {
        Arch::X86_64 => (
            &["-M", "q35"],
            "ttyS0",
            &env.guest_kernel,
            &env.guest_initrd,
        ),
        Arch::Aarch64 => (
            &["-M", "virt", "-cpu", "max"],
            "ttyAMA0",
            &env.guest_kernel_aarch64,
            &env.guest_initrd_aarch64,
        ),
        Arch::Riscv64 => (
            &["-M", "virt"],
            "ttyS0",
            &env.guest_kernel_riscv64,
            &env.guest_initrd_riscv64,
        ),
    };
    let mut append = format!("console={console} quiet panic=-1");
    for word in extras.append {
        append.push(' ');
        append.push_str(word);
    }
    run(label, SYSTEM_TIMEOUT, |log| {
        let mut cmd = Command::new(extras.qemu.unwrap_or(&env.qemu_system));
        cmd.env(ANY_VERBOSE.0, ANY_VERBOSE.1)
            .args(machine)
            .arg("-smp")
            .arg(extras.smp.unwrap_or(4).to_string())
            .args(["-m", "512"])
            .args(["-accel", "tcg,thread=multi"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .arg("-append")
            .arg(&append)
            .args(["-nographic", "-no-reboot"])
            .args(extras.args);
        plugin_args(&mut cmd, plugins);
        cmd.args(["-d", "plugin", "-D"]).arg(log);
        cmd
    })
}

// ---------------------------------------------------------------- parsers

fn num<T: std::str::FromStr>(s: &str, line: &str) -> T {
    s.trim()
        .parse()
        .unwrap_or_else(|_| panic!("cannot parse number {s:?} in line {line:?}"))
}

fn hex(s: &str, line: &str) -> u64 {
    let t = s.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    u64::from_str_radix(t, 16).unwrap_or_else(|_| panic!("cannot parse hex {s:?} in {line:?}"))
}

/// The syscall numbers a guest printed for itself on a line `<prefix>: nrs name=N ...`
/// (its C library's `SYS_*` values on its architecture; -1 for a call it lacks).
pub fn guest_syscall_numbers(stdout: &str, prefix: &str) -> BTreeMap<String, i64> {
    let head = format!("{prefix}: nrs ");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&head))
        .unwrap_or_else(|| panic!("the guest printed no `{head}` line:\n{stdout}"));
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("name=number");
            (k.to_string(), num(v, line))
        })
        .collect()
}

/// Instruction counts in the format of QEMU's tests/tcg/plugins/insn.c (and our `icount`):
/// `cpu N insns: X` per vCPU, then `total insns: T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsnCounts {
    pub per_cpu: BTreeMap<u32, u64>,
    pub total: u64,
}

pub fn parse_insn(log: &str) -> InsnCounts {
    let mut per_cpu = BTreeMap::new();
    let mut total = None;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("cpu ") {
            if let Some((cpu, n)) = rest.split_once(" insns: ") {
                let prev = per_cpu.insert(num(cpu, line), num(n, line));
                assert!(prev.is_none(), "vCPU listed twice: {line:?}\n{log}");
            }
        } else if let Some(n) = line.strip_prefix("total insns: ") {
            assert!(total.is_none(), "two `total insns` lines in\n{log}");
            total = Some(num(n, line));
        }
    }
    InsnCounts {
        per_cpu,
        total: total.unwrap_or_else(|| panic!("no `total insns: T` line in plugin log:\n{log}")),
    }
}

/// `icount: mismatch cpu N callback X inline Y` lines printed by `icount check=on`.
pub fn icount_mismatches(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.starts_with("icount: mismatch"))
        .collect()
}

/// Totals of QEMU's tests/tcg/plugins/bb.c: `CPUn: bb's: B, insns: I` per vCPU that ran,
/// and `Total: bb's: B, insns: I`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BbCounts {
    /// vCPU index → (blocks, instructions).
    pub per_cpu: BTreeMap<u32, (u64, u64)>,
    pub total_bbs: u64,
    pub total_insns: u64,
}

pub fn parse_bb(log: &str) -> BbCounts {
    let split = |rest: &str, line: &str| -> (u64, u64) {
        let (b, i) = rest
            .strip_prefix("bb's: ")
            .and_then(|r| r.split_once(", insns: "))
            .unwrap_or_else(|| panic!("bad bb.c line {line:?}"));
        (num(b, line), num(i, line))
    };
    let mut per_cpu = BTreeMap::new();
    let mut total = None;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("Total: ") {
            total = Some(split(rest, line));
        } else if line.starts_with("bb's: ") {
            // QEMU 7.2's bb.c in user mode: the total alone, unprefixed.
            total = Some(split(line, line));
        } else if let Some(rest) = line.strip_prefix("CPU")
            && let Some((cpu, rest)) = rest.split_once(": ")
            && rest.starts_with("bb's: ")
        {
            per_cpu.insert(num(cpu, line), split(rest, line));
        }
    }
    // QEMU 7.2's bb.c in system mode prints the vCPUs' lines and no total.
    let summed = (!per_cpu.is_empty()).then(|| {
        per_cpu
            .values()
            .fold((0, 0), |(b, i), (pb, pi)| (b + pb, i + pi))
    });
    let (total_bbs, total_insns) = total.or(summed).unwrap_or_else(|| {
        panic!("no bb.c `Total: bb's: ...` (or `bb's: ...`) line in plugin log:\n{log}")
    });
    BbCounts {
        per_cpu,
        total_bbs,
        total_insns,
    }
}

/// `mem accesses: N` (QEMU's tests/tcg/plugins/mem.c with callback or inline, and `mem`).
pub fn parse_mem(log: &str) -> u64 {
    let counts: Vec<u64> = log
        .lines()
        .filter_map(|l| {
            // QEMU 7.2's mem.c says "callback mem accesses: N".
            let rest = l.strip_prefix("callback ").unwrap_or(l);
            rest.strip_prefix("mem accesses: ").map(|n| num(n, l))
        })
        .collect();
    assert_eq!(
        counts.len(),
        1,
        "expected exactly one `mem accesses: N` line in plugin log:\n{log}"
    );
    counts[0]
}

/// Per-syscall statistics in the format of QEMU's tests/tcg/plugins/syscall.c: the header
/// `syscall no.  calls  errors`, then rows sorted by calls, descending.
/// Returns syscall number → (calls, errors); checks the header and the ordering.
pub fn parse_syscalls(log: &str) -> BTreeMap<i64, (u64, u64)> {
    let mut lines = log.lines().skip_while(|l| !l.starts_with("syscall no."));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no `syscall no.  calls  errors` header in plugin log:\n{log}"));
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["syscall", "no.", "calls", "errors"],
        "bad syscall table header"
    );
    let mut map = BTreeMap::new();
    let mut last_calls = u64::MAX;
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 || f[0].parse::<i64>().is_err() {
            break;
        }
        let (no, calls, errors): (i64, u64, u64) =
            (num(f[0], line), num(f[1], line), num(f[2], line));
        assert!(
            calls <= last_calls,
            "syscall rows are not sorted by calls (descending) at {line:?}:\n{log}"
        );
        last_calls = calls;
        assert!(errors <= calls, "more errors than calls: {line:?}");
        assert!(
            map.insert(no, (calls, errors)).is_none(),
            "syscall {no} listed twice"
        );
    }
    map
}

/// One row of contrib/plugins/hotblocks.c's table: `pc, tcount, icount, ecount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HotBlock {
    pub pc: u64,
    pub tcount: u64,
    pub icount: u64,
    pub ecount: u64,
}

#[derive(Debug, Clone)]
pub struct HotBlocks {
    /// `collected N entries in the hash table`.
    pub entries: u64,
    pub rows: Vec<HotBlock>,
}

pub fn parse_hotblocks(log: &str) -> HotBlocks {
    let mut entries = None;
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("collected ") {
            let n = rest
                .strip_suffix(" entries in the hash table")
                .unwrap_or_else(|| panic!("bad hotblocks line {line:?}"));
            entries = Some(num(n, line));
        } else if line.trim() == "pc, tcount, icount, ecount" {
            in_table = true;
        } else if in_table {
            let f: Vec<&str> = line.split(", ").collect();
            if f.len() != 4 || !f[0].starts_with("0x") {
                in_table = false;
                continue;
            }
            rows.push(HotBlock {
                pc: hex(f[0], line),
                tcount: num(f[1], line),
                icount: num(f[2], line),
                ecount: num(f[3], line),
            });
        }
    }
    let entries = entries
        .unwrap_or_else(|| panic!("no `collected N entries in the hash table` line in:\n{log}"));
    assert!(
        rows.windows(2).all(|w| w[0].ecount >= w[1].ecount),
        "hotblocks rows are not sorted by ecount:\n{log}"
    );
    HotBlocks { entries, rows }
}

/// `trace: N blocks, M syscalls, K files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSummary {
    pub blocks: u64,
    pub syscalls: u64,
    pub files: u64,
}

pub fn parse_trace(log: &str) -> TraceSummary {
    let line = log
        .lines()
        .find(|l| l.starts_with("trace: ") && l.contains(" blocks, "))
        .unwrap_or_else(|| panic!("no `trace: N blocks, M syscalls, K files` line in:\n{log}"));
    let f: Vec<&str> = line["trace: ".len()..].split(", ").collect();
    let field = |i: usize, unit: &str| -> u64 {
        let s = f
            .get(i)
            .and_then(|s| s.strip_suffix(unit))
            .unwrap_or_else(|| panic!("bad trace summary {line:?}"));
        num(s, line)
    };
    TraceSummary {
        blocks: field(0, " blocks"),
        syscalls: field(1, " syscalls"),
        files: field(2, " files"),
    }
}

/// The `sysheavy: nr=<n> calls=<c> errors=<e>` lines the sysheavy guest prints.
pub fn parse_sysheavy(stdout: &str) -> BTreeMap<i64, (u64, u64)> {
    let mut map = BTreeMap::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("sysheavy: ") {
            let mut nr = None;
            let mut calls = None;
            let mut errors = None;
            for kv in rest.split_whitespace() {
                match kv.split_once('=') {
                    Some(("nr", v)) => nr = Some(num(v, line)),
                    Some(("calls", v)) => calls = Some(num(v, line)),
                    Some(("errors", v)) => errors = Some(num(v, line)),
                    _ => panic!("bad sysheavy line {line:?}"),
                }
            }
            map.insert(
                nr.expect("nr"),
                (calls.expect("calls"), errors.expect("errors")),
            );
        }
    }
    assert!(!map.is_empty(), "sysheavy printed no totals:\n{stdout}");
    map
}

/// Sum of all rows of a syscall table: (calls, errors).
pub fn syscall_totals(table: &BTreeMap<i64, (u64, u64)>) -> (u64, u64) {
    table
        .values()
        .fold((0, 0), |(c, e), &(dc, de)| (c + dc, e + de))
}

impl Arch {
    /// `exit` and `exit_group`, the syscalls that never return (the kernel's syscall
    /// tables: x86_64's own; aarch64 and riscv64 share the generic one).
    pub fn no_return_syscalls(self) -> [i64; 2] {
        match self {
            Arch::X86_64 => [60, 231],
            Arch::Aarch64 | Arch::Riscv64 => [93, 94],
        }
    }
}

/// The syscall table without the calls that never return on `arch`.
pub fn returning_syscalls(
    arch: Arch,
    table: &BTreeMap<i64, (u64, u64)>,
) -> BTreeMap<i64, (u64, u64)> {
    table
        .iter()
        .filter(|(nr, _)| !arch.no_return_syscalls().contains(nr))
        .map(|(&nr, &c)| (nr, c))
        .collect()
}

/// What the `trace` example wrote: files under its `dir`, each line `B <pc>` for an
/// executed block or `S <number> <return value>` for a syscall return.
#[derive(Debug, Default)]
pub struct TraceFiles {
    pub files: u64,
    pub blocks: u64,
    /// Syscall number → (returns, negative returns).
    pub syscalls: BTreeMap<i64, (u64, u64)>,
}

pub fn read_trace_dir(dir: &Path) -> TraceFiles {
    let mut t = TraceFiles::default();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("trace dir {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        t.files += 1;
        let text = fs::read_to_string(&path).expect("read trace file");
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["B", pc] => {
                    hex(pc, line);
                    t.blocks += 1;
                }
                ["S", nr, ret] => {
                    let ret: i64 = num(ret, line);
                    let e = t.syscalls.entry(num(nr, line)).or_default();
                    e.0 += 1;
                    e.1 += u64::from(ret < 0);
                }
                _ => panic!("unexpected line {line:?} in trace file {}", path.display()),
            }
        }
    }
    t
}

// ---------------------------------------------------------------- shared checks

/// Checks a run with `icount check=on` and bb.c loaded together: no callback/inline
/// mismatch, and icount's total and per-vCPU counts equal bb.c's.
pub fn assert_icount_matches_bb(r: &Run) -> (InsnCounts, BbCounts) {
    let mismatches = icount_mismatches(&r.log);
    assert!(mismatches.is_empty(), "{mismatches:?}\n{}", r.describe());
    let ours = parse_insn(&r.log);
    let bb = parse_bb(&r.log);
    assert_eq!(ours.total, bb.total_insns, "{}", r.describe());
    for (cpu, (_, insns)) in &bb.per_cpu {
        assert_eq!(
            ours.per_cpu.get(cpu),
            Some(insns),
            "vCPU {cpu}\n{}",
            r.describe()
        );
    }
    (ours, bb)
}

/// Checks a run with `trace` (writing into `dir`), bb.c and syscall.c loaded together:
/// trace's summary and the files it wrote agree with both. trace records syscall
/// *returns*, so calls that never return (exit, exit_group) are left out.
pub fn assert_trace_matches_references(
    arch: Arch,
    r: &Run,
    dir: &Path,
) -> (TraceSummary, BbCounts, TraceFiles) {
    let summary = parse_trace(&r.log);
    let bb = parse_bb(&r.log);
    let returns = returning_syscalls(arch, &parse_syscalls(&r.log));
    let (calls, _) = syscall_totals(&returns);
    let files = read_trace_dir(dir);
    eprintln!(
        "{}: {summary:?}; files: {} blocks, {} syscalls in {} files; \
         bb.c {} blocks on {} vCPUs; syscall.c {calls} returning calls",
        r.dir.display(),
        files.blocks,
        syscall_totals(&files.syscalls).0,
        files.files,
        bb.total_bbs,
        bb.per_cpu.len()
    );
    assert_eq!(summary.blocks, bb.total_bbs, "{}", r.describe());
    assert_eq!(summary.syscalls, calls, "{}", r.describe());
    assert_eq!(summary.files, files.files, "files in {}", dir.display());
    assert_eq!(files.blocks, bb.total_bbs, "B lines in {}", dir.display());
    assert_eq!(
        files.syscalls, returns,
        "S lines (returns, errors) per syscall vs syscall.c"
    );
    (summary, bb, files)
}

mod system_checks;
#[allow(unused_imports)]
pub use system_checks::*;
