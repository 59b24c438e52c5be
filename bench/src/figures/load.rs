//! Figure 6: many MCP hosts at once on one daemon.
//!
//! 16 shims, each on its own thread making 50 sequential `execute` calls
//! of `true`, spread over 4 sessions: throughput (calls per second of wall
//! time), latency per call, and errors. The same load as OpenSSH users
//! would run it: 16 threads each running 50 `ssh -S` processes, spread
//! over 4 ControlMasters. Rounds alternate between the two.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use sshmcp_tests::Shim;

use crate::fixture::Bench;
use crate::openssh::{COMMAND_TIMEOUT, Master};
use crate::ours::execute;
use crate::procs::run_timed;
use crate::report::{Row, Target, Unit, Value};
use crate::stats::{Samples, rotation};

/// One round of one side.
#[derive(Default)]
struct Round {
    wall: Duration,
    latencies: Samples,
    errors: usize,
    calls: usize,
}

pub fn run(b: &Bench) -> Result<Vec<Row>> {
    let load = b.plan.load;
    let mut ours = b.ours();
    let sessions = (0..load.sessions)
        .map(|_| ours.connect())
        .collect::<Result<Vec<_>>>()?;
    let mut shims: Vec<Shim> = (0..load.shims).map(|_| ours.new_shim()).collect();
    let masters = b.openssh.start_masters(load.sessions)?;
    // Each shim opens its daemon connection on its first call, which is
    // not what the figure is about.
    for (i, shim) in shims.iter_mut().enumerate() {
        execute(shim, &sessions[i % sessions.len()], "true")?;
    }

    let (mut o, mut t) = (Vec::new(), Vec::new());
    for rep in load.rounds.iter() {
        for side in rotation(rep, 2) {
            if side == 0 {
                o.push(ours_round(&mut shims, &sessions, load.calls));
            } else {
                t.push(openssh_round(b, &masters, load.shims, load.calls));
            }
        }
    }
    drop(masters);

    let summary = |rounds: &[Round]| {
        let mut walls = Samples::new();
        let mut latencies = Samples::new();
        let (mut errors, mut calls) = (0, 0);
        for round in rounds {
            walls.push(round.wall);
            latencies.extend(&round.latencies);
            errors += round.errors;
            calls += round.calls;
        }
        let per_round = calls as f64 / rounds.len().max(1) as f64;
        (
            Value::rate(per_round, &walls),
            Value::ms(&latencies),
            errors,
            calls,
        )
    };
    let (ours_rate, ours_latency, ours_errors, ours_calls) = summary(&o);
    let (ssh_rate, ssh_latency, ssh_errors, _) = summary(&t);
    let shape = format!(
        "{} shims × {} executes over {} sessions",
        load.shims, load.calls, load.sessions
    );
    Ok(vec![
        Row::new(
            6,
            format!("load, {shape}: throughput"),
            Unit::CallsPerSec,
            ours_rate,
        )
        .against("`ssh -S` processes", ssh_rate)
        .target(Target::RatioAtLeast(0.8))
        .samples(o.len()),
        Row::new(6, "load: latency per call", Unit::Ms, ours_latency)
            .against("`ssh -S`", ssh_latency)
            .samples(ours_calls),
        Row::new(
            6,
            "load: errors",
            Unit::Count,
            Value::single(ours_errors as f64),
        )
        .against("`ssh -S`", Value::single(ssh_errors as f64))
        .target(Target::AtMost(0.0))
        .samples(ours_calls),
    ])
}

/// Every shim on its own thread, released together; a call that fails (or
/// a worker that panics) counts as an error rather than ending the figure.
fn ours_round(shims: &mut [Shim], sessions: &[String], calls: usize) -> Round {
    let start_line = Barrier::new(shims.len() + 1);
    thread::scope(|scope| {
        let workers: Vec<_> = shims
            .iter_mut()
            .enumerate()
            .map(|(i, shim)| {
                let session = &sessions[i % sessions.len()];
                let start_line = &start_line;
                scope.spawn(move || {
                    start_line.wait();
                    worker(calls, || execute(shim, session, "true").is_ok())
                })
            })
            .collect();
        collect(&start_line, workers, calls)
    })
}

fn openssh_round(b: &Bench, masters: &[Master], threads: usize, calls: usize) -> Round {
    let start_line = Barrier::new(threads + 1);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let mut ssh = b.openssh.via(&masters[i % masters.len()], "true");
                let start_line = &start_line;
                scope.spawn(move || {
                    start_line.wait();
                    worker(calls, || run_timed(&mut ssh, COMMAND_TIMEOUT).is_ok())
                })
            })
            .collect();
        collect(&start_line, workers, calls)
    })
}

/// `calls` sequential calls of `one`, each timed; returns the latencies and
/// how many failed.
fn worker(calls: usize, mut one: impl FnMut() -> bool) -> (Samples, usize) {
    let mut latencies = Samples::new();
    let mut errors = 0;
    for _ in 0..calls {
        let start = Instant::now();
        let ok = one();
        latencies.push(start.elapsed());
        if !ok {
            errors += 1;
        }
    }
    (latencies, errors)
}

/// Releases the workers, then waits for all of them: the wall time runs
/// from the release to the last one done.
fn collect(
    start_line: &Barrier,
    workers: Vec<thread::ScopedJoinHandle<'_, (Samples, usize)>>,
    calls: usize,
) -> Round {
    start_line.wait();
    let start = Instant::now();
    let mut round = Round::default();
    for worker in workers {
        match worker.join() {
            Ok((latencies, errors)) => {
                round.latencies.extend(&latencies);
                round.errors += errors;
            }
            Err(_) => round.errors += calls,
        }
        round.calls += calls;
    }
    round.wall = start.elapsed();
    round
}
