//! The markdown report: one table per scenario, then the targets as measured in this run.

use std::fmt::Write as _;

pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) notes: Vec<String>,
    pub(crate) header: Vec<&'static str>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl Section {
    pub(crate) fn new(title: impl Into<String>, header: Vec<&'static str>) -> Self {
        Section {
            title: title.into(),
            notes: Vec::new(),
            header,
            rows: Vec::new(),
        }
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub(crate) fn row(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.header.len());
        self.rows.push(row);
    }
}

/// A product target, evaluated on this run's numbers.
pub(crate) struct Target {
    pub(crate) what: &'static str,
    pub(crate) measured: String,
    /// `None`: not measured in this run.
    pub(crate) met: Option<bool>,
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) preamble: Vec<String>,
    pub(crate) sections: Vec<Section>,
    pub(crate) targets: Vec<Target>,
    /// The same targets, measured on the Redis Cluster (a table of their own).
    pub(crate) cluster_targets: Vec<Target>,
}

impl Report {
    pub(crate) fn target(&mut self, what: &'static str, measured: String, met: Option<bool>) {
        self.targets.push(Target {
            what,
            measured,
            met,
        });
    }

    pub(crate) fn cluster_target(
        &mut self,
        what: &'static str,
        measured: String,
        met: Option<bool>,
    ) {
        self.cluster_targets.push(Target {
            what,
            measured,
            met,
        });
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        for line in &self.preamble {
            let _ = writeln!(out, "{line}");
        }
        for s in &self.sections {
            let _ = writeln!(out, "\n### {}\n", s.title);
            let _ = writeln!(out, "| {} |", s.header.join(" | "));
            let _ = writeln!(
                out,
                "|{}",
                s.header
                    .iter()
                    .enumerate()
                    .map(|(i, _)| if i < 2 { "---|" } else { "---:|" })
                    .collect::<String>()
            );
            for row in &s.rows {
                let _ = writeln!(out, "| {} |", row.join(" | "));
            }
            if !s.notes.is_empty() {
                let _ = writeln!(out);
                for n in &s.notes {
                    let _ = writeln!(out, "- {n}");
                }
            }
        }
        targets_table(
            &mut out,
            "Product targets (~1 KiB values; ratios within this run)",
            "targets",
            &self.targets,
        );
        targets_table(
            &mut out,
            "Product targets on the Redis Cluster (~1 KiB values; ratios within this run)",
            "cluster targets",
            &self.cluster_targets,
        );
        out
    }
}

fn targets_table(out: &mut String, title: &str, count: &str, targets: &[Target]) {
    if targets.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### {title}\n");
    let _ = writeln!(out, "| target | measured | result |");
    let _ = writeln!(out, "|---|---|---|");
    for t in targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "**MISSED**",
            None => "not run",
        };
        let _ = writeln!(out, "| {} | {} | {} |", t.what, t.measured, verdict);
    }
    let met = targets.iter().filter(|t| t.met == Some(true)).count();
    let missed = targets.iter().filter(|t| t.met == Some(false)).count();
    let _ = writeln!(out, "\n{count}: {met} met, {missed} missed");
}
