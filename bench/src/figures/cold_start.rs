//! Figure 4: how fast a new MCP host gets a working shim, and what the shim
//! costs in memory.
//!
//! Timed: process spawn until the `initialize` response, with the daemon
//! already running (the shim connects to it lazily, on the first tool
//! call). The counterpart is `ssh -O check`: an OpenSSH client process that
//! only talks to its local ControlMaster over a Unix socket. Memory: the
//! shim's peak RSS (`VmHWM`) after `initialize` and one `execute`, so it
//! includes the daemon connection and a tool call's buffers.

use anyhow::Result;

use super::WARMUP;
use crate::fixture::Bench;
use crate::openssh::COMMAND_TIMEOUT;
use crate::ours::execute;
use crate::procs::{Memory, run_timed};
use crate::report::{Row, Target, Unit, Value};
use crate::stats::{Samples, rotation};

pub fn run(b: &Bench) -> Result<Vec<Row>> {
    let mut ours = b.ours();
    let session = ours.connect()?;
    let (master, _) = b.openssh.start_master()?;
    let mut check = b.openssh.check(&master);
    for _ in 0..WARMUP {
        drop(ours.new_shim());
        run_timed(&mut check, COMMAND_TIMEOUT)?;
    }

    let (mut o, mut t) = (Samples::new(), Samples::new());
    let mut peaks_kib = Vec::new();
    for rep in b.plan.cold_start.iter() {
        for side in rotation(rep, 2) {
            if side == 0 {
                let mut shim = o.time(|| ours.new_shim());
                execute(&mut shim, &session, "true")?;
                peaks_kib.push(Memory::of(shim.pid())?.peak_kib);
            } else {
                t.push(run_timed(&mut check, COMMAND_TIMEOUT)?);
            }
        }
    }

    peaks_kib.sort_unstable();
    let median_peak_mib = peaks_kib[peaks_kib.len() / 2] as f64 / 1024.0;
    let max_peak_mib = peaks_kib.last().copied().unwrap_or_default() as f64 / 1024.0;
    Ok(vec![
        Row::new(
            4,
            "shim cold start: spawn → `initialize` answered",
            Unit::Ms,
            Value::ms(&o),
        )
        .against("`ssh -O check`", Value::ms(&t))
        .target(Target::AtMost(20.0))
        .samples(o.len()),
        Row::new(
            4,
            "shim peak RSS (after one execute)",
            Unit::MiB,
            Value::single(median_peak_mib),
        )
        .target(Target::AtMost(8.0))
        .samples(peaks_kib.len())
        .note(format!(
            "median over the shims started above; the largest was {max_peak_mib:.2} MiB"
        )),
    ])
}
