//! The results: one row per figure, printed as a markdown table and written
//! as JSON.
//!
//! Every row compares ours with a baseline measured in the same run, back to
//! back, and states its target, so the ratio (which holds from run to run
//! on a shared machine) is what a reader looks at, not the absolute numbers
//! (which drift).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::stats::Samples;

/// What a row's numbers count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Ms,
    Seconds,
    MibPerSec,
    CallsPerSec,
    KiB,
    MiB,
    Count,
    /// A factor, such as "fan-out took 1.4× one call".
    Times,
}

impl Unit {
    pub fn label(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Seconds => "s",
            Unit::MibPerSec => "MiB/s",
            Unit::CallsPerSec => "calls/s",
            Unit::KiB => "KiB",
            Unit::MiB => "MiB",
            Unit::Count => "",
            Unit::Times => "×",
        }
    }

    fn format(self, x: f64) -> String {
        let digits = match self {
            Unit::Count => 0,
            Unit::Times => 2,
            _ if x.abs() >= 100.0 => 0,
            _ if x.abs() >= 10.0 => 1,
            _ => 2,
        };
        let number = format!("{x:.digits$}");
        match self.label() {
            "" => number,
            "×" => format!("{number}×"),
            label => format!("{number} {label}"),
        }
    }
}

/// A measured value: the median of its repetitions and, when there were
/// several, the slow end of the distribution (the 95th-percentile time, or
/// for rates the rate at that time).
#[derive(Clone, Copy, Debug)]
pub struct Value {
    pub median: f64,
    pub p95: Option<f64>,
}

impl Value {
    pub fn single(x: f64) -> Value {
        Value {
            median: x,
            p95: None,
        }
    }

    /// Durations in milliseconds.
    pub fn ms(samples: &Samples) -> Value {
        Self::durations(samples, |d| d.as_secs_f64() * 1e3)
    }

    /// Durations in seconds.
    pub fn seconds(samples: &Samples) -> Value {
        Self::durations(samples, |d| d.as_secs_f64())
    }

    /// `bytes` moved in each of `samples`, as MiB/s.
    pub fn mib_per_sec(bytes: u64, samples: &Samples) -> Value {
        Self::rate(bytes as f64 / MIB, samples)
    }

    /// `amount` done in each of `samples`, per second.
    pub fn rate(amount: f64, samples: &Samples) -> Value {
        Self::durations(samples, |d| amount / d.as_secs_f64())
    }

    fn durations(samples: &Samples, convert: impl Fn(Duration) -> f64) -> Value {
        Value {
            median: convert(samples.median()),
            p95: (samples.len() > 1).then(|| convert(samples.p95())),
        }
    }

    fn cell(self, unit: Unit) -> String {
        match self.p95 {
            Some(p95) => format!("{} (p95 {})", unit.format(self.median), unit.format(p95)),
            None => unit.format(self.median),
        }
    }
}

pub const MIB: f64 = 1024.0 * 1024.0;

/// What a row must show to meet its target. Ratios are always ours divided
/// by the baseline.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    RatioAtMost(f64),
    RatioAtLeast(f64),
    /// Ours, in the row's unit, whatever the baseline.
    AtMost(f64),
    /// Ours minus the baseline, in the row's unit: an overhead over a floor.
    ExcessAtMost(f64),
}

