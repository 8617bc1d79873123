//! The SQLite backend: the embedded default, one daemon, no server to install.
//!
//! WAL lets readers run beside the one writer; `synchronous=NORMAL` is safe in WAL
//! (a power cut may lose the last commits, never corrupt the file) and saves an fsync
//! per commit. Write transactions begin with `BEGIN IMMEDIATE`: a deferred
//! transaction that reads and then writes cannot upgrade its lock while another
//! connection writes, and fails with "database is locked" at once, whatever the busy
//! timeout says.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{
    Applied, CalendarStore, DirectoryCounts, DirectoryStore, RecipientFilter, Refused, Result,
    StoreError,
};
use crate::config::DatabaseSettings;
use crate::domain::directory::{
    Consent, ContractConsent, ContractRecord, ContractStatus, DirectoryRecord, GroupSummary,
    Recipient, RecipientId, RecipientRecord, Role,
};
use crate::domain::{EligibilityFacts, Holiday};

/// The migrations of this backend, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Records applied per write transaction: large enough that an import of thousands of
/// rows is not a commit per row, small enough that readers never wait long.
const APPLY_CHUNK: usize = 500;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: &Path, settings: &DatabaseSettings) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(sqlx::Error::Configuration(
                    format!(
                        "cannot create the folder {} for the database: {e}",
                        dir.display()
                    )
                    .into(),
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(settings.busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// Applies pending migrations; returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        let before = self.schema_version().await?;
        MIGRATOR.run(&self.pool).await?;
        Ok(MIGRATOR
            .iter()
            .map(|m| m.version)
            .filter(|v| before.is_none_or(|b| *v > b))
            .collect())
    }

    /// Fails unless every migration of this build is applied.
    pub async fn check_migrated(&self) -> Result<()> {
        let needed = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let found = self.schema_version().await?;
        if found.unwrap_or(0) < needed {
            return Err(StoreError::NotMigrated { found, needed });
        }
        Ok(())
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await?;
        if exists == 0 {
            return Ok(None);
        }
        Ok(
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The pool, for tests that need to look underneath.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

type Outcome = std::result::Result<Applied, Refused>;

/// Why one record was not applied: refused by the data, or a failing store (which
/// aborts the whole import).
enum ApplyError {
    Refused(Refused),
    Store(StoreError),
}

impl From<Refused> for ApplyError {
    fn from(r: Refused) -> Self {
        ApplyError::Refused(r)
    }
}

impl From<sqlx::Error> for ApplyError {
    fn from(e: sqlx::Error) -> Self {
        ApplyError::Store(e.into())
    }
}

impl From<StoreError> for ApplyError {
    fn from(e: StoreError) -> Self {
        ApplyError::Store(e)
    }
}

type Applying = std::result::Result<Applied, ApplyError>;

/// A recipient reference that must exist and have one of `roles`: its id.
async fn require_recipient(
    conn: &mut SqliteConnection,
    field: &'static str,
    external_id: &str,
    roles: &[Role],
    expected: &'static str,
) -> std::result::Result<i64, ApplyError> {
    let row = sqlx::query("SELECT id, role FROM recipients WHERE external_id = $1")
        .bind(external_id)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else {
        return Err(Refused::Unknown {
            field,
            value: external_id.to_owned(),
            expected,
        }
        .into());
    };
    let role = parse_role(&row.try_get::<String, _>("role")?)?;
    if !roles.contains(&role) {
        return Err(Refused::WrongRole {
            field,
            value: external_id.to_owned(),
            found: role,
            expected,
        }
        .into());
    }
    Ok(row.try_get("id")?)
}

/// Inserts a link row (guardianship, membership) unless it exists.
async fn insert_link(
    conn: &mut SqliteConnection,
    sql: &'static str,
    a: i64,
    b: i64,
    now: DateTime<Utc>,
) -> Applying {
    let done = sqlx::query(sql)
        .bind(a)
        .bind(b)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(if done.rows_affected() == 1 {
        Applied::Created
    } else {
        Applied::Unchanged
    })
}

/// Applies one record. Every record checks its references before its one write, so
/// a refused record has written nothing and needs no savepoint.
async fn apply_one(
    conn: &mut SqliteConnection,
    record: &DirectoryRecord,
    now: DateTime<Utc>,
) -> Applying {
    match record {
        DirectoryRecord::Recipient(r) => apply_recipient(conn, r, now).await,
        DirectoryRecord::Guardianship { guardian, student } => {
            let guardian =
                require_recipient(conn, "guardian_id", guardian, &[Role::Guardian], "guardian")
                    .await?;
            let student =
                require_recipient(conn, "student_id", student, &[Role::Student], "student").await?;
            insert_link(
                conn,
                "INSERT INTO guardianships (guardian_id, student_id, created_at)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                guardian,
                student,
                now,
            )
            .await
        }
        DirectoryRecord::Group { external_id, name } => {
            apply_group(conn, external_id, name, now).await
        }
        DirectoryRecord::Membership { group, member } => {
            let group_id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM groups WHERE external_id = $1")
                    .bind(group)
                    .fetch_optional(&mut *conn)
                    .await?;
            let group_id = group_id.ok_or_else(|| Refused::Unknown {
                field: "group_id",
                value: group.to_owned(),
                expected: "group",
            })?;
            let member = require_recipient(
                conn,
                "member_id",
                member,
                &[Role::Student, Role::Teacher],
                "student or teacher",
            )
            .await?;
            insert_link(
                conn,
                "INSERT INTO group_members (group_id, recipient_id, created_at)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                group_id,
                member,
                now,
            )
            .await
        }
        DirectoryRecord::Contract(c) => apply_contract(conn, c, now).await,
    }
}

async fn apply_recipient(
    conn: &mut SqliteConnection,
    r: &RecipientRecord,
    now: DateTime<Utc>,
) -> Applying {
    let existing = sqlx::query(
        "SELECT id, role, name, locale, email, phone, phone_e164, sms_enabled
         FROM recipients WHERE external_id = $1",
    )
    .bind(&r.external_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = existing else {
        sqlx::query(
            "INSERT INTO recipients
                (external_id, role, name, locale, email, phone, phone_e164, sms_enabled,
                 created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&r.external_id)
        .bind(r.role.as_str())
        .bind(&r.name)
        .bind(&r.locale)
        .bind(&r.email)
        .bind(&r.phone)
        .bind(&r.phone_e164)
        .bind(r.sms_enabled)
        .bind(now)
        .execute(conn)
        .await?;
        return Ok(Applied::Created);
    };
    let same = row.try_get::<String, _>("role")? == r.role.as_str()
        && row.try_get::<String, _>("name")? == r.name
        && row.try_get::<Option<String>, _>("locale")? == r.locale
        && row.try_get::<Option<String>, _>("email")? == r.email
        && row.try_get::<Option<String>, _>("phone")? == r.phone
        && row.try_get::<Option<String>, _>("phone_e164")? == r.phone_e164
        && row.try_get::<bool, _>("sms_enabled")? == r.sms_enabled;
    if same {
        return Ok(Applied::Unchanged);
    }
    sqlx::query(
        "UPDATE recipients
         SET role = $2, name = $3, locale = $4, email = $5, phone = $6, phone_e164 = $7,
             sms_enabled = $8, updated_at = $9
         WHERE id = $1",
    )
    .bind(row.try_get::<i64, _>("id")?)
    .bind(r.role.as_str())
    .bind(&r.name)
    .bind(&r.locale)
    .bind(&r.email)
    .bind(&r.phone)
    .bind(&r.phone_e164)
    .bind(r.sms_enabled)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(Applied::Updated)
}

async fn apply_group(
    conn: &mut SqliteConnection,
    external_id: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Applying {
    let existing: Option<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM groups WHERE external_id = $1")
            .bind(external_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match existing {
        None => {
            sqlx::query(
                "INSERT INTO groups (external_id, name, created_at, updated_at)
                 VALUES ($1, $2, $3, $3)",
            )
            .bind(external_id)
            .bind(name)
            .bind(now)
            .execute(conn)
            .await?;
            Applied::Created
        }
        Some((_, old)) if old == name => Applied::Unchanged,
        Some((id, _)) => {
            sqlx::query("UPDATE groups SET name = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(name)
                .bind(now)
                .execute(conn)
                .await?;
            Applied::Updated
        }
    })
}

async fn apply_contract(
    conn: &mut SqliteConnection,
    c: &ContractRecord,
    now: DateTime<Utc>,
) -> Applying {
    let student_id =
        require_recipient(conn, "student_id", &c.student, &[Role::Student], "student").await?;
    let existing = sqlx::query(
        "SELECT id, student_id, number, status, consent_email, consent_email_at, consent_sms,
                consent_sms_at, consent_source
         FROM contracts WHERE external_id = $1",
    )
    .bind(&c.external_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = existing else {
        // A new contract's consent dates from when the platform says, or from now.
        let at = c.consent_at.unwrap_or(now);
        sqlx::query(
            "INSERT INTO contracts
                (external_id, student_id, number, status, consent_email, consent_email_at,
                 consent_sms, consent_sms_at, consent_source, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $8, $9, $9)",
        )
        .bind(&c.external_id)
        .bind(student_id)
        .bind(&c.number)
        .bind(c.status.as_str())
        .bind(c.consent_email)
        .bind(at)
        .bind(c.consent_sms)
        .bind(&c.consent_source)
        .bind(now)
        .execute(conn)
        .await?;
        return Ok(Applied::Created);
    };
    // A consent date changes when the platform gives one, or when the flag flips
    // (then it is the moment Herald learnt of it); re-importing the same row keeps it.
    let consent_at = |flag: bool, old_flag: bool, old_at: Option<DateTime<Utc>>| match c.consent_at
    {
        Some(at) => Some(at),
        None if flag != old_flag => Some(now),
        None => old_at,
    };
    let old_email: bool = row.try_get("consent_email")?;
    let old_sms: bool = row.try_get("consent_sms")?;
    let old_email_at: Option<DateTime<Utc>> = row.try_get("consent_email_at")?;
    let old_sms_at: Option<DateTime<Utc>> = row.try_get("consent_sms_at")?;
    let email_at = consent_at(c.consent_email, old_email, old_email_at);
    let sms_at = consent_at(c.consent_sms, old_sms, old_sms_at);
    let same = row.try_get::<i64, _>("student_id")? == student_id
        && row.try_get::<Option<String>, _>("number")? == c.number
        && row.try_get::<String, _>("status")? == c.status.as_str()
        && old_email == c.consent_email
        && old_sms == c.consent_sms
        && old_email_at == email_at
        && old_sms_at == sms_at
        && row.try_get::<Option<String>, _>("consent_source")? == c.consent_source;
    if same {
        return Ok(Applied::Unchanged);
    }
    sqlx::query(
        "UPDATE contracts
         SET student_id = $2, number = $3, status = $4, consent_email = $5,
             consent_email_at = $6, consent_sms = $7, consent_sms_at = $8,
             consent_source = $9, updated_at = $10
         WHERE id = $1",
    )
    .bind(row.try_get::<i64, _>("id")?)
    .bind(student_id)
    .bind(&c.number)
    .bind(c.status.as_str())
    .bind(c.consent_email)
    .bind(email_at)
    .bind(c.consent_sms)
    .bind(sms_at)
    .bind(&c.consent_source)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(Applied::Updated)
}

fn parse_role(text: &str) -> Result<Role> {
    Role::from_str(text).map_err(|_| StoreError::Corrupt {
        column: "recipients.role",
        value: text.to_owned(),
    })
}

fn parse_status(text: &str) -> Result<ContractStatus> {
    ContractStatus::from_str(text).map_err(|_| StoreError::Corrupt {
        column: "contracts.status",
        value: text.to_owned(),
    })
}

/// Ids as a JSON array, so one statement can take a list of any length
/// (`IN (SELECT value FROM json_each($1))`).
fn id_list(ids: impl IntoIterator<Item = i64>) -> String {
    serde_json::to_string(&ids.into_iter().collect::<Vec<_>>()).expect("integers serialise")
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn apply(&self, records: &[DirectoryRecord], now: DateTime<Utc>) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(records.len());
        for chunk in records.chunks(APPLY_CHUNK) {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            for record in chunk {
                outcomes.push(match apply_one(&mut tx, record, now).await {
                    Ok(applied) => Ok(applied),
                    Err(ApplyError::Refused(refused)) => Err(refused),
                    // Dropping the transaction rolls the chunk back.
                    Err(ApplyError::Store(e)) => return Err(e),
                });
            }
            tx.commit().await?;
        }
        Ok(outcomes)
    }

    async fn recipients(&self, filter: &RecipientFilter) -> Result<Vec<EligibilityFacts>> {
        let search = filter
            .search
            .as_ref()
            .map(|s| format!("%{}%", s.trim().to_lowercase()));
        let rows = sqlx::query(
            "SELECT r.id, r.external_id, r.role, r.name, r.locale, r.email, r.phone, r.sms_enabled
             FROM recipients r
             WHERE ($1 IS NULL OR r.role = $1)
               AND ($2 IS NULL OR r.id IN (
                     SELECT m.recipient_id FROM group_members m
                     JOIN groups g ON g.id = m.group_id WHERE g.external_id = $2))
               AND ($3 IS NULL OR lower(r.name) LIKE $3 OR lower(r.external_id) LIKE $3
                    OR lower(coalesce(r.email, '')) LIKE $3
                    OR coalesce(r.phone_e164, '') LIKE $3 OR coalesce(r.phone, '') LIKE $3)
               AND ($4 IS NULL OR r.external_id = $4)
             ORDER BY CASE r.role WHEN 'student' THEN 0 WHEN 'guardian' THEN 1
                                  WHEN 'teacher' THEN 2 ELSE 3 END,
                      r.name, r.external_id",
        )
        .bind(filter.role.map(Role::as_str))
        .bind(&filter.group)
        .bind(&search)
        .bind(&filter.external_id)
        .fetch_all(&self.pool)
        .await?;
        let mut recipients = Vec::with_capacity(rows.len());
        for row in rows {
            recipients.push(Recipient {
                id: RecipientId(row.try_get("id")?),
                external_id: row.try_get("external_id")?,
                role: parse_role(&row.try_get::<String, _>("role")?)?,
                name: row.try_get("name")?,
                locale: row.try_get("locale")?,
                email: row.try_get("email")?,
                phone: row.try_get("phone")?,
                sms_enabled: row.try_get("sms_enabled")?,
            });
        }

        // Guardians' consent comes from their students' contracts.
        let guardians = id_list(
            recipients
                .iter()
                .filter(|r| r.role == Role::Guardian)
                .map(|r| r.id.0),
        );
        let wards: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT guardian_id, student_id FROM guardianships
             WHERE guardian_id IN (SELECT value FROM json_each($1))",
        )
        .bind(guardians)
        .fetch_all(&self.pool)
        .await?;
        let students = id_list(
            recipients
                .iter()
                .filter(|r| r.role == Role::Student)
                .map(|r| r.id.0)
                .chain(wards.iter().map(|(_, s)| *s)),
        );
        let rows = sqlx::query(
            "SELECT c.student_id, s.external_id AS student, c.external_id, c.status,
                    c.consent_email, c.consent_email_at, c.consent_sms, c.consent_sms_at,
                    c.consent_source
             FROM contracts c JOIN recipients s ON s.id = c.student_id
             WHERE c.student_id IN (SELECT value FROM json_each($1))
             ORDER BY c.external_id",
        )
        .bind(students)
        .fetch_all(&self.pool)
        .await?;
        let mut contracts: HashMap<i64, Vec<ContractConsent>> = HashMap::new();
        for row in rows {
            contracts
                .entry(row.try_get("student_id")?)
                .or_default()
                .push(ContractConsent {
                    contract: row.try_get("external_id")?,
                    student: row.try_get("student")?,
                    status: parse_status(&row.try_get::<String, _>("status")?)?,
                    email: Consent {
                        given: row.try_get("consent_email")?,
                        changed_at: row.try_get("consent_email_at")?,
                    },
                    sms: Consent {
                        given: row.try_get("consent_sms")?,
                        changed_at: row.try_get("consent_sms_at")?,
                    },
                    source: row.try_get("consent_source")?,
                });
        }
        let mut students_of: HashMap<i64, Vec<i64>> = HashMap::new();
        for (guardian, student) in wards {
            students_of.entry(guardian).or_default().push(student);
        }
        Ok(recipients
            .into_iter()
            .map(|recipient| {
                let own = std::iter::once(recipient.id.0);
                let covering: Vec<ContractConsent> = match recipient.role {
                    Role::Guardian => students_of
                        .get(&recipient.id.0)
                        .into_iter()
                        .flatten()
                        .flat_map(|s| contracts.get(s).into_iter().flatten().cloned())
                        .collect(),
                    _ => own
                        .flat_map(|s| contracts.get(&s).into_iter().flatten().cloned())
                        .collect(),
                };
                EligibilityFacts {
                    recipient,
                    contracts: covering,
                }
            })
            .collect())
    }

    async fn recipient(&self, external_id: &str) -> Result<Option<EligibilityFacts>> {
        let filter = RecipientFilter {
            external_id: Some(external_id.to_owned()),
            ..RecipientFilter::default()
        };
        Ok(self.recipients(&filter).await?.into_iter().next())
    }

    async fn groups(&self) -> Result<Vec<GroupSummary>> {
        let rows = sqlx::query(
            "SELECT g.external_id, g.name,
                    coalesce(sum(CASE WHEN r.role = 'student' THEN 1 ELSE 0 END), 0) AS students,
                    coalesce(sum(CASE WHEN r.role = 'teacher' THEN 1 ELSE 0 END), 0) AS teachers
             FROM groups g
             LEFT JOIN group_members m ON m.group_id = g.id
             LEFT JOIN recipients r ON r.id = m.recipient_id
             GROUP BY g.id, g.external_id, g.name
             ORDER BY g.name, g.external_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(GroupSummary {
                    external_id: row.try_get("external_id")?,
                    name: row.try_get("name")?,
                    students: row.try_get("students")?,
                    teachers: row.try_get("teachers")?,
                })
            })
            .collect()
    }

    async fn counts(&self) -> Result<DirectoryCounts> {
        let row = sqlx::query(
            "SELECT
               (SELECT count(*) FROM recipients WHERE role = 'student') AS students,
               (SELECT count(*) FROM recipients WHERE role = 'guardian') AS guardians,
               (SELECT count(*) FROM recipients WHERE role = 'teacher') AS teachers,
               (SELECT count(*) FROM recipients WHERE role = 'staff') AS staff,
               (SELECT count(*) FROM groups) AS groups,
               (SELECT count(*) FROM contracts) AS contracts,
               (SELECT count(*) FROM contracts WHERE status = 'active') AS active_contracts",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(DirectoryCounts {
            students: row.try_get("students")?,
            guardians: row.try_get("guardians")?,
            teachers: row.try_get("teachers")?,
            staff: row.try_get("staff")?,
            groups: row.try_get("groups")?,
            contracts: row.try_get("contracts")?,
            active_contracts: row.try_get("active_contracts")?,
        })
    }
}

#[async_trait]
impl CalendarStore for SqliteStore {
    async fn add_holiday(&self, holiday: &Holiday, now: DateTime<Utc>) -> Result<Holiday> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO holidays (name, first_day, last_day, created_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(&holiday.name)
        .bind(holiday.first_day)
        .bind(holiday.last_day)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(Holiday {
            id: Some(id),
            ..holiday.clone()
        })
    }

    async fn remove_holiday(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM holidays WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn holidays(&self, from: Option<NaiveDate>) -> Result<Vec<Holiday>> {
        let rows: Vec<(i64, String, NaiveDate, NaiveDate)> = sqlx::query_as(
            "SELECT id, name, first_day, last_day FROM holidays
             WHERE ($1 IS NULL OR last_day >= $1)
             ORDER BY first_day, last_day, id",
        )
        .bind(from)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, first_day, last_day)| Holiday {
                id: Some(id),
                name,
                first_day,
                last_day,
            })
            .collect())
    }
}
