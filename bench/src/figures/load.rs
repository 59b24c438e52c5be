//! Figure 6: many MCP hosts at once on one daemon.
//!
//! 16 shims, each on its own thread making 50 sequential `execute` calls
//! of `true`, spread over 4 sessions: throughput (calls per second of wall
//! time), latency per call, and errors. The same load as OpenSSH users
//! would run it: 16 threads each running 50 `ssh -S` processes, spread
//! over 4 ControlMasters. Rounds alternate between the two. A side stops
//! issuing calls after [`SIDE_LIMIT`], so a loaded machine cannot stretch
//! the figure without bound; throughput counts the calls that were made.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use sshmcp_tests::Shim;

use crate::fixture::Bench;
use crate::openssh::{COMMAND_TIMEOUT, Master};
use crate::ours::{call, execute};
use crate::procs::run_timed;
use crate::report::{Row, Target, Unit, Value};
use crate::stats::{Samples, rotation};

/// How long one side of one round may keep issuing calls.
const SIDE_LIMIT: Duration = Duration::from_secs(60);

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
    // not what the figure is about; `list_sessions` does that without
    // starting a remote shell.
    for shim in &mut shims {
        call(shim, "list_sessions", json!({}))?;
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
        // Wall time per call, so rounds that made different numbers of
        // calls compare; its inverse is the throughput.
        let mut per_call = Samples::new();
        let mut latencies = Samples::new();
        let (mut errors, mut calls) = (0, 0);
        for round in rounds {
            let made = u32::try_from(round.calls.max(1)).unwrap_or(u32::MAX);
            per_call.push(round.wall / made);
            latencies.extend(&round.latencies);
            errors += round.errors;
            calls += round.calls;
        }
        (
            Value::rate(1.0, &per_call),
            Value::ms(&latencies),
            errors,
            calls,
        )
    };
    let (ours_rate, ours_latency, ours_errors, ours_calls) = summary(&o);
    let (ssh_rate, ssh_latency, ssh_errors, ssh_calls) = summary(&t);
    let planned = load.shims * load.calls * o.len();
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
        .samples(o.len())
        .note(format!(
            "calls made: ours {ours_calls}, `ssh -S` {ssh_calls}, of {planned} planned per side \
             (a side stops issuing calls after {} s)",
            SIDE_LIMIT.as_secs()
        )),
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

/// Up to `calls` sequential calls of `one`, none started after
/// [`SIDE_LIMIT`], each timed; returns the latencies and how many failed.
fn worker(calls: usize, mut one: impl FnMut() -> bool) -> (Samples, usize) {
    let deadline = Instant::now() + SIDE_LIMIT;
    let mut latencies = Samples::new();
    let mut errors = 0;
    for _ in 0..calls {
        if Instant::now() >= deadline {
            break;
        }
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
                round.calls += latencies.len();
                round.latencies.extend(&latencies);
                round.errors += errors;
            }
            // Its calls are unaccounted for: count them all as failed.
            Err(_) => {
                round.calls += calls;
                round.errors += calls;
            }
        }
    }
    round.wall = start.elapsed();
    round
}