impl Target {
    fn describe(self, unit: Unit) -> String {
        match self {
            Target::RatioAtMost(r) => format!("ratio ≤ {r:.2}"),
            Target::RatioAtLeast(r) => format!("ratio ≥ {r:.2}"),
            Target::AtMost(x) => format!("≤ {}", unit.format(x)),
            Target::ExcessAtMost(x) => format!("ours − baseline ≤ {}", unit.format(x)),
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// The figure number in issue #6 (1–8); a figure may have several rows.
    pub figure: u8,
    pub name: String,
    /// What the baseline column holds, e.g. "`ssh -S`".
    pub baseline: String,
    pub unit: Unit,
    pub ours: Value,
    pub theirs: Option<Value>,
    pub target: Option<Target>,
    /// Repetitions behind the medians.
    pub samples: usize,
    /// What the reader needs to interpret the row: the floor it sits on,
    /// why a target is missed.
    pub note: Option<String>,
}

impl Row {
    pub fn new(figure: u8, name: impl Into<String>, unit: Unit, ours: Value) -> Row {
        Row {
            figure,
            name: name.into(),
            baseline: String::new(),
            unit,
            ours,
            theirs: None,
            target: None,
            samples: 1,
            note: None,
        }
    }

    pub fn against(mut self, baseline: impl Into<String>, theirs: Value) -> Row {
        self.baseline = baseline.into();
        self.theirs = Some(theirs);
        self
    }

    pub fn target(mut self, target: Target) -> Row {
        self.target = Some(target);
        self
    }

    pub fn samples(mut self, n: usize) -> Row {
        self.samples = n;
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Row {
        self.note = Some(note.into());
        self
    }

    pub fn ratio(&self) -> Option<f64> {
        let theirs = self.theirs?.median;
        (theirs != 0.0).then(|| self.ours.median / theirs)
    }

    /// Whether the target is met; `None` for rows without a target (or a
    /// ratio target without a baseline to divide by).
    pub fn met(&self) -> Option<bool> {
        let ours = self.ours.median;
        match self.target? {
            Target::RatioAtMost(r) => self.ratio().map(|x| x <= r),
            Target::RatioAtLeast(r) => self.ratio().map(|x| x >= r),
            Target::AtMost(x) => Some(ours <= x),
            Target::ExcessAtMost(x) => self.theirs.map(|t| ours - t.median <= x),
        }
    }

    fn json(&self) -> Json {
        json!({
            "figure": self.figure,
            "name": self.name,
            "ours": self.ours.median,
            "ours_p95": self.ours.p95,
            "theirs": self.theirs.map(|t| t.median),
            "theirs_p95": self.theirs.and_then(|t| t.p95),
            "baseline": (!self.baseline.is_empty()).then_some(&self.baseline),
            "unit": self.unit.label(),
            "ratio": self.ratio(),
            "target": self.target.map(|t| t.describe(self.unit)),
            "met": self.met(),
            "samples": self.samples,
            "note": self.note,
        })
    }
}

/// The table, then the notes that explain rows, numbered by figure.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| # | figure | ours | baseline | ratio | target | met |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let baseline = match row.theirs {
            Some(theirs) => format!("{}: {}", row.baseline, theirs.cell(row.unit)),
            None => "—".to_owned(),
        };
        let ratio = row.ratio().map_or("—".to_owned(), |r| format!("{r:.2}"));
        let target = row.target.map_or("—".to_owned(), |t| t.describe(row.unit));
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "**NO**",
            None => "—",
        };
        // A `|` inside a cell would split it.
        let name = row.name.replace('|', "\\|");
        writeln!(
            out,
            "| {} | {name} (n={}) | {} | {baseline} | {ratio} | {target} | {met} |",
            row.figure,
            row.samples,
            row.ours.cell(row.unit),
        )
        .expect("writing to a String cannot fail");
    }
    let notes: Vec<_> = rows
        .iter()
        .filter_map(|r| r.note.as_ref().map(|n| (r, n)))
        .collect();
    if !notes.is_empty() {
        out.push_str("\nNotes:\n\n");
        for (row, note) in notes {
            writeln!(out, "- **{}. {}**: {note}", row.figure, row.name)
                .expect("writing to a String cannot fail");
        }
    }
    out
}

/// One object per row: name, ours, theirs, unit, ratio, target, met, and
/// the p95s, sample count and note beside them.
pub fn json(rows: &[Row]) -> Json {
    Json::Array(rows.iter().map(Row::json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ours: f64, theirs: f64, target: Target) -> Row {
        Row::new(1, "x", Unit::Ms, Value::single(ours))
            .against("base", Value::single(theirs))
            .target(target)
    }

    #[test]
    fn targets_compare_the_right_quantity() {
        assert_eq!(row(9.0, 10.0, Target::RatioAtMost(1.0)).met(), Some(true));
        assert_eq!(row(11.0, 10.0, Target::RatioAtMost(1.0)).met(), Some(false));
        assert_eq!(row(15.0, 10.0, Target::RatioAtLeast(1.5)).met(), Some(true));
        assert_eq!(row(10.5, 10.0, Target::ExcessAtMost(1.0)).met(), Some(true));
        assert_eq!(
            row(11.5, 10.0, Target::ExcessAtMost(1.0)).met(),
            Some(false)
        );
        assert_eq!(row(21.0, 1.0, Target::AtMost(20.0)).met(), Some(false));
        let untargeted = Row::new(1, "x", Unit::Ms, Value::single(1.0));
        assert_eq!(untargeted.met(), None);
        assert_eq!(untargeted.ratio(), None);
    }

    #[test]
    fn table_marks_a_missed_target() {
        let table = markdown(&[row(11.0, 10.0, Target::RatioAtMost(1.0)).note("why")]);
        assert!(
            table.contains(
                "| 1 | x (n=1) | 11.0 ms | base: 10.0 ms | 1.10 | ratio ≤ 1.00 | **NO** |"
            ),
            "{table}"
        );
        assert!(table.contains("- **1. x**: why"), "{table}");
    }

    #[test]
    fn json_has_the_issue_fields() {
        let value = json(&[row(11.0, 10.0, Target::RatioAtMost(1.0))]);
        let object = &value[0];
        for key in ["name", "ours", "theirs", "unit", "ratio", "target", "met"] {
            assert!(object.get(key).is_some(), "{key} missing in {object}");
        }
        assert_eq!(object["met"], false);
    }
}
