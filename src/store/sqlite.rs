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

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::shared::{
    ApplyError, Applying, Outcome, build_operators, build_roles, consent_at, failure_mark,
    parse_code, parse_reason, parse_role, parse_status,
};
use super::{
    ActionResult, Applied, Attempt, AttemptOutcome, BatchSummary, CalendarStore, Claimed,
    CoordinationStore, Decided, Decision, DirectoryCounts, DirectoryStore, Finish, LedgerEntry,
    LedgerTotals, MessageAction, MessageFilter, MessageView, NewBatch, NewMessage, OutboxStore,
    PassCounts, RecipientFilter, Refused, Result, StatusCount, StoreError, WalletState,
    WalletStore,
};
use super::{
    AddOperator, AdminStore, AuditEntry, AuditFilter, Hold, NewOperator, OperatorStore,
    SampleMessage, TemplateStore,
};
use super::{ArrearsContract, DueInstalment, NewOccurrence, RuleRun, RuleStore};
use super::{ChannelHealth, DiagnosisStore, MessageEvent};
use crate::config::DatabaseSettings;
use crate::domain::access::{Operator, Permission, RoleDef};
use crate::domain::directory::{
    Consent, ContractConsent, ContractRecord, DirectoryRecord, GroupSummary, InstalmentRecord,
    Recipient, RecipientId, RecipientRecord, Role,
};
use crate::domain::{
    Audience, BatchId, BatchStatus, Channel, EligibilityFacts, Holiday, MessageId, MessageKind,
    MessageStatus, Reach, Reason,
};
use crate::templates::Variant;

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
            .acquire_timeout(settings.acquire_timeout)
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
        DirectoryRecord::Instalment(i) => apply_instalment(conn, i, now).await,
    }
}

async fn apply_instalment(
    conn: &mut SqliteConnection,
    i: &InstalmentRecord,
    now: DateTime<Utc>,
) -> Applying {
    let contract: Option<i64> =
        sqlx::query_scalar("SELECT id FROM contracts WHERE external_id = $1")
            .bind(&i.contract)
            .fetch_optional(&mut *conn)
            .await?;
    let contract = contract.ok_or_else(|| Refused::Unknown {
        field: "contract_id",
        value: i.contract.clone(),
        expected: "contract",
    })?;
    let existing: Option<(i64, i64, NaiveDate, i64, bool, Option<i64>)> = sqlx::query_as(
        "SELECT id, contract_id, due_date, amount_cents, paid, paid_amount_cents
         FROM instalments WHERE external_id = $1",
    )
    .bind(&i.external_id)
    .fetch_optional(&mut *conn)
    .await?;
    match existing {
        None => {
            sqlx::query(
                "INSERT INTO instalments (external_id, contract_id, due_date, amount_cents, paid,
                     paid_amount_cents, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&i.external_id)
            .bind(contract)
            .bind(i.due_date)
            .bind(i.amount_cents)
            .bind(i.paid)
            .bind(i.paid_amount_cents)
            .bind(now)
            .execute(conn)
            .await?;
            Ok(Applied::Created)
        }
        Some(old)
            if old
                == (
                    old.0,
                    contract,
                    i.due_date,
                    i.amount_cents,
                    i.paid,
                    i.paid_amount_cents,
                ) =>
        {
            Ok(Applied::Unchanged)
        }
        Some((id, ..)) => {
            sqlx::query(
                "UPDATE instalments SET contract_id = $2, due_date = $3, amount_cents = $4,
                     paid = $5, paid_amount_cents = $6, updated_at = $7
                 WHERE id = $1",
            )
            .bind(id)
            .bind(contract)
            .bind(i.due_date)
            .bind(i.amount_cents)
            .bind(i.paid)
            .bind(i.paid_amount_cents)
            .bind(now)
            .execute(conn)
            .await?;
            Ok(Applied::Updated)
        }
    }
}

