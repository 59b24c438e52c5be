//! The eight figures of issue #6. Each takes the shared fixture, measures
//! ours and its baselines interleaved (so drift on a shared machine hits
//! both alike), and returns its rows.

mod big_output;
mod cold_start;
mod connect;
mod exec;
mod fan_out;
mod load;
mod memory;
mod transfer;

use anyhow::Result;

use crate::fixture::Bench;
use crate::report::Row;

pub struct Figure {
    pub number: u8,
    pub title: &'static str,
    pub run: fn(&Bench) -> Result<Vec<Row>>,
}

pub const ALL: [Figure; 8] = [
    Figure {
        number: 1,
        title: "execute round trip on an open session",
        run: exec::run,
    },
    Figure {
        number: 2,
        title: "connect",
        run: connect::run,
    },
    Figure {
        number: 3,
        title: "upload and download",
        run: transfer::run,
    },
    Figure {
        number: 4,
        title: "shim cold start",
        run: cold_start::run,
    },
    Figure {
        number: 5,
        title: "daemon memory per idle session",
        run: memory::run,
    },
    Figure {
        number: 6,
        title: "load: concurrent shims",
        run: load::run,
    },
    Figure {
        number: 7,
        title: "big output",
        run: big_output::run,
    },
    Figure {
        number: 8,
        title: "fan-out over many sessions",
        run: fan_out::run,
    },
];

/// Untimed calls before each figure's measurements: the first calls pay
/// for one-off work (the shim's daemon connection, page cache, sshd's
/// first fork) that is not what the figure is about.
const WARMUP: usize = 3;
