//! Figure 1: `execute` of `true` on an open session.
//!
//! Three ways to run one command on a connection that is already up:
//! ours (MCP call → shim → daemon → new channel), the same channel exec
//! from russh inside the bench (the floor: what sshd takes to set up a
//! session and start the login shell), and `ssh -S` through an OpenSSH
//! ControlMaster (OpenSSH's fastest warm path: a process spawn plus a new
//! channel on the master's connection).
//!
//! Ours minus the floor is our overhead, but on a machine where the floor
//! is hundreds of milliseconds of login shell, a difference of a
//! millisecond is at the edge of what the medians resolve. So the figure
//! also times a `list_sessions` call, which crosses the same MCP, shim and
//! socket hops to the daemon and back without touching SSH: that part of
//! our overhead, measured precisely.

use anyhow::Result;
use serde_json::json;

use super::WARMUP;
use crate::fixture::Bench;
use crate::openssh::COMMAND_TIMEOUT;
use crate::ours::call;
use crate::procs::run_timed;
use crate::report::{Row, Target, Unit, Value};
use crate::stats::{Samples, rotation};

pub fn run(b: &Bench) -> Result<Vec<Row>> {
    let mut ours = b.ours();
    let session = ours.connect()?;
    let raw = b.raw.connect()?;
    let (master, _) = b.openssh.start_master()?;
    let mut ssh = b.openssh.via(&master, "true");
    for _ in 0..WARMUP {
        ours.execute(&session, "true")?;
        b.raw.exec(&raw, "true")?;
        run_timed(&mut ssh, COMMAND_TIMEOUT)?;
    }

    let (mut o, mut r, mut t) = (Samples::new(), Samples::new(), Samples::new());
    let mut hops = Samples::new();
    for rep in b.plan.exec.iter() {
        for side in rotation(rep, 4) {
            match side {
                0 => o.time(|| ours.execute(&session, "true").map(drop))?,
                1 => r.time(|| b.raw.exec(&raw, "true"))?,
                2 => t.push(run_timed(&mut ssh, COMMAND_TIMEOUT)?),
                _ => hops.time(|| call(ours.shim(), "list_sessions", json!({})).map(drop))?,
            }
        }
    }
    b.raw.disconnect(vec![raw]);

    let (ours_ms, floor_ms, ssh_ms) = (Value::ms(&o), Value::ms(&r), Value::ms(&t));
    let split = format!(
        "the floor (a raw russh exec, {:.1} ms) is sshd's session set-up and login shell; \
         ours adds {:.2} ms to it, `ssh -S` adds {:.2} ms",
        floor_ms.median,
        ours_ms.median - floor_ms.median,
        ssh_ms.median - floor_ms.median,
    );
    Ok(vec![
        Row::new(1, "execute `true` on an open session", Unit::Ms, ours_ms)
            .against("`ssh -S` (ControlMaster)", ssh_ms)
            .target(Target::RatioAtMost(1.0))
            .samples(o.len())
            .note(split),
        Row::new(
            1,
            "execute `true`: overhead over the floor",
            Unit::Ms,
            ours_ms,
        )
        .against("raw russh exec", floor_ms)
        .target(Target::ExcessAtMost(1.0))
        .samples(o.len())
        .note({
            let hops = Value::ms(&hops);
            let error = o
                .median_standard_error()
                .as_secs_f64()
                .hypot(r.median_standard_error().as_secs_f64());
            format!(
                "ours − floor is {:.2} ± {:.2} ms (one standard error of the two medians: \
                 the login shell's spread limits what they resolve); the MCP, shim and socket \
                 hops alone (a `list_sessions` round trip, no SSH) take {:.2} ms (p95 {:.2} ms)",
                ours_ms.median - floor_ms.median,
                error * 1e3,
                hops.median,
                hops.p95.unwrap_or(hops.median)
            )
        }),
    ])
}
