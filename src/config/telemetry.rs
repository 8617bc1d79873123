//! `[telemetry]`: how Herald logs. The filter is tried here, at start-up, so that a
//! typo in it stops Herald with the key's name like any other bad setting.

use serde::Deserialize;

use super::Problems;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    pub(super) format: String,
    pub(super) level: String,
}

/// `[telemetry]`: how Herald logs.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Human-readable lines or one JSON object per line.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `herald=debug,sqlx=warn`.
    pub level: String,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people reading a terminal or the journal.
    Text,
    /// For log collectors.
    Json,
}

/// Checks `[telemetry]`: the format's name and that the level is a filter `tracing`
/// accepts.
pub(super) fn check(raw: &RawTelemetry, bad: &mut Problems) -> TelemetrySettings {
    let format = match raw.format.trim().to_ascii_lowercase().as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        _ => {
            bad.add("telemetry.format", &raw.format, "\"text\" or \"json\"");
            LogFormat::Text
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.level).is_err() {
        bad.add(
            "telemetry.level",
            &raw.level,
            "a log filter such as \"info\" or \"herald=debug,sqlx=warn\"",
        );
    }
    TelemetrySettings {
        format,
        level: raw.level.clone(),
    }
}
