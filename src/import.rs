//! Import of the school's directory from CSV and JSON files.
//!
//! A file is read whole and its structure checked before anything is written; then
//! its rows are checked a slice at a time, on a thread of their own, while the store
//! writes the slice before. Rows that are good are applied (upserted by the
//! platform's ids), rows that are bad are reported with file, line (and for JSON the
//! record's section and index), field, value and what was expected, and do not stop
//! the good ones. Contact points are stored as given even when they do not parse, so that
//! Herald can say why a message to that person is blocked; such rows are warned about.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::domain::contact::{EmailAddress, PhoneNumber, PhoneRegion};
use crate::domain::directory::{
    ContractRecord, ContractStatus, DirectoryRecord, InstalmentRecord, RecipientRecord, Role,
};
use crate::store::{Applied, AuditEntry, DirectoryStore, StoreError};

/// What a file (or a section of a JSON file) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    /// People: students, guardians, teachers, staff.
    Recipients,
    /// Classes and courses.
    Groups,
    /// Which guardian cares for which student.
    Guardianships,
    /// Which student or teacher is in which group.
    Memberships,
    /// Students' contracts with status and consent (and balance).
    Contracts,
    /// Contracts' instalments: due date, amount, paid or not.
    Instalments,
}

impl ImportKind {
    /// In the order a JSON document is applied: what others refer to comes first.
    pub const ALL: [ImportKind; 6] = [
        ImportKind::Recipients,
        ImportKind::Groups,
        ImportKind::Guardianships,
        ImportKind::Memberships,
        ImportKind::Contracts,
        ImportKind::Instalments,
    ];

    /// The name of the kind, as in file names and JSON sections.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportKind::Recipients => "recipients",
            ImportKind::Groups => "groups",
            ImportKind::Guardianships => "guardianships",
            ImportKind::Memberships => "memberships",
            ImportKind::Contracts => "contracts",
            ImportKind::Instalments => "instalments",
        }
    }

    /// The columns (CSV) or keys (JSON) a record of this kind may have; the required
    /// ones first.
    pub fn columns(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            ImportKind::Recipients => (
                &["external_id", "role", "name"],
                &["email", "phone", "sms_enabled", "locale", "birth_date"],
            ),
            ImportKind::Groups => (&["external_id", "name"], &[]),
            ImportKind::Guardianships => (&["guardian_id", "student_id"], &[]),
            ImportKind::Memberships => (&["group_id", "member_id"], &[]),
            ImportKind::Contracts => (
                &["external_id", "student_id", "status"],
                &[
                    "number",
                    "consent",
                    "consent_email",
                    "consent_sms",
                    "consent_date",
                    "consent_source",
                    "balance",
                    "arrears_since",
                ],
            ),
            ImportKind::Instalments => (
                &["external_id", "contract_id", "due_date", "amount"],
                &["paid", "paid_amount"],
            ),
        }
    }

    /// Guesses the kind from a file name such as `recipients.csv` or
    /// `2026-09-contracts.csv`.
    pub fn from_file_name(path: &Path) -> Option<ImportKind> {
        let stem = path.file_stem()?.to_str()?.to_ascii_lowercase();
        let aliases: [(&str, ImportKind); 8] = [
            ("instalments", ImportKind::Instalments),
            ("recipients", ImportKind::Recipients),
            ("guardianships", ImportKind::Guardianships),
            ("guardians", ImportKind::Guardianships),
            ("memberships", ImportKind::Memberships),
            ("members", ImportKind::Memberships),
            ("groups", ImportKind::Groups),
            ("contracts", ImportKind::Contracts),
        ];
        aliases
            .into_iter()
            .find(|(name, _)| stem.contains(name))
            .map(|(_, kind)| kind)
    }
}

