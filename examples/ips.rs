//! `ips`: QEMU's `contrib/plugins/ips.c` on the per-vCPU runtime. Limits each vCPU to a
//! number of guest instructions per second and moves QEMU's virtual clock by the
//! instructions executed, so the guest sees time pass at its usual rate while the host
//! runs it slower. It prints nothing: its effect is the guest's clock.
//!
//! Arguments, with the C plugin's spellings: `ips=N[k|m|g]` (instructions per second per
//! vCPU, default 1g; the suffix multiplies by 10^3, 10^6 or 10^9, in either case) and
//! `ipq=N` (instructions per quantum: how often a vCPU is slowed down and the clock moved;
//! default `ips/10`, at least 1). System mode only, with QEMU 9.2 or later (plugin API
//! 4): it takes [`TimeControl`](qemu_plugin::TimeControl), which QEMU gives to one plugin
//! at most, and never in linux-user. Where ips.c aborts QEMU then, this one refuses to
//! install, saying why.
//!
//! Per vCPU, as in the C plugin: each block adds its instruction count inline to the
//! vCPU's quantum counter, and a conditional callback runs once the quantum is full. It
//! sleeps for as long as the vCPU ran ahead of `ips` since the quantum began, then moves
//! the clock to (the vCPU's instructions so far) / `ips`, if that is later than the clock
//! already is (the clock is moved under one lock, as in ips.c; the rest is the vCPU's
//! shard). One difference: ips.c also moves the clock when a vCPU exits; here the last
//! partial quantum of an exiting vCPU is dropped, because the exit (merge) may run on
//! QEMU's main thread at exit, where `qemu_plugin_update_ns` has no vCPU to run on.

#[cfg(since_api_4)]
mod plugin {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use qemu_plugin::{
        Args, Condition, Failure, Info, InlineCounter, PerVcpu, Result, TimeControl, Translation,
        VCPUIndex, Vcpu, per_vcpu, qemu_plugin_request_time_control,
    };

    /// How many times a second the clock moves by default (ips.c's
    /// `NUM_TIME_UPDATE_PER_SEC`).
    const UPDATES_PER_SEC: u64 = 10;
    const NS_PER_SEC: f64 = 1e9;

    pub struct Ips {
        /// Instructions per second, per vCPU.
        ips: u64,
        /// Instructions per quantum.
        ipq: u64,
        /// Instructions in the vCPU's current quantum (inline).
        quantum: InlineCounter,
        time: TimeControl,
        /// The virtual time last set, in ns (it only moves forward).
        clock: Mutex<i64>,
    }

    /// One vCPU's time.
    pub struct Shard {
        /// Instructions in the quanta before the current one.
        total: u64,
        /// When the current quantum began (host time).
        started: Instant,
    }

    /// `ips=`'s value: digits and an optional `k`/`m`/`g` (either case), as ips.c reads it.
    fn parse_ips(text: &str) -> Option<u64> {
        let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (number, suffix) = text.split_at(digits);
        let scale = match suffix.to_ascii_lowercase().as_str() {
            "" => 1,
            "k" => 1_000,
            "m" => 1_000_000,
            "g" => 1_000_000_000,
            _ => return None,
        };
        number.parse::<u64>().ok()?.checked_mul(scale)
    }

    impl Ips {
        /// The instructions a vCPU may execute in `elapsed` (ips.c's `num_insn_during`).
        fn insns_during(&self, elapsed: Duration) -> u64 {
            (elapsed.as_secs_f64() * self.ips as f64) as u64
        }

        /// The time `insns` instructions take, in ns (ips.c's `time_for_insn`).
        fn time_for(&self, insns: u64) -> i64 {
            (insns as f64 / self.ips as f64 * NS_PER_SEC) as i64
        }

        /// The end of a quantum on `cpu` (ips.c's `update_system_time`): sleep off the lead
        /// over `ips`, start the next quantum, move the clock forward.
        fn end_quantum(&self, cpu: &mut Vcpu<Self>) {
            let done = cpu.take_inline(&self.quantum);
            let allowed = self.insns_during(cpu.started.elapsed());
            if done >= allowed {
                let ahead = self.time_for(done - allowed);
                std::thread::sleep(Duration::from_micros((ahead / 1000) as u64));
            }
            cpu.total += done;
            cpu.started = Instant::now();
            let now = self.time_for(cpu.total);
            let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
            if now > *clock {
                self.time.update_ns(now);
                *clock = now;
            }
        }
    }

    impl PerVcpu for Ips {
        type Config = ();
        type Shard = Shard;
        type Total = ();

        fn new(args: &Args, _info: &Info) -> Result<(Self, ())> {
            args.expect_only(&["ips", "ipq"])?;
            let ips =
                match args.text("ips") {
                    None => 1_000_000_000,
                    Some(text) => parse_ips(text).filter(|&n| n > 0).ok_or_else(|| {
                        Failure::InvalidArgument {
                            key: "ips".into(),
                            value: text.into(),
                            expected: "a positive number of instructions per second, \
                                   optionally followed by k, m or g (e.g. ips=100m)"
                                .into(),
                        }
                    })?,
                };
            let ipq = args.u64("ipq", ips / UPDATES_PER_SEC, 1..=u64::MAX)?;
            if ipq == 0 {
                return Err(Failure::InvalidArgument {
                    key: "ips".into(),
                    value: ips.to_string(),
                    expected: format!(
                        "at least {UPDATES_PER_SEC} instructions per second (or an ipq=)"
                    ),
                }
                .into());
            }
            let time = qemu_plugin_request_time_control().ok_or_else(|| {
                Failure::Other(
                    "ips: QEMU gave no control of time: another plugin has it, or this is \
                     linux-user, where QEMU gives it to none"
                        .into(),
                )
            })?;
            let plugin = Ips {
                ips,
                ipq,
                quantum: InlineCounter::new()?,
                time,
                clock: Mutex::new(0),
            };
            Ok((plugin, ()))
        }

        fn new_shard(&self, _vcpu: VCPUIndex) -> Result<Shard> {
            Ok(Shard {
                total: 0,
                started: Instant::now(),
            })
        }

        fn translate(&self, tb: &mut Translation<'_, Self>) -> Result<()> {
            tb.inline_add(&self.quantum, tb.size() as u64);
            tb.on_exec_if(&self.quantum, Condition::Ge, self.ipq, |cpu| {
                cpu.handle().plugin().end_quantum(cpu)
            });
            Ok(())
        }

        fn merge(&self, _total: &mut (), cpu: Vcpu<Self>) -> Result<()> {
            // A vCPU index reused later starts a fresh quantum.
            cpu.take_inline(&self.quantum);
            Ok(())
        }

        fn on_exit(&self, _total: ()) -> Result<()> {
            Ok(())
        }
    }

    per_vcpu!(Ips);
}

/// Before plugin API 4 (QEMU 9.2) there is no time control: the plugin refuses to install.
#[cfg(not(since_api_4))]
#[macro_use]
#[path = "support/refuse.rs"]
mod refuse;

#[cfg(not(since_api_4))]
refuse_to_install!(Ips, "qemu_plugin_request_time_control", "9.2");
