//! The machine a run was measured on, printed above the table: absolute
//! numbers only mean something next to the cores, CPU and OpenSSH version
//! they came from.

use std::process::Command;

pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory: String,
    pub kernel: String,
    pub openssh: String,
}

impl Machine {
    /// Reads what it can; anything unreadable shows as "unknown" rather than
    /// failing the run.
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        // `ssh -V` prints its version to stderr.
        let openssh = Command::new("ssh")
            .arg("-V")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stderr).trim().to_owned())
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu: field(&cpuinfo, "model name"),
            memory: field(&meminfo, "MemTotal"),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            openssh,
        }
    }

    pub fn markdown(&self) -> String {
        let known = |s: &str| {
            if s.is_empty() {
                "unknown".to_owned()
            } else {
                s.to_owned()
            }
        };
        format!(
            "Machine: {} cores, {}, {} RAM, Linux {}; {}\n",
            self.cores,
            known(&self.cpu),
            known(&self.memory),
            known(&self.kernel),
            known(&self.openssh),
        )
    }
}

/// The value of the first `key: value` line.
fn field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
        .unwrap_or_default()
}
