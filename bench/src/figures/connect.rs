//! Figure 2: opening a session with key authentication.
//!
//! Ours: the `connect` tool until it answers with a session id (TCP, key
//! exchange, host-key check against known_hosts, publickey auth). OpenSSH:
//! `ssh -o ControlMaster=yes -fN` until it goes to the background, which it
//! does once authenticated and accepting multiplexed clients: the step a
//! user takes to get the warm path of figure 1. The floor: russh's connect
//! and auth inside the bench.
//!
//! The two clients do not agree on a key exchange by default: OpenSSH 9.x
//! picks the post-quantum sntrup761x25519-sha512, russh (whose first
//! choice, mlkem768x25519-sha256, this sshd may lack) falls back to
//! curve25519-sha256. So OpenSSH is also measured with that key exchange,
//! to separate the client from the algorithm.

use anyhow::Result;

use super::WARMUP;
use crate::fixture::Bench;
use crate::report::{Row, Target, Unit, Value};
use crate::stats::{Samples, rotation};

/// The key exchange russh negotiates with OpenSSH before 9.9.
const SAME_KEX: &str = "KexAlgorithms=curve25519-sha256";

pub fn run(b: &Bench) -> Result<Vec<Row>> {
    let mut ours = b.ours();
    // Also learns the host key, so every measured connect finds it known.
    for _ in 0..WARMUP {
        let session = ours.connect()?;
        ours.disconnect(&session)?;
        drop(b.openssh.start_master()?);
        b.raw.disconnect(vec![b.raw.connect()?]);
    }

    let mut s = vec![Samples::new(); 4];
    for rep in b.plan.connect.iter() {
        for side in rotation(rep, 4) {
            match side {
                0 => {
                    let session = s[0].time(|| ours.connect())?;
                    ours.disconnect(&session)?;
                }
                1 | 2 => {
                    let settings: &[&str] = if side == 1 { &[] } else { &[SAME_KEX] };
                    let (master, elapsed) = b.openssh.start_master_with(settings)?;
                    s[side].push(elapsed);
                    drop(master);
                }
                _ => {
                    let session = s[3].time(|| b.raw.connect())?;
                    b.raw.disconnect(vec![session]);
                }
            }
        }
    }

    let [ours_ms, ssh_ms, same_kex_ms, floor_ms] = [0, 1, 2, 3].map(|i| Value::ms(&s[i]));
    let n = s[0].len();
    Ok(vec![
        Row::new(
            2,
            "connect (key auth) until a session id",
            Unit::Ms,
            ours_ms,
        )
        .against("`ssh -fN` ControlMaster up", ssh_ms)
        .target(Target::RatioAtMost(1.0))
        .samples(n)
        .note(format!(
            "the floor (russh connect and auth in the bench, {:.1} ms) is the SSH handshake \
                 itself; ours adds {:.2} ms to it. OpenSSH spends {:.0} ms of its time on its \
                 default post-quantum key exchange (the difference to the next row)",
            floor_ms.median,
            ours_ms.median - floor_ms.median,
            ssh_ms.median - same_kex_ms.median,
        )),
        Row::new(2, "connect, same key exchange", Unit::Ms, ours_ms)
            .against("`ssh -fN -o KexAlgorithms=curve25519-sha256`", same_kex_ms)
            .samples(n),
        Row::new(2, "connect: overhead over the floor", Unit::Ms, ours_ms)
            .against("raw russh connect", floor_ms)
            .samples(n),
    ])
}
