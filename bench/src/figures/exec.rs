//! Figure 1: `execute` of `true` on an open session.
//!
//! Three ways to run one command on a connection that is already up:
//! ours (MCP call → shim → daemon → new channel), the same channel exec
//! from russh inside the bench (the floor: what sshd takes to set up a
//! session and start the login shell), and `ssh -S` through an OpenSSH
//! ControlMaster (OpenSSH's fastest warm path: a process spawn plus a new
//! channel on the master's connection).

use anyhow::Result;

use super::WARMUP;
use crate::fixture::Bench;
use crate::openssh::COMMAND_TIMEOUT;
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
    for rep in b.plan.exec.iter() {
        for side in rotation(rep, 3) {
            match side {
                0 => o.time(|| ours.execute(&session, "true").map(drop))?,
                1 => r.time(|| b.raw.exec(&raw, "true"))?,
                _ => t.push(run_timed(&mut ssh, COMMAND_TIMEOUT)?),
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
        .samples(o.len()),
    ])
}
