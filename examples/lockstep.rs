//! `lockstep`: QEMU's `contrib/plugins/lockstep.c` on this crate's runtime. Runs two QEMU
//! instances in lockstep over a Unix socket and reports where their execution diverges
//! (to find the block where a change to QEMU's code generation went wrong). Before each
//! block executes, each side sends its position (the block's address and the
//! instructions executed so far) and reads the other's; a different address is a
//! divergence. At exit, if they never lost each other:
//!
//! ```text
//! No divergence :-)
//! Executed 51234/51234 blocks
//! Executed ~301234 instructions
//! ```
//!
//! Arguments, with the C plugin's spellings: `sockpath=PATH` (required; the first instance
//! creates the socket there and waits at install for the second, which connects) and
//! `verbose=on|off`. The wire format is lockstep.c's (two native-endian 64-bit words per
//! block), so this plugin and the C one can run against each other.
//!
//! A divergence is printed when it comes right after another one (or with `verbose`);
//! a third in a row means the two runs have parted for good: the last blocks are listed,
//! `giving up` is printed, and the plugin uninstalls itself (as it does if the other side
//! goes away). The position exchange is one global conversation, so its state is one
//! lock's, not per vCPU (lockstep.c keeps it in unlocked globals: one vCPU only); the
//! same caveats apply: single-threaded guests, deterministic runs.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Mutex;

use qemu_plugin::{
    Args, Failure, Info, PerVcpu, Result, Translation, VCPUIndex, Vcpu, per_vcpu, qemu_plugin_outs,
};

/// How many recent blocks are listed when the runs have diverged.
const LISTED: usize = 5;

struct Lockstep {
    verbose: bool,
    /// The socket file this side created (removed at the end), if it did.
    created: Option<PathBuf>,
    state: Mutex<State>,
}

/// A position: where a vCPU is about to execute, and how many instructions came before.
#[derive(Clone, Copy)]
struct Position {
    pc: u64,
    insns: u64,
}

impl Position {
    fn to_bytes(self) -> [u8; 16] {
        let mut b = [0; 16];
        b[..8].copy_from_slice(&self.pc.to_ne_bytes());
        b[8..].copy_from_slice(&self.insns.to_ne_bytes());
        b
    }

    fn from_bytes(b: &[u8; 16]) -> Self {
        let word = |r: std::ops::Range<usize>| u64::from_ne_bytes(b[r].try_into().unwrap());
        Position {
            pc: word(0..8),
            insns: word(8..16),
        }
    }
}

/// A block execution in the log.
struct Executed {
    pc: u64,
    /// The block's instructions.
    size: u64,
    /// Instructions executed up to and including this block.
    insns: u64,
}

/// A divergence: the log's length then, and the blocks executed since the one before.
struct Divergence {
    logged: usize,
    distance: usize,
}

/// The conversation with the other instance.
struct State {
    /// `None` once this side has given up (or the other side went away).
    socket: Option<UnixStream>,
    blocks: u64,
    insns: u64,
    log: Vec<Executed>,
    divergences: Vec<Divergence>,
}

