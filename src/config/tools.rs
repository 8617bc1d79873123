//! `[import]` and `[diagnose]`: the settings of the operator's commands, how imports
//! show progress and how much history `herald diagnose` shows.

use serde::Deserialize;

use super::Problems;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImport {
    pub(super) progress_threshold: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiagnose {
    pub(super) recent_messages: i64,
    pub(super) recent_days: u32,
}

/// `[import]`: how imports behave.
#[derive(Debug, Clone, Copy)]
pub struct ImportSettings {
    /// Show a progress bar for files with more rows than this.
    pub progress_threshold: u64,
}

/// `[diagnose]`: how much history `herald diagnose` shows.
#[derive(Debug, Clone, Copy)]
pub struct DiagnoseSettings {
    /// At most this many recent messages.
    pub recent_messages: i64,
    /// Messages of at most this many days back.
    pub recent_days: u32,
}

/// Checks `[import]`.
pub(super) fn check_import(raw: &RawImport, bad: &mut Problems) -> ImportSettings {
    if raw.progress_threshold == 0 {
        bad.add(
            "import.progress_threshold",
            "0",
            "a number of rows of at least 1",
        );
    }
    ImportSettings {
        progress_threshold: raw.progress_threshold,
    }
}

/// `[diagnose]`, brought into range rather than refused: it only bounds a report.
pub(super) fn diagnose(raw: &RawDiagnose) -> DiagnoseSettings {
    DiagnoseSettings {
        recent_messages: raw.recent_messages.clamp(1, 1000),
        recent_days: raw.recent_days.max(1),
    }
}
