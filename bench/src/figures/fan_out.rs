//! Figure 8: one `execute` on each of 50 sessions at once.
//!
//! Ours: 50 `execute` calls sent down one shim before any answer is read,
//! as an MCP host issues parallel tool calls; wall time until the last
//! answer, against one call alone. If nothing in the shim or daemon
//! serialises them, 50 cost little more than one, apart from what sshd
//! itself needs to start 50 login shells on this machine's cores.
//!
//! The same fan-out is measured for OpenSSH (50 `ssh -S` processes over
//! 50 ControlMasters, started together) and for the raw russh floor (50
//! connections in the bench, 50 channel execs at once): the floor's own
//! slowdown is what the server costs, which no client can avoid.

use anyhow::Result;

use crate::fixture::Bench;
use crate::openssh::COMMAND_TIMEOUT;
use crate::procs::{run_all_timed, run_timed};
use crate::report::{Row, Target, Unit, Value};
use crate::stats::{Samples, rotation};

/// The six measurements, in the order their samples are kept.
const OURS_ALL: usize = 0;
const OURS_ONE: usize = 1;
const SSH_ALL: usize = 2;
const SSH_ONE: usize = 3;
const RAW_ALL: usize = 4;
const RAW_ONE: usize = 5;

pub fn run(b: &Bench) -> Result<Vec<Row>> {
    let n = b.plan.fan_out_sessions;
    let mut ours = b.ours();
    let sessions = ours.connect_many(n)?;
    let masters = b.openssh.start_masters(n)?;
    let raw = b.raw.connect_many(n)?;
    let mut ssh_all: Vec<_> = masters.iter().map(|m| b.openssh.via(m, "true")).collect();
    let mut ssh_one = b.openssh.via(&masters[0], "true");

    // One untimed round: every session's first channel, and sshd's first
    // burst of forks, are not what is measured.
    ours.execute_all(&sessions, "true")?;
    run_all_timed(&mut ssh_all, COMMAND_TIMEOUT)?;
    b.raw.exec_all(&raw, "true")?;

    let mut s = vec![Samples::new(); 6];
    for rep in b.plan.fan_out.iter() {
        for m in rotation(rep, 6) {
            match m {
                OURS_ALL => s[m].time(|| ours.execute_all(&sessions, "true"))?,
                OURS_ONE => s[m].time(|| ours.execute(&sessions[0], "true").map(drop))?,
                SSH_ALL => s[m].push(run_all_timed(&mut ssh_all, COMMAND_TIMEOUT)?),
                SSH_ONE => s[m].push(run_timed(&mut ssh_one, COMMAND_TIMEOUT)?),
                RAW_ALL => s[m].time(|| b.raw.exec_all(&raw, "true"))?,
                _ => s[m].time(|| b.raw.exec(&raw[0], "true"))?,
            }
        }
    }
    b.raw.disconnect(raw);
    drop(masters);

    let ms = |m: usize| Value::ms(&s[m]);
    let slowdown = |all: usize, one: usize| Value::single(ms(all).median / ms(one).median);
    let raw_slowdown = slowdown(RAW_ALL, RAW_ONE).median;
    let rounds = s[OURS_ALL].len();
    Ok(vec![
        Row::new(
            8,
            format!("fan-out: `true` on {n} sessions at once"),
            Unit::Ms,
            ms(OURS_ALL),
        )
        .against(format!("{n} × `ssh -S` at once"), ms(SSH_ALL))
        .samples(rounds),
        Row::new(
            8,
            format!("fan-out: {n} at once ÷ one call"),
            Unit::Times,
            slowdown(OURS_ALL, OURS_ONE),
        )
        .against("`ssh -S`", slowdown(SSH_ALL, SSH_ONE))
        .target(Target::AtMost(2.0))
        .samples(rounds)
        .note(format!(
            "one call alone: ours {:.1} ms, `ssh -S` {:.1} ms, raw russh {:.1} ms. The raw \
                 russh floor slows down {raw_slowdown:.2}× for the same fan-out: that much is \
                 sshd starting {n} sessions and login shells on this machine's cores",
            ms(OURS_ONE).median,
            ms(SSH_ONE).median,
            ms(RAW_ONE).median,
        )),
        Row::new(
            8,
            format!("fan-out: {n} at once, overhead over the floor"),
            Unit::Ms,
            ms(OURS_ALL),
        )
        .against("raw russh fan-out", ms(RAW_ALL))
        .samples(rounds),
    ])
}
