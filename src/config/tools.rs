//! `[import]` and `[diagnose]`: the settings of the operator's commands, how imports
//! show progress and how much history `herald diagnose` shows.

use serde::Deserialize;

use super::Problems;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImport {
    pub(super) progress_threshold: u64,
    pub(super) max_file_mib: u64,
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
    /// The largest file `herald import` reads, in bytes.
    pub max_file_bytes: u64,
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
    if !(1..=16_384).contains(&raw.max_file_mib) {
        bad.add(
            "import.max_file_mib",
            &raw.max_file_mib.to_string(),
            "a size in MiB from 1 to 16384",
        );
    }
    ImportSettings {
        progress_threshold: raw.progress_threshold,
        max_file_bytes: raw.max_file_mib.clamp(1, 16_384) * 1024 * 1024,
    }
}

/// `[diagnose]`, brought into range rather than refused: it only bounds a report.
pub(super) fn diagnose(raw: &RawDiagnose) -> DiagnoseSettings {
    DiagnoseSettings {
        recent_messages: raw.recent_messages.clamp(1, 1000),
        recent_days: raw.recent_days.max(1),
    }
}