impl fmt::Display for ImportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a file could not be imported at all (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read.
    #[error("{file}: cannot read the file: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is larger than `import.max_file_mib`.
    #[error(
        "{file}: the file is over the limit of {limit_mib} MiB (import.max_file_mib; it \
         has at least {mib} MiB): split it, or raise the limit"
    )]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Its size (as far as it was read), rounded up.
        mib: u64,
        /// The limit.
        limit_mib: u64,
    },
    /// Neither `--kind` nor the file name says what the file holds.
    #[error(
        "{file}: cannot tell what the file holds; name it after its contents \
         (recipients, groups, guardianships, memberships, contracts or instalments, e.g. \
         recipients.csv) or say which kind it holds"
    )]
    UnknownKind {
        /// The file.
        file: PathBuf,
    },
    /// The file's extension is neither `.csv` nor `.json`.
    #[error("{file}: expected a .csv or .json file")]
    UnknownFormat {
        /// The file.
        file: PathBuf,
    },
    /// The file's structure is wrong (a bad header, JSON that does not parse).
    #[error("{file}:{line}: {message}")]
    Structure {
        /// The file.
        file: PathBuf,
        /// The line where the problem is.
        line: u64,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowProblem {
    /// The file.
    pub file: String,
    /// The line the row starts on.
    pub line: u64,
    /// What the row holds; in a JSON document, the section (the array) it is in.
    pub kind: ImportKind,
    /// In a JSON file, the record's 0-based position in its array (`kind`), for a
    /// program that built the document to find it; `None` for a CSV row, whose line
    /// says where it is.
    pub index: Option<u64>,
    /// The field at fault.
    pub field: String,
    /// Its value.
    pub value: String,
    /// What was expected instead.
    pub expected: String,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.kind)?;
        if let Some(index) = self.index {
            write!(f, "[{index}]")?;
        }
        write!(f, " {} = {:?}: {}", self.field, self.value, self.expected)
    }
}

/// Counts per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KindCounts {
    /// New records.
    pub created: u64,
    /// Changed records.
    pub updated: u64,
    /// Records already as given.
    pub unchanged: u64,
    /// Rows not imported.
    pub failed: u64,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Counts per kind, for the kinds the file held.
    pub counts: Vec<(ImportKind, KindCounts)>,
    /// Rows not imported, in file order.
    pub errors: Vec<RowProblem>,
    /// Rows imported with a value Herald cannot use (an invalid email or phone).
    pub warnings: Vec<RowProblem>,
}

impl ImportReport {
    /// Whether any row failed.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// How many records were created or changed.
    pub fn total_changed(&self) -> u64 {
        self.counts.iter().map(|(_, c)| c.created + c.updated).sum()
    }

    fn counts_mut(&mut self, kind: ImportKind) -> &mut KindCounts {
        if let Some(i) = self.counts.iter().position(|(k, _)| *k == kind) {
            return &mut self.counts[i].1;
        }
        self.counts.push((kind, KindCounts::default()));
        &mut self.counts.last_mut().expect("just pushed").1
    }
}

/// How an import reads values.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// The region phone numbers without a country code are read in.
    pub phone_region: PhoneRegion,
    /// Show a progress bar when the file has more rows than this.
    pub progress_threshold: u64,
    /// The largest file read, in bytes (`import.max_file_mib`).
    pub max_file_bytes: u64,
}

/// Rows checked and applied at a time: the store takes them in a few transactions.
const SLICE_ROWS: usize = 1000;

/// One row's fields, as text, with the line it starts on (and, in JSON, its index
/// in its array).
struct Row {
    line: u64,
    index: Option<u64>,
    fields: HashMap<String, String>,
}

