//! Figure 7: a command that prints 256 MiB.
//!
//! Wall time of `execute` until its answer, against `ssh -S` writing the
//! same output to a file; and the daemon's peak resident memory meanwhile
//! (`VmHWM` of a daemon started for this figure), which must stay bounded
//! however much a command prints.

use std::fs::File;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value as Json;

use crate::fixture::Bench;
use crate::procs::{Memory, run_timed};
use crate::report::{Row, Target, Unit, Value};
use crate::stats::{Samples, rotation};

/// Long enough for 256 MiB of output at a few MiB/s.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(600);

/// A bound well under the output's size: the daemon's idle RSS plus a
/// channel window (16 MiB) and the inline output, with room to spare. A
/// daemon that held the whole output, or even one 24 MiB capped copy of it
/// next to its encoded frame, would be over it.
const PEAK_RSS_MIB: f64 = 64.0;

pub fn run(b: &Bench) -> Result<Vec<Row>> {
    let bytes = b.plan.big_output_bytes;
    let command = format!("head -c {bytes} /dev/zero");
    let mut ours = b.ours();
    ours.shim().set_timeout(OUTPUT_TIMEOUT);
    let session = ours.connect()?;
    let (master, _) = b.openssh.start_master()?;
    let sink = b.scratch.path().join("big-output");

    let (mut o, mut t) = (Samples::new(), Samples::new());
    let mut last = Json::Null;
    for rep in b.plan.big_output.iter() {
        for side in rotation(rep, 2) {
            if side == 0 {
                last = o.time(|| ours.execute(&session, &command))?;
            } else {
                let file = File::create(&sink).context("create the output file")?;
                let mut ssh = b.openssh.via(&master, &command);
                ssh.stdout(file);
                t.push(run_timed(&mut ssh, OUTPUT_TIMEOUT)?);
                let got = std::fs::metadata(&sink)
                    .context("stat the output file")?
                    .len();
                if got != bytes {
                    bail!("ssh -S delivered {got} bytes of output, not {bytes}");
                }
                std::fs::remove_file(&sink).context("remove the output file")?;
            }
        }
    }
    drop(master);
    let daemon = Memory::of(ours.daemon_pid())?;
    let shim = Memory::of(ours.shim().pid())?;

    let mib = bytes >> 20;
    Ok(vec![
        Row::new(
            7,
            format!("big output, {mib} MiB: wall time"),
            Unit::Seconds,
            Value::seconds(&o),
        )
        .against("`ssh -S` to a file", Value::seconds(&t))
        .samples(o.len())
        .note(format!(
            "what the last execute returned: {}",
            describe(&last)
        )),
        Row::new(
            7,
            format!("big output, {mib} MiB: daemon peak RSS"),
            Unit::MiB,
            Value::single(daemon.peak_kib as f64 / 1024.0),
        )
        .target(Target::AtMost(PEAK_RSS_MIB))
        .samples(o.len())
        .note(format!(
            "the shim that carried the result peaked at {:.1} MiB",
            shim.peak_kib as f64 / 1024.0
        )),
    ])
}

/// The size fields of an `execute` result, whichever the shim reports.
fn describe(result: &Json) -> String {
    let inline = result["stdout"].as_str().map_or(0, str::len);
    let mut parts = vec![format!("{inline} bytes of stdout inline")];
    for key in ["stdout_bytes", "stdout_truncated", "stdout_file"] {
        if let Some(value) = result.get(key).filter(|v| !v.is_null()) {
            parts.push(format!("{key} = {value}"));
        }
    }
    parts.join(", ")
}
