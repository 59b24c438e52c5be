//! Figure 3: upload and download of one large random file.
//!
//! Ours: the `upload` and `download` tools (SFTP in the daemon, pipelined
//! reads and writes) on an open session. OpenSSH: `sftp -b` and `scp`
//! (OpenSSH 9's `scp` speaks SFTP too) over a ControlMaster, so they too
//! start on an open connection; and `sftp` as a user types it, on a
//! connection of its own whose handshake it pays for. All against the same
//! sshd on loopback, so the disk and sshd's sftp server are the same for
//! everyone; the difference is the client.
//!
//! Every copy is checked: its size each time, its SHA-256 in the first
//! round, so a fast wrong transfer cannot count.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sshmcp_tests::{random_file, sha256_file};

use crate::fixture::Bench;
use crate::openssh::{Master, batch_file};
use crate::ours::{Ours, call, transfer_args};
use crate::procs::run_timed;
use crate::report::{Row, Target, Unit, Value};
use crate::stats::{Samples, rotation};

/// Long enough for 256 MiB at a few MiB/s.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Upload,
    Download,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Ours,
    /// `sftp` over the ControlMaster.
    Sftp,
    /// `scp` over the ControlMaster.
    Scp,
    /// `sftp` over a connection of its own, handshake included.
    SftpCold,
}

/// The eight transfers; their samples are kept in this order.
const OPS: [(Direction, Client); 8] = [
    (Direction::Upload, Client::Ours),
    (Direction::Upload, Client::Sftp),
    (Direction::Upload, Client::Scp),
    (Direction::Upload, Client::SftpCold),
    (Direction::Download, Client::Ours),
    (Direction::Download, Client::Sftp),
    (Direction::Download, Client::Scp),
    (Direction::Download, Client::SftpCold),
];

pub fn run(b: &Bench) -> Result<Vec<Row>> {
    let size = b.plan.transfer_bytes;
    let dir = b.scratch.path();
    let source = dir.join("payload");
    let digest = random_file(&source, size);
    for sub in ["remote", "local"] {
        std::fs::create_dir_all(dir.join(sub)).with_context(|| format!("create {sub}"))?;
    }
    let mut ours = b.ours();
    ours.shim().set_timeout(TRANSFER_TIMEOUT);
    let session = ours.connect()?;
    let (master, _) = b.openssh.start_master()?;

    let mut samples = vec![Samples::new(); OPS.len()];
    for rep in b.plan.transfer.iter() {
        for op in rotation(rep, OPS.len()) {
            let (direction, client) = OPS[op];
            // sshd runs on this machine, so the source file is also a
            // remote path; uploads land in "remote", downloads in "local".
            let to = dir
                .join(match direction {
                    Direction::Upload => "remote",
                    Direction::Download => "local",
                })
                .join(format!("copy{op}"));
            let elapsed = match client {
                Client::Ours => ours_transfer(&mut ours, &session, direction, &source, &to)?,
                Client::Sftp | Client::Scp | Client::SftpCold => {
                    let mut cmd = openssh_transfer(b, &master, client, direction, &source, &to)?;
                    run_timed(&mut cmd, TRANSFER_TIMEOUT)?
                }
            };
            samples[op].push(elapsed);
            check_copy(&to, size, (rep == 0).then_some(digest.as_str()))?;
            std::fs::remove_file(&to).with_context(|| format!("remove {}", to.display()))?;
        }
    }
    drop(master);
    std::fs::remove_file(&source).context("remove the payload")?;

    let name = |direction: &str| format!("{direction} {} MiB", size >> 20);
    let rate = |op: usize| Value::mib_per_sec(size, &samples[op]);
    let row = |direction: &str, ours_op: usize, their_op: usize, baseline: &str| {
        Row::new(3, name(direction), Unit::MibPerSec, rate(ours_op))
            .against(baseline, rate(their_op))
            .samples(samples[ours_op].len())
    };
    let warm = |direction, ours_op, their_op, tool| {
        row(
            direction,
            ours_op,
            their_op,
            &format!("`{tool}` over a ControlMaster"),
        )
        .target(Target::RatioAtLeast(1.5))
    };
    Ok(vec![
        warm("upload", 0, 1, "sftp"),
        warm("upload", 0, 2, "scp"),
        row("upload", 0, 3, "`sftp` on its own connection"),
        warm("download", 4, 5, "sftp"),
        warm("download", 4, 6, "scp"),
        row("download", 4, 7, "`sftp` on its own connection"),
    ])
}

/// The tool call, timed from request to answer.
fn ours_transfer(
    ours: &mut Ours,
    session: &str,
    direction: Direction,
    from: &Path,
    to: &Path,
) -> Result<Duration> {
    let (tool, args) = match direction {
        Direction::Upload => ("upload", transfer_args(session, from, to)),
        Direction::Download => ("download", transfer_args(session, to, from)),
    };
    let start = Instant::now();
    call(ours.shim(), tool, args)?;
    Ok(start.elapsed())
}

fn openssh_transfer(
    b: &Bench,
    master: &Master,
    client: Client,
    direction: Direction,
    from: &Path,
    to: &Path,
) -> Result<Command> {
    if client != Client::Scp {
        let batch = b.scratch.path().join("sftp.batch");
        let command = match direction {
            Direction::Upload => "put",
            Direction::Download => "get",
        };
        batch_file(&batch, command, from, to)?;
        let via = (client == Client::Sftp).then_some(master);
        return Ok(b.openssh.sftp(via, &batch));
    }
    let local = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .with_context(|| format!("{} is not UTF-8", p.display()))
    };
    Ok(match direction {
        Direction::Upload => b.openssh.scp(master, &local(from)?, &b.openssh.remote(to)),
        Direction::Download => b.openssh.scp(master, &b.openssh.remote(from), &local(to)?),
    })
}

fn check_copy(copy: &Path, size: u64, digest: Option<&str>) -> Result<()> {
    let len = std::fs::metadata(copy)
        .with_context(|| format!("the copy {} is missing", copy.display()))?
        .len();
    if len != size {
        bail!("{} has {len} bytes, not {size}", copy.display());
    }
    if let Some(digest) = digest
        && sha256_file(copy) != digest
    {
        bail!("{} differs from what was sent", copy.display());
    }
    Ok(())
}