impl Row {
    /// The trimmed value of a column; `None` when absent or blank.
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// A row checked into a record, or the problems found in it.
struct Checked {
    line: u64,
    index: Option<u64>,
    record: Result<DirectoryRecord, Vec<(String, String, String)>>,
    warnings: Vec<(String, String, String)>,
}

/// Imports one file into the store. Rows are applied in the order of the file (for
/// JSON, in the order of [`ImportKind::ALL`]), as the audit line's actor at its time,
/// each transaction that changes something with the line and its counts.
pub async fn import_file(
    store: &dyn DirectoryStore,
    path: &Path,
    kind: Option<ImportKind>,
    options: ImportOptions,
    audit: &AuditEntry,
) -> Result<ImportReport, ImportError> {
    let read = |source| ImportError::Read {
        file: path.to_owned(),
        source,
    };
    let too_large = |size: u64| ImportError::TooLarge {
        file: path.to_owned(),
        mib: size.div_ceil(1024 * 1024),
        limit_mib: options.max_file_bytes / (1024 * 1024),
    };
    // The size is checked before reading where the file says it, and the read itself
    // stops past the limit (a pipe or /dev/fd has no size to say).
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > options.max_file_bytes {
        return Err(too_large(size));
    }
    let mut text = String::new();
    {
        use std::io::Read;
        std::fs::File::open(path)
            .map_err(read)?
            .take(options.max_file_bytes + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
    }
    if text.len() as u64 > options.max_file_bytes {
        return Err(too_large(text.len() as u64));
    }
    import_text(store, path, &text, kind, options, audit).await
}

/// Imports `text` as if read from `path`: its extension says the format (`.csv`,
/// `.json`), and problems name it with their line (a request body is imported as
/// `request.json`).
pub async fn import_text(
    store: &dyn DirectoryStore,
    path: &Path,
    text: &str,
    kind: Option<ImportKind>,
    options: ImportOptions,
    audit: &AuditEntry,
) -> Result<ImportReport, ImportError> {
    let text = text.to_owned();
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let sections = match extension.as_deref() {
        Some("csv") => {
            let kind = kind
                .or_else(|| ImportKind::from_file_name(path))
                .ok_or_else(|| ImportError::UnknownKind {
                    file: path.to_owned(),
                })?;
            vec![(kind, read_csv(path, &text, kind)?)]
        }
        Some("json") => read_json(path, &text, kind)?,
        _ => {
            return Err(ImportError::UnknownFormat {
                file: path.to_owned(),
            });
        }
    };
    let file = path.display().to_string();
    let total: u64 = sections.iter().map(|(_, rows)| rows.len() as u64).sum();
    let progress = if total > options.progress_threshold {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>14} [{bar:40}] {pos}/{len} rows ({per_sec}, {eta} left)",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let mut report = ImportReport::default();
    for (kind, rows) in sections {
        progress.set_message(kind.as_str());
        let counts = report.counts_mut(kind);
        // Rows are checked on a thread of their own, a slice ahead of the store, which
        // meanwhile writes the slice before: checking (reading phone numbers above
        // all) costs a good part of what writing does, and this way the two overlap.
        // Slices keep the progress bar moving and memory flat.
        let (sender, mut slices) = tokio::sync::mpsc::channel(1);
        let region = options.phone_region;
        let checker = tokio::task::spawn_blocking(move || {
            let mut checked = check_rows(kind, rows, region);
            loop {
                let slice: Vec<Checked> = checked.by_ref().take(SLICE_ROWS).collect();
                // A closed channel: the import failed and stopped reading.
                if slice.is_empty() || sender.blocking_send(slice).is_err() {
                    break;
                }
            }
        });
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        while let Some(slice) = slices.recv().await {
            // The good records, and where each is in the file.
            let mut good: Vec<DirectoryRecord> = Vec::with_capacity(slice.len());
            let mut places: Vec<(u64, Option<u64>)> = Vec::with_capacity(slice.len());
            for c in slice {
                let place = (c.line, c.index);
                let found = |(field, value, expected): Problem| {
                    problem(&file, place, kind, field, value, expected)
                };
                warnings.extend(c.warnings.into_iter().map(found));
                match c.record {
                    Ok(record) => {
                        good.push(record);
                        places.push(place);
                    }
                    Err(problems) => {
                        counts.failed += 1;
                        progress.inc(1);
                        errors.extend(problems.into_iter().map(found));
                    }
                }
            }
            let outcomes = store.apply(&good, audit).await?;
            for ((line, index), outcome) in places.into_iter().zip(outcomes) {
                match outcome {
                    Ok(Applied::Created) => counts.created += 1,
                    Ok(Applied::Updated) => counts.updated += 1,
                    Ok(Applied::Unchanged) => counts.unchanged += 1,
                    Err(refused) => {
                        counts.failed += 1;
                        errors.push(problem(
                            &file,
                            (line, index),
                            kind,
                            refused.field().to_owned(),
                            refused.value().to_owned(),
                            refused.to_string(),
                        ));
                    }
                }
            }
            progress.inc(good.len() as u64);
        }
        // A panic while checking ends the slices early: it goes on here rather than
        // passing for a shorter file.
        if let Err(e) = checker.await {
            std::panic::resume_unwind(e.into_panic());
        }
        report.errors.append(&mut errors);
        report.warnings.append(&mut warnings);
    }
    progress.finish_and_clear();
    report.errors.sort_by_key(|p| p.line);
    report.warnings.sort_by_key(|p| p.line);
    Ok(report)
}

fn problem(
    file: &str,
    (line, index): (u64, Option<u64>),
    kind: ImportKind,
    field: String,
    value: String,
    expected: String,
) -> RowProblem {
    RowProblem {
        file: file.to_owned(),
        line,
        index,
        kind,
        field,
        value,
        expected,
    }
}

fn read_csv(path: &Path, text: &str, kind: ImportKind) -> Result<Vec<Row>, ImportError> {
    let structure = |line: u64, message: String| ImportError::Structure {
        file: path.to_owned(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| structure(1, format!("the header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    check_columns(kind, &headers).map_err(|m| structure(1, m))?;
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                return Err(structure(line, format!("the row cannot be read: {e}")));
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(line);
        if record.iter().all(|v| v.is_empty()) {
            continue;
        }
        let mut fields: HashMap<String, String> = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.clone(), v.to_owned()))
            .collect();
        if record.len() != headers.len() {
            // Reported as a row problem so the other rows still go in.
            fields.insert(
                "\u{0}columns".into(),
                format!("{} fields for {} columns", record.len(), headers.len()),
            );
        }
        rows.push(Row {
            line,
            index: None,
            fields,
        });
    }
    Ok(rows)
}

fn check_columns(kind: ImportKind, columns: &[String]) -> Result<(), String> {
    let (required, optional) = kind.columns();
    let expected = || {
        format!(
            "{kind} take the columns {} (required) and {}",
            required.join(", "),
            if optional.is_empty() {
                "no others".to_owned()
            } else {
                format!("{} (optional)", optional.join(", "))
            }
        )
    };
    if let Some(missing) = required.iter().find(|r| !columns.iter().any(|c| c == *r)) {
        return Err(format!("the column {missing:?} is missing; {}", expected()));
    }
    if let Some(unknown) = columns
        .iter()
        .find(|c| !required.contains(&c.as_str()) && !optional.contains(&c.as_str()))
    {
        return Err(format!("unknown column {unknown:?}; {}", expected()));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = columns.iter().find(|c| !seen.insert(c.as_str())) {
        return Err(format!("the column {twice:?} appears twice"));
    }
    Ok(())
}

/// Reads a JSON document: an object with a list per kind, or (with a kind from
/// `--kind` or the file name) a bare list of records.
fn read_json(
    path: &Path,
    text: &str,
    kind: Option<ImportKind>,
) -> Result<Vec<(ImportKind, Vec<Row>)>, ImportError> {
    let structure = |line: u64, message: String| ImportError::Structure {
        file: path.to_owned(),
        line,
        message,
    };
    let json_error =
        |e: serde_json::Error| structure(e.line() as u64, format!("not valid JSON: {e}"));
    // Borrowed raw values keep their place in `text`, which gives each record's line.
    let sections: Vec<(ImportKind, Vec<&RawValue>)> = if text.trim_start().starts_with('[') {
        let kind = kind
            .or_else(|| ImportKind::from_file_name(path))
            .ok_or_else(|| ImportError::UnknownKind {
                file: path.to_owned(),
            })?;
        vec![(kind, serde_json::from_str(text).map_err(json_error)?)]
    } else {
        let document: HashMap<String, Vec<&RawValue>> =
            serde_json::from_str(text).map_err(json_error)?;
        if let Some(unknown) = document.keys().find(|k| {
            !ImportKind::ALL
                .iter()
                .any(|kind| kind.as_str() == k.as_str())
        }) {
            return Err(structure(
                1,
                format!(
                    "unknown section {unknown:?}; expected some of recipients, groups, \
                     guardianships, memberships, contracts, instalments"
                ),
            ));
        }
        let mut document = document;
        ImportKind::ALL
            .into_iter()
            .filter(|k| kind.is_none_or(|only| only == *k))
            .filter_map(|k| document.remove(k.as_str()).map(|v| (k, v)))
            .collect()
    };
    let mut out = Vec::new();
    for (kind, records) in sections {
        let (required, optional) = kind.columns();
        let mut rows = Vec::with_capacity(records.len());
        for (index, raw) in records.into_iter().enumerate() {
            let index = Some(index as u64);
            let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
            let line = text[..offset].matches('\n').count() as u64 + 1;
            let object: serde_json::Map<String, serde_json::Value> =
                match serde_json::from_str(raw.get()) {
                    Ok(o) => o,
                    Err(_) => {
                        let mut fields = HashMap::new();
                        fields.insert("\u{0}object".into(), raw.get().chars().take(60).collect());
                        rows.push(Row {
                            line,
                            index,
                            fields,
                        });
                        continue;
                    }
                };
            let mut fields = HashMap::new();
            for (key, value) in object {
                if !required.contains(&key.as_str()) && !optional.contains(&key.as_str()) {
                    fields.insert("\u{0}unknown".into(), key);
                    continue;
                }
                let text = match value {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                fields.insert(key, text);
            }
            rows.push(Row {
                line,
                index,
                fields,
            });
        }
        out.push((kind, rows));
    }
    Ok(out)
}

/// Checks rows into records, field by field, and finds ids repeated in the file; row
/// by row, as the caller takes them.
fn check_rows(
    kind: ImportKind,
    rows: Vec<Row>,
    region: PhoneRegion,
) -> impl Iterator<Item = Checked> {
    let mut first_line: HashMap<String, (u64, Option<u64>)> = HashMap::new();
    rows.into_iter().map(move |row| {
        let mut checker = RowChecker {
            row: &row,
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let record = checker.record(kind, region);
        let mut problems = checker.problems;
        let warnings = checker.warnings;
        if let Some(record) = &record {
            let key = record_key(record);
            match first_line.get(&key) {
                Some((first, index)) => problems.push((
                    key_field(kind).to_owned(),
                    key.clone(),
                    match index {
                        Some(i) => format!(
                            "a value not used by another record ({kind}[{i}], line {first}, \
                                 has it already)"
                        ),
                        None => {
                            format!("a value not used by another row (line {first} has it already)")
                        }
                    },
                )),
                None => {
                    first_line.insert(key, (row.line, row.index));
                }
            }
        }
        Checked {
            line: row.line,
            index: row.index,
            record: match record {
                Some(r) if problems.is_empty() => Ok(r),
                _ => Err(problems),
            },
            warnings,
        }
    })
}

fn key_field(kind: ImportKind) -> &'static str {
    match kind {
        ImportKind::Guardianships => "guardian_id, student_id",
        ImportKind::Memberships => "group_id, member_id",
        _ => "external_id",
    }
}

fn record_key(record: &DirectoryRecord) -> String {
    match record {
        DirectoryRecord::Recipient(r) => r.external_id.clone(),
        DirectoryRecord::Group { external_id, .. } => external_id.clone(),
        DirectoryRecord::Contract(c) => c.external_id.clone(),
        DirectoryRecord::Instalment(i) => i.external_id.clone(),
        DirectoryRecord::Guardianship { guardian, student } => format!("{guardian}, {student}"),
        DirectoryRecord::Membership { group, member } => format!("{group}, {member}"),
    }
}

type Problem = (String, String, String);

struct RowChecker<'a> {
    row: &'a Row,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl RowChecker<'_> {
    fn fail(&mut self, field: &str, value: &str, expected: impl Into<String>) {
        self.problems
            .push((field.to_owned(), value.to_owned(), expected.into()));
    }

    fn required(&mut self, field: &str, what: &str) -> String {
        match self.row.get(field) {
            Some(v) => v.to_owned(),
            None => {
                self.fail(field, "", format!("{what}, not empty"));
                String::new()
            }
        }
    }

    fn optional(&self, field: &str) -> Option<String> {
        self.row.get(field).map(str::to_owned)
    }

    fn boolean(&mut self, field: &str) -> Option<bool> {
        let value = self.row.get(field)?;
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "y" | "tak" | "t" => Some(true),
            "0" | "false" | "no" | "n" | "nie" => Some(false),
            _ => {
                self.fail(field, value, "yes or no (also true/false, 1/0)");
                None
            }
        }
    }

    fn parsed<T: FromStr>(&mut self, field: &str, what: &str) -> Option<T> {
        let value = self.required(field, what);
        if value.is_empty() {
            return None;
        }
        match value.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.fail(field, &value, what);
                None
            }
        }
    }

    fn record(&mut self, kind: ImportKind, region: PhoneRegion) -> Option<DirectoryRecord> {
        for (marker, field, expected) in [
            ("\u{0}columns", "row", "one field per column of the header"),
            ("\u{0}object", "record", "a JSON object"),
            ("\u{0}unknown", "key", "only the keys of this section"),
        ] {
            if let Some(value) = self.row.fields.get(marker).cloned() {
                let expected = if marker == "\u{0}unknown" {
                    let (req, opt) = kind.columns();
                    format!("{expected}: {}", [req, opt].concat().join(", "))
                } else {
                    expected.to_owned()
                };
                self.fail(field, &value, expected);
            }
        }
        // A line break in a name or an address would reach an email header (header
        // injection); no field of the directory has a use for control characters.
        let mut fields: Vec<(&String, &String)> = self
            .row
            .fields
            .iter()
            .filter(|(k, v)| !k.starts_with('\u{0}') && v.chars().any(char::is_control))
            .collect();
        fields.sort();
        for (field, value) in fields {
            self.problems.push((
                field.clone(),
                value.clone(),
                "one line of text, without line breaks or other control characters".into(),
            ));
        }
        let record = match kind {
            ImportKind::Recipients => self.recipient(region),
            ImportKind::Groups => {
                let external_id = self.required("external_id", "the platform's id of the group");
                let name = self.required("name", "the group's name");
                DirectoryRecord::Group { external_id, name }
            }
            ImportKind::Guardianships => DirectoryRecord::Guardianship {
                guardian: self.required("guardian_id", "the external id of a guardian"),
                student: self.required("student_id", "the external id of a student"),
            },
            ImportKind::Memberships => DirectoryRecord::Membership {
                group: self.required("group_id", "the external id of a group"),
                member: self.required("member_id", "the external id of a student or teacher"),
            },
            ImportKind::Contracts => self.contract()?,
            ImportKind::Instalments => self.instalment()?,
        };
        self.problems.is_empty().then_some(record)
    }

    fn recipient(&mut self, region: PhoneRegion) -> DirectoryRecord {
        let external_id = self.required("external_id", "the platform's id of the person");
        let role = self.parsed::<Role>("role", "one of student, guardian, teacher, staff");
        let name = self.required("name", "the person's full name");
        let email = self.optional("email");
        if let Some(raw) = &email
            && let Err(e) = EmailAddress::parse(raw)
        {
            self.warnings.push((
                "email".into(),
                raw.clone(),
                format!("{e}; stored, but email to this person is blocked (invalid_email)"),
            ));
        }
        let phone = self.optional("phone");
        let phone_e164 = phone
            .as_deref()
            .and_then(|raw| match PhoneNumber::parse(raw, region) {
                Ok(p) => Some(p.e164().to_owned()),
                Err(e) => {
                    self.warnings.push((
                        "phone".into(),
                        raw.to_owned(),
                        format!("{e}; stored, but SMS to this person is blocked (invalid_phone)"),
                    ));
                    None
                }
            });
        let sms_enabled = self.boolean("sms_enabled").unwrap_or(false);
        let locale = self.optional("locale");
        let birth_date = self.date("birth_date");
        DirectoryRecord::Recipient(RecipientRecord {
            external_id,
            role: role.unwrap_or(Role::Staff),
            name,
            locale,
            email,
            phone,
            phone_e164,
            sms_enabled,
            birth_date,
        })
    }

    /// An optional date, YYYY-MM-DD.
    fn date(&mut self, field: &str) -> Option<NaiveDate> {
        let value = self.row.get(field)?.to_owned();
        match NaiveDate::parse_from_str(&value, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                self.fail(field, &value, "a date YYYY-MM-DD");
                None
            }
        }
    }

    /// An optional amount in złoty ("1234.50", "1 234,50"), as grosze.
    fn amount(&mut self, field: &str, negative: bool) -> Option<i64> {
        let value = self.row.get(field)?.to_owned();
        match parse_amount(&value).filter(|a| negative || *a >= 0) {
            Some(a) => Some(a),
            None => {
                self.fail(
                    field,
                    &value,
                    if negative {
                        "an amount such as 1234.50 or 1 234,50 (at most two decimals)"
                    } else {
                        "an amount of zero or more, such as 1234.50 or 1 234,50 (at most two decimals)"
                    },
                );
                None
            }
        }
    }

    fn instalment(&mut self) -> Option<DirectoryRecord> {
        let external_id = self.required("external_id", "the platform's id of the instalment");
        let contract = self.required("contract_id", "the external id of a contract");
        let due = self.required("due_date", "a date YYYY-MM-DD");
        let due_date = if due.is_empty() {
            None
        } else {
            self.date("due_date")
        };
        let amount = if self.row.get("amount").is_none() {
            self.fail("amount", "", "an amount such as 1234.50, not empty");
            None
        } else {
            self.amount("amount", false)
        };
        let paid = self.boolean("paid").unwrap_or(false);
        let paid_amount_cents = self.amount("paid_amount", false);
        Some(DirectoryRecord::Instalment(InstalmentRecord {
            external_id,
            contract,
            due_date: due_date?,
            amount_cents: amount?,
            paid,
            paid_amount_cents,
        }))
    }

    fn contract(&mut self) -> Option<DirectoryRecord> {
        let external_id = self.required("external_id", "the platform's id of the contract");
        let student = self.required("student_id", "the external id of a student");
        let status =
            self.parsed::<ContractStatus>("status", "one of pending, active, suspended, ended");
        let both = self.boolean("consent");
        let consent_email = self.boolean("consent_email").or(both).unwrap_or(false);
        let consent_sms = self.boolean("consent_sms").or(both).unwrap_or(false);
        let consent_at = self
            .row
            .get("consent_date")
            .map(str::to_owned)
            .and_then(|v| {
                parse_instant(&v).or_else(|| {
                    self.fail(
                        "consent_date",
                        &v,
                        "a date YYYY-MM-DD or a timestamp such as 2026-09-01T10:00:00Z",
                    );
                    None
                })
            });
        Some(DirectoryRecord::Contract(ContractRecord {
            external_id,
            student,
            number: self.optional("number"),
            status: status?,
            consent_email,
            consent_sms,
            consent_at,
            consent_source: self.optional("consent_source"),
            balance_cents: self.amount("balance", true),
            arrears_since: self.date("arrears_since"),
        }))
    }
}

/// An amount in złoty as grosze: digits with spaces between thousands and a `.` or
/// `,` before at most two decimals; a leading `-` for a credit.
fn parse_amount(text: &str) -> Option<i64> {
    let t: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\u{a0}')
        .collect();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, t),
    };
    let (whole, frac) = match t.split_once(['.', ',']) {
        Some((w, f)) => (w.to_owned(), f.to_owned()),
        None => (t.clone(), String::new()),
    };
    if whole.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
        || !frac.chars().all(|c| c.is_ascii_digit())
        || whole.len() > 12
    {
        return None;
    }
    let cents = whole.parse::<i64>().ok()? * 100
        + match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().ok()? * 10,
            _ => frac.parse::<i64>().ok()?,
        };
    Some(if negative { -cents } else { cents })
}

