//! How much each figure measures: the full run (stable medians, about five
//! minutes on two cores) or `--quick` (the same figures, smaller, under a
//! minute). Every loop has both a count and a time budget.

use std::time::Duration;

use crate::stats::bounded;

/// Repetitions of one measurement: at most `count`, and no new one started
/// after `budget`.
#[derive(Clone, Copy, Debug)]
pub struct Reps {
    pub count: usize,
    pub budget: Duration,
}

impl Reps {
    const fn new(count: usize, budget_secs: u64) -> Reps {
        Reps {
            count,
            budget: Duration::from_secs(budget_secs),
        }
    }

    pub fn iter(self) -> impl Iterator<Item = usize> {
        bounded(self.count, self.budget)
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    /// Figure 1: rounds of (ours, raw russh, `ssh -S`).
    pub exec: Reps,
    /// Figure 2: rounds of (ours, `ssh -fN`, raw russh).
    pub connect: Reps,
    /// Figure 3: rounds of the six transfers, and the file size.
    pub transfer: Reps,
    pub transfer_bytes: u64,
    /// Figure 4: rounds of (shim start, `ssh -O check`).
    pub cold_start: Reps,
    /// Figure 5: session counts at which the daemon's memory is read, and
    /// how many ControlMasters the OpenSSH side averages over.
    pub idle_sessions: Vec<usize>,
    pub masters_for_memory: usize,
    /// Figure 6.
    pub load: Load,
    /// Figure 7: rounds of (ours, `ssh -S`), and the output size.
    pub big_output: Reps,
    pub big_output_bytes: u64,
    /// Figure 8: rounds of the six fan-out measurements, and the width.
    pub fan_out: Reps,
    pub fan_out_sessions: usize,
}

/// Figure 6: `shims` concurrent clients, each making `calls` sequential
/// executes, spread over `sessions`; `rounds` alternate ours and OpenSSH.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub shims: usize,
    pub calls: usize,
    pub sessions: usize,
    pub rounds: Reps,
}

const MIB: u64 = 1024 * 1024;

impl Plan {
    /// The sizes issue #6 asks for.
    pub fn full() -> Plan {
        Plan {
            exec: Reps::new(200, 60),
            connect: Reps::new(40, 45),
            transfer: Reps::new(5, 180),
            transfer_bytes: 256 * MIB,
            cold_start: Reps::new(60, 30),
            idle_sessions: vec![100, 200],
            masters_for_memory: 10,
            load: Load {
                shims: 16,
                calls: 50,
                sessions: 4,
                rounds: Reps::new(2, 90),
            },
            big_output: Reps::new(3, 90),
            big_output_bytes: 256 * MIB,
            fan_out: Reps::new(7, 60),
            fan_out_sessions: 50,
        }
    }

    /// Every figure, scaled down to run in under a minute.
    pub fn quick() -> Plan {
        Plan {
            exec: Reps::new(20, 5),
            connect: Reps::new(5, 4),
            transfer: Reps::new(1, 10),
            transfer_bytes: 32 * MIB,
            cold_start: Reps::new(10, 3),
            idle_sessions: vec![20, 40],
            masters_for_memory: 3,
            load: Load {
                shims: 16,
                calls: 3,
                sessions: 4,
                rounds: Reps::new(1, 10),
            },
            big_output: Reps::new(1, 10),
            big_output_bytes: 32 * MIB,
            fan_out: Reps::new(1, 5),
            fan_out_sessions: 10,
        }
    }
}