impl Lockstep {
    /// Exchanges positions before block `pc` of `size` instructions executes.
    fn step(&self, cpu: &Vcpu<Self>, pc: u64, size: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let us = Position {
            pc,
            insns: st.insns,
        };
        let Some(socket) = st.socket.as_mut() else {
            return;
        };
        if let Err(e) = socket.write_all(&us.to_bytes()) {
            let _ = qemu_plugin_outs(format!("problem writing to socket: {e}\n"));
            return self.give_up(cpu, &mut st);
        }
        let mut buf = [0; 16];
        if let Err(e) = socket.read_exact(&mut buf) {
            let what = match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "read less than expected".to_string(),
                _ => format!("problem reading from socket: {e}"),
            };
            let _ = qemu_plugin_outs(format!("{what}\n"));
            return self.give_up(cpu, &mut st);
        }
        let them = Position::from_bytes(&buf);
        if us.pc != them.pc && self.diverged(&mut st, us, them) {
            self.give_up(cpu, &mut st);
        }
        // As in lockstep.c, the block is assumed to execute in full.
        st.insns += size;
        st.blocks += 1;
        let insns = st.insns;
        st.log.push(Executed { pc, size, insns });
    }

    /// Records and reports a divergence; true if the runs have parted for good.
    fn diverged(&self, st: &mut State, us: Position, them: Position) -> bool {
        let logged = st.log.len();
        // lockstep.c counts the log entries newer than the one that was the latest at the
        // previous divergence, stopping short of the oldest entry.
        let (distance, parted) = match st.divergences.last() {
            None => (0, false),
            Some(last) => {
                let d = (logged - last.logged).min(logged.saturating_sub(1));
                (d, d == 1 && last.distance == 1)
            }
        };
        st.divergences.push(Divergence { logged, distance });
        if self.verbose || distance == 1 || parted {
            let _ = qemu_plugin_outs(format!(
                "@ 0x{:016x} ({}) vs 0x{:016x} ({}) ({}/{} since last)\n",
                us.pc,
                us.insns as i64,
                them.pc,
                them.insns as i64,
                st.divergences.len(),
                distance
            ));
        }
        if parted {
            let mut out = String::from("Δ too high, we have diverged, previous insns\n");
            for e in st
                .log
                .iter()
                .rev()
                .take(LISTED.min(logged.saturating_sub(1)))
            {
                out += &format!(
                    "  previously @ 0x{:016x}/{} ({} insns)\n",
                    e.pc, e.size, e.insns
                );
            }
            let _ = qemu_plugin_outs(out);
            let _ = qemu_plugin_outs("giving up\n");
        }
        parted
    }

    /// Stops talking and asks QEMU to uninstall the plugin (no exit report follows).
    fn give_up(&self, cpu: &Vcpu<Self>, st: &mut State) {
        st.socket = None;
        let created = self.created.clone();
        let _ = cpu.handle().uninstall(move |_| remove(created));
    }
}

/// Removes the socket file this side created, if any.
fn remove(created: Option<PathBuf>) {
    if let Some(path) = created {
        let _ = std::fs::remove_file(path);
    }
}

/// Connects to the socket at `path` if it exists, else creates it and waits for the
/// other instance (lockstep.c's `setup_unix_socket`). Returns the stream and whether this
/// side created the file.
fn open(path: &str) -> std::io::Result<(UnixStream, bool)> {
    if std::path::Path::new(path).exists() {
        let s = UnixStream::connect(path)?;
        let _ = qemu_plugin_outs("connect_socket::ready\n");
        Ok((s, false))
    } else {
        let listener = UnixListener::bind(path)?;
        let accepted = listener.accept();
        if accepted.is_err() {
            let _ = std::fs::remove_file(path);
        }
        let (s, _) = accepted?;
        let _ = qemu_plugin_outs("setup_socket::ready\n");
        Ok((s, true))
    }
}

impl PerVcpu for Lockstep {
    type Config = ();
    type Shard = ();
    type Total = ();

    fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
        args.expect_only(&["sockpath", "verbose"])?;
        let verbose = args.bool("verbose", false)?;
        let path = args
            .string("sockpath")?
            .ok_or_else(|| Failure::MissingArgument {
                key: "sockpath".into(),
                expected: "the path of the Unix socket to talk to the other instance through"
                    .into(),
            })?;
        let (socket, created) = open(path).map_err(|e| Failure::InvalidArgument {
            key: "sockpath".into(),
            value: path.into(),
            expected: format!("a Unix socket path to create or connect to ({e})"),
        })?;
        let plugin = Lockstep {
            verbose,
            created: created.then(|| PathBuf::from(path)),
            state: Mutex::new(State {
                socket: Some(socket),
                blocks: 0,
                insns: 0,
                log: Vec::new(),
                divergences: Vec::new(),
            }),
        };
        Ok((plugin, ()))
    }

    fn new_shard(&self, _vcpu: VCPUIndex) -> Result<()> {
        Ok(())
    }

    fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
        let (pc, size) = (tb.vaddr(), tb.size() as u64);
        tb.on_exec(move |cpu: &mut Vcpu<Self>| cpu.handle().plugin().step(cpu, pc, size));
        Ok(())
    }

    fn merge(&self, _total: &mut (), _cpu: Vcpu<Self>) -> Result<()> {
        Ok(())
    }

    fn on_exit(&self, _total: ()) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = qemu_plugin_outs(format!(
            "No divergence :-)\nExecuted {}/{} blocks\nExecuted ~{} instructions\n",
            st.blocks,
            st.log.len(),
            st.insns
        ));
        st.socket = None;
        remove(self.created.clone());
        Ok(())
    }
}

per_vcpu!(Lockstep);