/// A date (midnight UTC) or an RFC 3339 timestamp.
fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_guessed_from_file_names() {
        for (name, kind) in [
            ("recipients.csv", ImportKind::Recipients),
            ("2026-09-Contracts.json", ImportKind::Contracts),
            ("guardians.csv", ImportKind::Guardianships),
            ("group-members.csv", ImportKind::Memberships),
            ("groups.csv", ImportKind::Groups),
        ] {
            assert_eq!(
                ImportKind::from_file_name(Path::new(name)),
                Some(kind),
                "{name}"
            );
        }
        assert_eq!(ImportKind::from_file_name(Path::new("people.csv")), None);
    }

    #[test]
    fn headers_must_hold_the_required_columns_and_no_unknown_ones() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_columns(ImportKind::Groups, &cols(&["external_id", "name"])).is_ok());
        let err = check_columns(ImportKind::Groups, &cols(&["external_id"])).unwrap_err();
        assert!(err.contains("\"name\" is missing"), "{err}");
        let err = check_columns(ImportKind::Groups, &cols(&["external_id", "name", "emial"]))
            .unwrap_err();
        assert!(err.contains("unknown column \"emial\""), "{err}");
    }

    #[test]
    fn consent_dates_take_days_or_timestamps() {
        assert_eq!(
            parse_instant("2026-09-01").unwrap().to_rfc3339(),
            "2026-09-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_instant("2026-09-01T10:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-09-01T08:00:00+00:00"
        );
        assert!(parse_instant("1.09.2026").is_none());
    }

    #[test]
    fn amounts_take_dots_commas_and_spaces() {
        assert_eq!(parse_amount("1234.50"), Some(123_450));
        assert_eq!(parse_amount("1 234,5"), Some(123_450));
        assert_eq!(parse_amount("300"), Some(30_000));
        assert_eq!(parse_amount("-20,00"), Some(-2_000));
        assert_eq!(parse_amount("12.345"), None);
        assert_eq!(parse_amount("12zł"), None);
        assert_eq!(parse_amount(""), None);
    }
}