async fn apply_recipient(
    conn: &mut SqliteConnection,
    r: &RecipientRecord,
    now: DateTime<Utc>,
) -> Applying {
    let existing = sqlx::query(
        "SELECT id, role, name, locale, email, phone, phone_e164, sms_enabled, birth_date
         FROM recipients WHERE external_id = $1",
    )
    .bind(&r.external_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = existing else {
        sqlx::query(
            "INSERT INTO recipients
                (external_id, role, name, locale, email, phone, phone_e164, sms_enabled,
                 created_at, updated_at, birth_date)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
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
        .bind(r.birth_date)
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
        && row.try_get::<bool, _>("sms_enabled")? == r.sms_enabled
        && row.try_get::<Option<NaiveDate>, _>("birth_date")? == r.birth_date;
    if same {
        return Ok(Applied::Unchanged);
    }
    sqlx::query(
        "UPDATE recipients
         SET role = $2, name = $3, locale = $4, email = $5, phone = $6, phone_e164 = $7,
             sms_enabled = $8, updated_at = $9, birth_date = $10,
             -- A new address is a fresh start: the old one's refusal no longer applies.
             email_failing_since = CASE WHEN email IS $5 THEN email_failing_since END,
             email_failure = CASE WHEN email IS $5 THEN email_failure END,
             phone_failing_since = CASE WHEN phone_e164 IS $7 THEN phone_failing_since END,
             phone_failure = CASE WHEN phone_e164 IS $7 THEN phone_failure END
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
    .bind(r.birth_date)
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
                consent_sms_at, consent_source, balance_cents, arrears_since
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
                 consent_sms, consent_sms_at, consent_source, created_at, updated_at,
                 balance_cents, arrears_since)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $8, $9, $9, $10, $11)",
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
        .bind(c.balance_cents)
        .bind(c.arrears_since)
        .execute(conn)
        .await?;
        return Ok(Applied::Created);
    };
    let old_email: bool = row.try_get("consent_email")?;
    let old_sms: bool = row.try_get("consent_sms")?;
    let old_email_at: Option<DateTime<Utc>> = row.try_get("consent_email_at")?;
    let old_sms_at: Option<DateTime<Utc>> = row.try_get("consent_sms_at")?;
    let email_at = consent_at(c.consent_at, c.consent_email, old_email, old_email_at, now);
    let sms_at = consent_at(c.consent_at, c.consent_sms, old_sms, old_sms_at, now);
    let same = row.try_get::<i64, _>("student_id")? == student_id
        && row.try_get::<Option<String>, _>("number")? == c.number
        && row.try_get::<String, _>("status")? == c.status.as_str()
        && old_email == c.consent_email
        && old_sms == c.consent_sms
        && old_email_at == email_at
        && old_sms_at == sms_at
        && row.try_get::<Option<String>, _>("consent_source")? == c.consent_source
        && row.try_get::<Option<i64>, _>("balance_cents")? == c.balance_cents
        && row.try_get::<Option<NaiveDate>, _>("arrears_since")? == c.arrears_since;
    if same {
        return Ok(Applied::Unchanged);
    }
    sqlx::query(
        "UPDATE contracts
         SET student_id = $2, number = $3, status = $4, consent_email = $5,
             consent_email_at = $6, consent_sms = $7, consent_sms_at = $8,
             consent_source = $9, updated_at = $10, balance_cents = $11, arrears_since = $12
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
    .bind(c.balance_cents)
    .bind(c.arrears_since)
    .execute(conn)
    .await?;
    Ok(Applied::Updated)
}

/// Strings as a JSON array (`IN (SELECT value FROM json_each($1))`).
fn text_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialise")
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
        // Only the conditions a filter sets are in the statement: `($1 IS NULL OR …)`
        // hides the indexes from the planner, and a look-up by id would scan every
        // recipient (it is on the path of every message sent).
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT r.id, r.external_id, r.role, r.name, r.locale, r.email, r.phone, r.sms_enabled,
                    r.email_failing_since, r.email_failure, r.phone_failing_since, r.phone_failure
             FROM recipients r WHERE TRUE",
        );
        if let Some(role) = filter.role {
            q.push(" AND r.role = ").push_bind(role.as_str());
        }
        if let Some(group) = &filter.group {
            q.push(
                " AND r.id IN (SELECT m.recipient_id FROM group_members m
                  JOIN groups g ON g.id = m.group_id WHERE g.external_id = ",
            )
            .push_bind(group.clone())
            .push(")");
        }
        if let Some(search) = &filter.search {
            let like = format!("%{}%", search.trim().to_lowercase());
            q.push(" AND (lower(r.name) LIKE ")
                .push_bind(like.clone())
                .push(" OR lower(r.external_id) LIKE ")
                .push_bind(like.clone())
                .push(" OR lower(coalesce(r.email, '')) LIKE ")
                .push_bind(like.clone())
                .push(" OR coalesce(r.phone_e164, '') LIKE ")
                .push_bind(like.clone())
                .push(" OR coalesce(r.phone, '') LIKE ")
                .push_bind(like)
                .push(")");
        }
        if let Some(external_id) = &filter.external_id {
            q.push(" AND r.external_id = ")
                .push_bind(external_id.clone());
        }
        if let Some(ids) = &filter.ids {
            q.push(" AND r.id IN (SELECT value FROM json_each(")
                .push_bind(id_list(ids.iter().map(|i| i.0)))
                .push("))");
        }
        q.push(
            " ORDER BY CASE r.role WHEN 'student' THEN 0 WHEN 'guardian' THEN 1
                                  WHEN 'teacher' THEN 2 ELSE 3 END,
                      r.name, r.external_id",
        );
        let rows = q.build().fetch_all(&self.pool).await?;
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
                email_failure: failure_mark(
                    row.try_get("email_failure")?,
                    row.try_get("email_failing_since")?,
                ),
                phone_failure: failure_mark(
                    row.try_get("phone_failure")?,
                    row.try_get("phone_failing_since")?,
                ),
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
            "SELECT c.student_id, s.external_id AS student, c.external_id, c.number, c.status,
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
                    number: row.try_get("number")?,
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

    async fn recipient_by_id(&self, id: RecipientId) -> Result<Option<EligibilityFacts>> {
        let filter = RecipientFilter {
            ids: Some(vec![id]),
            ..RecipientFilter::default()
        };
        Ok(self.recipients(&filter).await?.into_iter().next())
    }

    async fn audience(&self, audience: &Audience, reach: Reach) -> Result<Vec<EligibilityFacts>> {
        let base: Vec<i64> = match audience {
            Audience::Recipient(external_id) => {
                sqlx::query_scalar("SELECT id FROM recipients WHERE external_id = $1")
                    .bind(external_id)
                    .fetch_all(&self.pool)
                    .await?
            }
            Audience::Group(group) => {
                sqlx::query_scalar(
                    "SELECT m.recipient_id FROM group_members m
                     JOIN groups g ON g.id = m.group_id
                     JOIN recipients r ON r.id = m.recipient_id
                     WHERE g.external_id = $1 AND r.role = 'student'",
                )
                .bind(group)
                .fetch_all(&self.pool)
                .await?
            }
            Audience::List(ids) => {
                sqlx::query_scalar(
                    "SELECT id FROM recipients
                     WHERE external_id IN (SELECT value FROM json_each($1))",
                )
                .bind(text_list(ids))
                .fetch_all(&self.pool)
                .await?
            }
            Audience::Groups(groups) => {
                sqlx::query_scalar(
                    "SELECT DISTINCT m.recipient_id FROM group_members m
                     JOIN groups g ON g.id = m.group_id
                     JOIN recipients r ON r.id = m.recipient_id
                     WHERE g.external_id IN (SELECT value FROM json_each($1))
                       AND r.role = 'student'",
                )
                .bind(text_list(groups))
                .fetch_all(&self.pool)
                .await?
            }
            Audience::TeachersOf(group) => {
                sqlx::query_scalar(
                    "SELECT m.recipient_id FROM group_members m
                     JOIN groups g ON g.id = m.group_id
                     JOIN recipients r ON r.id = m.recipient_id
                     WHERE g.external_id = $1 AND r.role = 'teacher'",
                )
                .bind(group)
                .fetch_all(&self.pool)
                .await?
            }
            Audience::AllGroups => {
                sqlx::query_scalar(
                    "SELECT DISTINCT m.recipient_id FROM group_members m
                     JOIN recipients r ON r.id = m.recipient_id WHERE r.role = 'student'",
                )
                .fetch_all(&self.pool)
                .await?
            }
            Audience::ActiveContracts => {
                sqlx::query_scalar(
                    "SELECT DISTINCT student_id FROM contracts WHERE status = 'active'",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        // Reach applies to the students among them; anyone else is written to as is.
        let students: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM recipients
             WHERE id IN (SELECT value FROM json_each($1)) AND role = 'student'",
        )
        .bind(id_list(base.iter().copied()))
        .fetch_all(&self.pool)
        .await?;
        let guardians: Vec<i64> = if reach == Reach::Students {
            Vec::new()
        } else {
            sqlx::query_scalar(
                "SELECT DISTINCT guardian_id FROM guardianships
                 WHERE student_id IN (SELECT value FROM json_each($1))",
            )
            .bind(id_list(students.iter().copied()))
            .fetch_all(&self.pool)
            .await?
        };
        let mut ids: std::collections::BTreeSet<i64> = guardians.into_iter().collect();
        for id in base {
            if reach != Reach::Guardians || !students.contains(&id) {
                ids.insert(id);
            }
        }
        let filter = RecipientFilter {
            ids: Some(ids.into_iter().map(RecipientId).collect()),
            ..RecipientFilter::default()
        };
        self.recipients(&filter).await
    }

    async fn mark_email_failing(
        &self,
        id: RecipientId,
        address: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE recipients SET email_failing_since = $3, email_failure = $4
             WHERE id = $1 AND lower(trim(email)) = lower($2)",
        )
        .bind(id.0)
        .bind(address)
        .bind(now)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_phone_failing(
        &self,
        id: RecipientId,
        e164: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE recipients SET phone_failing_since = $3, phone_failure = $4
             WHERE id = $1 AND phone_e164 = $2",
        )
        .bind(id.0)
        .bind(e164)
        .bind(now)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
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

/// Binds a [`MessageFilter`]'s six parameters in `message_filter!` order.
fn bind_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    f: &'q MessageFilter,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    query
        .bind(f.batch.map(|b| b.0))
        .bind(f.recipient.as_deref())
        .bind(f.status.map(MessageStatus::as_str))
        .bind(f.kind.map(MessageKind::as_str))
        .bind(f.channel.map(Channel::as_str))
        .bind(f.since)
}

async fn insert_message(
    conn: &mut SqliteConnection,
    batch: Option<i64>,
    m: &NewMessage,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<i64> {
    let due = (m.status == MessageStatus::Queued).then_some(now);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO messages
            (batch_id, kind, channel, recipient_id, recipient_external_id, address, subject,
             body, status, reason, next_attempt_at, created_at, updated_at, segments, html,
             occurrence_key, relevance, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16,
                 $17)
         RETURNING id",
    )
    .bind(batch)
    .bind(m.kind.as_str())
    .bind(m.channel.as_str())
    .bind(m.recipient_id.map(|r| r.0))
    .bind(&m.recipient_external_id)
    .bind(&m.address)
    .bind(&m.subject)
    .bind(&m.body)
    .bind(m.status.as_str())
    .bind(m.reason.map(Reason::as_str))
    .bind(due)
    .bind(now)
    .bind(m.segments)
    .bind(&m.html)
    .bind(&m.occurrence_key)
    .bind(&m.relevance)
    .bind(m.expires_at)
    .fetch_one(&mut *conn)
    .await?;
    insert_event(conn, id, now, m.status, m.reason, Some(actor), "created").await?;
    Ok(id)
}

async fn insert_event(
    conn: &mut SqliteConnection,
    message: i64,
    at: DateTime<Utc>,
    status: MessageStatus,
    reason: Option<Reason>,
    actor: Option<&str>,
    note: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO message_events (message_id, at, status, reason, actor, note)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(message)
    .bind(at)
    .bind(status.as_str())
    .bind(reason.map(Reason::as_str))
    .bind(actor)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_attempt(
    conn: &mut SqliteConnection,
    message: i64,
    number: i64,
    attempt: &Attempt,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO attempts
            (message_id, number, started_at, finished_at, outcome, code, detail, worker,
             provider_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(message)
    .bind(number)
    .bind(attempt.started_at)
    .bind(now)
    .bind(attempt.outcome.as_str())
    .bind(attempt.code)
    .bind(&attempt.detail)
    .bind(worker)
    .bind(&attempt.provider_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A claimed message that did not finish: id, lease owner, attempts, claimed at,
/// lease until.
type Unfinished = (
    i64,
    Option<String>,
    i64,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

/// Records an unfinished attempt and puts the message back in the queue (or fails
/// it once `max_attempts` is reached), giving back its reserved credit.
async fn abandon(
    conn: &mut SqliteConnection,
    m: &Unfinished,
    detail: &str,
    max_attempts: Option<u32>,
    note: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let (id, owner, attempts, claimed_at, _) = m;
    let attempt = Attempt {
        started_at: *claimed_at,
        outcome: AttemptOutcome::Abandoned,
        code: None,
        detail: detail.to_owned(),
        provider_id: None,
    };
    insert_attempt(
        conn,
        *id,
        attempts + 1,
        &attempt,
        owner.as_deref().unwrap_or("?"),
        now,
    )
    .await?;
    let exhausted = max_attempts.is_some_and(|max| attempts + 1 >= i64::from(max));
    let (status, reason) = if exhausted {
        (MessageStatus::Failed, Reason::AttemptsExhausted)
    } else {
        (MessageStatus::Queued, Reason::RetryScheduled)
    };
    sqlx::query(
        "UPDATE messages
         SET status = $2, reason = $3, attempts = attempts + 1,
             next_attempt_at = CASE WHEN $2 = 'queued' THEN $4 END,
             lease_owner = NULL, lease_until = NULL, updated_at = $4
         WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    settle(conn, *id, false, now).await?;
    insert_event(conn, *id, now, status, Some(reason), None, note).await
}

/// Settles the points reserved for a message: charged when the gateway accepted it,
/// otherwise given back to the balance. Nothing to do when none are reserved.
async fn settle(
    conn: &mut SqliteConnection,
    id: i64,
    charge: bool,
    now: DateTime<Utc>,
) -> Result<()> {
    let reserved: Option<i64> =
        sqlx::query_scalar("SELECT reserved_points FROM messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
    let Some(points) = reserved.filter(|p| *p > 0) else {
        return Ok(());
    };
    let (balance, reserved): (i64, i64) = if charge {
        sqlx::query_as(
            "UPDATE wallet SET reserved = reserved - $1 WHERE id = 1 RETURNING balance, reserved",
        )
    } else {
        sqlx::query_as(
            "UPDATE wallet SET reserved = reserved - $1, balance = balance + $1 WHERE id = 1
             RETURNING balance, reserved",
        )
    }
    .bind(points)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("UPDATE messages SET reserved_points = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let entry = if charge { "charge" } else { "refund" };
    insert_ledger(
        conn,
        now,
        entry,
        points,
        Some(id),
        None,
        None,
        (balance, reserved),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn insert_ledger(
    conn: &mut SqliteConnection,
    at: DateTime<Utc>,
    entry: &str,
    points: i64,
    message: Option<i64>,
    actor: Option<&str>,
    note: Option<&str>,
    (balance, reserved): (i64, i64),
) -> Result<()> {
    sqlx::query(
        "INSERT INTO wallet_ledger
            (at, entry, points, message_id, actor, note, balance_after, reserved_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(at)
    .bind(entry)
    .bind(points)
    .bind(message)
    .bind(actor)
    .bind(note)
    .bind(balance)
    .bind(reserved)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn create_message(
        &self,
        message: &NewMessage,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<MessageId> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id = insert_message(&mut tx, None, message, actor, now).await?;
        tx.commit().await?;
        Ok(MessageId(id))
    }

    async fn create_batch(
        &self,
        batch: &NewBatch,
        messages: &[NewMessage],
        now: DateTime<Utc>,
    ) -> Result<BatchId> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: i64 = sqlx::query_scalar(
            // A batch stored approved was sent by an operator who needs no approval:
            // the decision is theirs, taken when they sent it.
            "INSERT INTO batches
                (kind, channel, status, audience, subject, body, created_by, created_at,
                 decided_by, decided_at, decision_note, channels, html)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                     CASE WHEN $3 = 'approved' THEN $7 END,
                     CASE WHEN $3 = 'approved' THEN $8 END,
                     CASE WHEN $3 = 'approved' THEN 'sent without approval' END, $9, $10)
             RETURNING id",
        )
        .bind(batch.kind.as_str())
        .bind(batch.channel.as_str())
        .bind(batch.status.as_str())
        .bind(&batch.audience)
        .bind(&batch.subject)
        .bind(&batch.body)
        .bind(&batch.created_by)
        .bind(now)
        .bind(batch.channels.as_str())
        .bind(&batch.html)
        .fetch_one(&mut *tx)
        .await?;
        for m in messages {
            insert_message(&mut tx, Some(id), m, &batch.created_by, now).await?;
        }
        tx.commit().await?;
        Ok(BatchId(id))
    }

    async fn batches(&self, status: Option<BatchStatus>) -> Result<Vec<BatchSummary>> {
        let status = status.map(BatchStatus::as_str);
        let rows = sqlx::query(
            "SELECT id, kind, channel, coalesce(channels, channel) AS channels, status, audience,
                    subject, body, html, created_by, created_at, decided_by, decided_at,
                    decision_note
             FROM batches WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC",
        )
        .bind(status)
        .fetch_all(&self.pool)
        .await?;
        let counts: Vec<(i64, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT m.batch_id, m.status, m.reason, count(*) FROM messages m
             JOIN batches b ON b.id = m.batch_id
             WHERE ($1 IS NULL OR b.status = $1)
             GROUP BY m.batch_id, m.status, m.reason
             ORDER BY m.batch_id, count(*) DESC",
        )
        .bind(status)
        .fetch_all(&self.pool)
        .await?;
        let mut by_batch: HashMap<i64, Vec<StatusCount>> = HashMap::new();
        for (batch, status, reason, count) in counts {
            by_batch.entry(batch).or_default().push(StatusCount {
                status: parse_code("messages.status", &status)?,
                reason: parse_reason(reason)?,
                count,
            });
        }
        rows.into_iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                Ok(BatchSummary {
                    id: BatchId(id),
                    kind: parse_code("batches.kind", &row.try_get::<String, _>("kind")?)?,
                    channel: parse_code("batches.channel", &row.try_get::<String, _>("channel")?)?,
                    channels: parse_code(
                        "batches.channels",
                        &row.try_get::<String, _>("channels")?,
                    )?,
                    status: parse_code("batches.status", &row.try_get::<String, _>("status")?)?,
                    audience: row.try_get("audience")?,
                    subject: row.try_get("subject")?,
                    body: row.try_get("body")?,
                    html: row.try_get("html")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                    decided_by: row.try_get("decided_by")?,
                    decided_at: row.try_get("decided_at")?,
                    decision_note: row.try_get("decision_note")?,
                    counts: by_batch.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn decide_batch(
        &self,
        id: BatchId,
        decision: &Decision,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Decided> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM batches WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else {
            return Ok(Decided::NotFound);
        };
        let current: BatchStatus = parse_code("batches.status", &current)?;
        if current != BatchStatus::AwaitingApproval {
            return Ok(Decided::AlreadyDecided(current));
        }
        let (batch_status, message_status, note) = match decision {
            Decision::Approve => (BatchStatus::Approved, MessageStatus::Queued, None),
            Decision::Reject(why) => (
                BatchStatus::Rejected,
                MessageStatus::Rejected,
                Some(why.as_str()),
            ),
        };
        sqlx::query(
            "UPDATE batches SET status = $2, decided_by = $3, decided_at = $4, decision_note = $5
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(batch_status.as_str())
        .bind(actor)
        .bind(now)
        .bind(note)
        .execute(&mut *tx)
        .await?;
        let event_note = match decision {
            Decision::Approve => "batch approved".to_owned(),
            Decision::Reject(why) => format!("batch rejected: {why}"),
        };
        sqlx::query(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $2, $3, NULL, $4, $5 FROM messages
             WHERE batch_id = $1 AND status = 'awaiting_approval'",
        )
        .bind(id.0)
        .bind(now)
        .bind(message_status.as_str())
        .bind(actor)
        .bind(&event_note)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(
            "UPDATE messages SET status = $2, reason = NULL, updated_at = $3,
                    next_attempt_at = CASE WHEN $2 = 'queued' THEN $3 END
             WHERE batch_id = $1 AND status = 'awaiting_approval'",
        )
        .bind(id.0)
        .bind(message_status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Decided::Done(moved))
    }

    async fn decide_messages(
        &self,
        batch: BatchId,
        ids: &[MessageId],
        decision: &Decision,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Decided> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM batches WHERE id = $1")
                .bind(batch.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else {
            return Ok(Decided::NotFound);
        };
        let current: BatchStatus = parse_code("batches.status", &current)?;
        if current != BatchStatus::AwaitingApproval {
            return Ok(Decided::AlreadyDecided(current));
        }
        let (status, note) = match decision {
            Decision::Approve => (MessageStatus::Queued, "message approved".to_owned()),
            Decision::Reject(why) => (MessageStatus::Rejected, format!("message rejected: {why}")),
        };
        let ids = id_list(ids.iter().map(|m| m.0));
        sqlx::query(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $2, $3, NULL, $4, $5 FROM messages
             WHERE batch_id = $1 AND status = 'awaiting_approval' AND id IN (SELECT value FROM json_each($6))",
        )
        .bind(batch.0)
        .bind(now)
        .bind(status.as_str())
        .bind(actor)
        .bind(&note)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
        let moved = sqlx::query(
            "UPDATE messages SET status = $2, reason = NULL, updated_at = $3,
                    next_attempt_at = CASE WHEN $2 = 'queued' THEN $3 END
             WHERE batch_id = $1 AND status = 'awaiting_approval' AND id IN (SELECT value FROM json_each($4))",
        )
        .bind(batch.0)
        .bind(status.as_str())
        .bind(now)
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Decided::Done(moved))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        kinds: &[MessageKind],
        owner: &str,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Claimed>> {
        let kinds = serde_json::to_string(&kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>())
            .expect("strings serialise");
        // One statement: SQLite runs it under its single write lock, so two
        // dispatchers can never claim the same row. The subquery reads the partial
        // index of queued messages, not the history.
        let rows = sqlx::query(
            "UPDATE messages
             SET status = 'sending', lease_owner = $1, lease_until = $2, updated_at = $3
             WHERE id IN (
                 SELECT id FROM messages
                 WHERE status = 'queued' AND next_attempt_at <= $3
                   AND kind IN (SELECT value FROM json_each($4))
                 -- System messages (a password reset) first, then oldest due first.
                 ORDER BY CASE kind WHEN 'system' THEN 0 ELSE 1 END, next_attempt_at, id
                 LIMIT $5)
             RETURNING id, batch_id, kind, channel, recipient_id, subject, body, html, relevance,
                       expires_at, attempts,
                       created_at, segments",
        )
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(kinds)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = rows
            .into_iter()
            .map(|row| {
                Ok(Claimed {
                    id: MessageId(row.try_get("id")?),
                    batch_id: row.try_get::<Option<i64>, _>("batch_id")?.map(BatchId),
                    kind: parse_code("messages.kind", &row.try_get::<String, _>("kind")?)?,
                    channel: parse_code("messages.channel", &row.try_get::<String, _>("channel")?)?,
                    recipient_id: row
                        .try_get::<Option<i64>, _>("recipient_id")?
                        .map(RecipientId),
                    subject: row.try_get("subject")?,
                    body: row.try_get("body")?,
                    html: row.try_get("html")?,
                    relevance: row.try_get("relevance")?,
                    expires_at: row.try_get("expires_at")?,
                    attempts: row.try_get::<i64, _>("attempts")?.try_into().unwrap_or(0),
                    created_at: row.try_get("created_at")?,
                    segments: row.try_get("segments")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // RETURNING gives rows in no particular order.
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    async fn has_due(&self, now: DateTime<Utc>, kinds: &[MessageKind]) -> Result<bool> {
        let kinds = serde_json::to_string(&kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>())
            .expect("strings serialise");
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM messages
                            WHERE status = 'queued' AND next_attempt_at <= $1
                              AND kind IN (SELECT value FROM json_each($2)))",
        )
        .bind(now)
        .bind(kinds)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn reclaim_expired(&self, now: DateTime<Utc>, max_attempts: u32) -> Result<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let expired: Vec<Unfinished> = sqlx::query_as(
            "SELECT id, lease_owner, attempts, updated_at, lease_until FROM messages
             WHERE status = 'sending' AND lease_until < $1",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for m in &expired {
            let detail = format!(
                "dispatcher {} claimed the message and did not finish before its lease ran \
                 out ({}); the message goes again under the same identity",
                m.1.as_deref().unwrap_or("?"),
                m.4.map(|u| u.to_rfc3339()).unwrap_or_default()
            );
            abandon(
                &mut tx,
                m,
                &detail,
                Some(max_attempts),
                "lease expired: reclaimed",
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(expired.len() as u64)
    }

    async fn finish(
        &self,
        id: MessageId,
        owner: &str,
        finish: &Finish,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<(String, Option<String>, i64)> =
            sqlx::query_as("SELECT status, lease_owner, attempts FROM messages WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((status, lease_owner, attempts)) = row else {
            return Ok(false);
        };
        let attempt = match finish {
            Finish::Sent(a) | Finish::Retry(a, _) | Finish::Failed(a, _) | Finish::Unknown(a) => {
                Some(a)
            }
            Finish::Blocked(_) | Finish::Hold(..) | Finish::Withdrawn(..) => None,
        };
        // The attempt happened whatever became of the lease: keep the server's answer.
        if let Some(a) = attempt {
            insert_attempt(&mut tx, id.0, attempts + 1, a, owner, now).await?;
        }
        if status != MessageStatus::Sending.as_str() || lease_owner.as_deref() != Some(owner) {
            tx.commit().await?;
            return Ok(false);
        }
        let tried = i64::from(attempt.is_some());
        let (new_status, reason, next_at, sent_at, note) = match finish {
            Finish::Sent(a) => (MessageStatus::Sent, None, None, Some(now), a.detail.clone()),
            Finish::Retry(a, at) => (
                MessageStatus::Queued,
                Some(Reason::RetryScheduled),
                Some(*at),
                None,
                a.detail.clone(),
            ),
            Finish::Failed(a, reason) => (
                MessageStatus::Failed,
                Some(*reason),
                None,
                None,
                a.detail.clone(),
            ),
            Finish::Unknown(a) => (
                MessageStatus::Unknown,
                Some(Reason::OutcomeUnknown),
                None,
                None,
                a.detail.clone(),
            ),
            Finish::Blocked(reason) => (
                MessageStatus::Blocked,
                Some(*reason),
                None,
                None,
                "checked again before sending".to_owned(),
            ),
            Finish::Hold(reason, until) => (
                MessageStatus::Queued,
                Some(*reason),
                Some(*until),
                None,
                format!("held until {}", until.to_rfc3339()),
            ),
            Finish::Withdrawn(status, reason) => (
                *status,
                Some(*reason),
                None,
                None,
                "checked before sending".to_owned(),
            ),
        };
        match finish {
            // The outcome is not known: the points stay reserved until an operator
            // resends (given back, reserved again) or drops (given back) the message.
            Finish::Unknown(_) => {}
            Finish::Sent(_) => settle(&mut tx, id.0, true, now).await?,
            _ => settle(&mut tx, id.0, false, now).await?,
        }
        sqlx::query(
            "UPDATE messages
             SET status = $2, reason = $3, next_attempt_at = $4,
                 sent_at = coalesce($5, sent_at), attempts = attempts + $6,
                 lease_owner = NULL, lease_until = NULL, updated_at = $7
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(new_status.as_str())
        .bind(reason.map(Reason::as_str))
        .bind(next_at)
        .bind(sent_at)
        .bind(tried)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, id.0, now, new_status, reason, None, &note).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn cancel_batch(&self, id: BatchId, actor: &str, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $2, 'cancelled', NULL, $3, 'batch cancelled by an operator'
             FROM messages WHERE batch_id = $1 AND status IN ('awaiting_approval', 'queued')",
        )
        .bind(id.0)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        // Queued messages hold no credit (it is reserved only while sending).
        let done = sqlx::query(
            "UPDATE messages SET status = 'cancelled', reason = NULL, next_attempt_at = NULL,
                    updated_at = $2
             WHERE batch_id = $1 AND status IN ('awaiting_approval', 'queued')",
        )
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn edit_batch(
        &self,
        id: BatchId,
        channel: Channel,
        subject: Option<&str>,
        body: &str,
        html: Option<&str>,
        segments: Option<i64>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let found = sqlx::query(
            "UPDATE batches
             SET subject = CASE WHEN channel = $4 THEN $2 ELSE subject END,
                 body = CASE WHEN channel = $4 THEN $3 ELSE body END,
                 html = CASE WHEN channel = $4 THEN $5 ELSE html END,
                 status = 'awaiting_approval',
                 decided_by = NULL, decided_at = NULL, decision_note = NULL
             WHERE id = $1 AND status IN ('awaiting_approval', 'approved')",
        )
        .bind(id.0)
        .bind(subject)
        .bind(body)
        .bind(channel.as_str())
        .bind(html)
        .execute(&mut *tx)
        .await?;
        if found.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $2, 'awaiting_approval', 'awaiting_approval', $3,
                    'batch edited: back to approval'
             FROM messages WHERE batch_id = $1 AND status IN ('awaiting_approval', 'queued')",
        )
        .bind(id.0)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE messages
             SET status = 'awaiting_approval', reason = 'awaiting_approval',
                 next_attempt_at = NULL, updated_at = $2
             WHERE batch_id = $1 AND status IN ('awaiting_approval', 'queued')",
        )
        .bind(id.0)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let edited = sqlx::query(
            "UPDATE messages SET subject = $2, body = $3, segments = $4, html = $6
             WHERE batch_id = $1 AND channel = $5 AND status = 'awaiting_approval'",
        )
        .bind(id.0)
        .bind(subject)
        .bind(body)
        .bind(segments)
        .bind(channel.as_str())
        .bind(html)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(edited.rows_affected()))
    }

    async fn expire_approvals(
        &self,
        approved_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<BatchId>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let stale: Vec<i64> = sqlx::query_scalar(
            "SELECT b.id FROM batches b
             WHERE b.status = 'approved' AND b.decided_at < $1
               -- A rule that needs no approval was not approved by anyone: nothing
               -- of it can go stale.
               AND coalesce(b.decided_by, '') NOT LIKE 'rule:%'
               AND EXISTS (SELECT 1 FROM messages m
                           WHERE m.batch_id = b.id AND m.status = 'queued')",
        )
        .bind(approved_before)
        .fetch_all(&mut *tx)
        .await?;
        for id in &stale {
            sqlx::query(
                "UPDATE batches SET status = 'awaiting_approval',
                        decision_note = 'approval expired unused'
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO message_events (message_id, at, status, reason, actor, note)
                 SELECT id, $2, 'awaiting_approval', 'approval_expired', NULL,
                        'the approval expired unused'
                 FROM messages WHERE batch_id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE messages SET status = 'awaiting_approval', reason = 'approval_expired',
                        next_attempt_at = NULL, updated_at = $2
                 WHERE batch_id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(stale.into_iter().map(BatchId).collect())
    }

    async fn act_on_message(
        &self,
        id: MessageId,
        action: MessageAction,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ActionResult> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Ok(ActionResult::NotFound);
        };
        let status: MessageStatus = parse_code("messages.status", &status)?;
        if !action.applies_to().contains(&status) {
            return Ok(ActionResult::NotApplicable(status));
        }
        let (new_status, note) = match action {
            MessageAction::Resend => (MessageStatus::Queued, "resent by an operator"),
            MessageAction::Cancel => (MessageStatus::Cancelled, "cancelled by an operator"),
        };
        // Points held for an `unknown` SMS go back; a resend reserves them again.
        settle(&mut tx, id.0, false, now).await?;
        sqlx::query(
            "UPDATE messages
             SET status = $2, reason = NULL, updated_at = $3,
                 next_attempt_at = CASE WHEN $2 = 'queued' THEN $3 END
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(new_status.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, id.0, now, new_status, None, Some(actor), note).await?;
        tx.commit().await?;
        Ok(ActionResult::Done(status))
    }

    async fn release(&self, ids: &[MessageId], owner: &str, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut released = 0;
        for id in ids {
            let claimed: Option<Unfinished> = sqlx::query_as(
                "SELECT id, lease_owner, attempts, updated_at, lease_until FROM messages
                 WHERE id = $1 AND status = 'sending' AND lease_owner = $2",
            )
            .bind(id.0)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(m) = claimed {
                let detail = "the dispatcher stopped before the send finished; it may have \
                              reached the server";
                abandon(
                    &mut tx,
                    &m,
                    detail,
                    None,
                    "released by a stopping dispatcher",
                    now,
                )
                .await?;
                released += 1;
            }
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageView>> {
        let query = sqlx::query(concat!(
            "SELECT m.id, m.batch_id, m.kind, m.channel, m.recipient_id, m.recipient_external_id,
                    m.address, m.subject, m.status, m.reason, m.created_at, m.sent_at,
                    m.next_attempt_at, m.attempts, m.segments
             FROM messages m WHERE ",
            message_filter!(),
            " ORDER BY m.id DESC LIMIT coalesce($7, -1)"
        ));
        let rows = bind_filter(query, filter)
            .bind(filter.limit)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok(MessageView {
                    id: MessageId(row.try_get("id")?),
                    batch_id: row.try_get::<Option<i64>, _>("batch_id")?.map(BatchId),
                    kind: parse_code("messages.kind", &row.try_get::<String, _>("kind")?)?,
                    channel: parse_code("messages.channel", &row.try_get::<String, _>("channel")?)?,
                    recipient_id: row
                        .try_get::<Option<i64>, _>("recipient_id")?
                        .map(RecipientId),
                    recipient: row.try_get("recipient_external_id")?,
                    address: row.try_get("address")?,
                    subject: row.try_get("subject")?,
                    status: parse_code("messages.status", &row.try_get::<String, _>("status")?)?,
                    reason: parse_reason(row.try_get("reason")?)?,
                    created_at: row.try_get("created_at")?,
                    sent_at: row.try_get("sent_at")?,
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    attempts: row.try_get("attempts")?,
                    segments: row.try_get("segments")?,
                })
            })
            .collect()
    }

    async fn message_counts(&self, filter: &MessageFilter) -> Result<Vec<StatusCount>> {
        let query = sqlx::query(concat!(
            "SELECT m.status, m.reason, count(*) AS n FROM messages m WHERE ",
            message_filter!(),
            " GROUP BY m.status, m.reason ORDER BY count(*) DESC, m.status, m.reason"
        ));
        let rows = bind_filter(query, filter).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| {
                Ok(StatusCount {
                    status: parse_code("messages.status", &row.try_get::<String, _>("status")?)?,
                    reason: parse_reason(row.try_get("reason")?)?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    async fn attempts(&self, id: MessageId) -> Result<Vec<Attempt>> {
        let rows: Vec<(
            DateTime<Utc>,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT started_at, outcome, code, detail, provider_id FROM attempts
                 WHERE message_id = $1 ORDER BY number, id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(started_at, outcome, code, detail, provider_id)| {
                let outcome = match outcome.as_str() {
                    "sent" => AttemptOutcome::Sent,
                    "transient" => AttemptOutcome::Transient,
                    "permanent" => AttemptOutcome::Permanent,
                    "unknown" => AttemptOutcome::Unknown,
                    "abandoned" => AttemptOutcome::Abandoned,
                    other => {
                        return Err(StoreError::Corrupt {
                            column: "attempts.outcome",
                            value: other.to_owned(),
                        });
                    }
                };
                Ok(Attempt {
                    started_at,
                    outcome,
                    code,
                    detail: detail.unwrap_or_default(),
                    provider_id,
                })
            })
            .collect()
    }

    async fn record_pass(
        &self,
        worker: &str,
        counts: &PassCounts,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO dispatcher_passes
                (worker, finished_at, sent, retried, failed, held, blocked)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (worker) DO UPDATE SET
                finished_at = excluded.finished_at, sent = excluded.sent,
                retried = excluded.retried, failed = excluded.failed, held = excluded.held,
                blocked = excluded.blocked",
        )
        .bind(worker)
        .bind(now)
        .bind(counts.sent as i64)
        .bind(counts.retried as i64)
        .bind(counts.failed as i64)
        .bind(counts.held as i64)
        .bind(counts.blocked as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_pass(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(
            sqlx::query_scalar("SELECT max(finished_at) FROM dispatcher_passes")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn sample_messages(&self, batch: BatchId) -> Result<Vec<SampleMessage>> {
        let rows: Vec<(
            String,
            Option<String>,
            String,
            Option<String>,
            String,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT m.channel, r.locale, m.recipient_external_id, m.subject, m.body, m.html
                 FROM messages m LEFT JOIN recipients r ON r.id = m.recipient_id
                 WHERE m.id IN (
                     SELECT min(m2.id) FROM messages m2
                     LEFT JOIN recipients r2 ON r2.id = m2.recipient_id
                     WHERE m2.batch_id = $1
                     GROUP BY m2.channel, r2.locale)
                 ORDER BY m.channel, r.locale",
        )
        .bind(batch.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(channel, locale, recipient, subject, body, html)| {
                Ok(SampleMessage {
                    channel: parse_code("messages.channel", &channel)?,
                    locale,
                    recipient,
                    subject,
                    body,
                    html,
                })
            })
            .collect()
    }

    async fn sent_since(
        &self,
        recipient: RecipientId,
        channel: Channel,
        kind: MessageKind,
        since: DateTime<Utc>,
        except: MessageId,
    ) -> Result<i64> {
        // Messages in flight count too, as a pass sends several at once; only the
        // older ones, so that of two in flight the older goes and the newer waits.
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages
             WHERE recipient_id = $1 AND channel = $2 AND kind = $3 AND id <> $5
               AND ((status IN ('sent', 'delivered') AND sent_at >= $4)
                    OR (status = 'sending' AND id < $5))",
        )
        .bind(recipient.0)
        .bind(channel.as_str())
        .bind(kind.as_str())
        .bind(since)
        .bind(except.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }
}

#[async_trait]
impl CoordinationStore for SqliteStore {
    async fn try_lead(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        // One statement: take the lease if it is free, ours, or expired.
        let holder: Option<String> = sqlx::query_scalar(
            "INSERT INTO leader_leases (name, owner, until) VALUES ($1, $2, $4)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
             WHERE leader_leases.owner = excluded.owner OR leader_leases.until < $3
             RETURNING owner",
        )
        .bind(name)
        .bind(owner)
        .bind(now)
        .bind(until)
        .fetch_optional(&self.pool)
        .await?;
        Ok(holder.as_deref() == Some(owner))
    }

    async fn resign(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM leader_leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn wakeups(&self) -> Result<Option<std::sync::Arc<tokio::sync::Notify>>> {
        // SQLite has no notifications between processes: the daemon polls.
        Ok(None)
    }
}

#[async_trait]
impl WalletStore for SqliteStore {
    async fn wallet(&self) -> Result<WalletState> {
        let (balance, reserved, low_since): (i64, i64, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT balance, reserved, low_since FROM wallet WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(WalletState {
            balance,
            reserved,
            low_since,
        })
    }

    async fn ledger(&self, limit: i64) -> Result<Vec<LedgerEntry>> {
        let rows = sqlx::query(
            "SELECT at, entry, points, message_id, actor, note, balance_after, reserved_after
             FROM wallet_ledger ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(LedgerEntry {
                    at: row.try_get("at")?,
                    entry: row.try_get("entry")?,
                    points: row.try_get("points")?,
                    message_id: row.try_get::<Option<i64>, _>("message_id")?.map(MessageId),
                    actor: row.try_get("actor")?,
                    note: row.try_get("note")?,
                    balance_after: row.try_get("balance_after")?,
                    reserved_after: row.try_get("reserved_after")?,
                })
            })
            .collect()
    }

    async fn ledger_totals(&self) -> Result<LedgerTotals> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT entry, coalesce(sum(points), 0) FROM wallet_ledger GROUP BY entry",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut totals = LedgerTotals::default();
        for (entry, points) in rows {
            match entry.as_str() {
                "top_up" => totals.top_ups = points,
                "reserve" => totals.reserves = points,
                "charge" => totals.charges = points,
                "refund" => totals.refunds = points,
                other => {
                    return Err(StoreError::Corrupt {
                        column: "wallet_ledger.entry",
                        value: other.to_owned(),
                    });
                }
            }
        }
        Ok(totals)
    }

    async fn top_up(
        &self,
        points: i64,
        actor: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<WalletState> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let after: (i64, i64) = sqlx::query_as(
            "UPDATE wallet SET balance = balance + $1 WHERE id = 1 RETURNING balance, reserved",
        )
        .bind(points)
        .fetch_one(&mut *tx)
        .await?;
        insert_ledger(
            &mut tx,
            now,
            "top_up",
            points,
            None,
            Some(actor),
            Some(note),
            after,
        )
        .await?;
        // What waited for credit goes on the next pass, not at its next re-check.
        sqlx::query(
            "UPDATE messages SET next_attempt_at = $1, updated_at = $1
             WHERE status = 'queued' AND reason = 'insufficient_sms_credit'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.wallet().await
    }

    async fn reserve(&self, id: MessageId, points: i64, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // One conditional update: the balance cannot go below zero, whoever else is
        // reserving at the same moment.
        let after: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE wallet SET balance = balance - $1, reserved = reserved + $1
             WHERE id = 1 AND balance >= $1
             RETURNING balance, reserved",
        )
        .bind(points)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(after) = after else {
            return Ok(false);
        };
        sqlx::query("UPDATE messages SET reserved_points = $2 WHERE id = $1")
            .bind(id.0)
            .bind(points)
            .execute(&mut *tx)
            .await?;
        insert_ledger(
            &mut tx,
            now,
            "reserve",
            points,
            Some(id.0),
            None,
            None,
            after,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn sms_segments_due(&self, before: DateTime<Utc>) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(sum(segments), 0) FROM messages
             WHERE channel = 'sms' AND status = 'queued' AND next_attempt_at < $1",
        )
        .bind(before)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn mark_low(&self, low: bool, now: DateTime<Utc>) -> Result<bool> {
        let done = if low {
            sqlx::query("UPDATE wallet SET low_since = $1 WHERE id = 1 AND low_since IS NULL")
                .bind(now)
                .execute(&self.pool)
                .await?
        } else {
            sqlx::query("UPDATE wallet SET low_since = NULL WHERE id = 1 AND low_since IS NOT NULL")
                .execute(&self.pool)
                .await?
        };
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn hold(&self) -> Result<Option<Hold>> {
        let row: (Option<DateTime<Utc>>, Option<String>, Option<String>) =
            sqlx::query_as("SELECT on_since, reason, set_by FROM hold_switch WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(match row {
            (Some(since), reason, by) => Some(Hold {
                since,
                reason: reason.unwrap_or_default(),
                by: by.unwrap_or_default(),
            }),
            _ => None,
        })
    }

    async fn set_hold(&self, hold: Option<&Hold>) -> Result<bool> {
        let done = match hold {
            Some(h) => {
                sqlx::query(
                    "UPDATE hold_switch SET on_since = $1, reason = $2, set_by = $3
                     WHERE id = 1 AND on_since IS NULL",
                )
                .bind(h.since)
                .bind(&h.reason)
                .bind(&h.by)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE hold_switch SET on_since = NULL, reason = NULL, set_by = NULL
                     WHERE id = 1 AND on_since IS NOT NULL",
                )
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn audit(&self, entry: &AuditEntry) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_audit(&mut conn, entry).await
    }

    async fn audit_log(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let rows: Vec<(DateTime<Utc>, String, String, String, String)> = sqlx::query_as(
            "SELECT at, actor, action, subject, details FROM audit_log
             WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2)
               AND ($3 IS NULL OR at >= $3)
             ORDER BY id DESC LIMIT coalesce($4, -1)",
        )
        .bind(&filter.actor)
        .bind(&filter.action)
        .bind(filter.since)
        .bind(filter.limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, actor, action, subject, details)| AuditEntry {
                at,
                actor,
                action,
                subject,
                details: serde_json::from_str(&details)
                    .unwrap_or(serde_json::Value::String(details)),
            })
            .collect())
    }
}

#[async_trait]
impl TemplateStore for SqliteStore {
    async fn save_template(&self, v: &Variant, actor: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "INSERT INTO templates
                (name, locale, channel, subject, body, updated_at, updated_by, html)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (name, locale, channel) DO UPDATE SET
                subject = excluded.subject, body = excluded.body, html = excluded.html,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(&v.name)
        .bind(&v.locale)
        .bind(v.channel.as_str())
        .bind(&v.subject)
        .bind(&v.body)
        .bind(now)
        .bind(actor)
        .bind(&v.html)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn templates(&self, name: Option<&str>) -> Result<Vec<Variant>> {
        let rows: Vec<(
            String,
            String,
            String,
            Option<String>,
            String,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT name, locale, channel, subject, body, html FROM templates
             WHERE ($1 IS NULL OR name = $1) ORDER BY name, channel, locale",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(name, locale, channel, subject, body, html)| {
                Ok(Variant {
                    name,
                    locale,
                    channel: parse_code("templates.channel", &channel)?,
                    subject,
                    body,
                    html,
                })
            })
            .collect()
    }
}

/// Writes an audit line inside the change's own transaction.
async fn insert_audit(tx: &mut SqliteConnection, entry: &AuditEntry) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, details)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.subject)
    .bind(entry.details.to_string())
    .execute(tx)
    .await?;
    Ok(())
}

#[async_trait]
impl OperatorStore for SqliteStore {
    async fn operator(&self, login: &str) -> Result<Option<Operator>> {
        let rows: Vec<(String, String, String, Option<String>)> =
            sqlx::query_as("SELECT login, name, role, teacher FROM operators WHERE login = $1")
                .bind(login)
                .fetch_all(&self.pool)
                .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let exceptions: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT login, permission, granted FROM operator_permissions WHERE login = $1",
        )
        .bind(login)
        .fetch_all(&self.pool)
        .await?;
        let roles = self.roles().await?;
        Ok(build_operators(rows, exceptions, &roles)?.pop())
    }

    async fn operators(&self) -> Result<Vec<Operator>> {
        let rows: Vec<(String, String, String, Option<String>)> =
            sqlx::query_as("SELECT login, name, role, teacher FROM operators ORDER BY login")
                .fetch_all(&self.pool)
                .await?;
        let exceptions: Vec<(String, String, bool)> =
            sqlx::query_as("SELECT login, permission, granted FROM operator_permissions")
                .fetch_all(&self.pool)
                .await?;
        let roles = self.roles().await?;
        build_operators(rows, exceptions, &roles)
    }

    async fn roles(&self) -> Result<Vec<RoleDef>> {
        let rows: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT name, description, builtin FROM roles ORDER BY builtin DESC, name",
        )
        .fetch_all(&self.pool)
        .await?;
        let permissions: Vec<(String, String)> =
            sqlx::query_as("SELECT role, permission FROM role_permissions ORDER BY permission")
                .fetch_all(&self.pool)
                .await?;
        build_roles(rows, permissions)
    }

    async fn add_operator(
        &self,
        new: &NewOperator,
        first: bool,
        audit: &AuditEntry,
    ) -> Result<AddOperator> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM operators")
            .fetch_one(&mut *tx)
            .await?;
        if first && count > 0 {
            return Ok(AddOperator::NotFirst);
        }
        let role: Option<(String,)> = sqlx::query_as("SELECT name FROM roles WHERE name = $1")
            .bind(&new.role)
            .fetch_optional(&mut *tx)
            .await?;
        if role.is_none() {
            return Ok(AddOperator::UnknownRole);
        }
        let done = sqlx::query(
            "INSERT INTO operators (login, name, role, teacher, created_at, created_by, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $5)
             ON CONFLICT (login) DO NOTHING",
        )
        .bind(&new.login)
        .bind(&new.name)
        .bind(&new.role)
        .bind(&new.teacher)
        .bind(new.at)
        .bind(&new.by)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(AddOperator::LoginTaken);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(AddOperator::Added)
    }

    async fn set_role(&self, login: &str, role: &str, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "UPDATE operators SET role = $2, updated_at = $3
             WHERE login = $1 AND EXISTS (SELECT 1 FROM roles WHERE name = $2)",
        )
        .bind(login)
        .bind(role)
        .bind(audit.at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_permission(
        &self,
        login: &str,
        permission: Permission,
        granted: Option<bool>,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query("UPDATE operators SET updated_at = $2 WHERE login = $1")
            .bind(login)
            .bind(audit.at)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        match granted {
            Some(yes) => {
                sqlx::query(
                    "INSERT INTO operator_permissions (login, permission, granted)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (login, permission) DO UPDATE SET granted = excluded.granted",
                )
                .bind(login)
                .bind(permission.as_str())
                .bind(yes)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "DELETE FROM operator_permissions WHERE login = $1 AND permission = $2",
                )
                .bind(login)
                .bind(permission.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn save_role(&self, role: &RoleDef, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let builtin: Option<(bool,)> = sqlx::query_as("SELECT builtin FROM roles WHERE name = $1")
            .bind(&role.name)
            .fetch_optional(&mut *tx)
            .await?;
        if builtin.is_some_and(|(b,)| b) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO roles (name, description, builtin) VALUES ($1, $2, FALSE)
             ON CONFLICT (name) DO UPDATE SET description = excluded.description",
        )
        .bind(&role.name)
        .bind(&role.description)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM role_permissions WHERE role = $1")
            .bind(&role.name)
            .execute(&mut *tx)
            .await?;
        for p in &role.permissions {
            sqlx::query("INSERT INTO role_permissions (role, permission) VALUES ($1, $2)")
                .bind(&role.name)
                .bind(p.as_str())
                .execute(&mut *tx)
                .await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl RuleStore for SqliteStore {
    async fn unpaid_instalments_due(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DueInstalment>> {
        let rows: Vec<(i64, String, String, String, NaiveDate, i64)> = sqlx::query_as(
            "SELECT i.id, i.external_id, coalesce(c.number, c.external_id), r.external_id,
                    i.due_date, i.amount_cents
             FROM instalments i
             JOIN contracts c ON c.id = i.contract_id
             JOIN recipients r ON r.id = c.student_id
             WHERE i.paid = 0 AND i.due_date >= $1 AND i.due_date <= $2
             ORDER BY i.due_date, i.id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, external_id, contract, student, due_date, amount_cents)| DueInstalment {
                    id,
                    external_id,
                    contract,
                    student,
                    due_date,
                    amount_cents,
                },
            )
            .collect())
    }

    async fn contracts_in_arrears(&self) -> Result<Vec<ArrearsContract>> {
        let rows: Vec<(i64, String, String, String, i64, NaiveDate)> = sqlx::query_as(
            "SELECT c.id, c.external_id, coalesce(c.number, c.external_id), r.external_id,
                    c.balance_cents, c.arrears_since
             FROM contracts c JOIN recipients r ON r.id = c.student_id
             WHERE c.balance_cents > 0 AND c.arrears_since IS NOT NULL
             ORDER BY c.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, external_id, number, student, balance_cents, arrears_since)| {
                    ArrearsContract {
                        id,
                        external_id,
                        number,
                        student,
                        balance_cents,
                        arrears_since,
                    }
                },
            )
            .collect())
    }

    async fn birth_dates(&self) -> Result<Vec<(String, NaiveDate)>> {
        Ok(sqlx::query_as(
            "SELECT external_id, birth_date FROM recipients
             WHERE role = 'student' AND birth_date IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn existing_occurrences(&self, keys: &[String]) -> Result<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_scalar(
            "SELECT key FROM occurrences WHERE key IN (SELECT value FROM json_each($1))",
        )
        .bind(text_list(keys))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn create_occurrence(
        &self,
        occurrence: &NewOccurrence,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The key decides: a second run, a restart or another instance finds it and
        // writes nothing.
        let fresh = sqlx::query(
            "INSERT INTO occurrences (key, rule, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&occurrence.key)
        .bind(&occurrence.rule)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(false);
        }
        let b = &occurrence.batch;
        // The day's batch, locked: an approval cannot slip in between the check below
        // and the messages joining it.
        let _: Option<i64> = sqlx::query_scalar("SELECT id FROM batches WHERE periodic_key = $1")
            .bind(&occurrence.periodic_key)
            .fetch_optional(&mut *tx)
            .await?;
        if b.status == BatchStatus::AwaitingApproval {
            // The day's batch was decided already: what comes now was not seen by
            // whoever decided, so it starts a batch of its own (the old one keeps its
            // key with its id appended).
            sqlx::query(
                "UPDATE batches SET periodic_key = periodic_key || '/' || id
                 WHERE periodic_key = $1 AND status <> 'awaiting_approval'",
            )
            .bind(&occurrence.periodic_key)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO batches
                (kind, channel, status, audience, subject, body, created_by, created_at,
                 decided_by, decided_at, decision_note, channels, html, periodic_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8,
                     CASE WHEN $3 = 'approved' THEN $7 END,
                     CASE WHEN $3 = 'approved' THEN $8 END,
                     CASE WHEN $3 = 'approved' THEN 'the rule needs no approval' END,
                     $9, $10, $11)
             ON CONFLICT (periodic_key) WHERE periodic_key IS NOT NULL DO NOTHING",
        )
        .bind(b.kind.as_str())
        .bind(b.channel.as_str())
        .bind(b.status.as_str())
        .bind(&b.audience)
        .bind(&b.subject)
        .bind(&b.body)
        .bind(&b.created_by)
        .bind(now)
        .bind(b.channels.as_str())
        .bind(&b.html)
        .bind(&occurrence.periodic_key)
        .execute(&mut *tx)
        .await?;
        let batch: i64 = sqlx::query_scalar("SELECT id FROM batches WHERE periodic_key = $1")
            .bind(&occurrence.periodic_key)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("UPDATE occurrences SET batch_id = $2 WHERE key = $1")
            .bind(&occurrence.key)
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        for m in &occurrence.messages {
            insert_message(&mut tx, Some(batch), m, &b.created_by, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn rule_run(&self, rule: &str) -> Result<Option<RuleRun>> {
        let row: Option<(DateTime<Utc>, NaiveDate)> =
            sqlx::query_as("SELECT last_run_at, covered_through FROM rule_runs WHERE rule = $1")
                .bind(rule)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(last_run_at, covered_through)| RuleRun {
            last_run_at,
            covered_through,
        }))
    }

    async fn record_rule_run(&self, rule: &str, run: &RuleRun) -> Result<()> {
        sqlx::query(
            "INSERT INTO rule_runs (rule, last_run_at, covered_through) VALUES ($1, $2, $3)
             ON CONFLICT (rule) DO UPDATE SET
                 last_run_at = max(rule_runs.last_run_at, excluded.last_run_at),
                 covered_through = CASE WHEN excluded.last_run_at >= rule_runs.last_run_at
                     THEN excluded.covered_through ELSE rule_runs.covered_through END",
        )
        .bind(rule)
        .bind(run.last_run_at)
        .bind(run.covered_through)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn still_relevant(&self, relevance: &str) -> Result<bool> {
        let Some((what, id)) = relevance
            .split_once(':')
            .and_then(|(w, id)| Some((w, id.parse::<i64>().ok()?)))
        else {
            return Ok(true);
        };
        let relevant: Option<bool> = match what {
            "instalment" => {
                sqlx::query_scalar("SELECT NOT paid FROM instalments WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
            }
            "arrears" => {
                sqlx::query_scalar(
                    "SELECT coalesce(balance_cents, 0) > 0 AND arrears_since IS NOT NULL
                     FROM contracts WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
            }
            _ => Some(true),
        };
        // Gone from the directory: nothing left to remind of.
        Ok(relevant.unwrap_or(false))
    }

    async fn expire_overdue(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO message_events (message_id, at, status, reason, actor, note)
             SELECT id, $1, 'expired', 'too_late', NULL, 'its day is over'
             FROM messages
             WHERE status IN ('awaiting_approval', 'queued') AND expires_at < $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(
            "UPDATE messages SET status = 'expired', reason = 'too_late',
                    next_attempt_at = NULL, updated_at = $1
             WHERE status IN ('awaiting_approval', 'queued') AND expires_at < $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}

#[async_trait]
impl DiagnosisStore for SqliteStore {
    async fn find_recipients(
        &self,
        query: &str,
        phone: Option<&str>,
    ) -> Result<Vec<EligibilityFacts>> {
        let id: Option<i64> = query.trim().parse().ok();
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM recipients
             WHERE external_id = $1 OR lower(email) = lower($1) OR phone_e164 = $2
                OR id = $3
             ORDER BY id",
        )
        .bind(query.trim())
        .bind(phone)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.recipients(&RecipientFilter {
            ids: Some(ids.into_iter().map(RecipientId).collect()),
            ..RecipientFilter::default()
        })
        .await
    }

    async fn events(&self, id: MessageId) -> Result<Vec<MessageEvent>> {
        let rows: Vec<(
            DateTime<Utc>,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT at, status, reason, actor, note FROM message_events
             WHERE message_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, status, reason, actor, note)| MessageEvent {
                at,
                status,
                reason,
                actor,
                note,
            })
            .collect())
    }

    async fn message_recipient(&self, id: MessageId) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT recipient_external_id FROM messages WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn channel_health(&self, channel: Channel) -> Result<ChannelHealth> {
        let last_sent: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT max(a.finished_at) FROM attempts a JOIN messages m ON m.id = a.message_id
             WHERE m.channel = $1 AND a.outcome = 'sent'",
        )
        .bind(channel.as_str())
        .fetch_one(&self.pool)
        .await?;
        // Failures after the last success: the streak that is going on now.
        let after = last_sent.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        let (failures, failing_since): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(a.finished_at) FROM attempts a
             JOIN messages m ON m.id = a.message_id
             WHERE m.channel = $1 AND a.outcome IN ('transient', 'unknown')
               AND a.finished_at > $2",
        )
        .bind(channel.as_str())
        .bind(after)
        .fetch_one(&self.pool)
        .await?;
        let last_failure: Option<String> = sqlx::query_scalar(
            "SELECT a.detail FROM attempts a JOIN messages m ON m.id = a.message_id
             WHERE m.channel = $1 AND a.outcome IN ('transient', 'unknown')
               AND a.finished_at > $2
             ORDER BY a.finished_at DESC, a.id DESC LIMIT 1",
        )
        .bind(channel.as_str())
        .bind(after)
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        let (waiting_retry, next_retry): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(next_attempt_at) FROM messages
             WHERE channel = $1 AND status = 'queued' AND reason = 'retry_scheduled'",
        )
        .bind(channel.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(ChannelHealth {
            last_sent,
            failures,
            failing_since,
            last_failure,
            waiting_retry,
            next_retry,
        })
    }
}
