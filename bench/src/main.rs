//! sshmcp-bench: measures sshmcp against what users already have —
//! OpenSSH's `ssh` (plain and multiplexed), `sftp` and `scp` — on one
//! machine, in one run, and prints the figures of issue #6 as ratios.
//!
//! It starts its own sshd on 127.0.0.1 (the test harness's fixture), its own
//! daemon on a sandbox socket, and drives the real shim over MCP stdio.
//! Nothing here talks to any address but loopback, and nothing asserts a
//! speed: targets are reported, met or not, with the measurements that
//! explain them. See BENCHMARKS.md for what each figure means.

mod binaries;
mod figures;
mod fixture;
mod machine;
mod openssh;
mod ours;
mod plan;
mod procs;
mod raw;
mod report;
mod stats;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

use crate::fixture::Bench;
use crate::machine::Machine;
use crate::plan::Plan;

#[derive(Parser)]
#[command(
    name = "sshmcp-bench",
    about = "Benchmarks sshmcp against OpenSSH's clients on this machine (loopback only)"
)]
struct Args {
    /// Every figure, scaled down to run in under a minute.
    #[arg(long)]
    quick: bool,
    /// Also write the figures to PATH as JSON, one object per table row.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Run only figure N (1-8); repeat for several.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=8))]
    only: Vec<u8>,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sshmcp-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen figures and prints the table. Returns false when a
/// figure could not be measured: the table then lacks its rows, and says
/// why underneath.
fn run(args: &Args) -> Result<bool> {
    binaries::ensure_fresh()?;
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let machine = Machine::describe();
    let started = Instant::now();
    let bench = Bench::start(plan)?;
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for figure in figures::ALL
        .iter()
        .filter(|f| args.only.is_empty() || args.only.contains(&f.number))
    {
        eprintln!(
            "[{:5.1} s] figure {}: {}",
            started.elapsed().as_secs_f64(),
            figure.number,
            figure.title
        );
        // The harness panics when a fixture fails (a shim that stops
        // answering, say); one broken figure should not lose the others.
        match catch_unwind(AssertUnwindSafe(|| (figure.run)(&bench))) {
            Ok(Ok(figure_rows)) => rows.extend(figure_rows),
            Ok(Err(e)) => failures.push(format!("figure {} failed: {e:#}", figure.number)),
            Err(_) => failures.push(format!(
                "figure {} panicked (its message is above)",
                figure.number
            )),
        }
    }
    drop(bench);

    let mode = if args.quick { "quick" } else { "full" };
    println!(
        "## sshmcp-bench ({mode} run, {:.0} s)\n\n{}\n{}",
        started.elapsed().as_secs_f64(),
        machine.markdown(),
        report::markdown(&rows)
    );
    for failure in &failures {
        println!("\n**{failure}**");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report::json(&rows))
            .context("encode the figures as JSON")?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    }
    Ok(failures.is_empty())
}
