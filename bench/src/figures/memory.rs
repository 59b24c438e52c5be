//! Figure 5: what an idle session costs the daemon.
//!
//! A fresh daemon's resident memory (`VmRSS`) with no session, then with
//! 100 and 200 idle ones; the cost per session is the growth divided by
//! the count. The counterpart is one OpenSSH ControlMaster per session,
//! measured by its proportional set size (PSS), which counts the shared
//! libraries and pages every master has in common once, not once per
//! process: the fair share of memory each extra master adds.

use std::thread;
use std::time::Duration;

use anyhow::Result;

use crate::fixture::Bench;
use crate::procs::{Memory, pss_kib};
use crate::report::{Row, Target, Unit, Value};

/// Lets connection tasks finish and the allocator settle before a reading:
/// the figure is about idle sessions, not ones still being set up.
const SETTLE: Duration = Duration::from_secs(1);

pub fn run(b: &Bench) -> Result<Vec<Row>> {
    let mut ours = b.ours();
    let pid = ours.daemon_pid();
    // One session opened and closed first, so the baseline already holds
    // what the first connect sets up once (crypto tables, known_hosts).
    let first = ours.connect()?;
    ours.disconnect(&first)?;
    thread::sleep(SETTLE);
    let mut readings = vec![(0, Memory::of(pid)?.rss_kib)];
    let mut sessions = Vec::new();
    for &count in &b.plan.idle_sessions {
        sessions.extend(ours.connect_many(count - sessions.len())?);
        thread::sleep(SETTLE);
        readings.push((count, Memory::of(pid)?.rss_kib));
    }

    let masters = b.openssh.start_masters(b.plan.masters_for_memory)?;
    thread::sleep(SETTLE);
    let mut pss = Vec::new();
    let mut rss = Vec::new();
    for master in &masters {
        pss.push(pss_kib(master.pid())?);
        rss.push(Memory::of(master.pid())?.rss_kib);
    }
    drop(masters);
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;

    let mut rows: Vec<Row> = readings
        .iter()
        .map(|&(count, kib)| {
            Row::new(
                5,
                format!("daemon RSS, {count} idle sessions"),
                Unit::MiB,
                Value::single(kib as f64 / 1024.0),
            )
        })
        .collect();
    let (n, last) = readings[readings.len() - 1];
    let base = readings[0].1;
    let per_session = (last as f64 - base as f64) / n.max(1) as f64;
    let slope = match readings.as_slice() {
        [.., (n1, k1), (n2, k2)] if n2 > n1 => format!(
            "; from {n1} to {n2} sessions it grew {:.0} KiB per session",
            (*k2 as f64 - *k1 as f64) / (n2 - n1) as f64
        ),
        _ => String::new(),
    };
    rows.push(
        Row::new(
            5,
            format!("memory per idle session (0 → {n})"),
            Unit::KiB,
            Value::single(per_session),
        )
        .against("ControlMaster PSS", Value::single(mean(&pss)))
        .target(Target::AtMost(200.0))
        .samples(n)
        .note(format!(
            "ours is the daemon's RSS growth divided by the session count{slope}. OpenSSH: \
                 the mean PSS of {} ControlMasters (their RSS is {:.0} KiB each, shared \
                 libraries counted in full)",
            pss.len(),
            mean(&rss)
        )),
    );
    Ok(rows)
}
