//! The directory's SQL: import (one record at a time, each whole or not at all), recipients with
//! what eligibility needs, audiences, and the calendar.

use super::*;

/// Records applied per write transaction: large enough that an import of thousands of
/// rows is not a commit per row, small enough that readers never wait long.
const APPLY_CHUNK: usize = 500;

/// A recipient reference that must exist and have one of `roles`: its id.
async fn require_recipient(
    conn: &mut DbConn,
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
    conn: &mut DbConn,
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
async fn apply_one(conn: &mut DbConn, record: &DirectoryRecord, now: DateTime<Utc>) -> Applying {
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

async fn apply_instalment(conn: &mut DbConn, i: &InstalmentRecord, now: DateTime<Utc>) -> Applying {
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

async fn apply_recipient(conn: &mut DbConn, r: &RecipientRecord, now: DateTime<Utc>) -> Applying {
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
             email_failing_since = CASE WHEN email IS NOT DISTINCT FROM $5 THEN email_failing_since END,
             email_failure = CASE WHEN email IS NOT DISTINCT FROM $5 THEN email_failure END,
             phone_failing_since = CASE WHEN phone_e164 IS NOT DISTINCT FROM $7 THEN phone_failing_since END,
             phone_failure = CASE WHEN phone_e164 IS NOT DISTINCT FROM $7 THEN phone_failure END
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
    conn: &mut DbConn,
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

async fn apply_contract(conn: &mut DbConn, c: &ContractRecord, now: DateTime<Utc>) -> Applying {
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

/// Contracts read for a listing of recipients: `consents[i]` belongs to the student
/// `students[i]`, and both lists are in student order, so a student's contracts are
/// one run found by binary search.
#[derive(Default)]
struct Contracts {
    students: Vec<i64>,
    consents: Vec<ContractConsent>,
}

impl Contracts {
    /// The contracts of `students`, in that order (each student's by contract id), in
    /// a list of exactly their number.
    fn covering(&self, students: &[i64]) -> Vec<ContractConsent> {
        let run = |s: &i64| {
            let from = self.students.partition_point(|x| x < s);
            let to = self.students.partition_point(|x| x <= s);
            &self.consents[from..to]
        };
        let mut covering = Vec::with_capacity(students.iter().map(|s| run(s).len()).sum());
        for s in students {
            covering.extend_from_slice(run(s));
        }
        covering
    }
}

#[async_trait]
impl DirectoryStore for Backend {
    async fn apply(&self, records: &[DirectoryRecord], audit: &AuditEntry) -> Result<Vec<Outcome>> {
        let now = audit.at;
        let mut outcomes = Vec::with_capacity(records.len());
        for chunk in records.chunks(APPLY_CHUNK) {
            let mut tx = self.begin_write().await?;
            let mut counts = [0u64; 4];
            for record in chunk {
                let outcome = match apply_one(&mut tx, record, now).await {
                    Ok(applied) => Ok(applied),
                    Err(ApplyError::Refused(refused)) => Err(refused),
                    // Dropping the transaction rolls the chunk back.
                    Err(ApplyError::Store(e)) => return Err(e),
                };
                counts[match outcome {
                    Ok(Applied::Created) => 0,
                    Ok(Applied::Updated) => 1,
                    Ok(Applied::Unchanged) => 2,
                    Err(_) => 3,
                }] += 1;
                outcomes.push(outcome);
            }
            // A chunk that changed something commits with its own audit line.
            if counts[0] + counts[1] > 0 {
                let [created, updated, unchanged, refused] = counts;
                let line = audit
                    .with_detail("records", chunk.len())
                    .with_detail("created", created)
                    .with_detail("updated", updated)
                    .with_detail("unchanged", unchanged)
                    .with_detail("refused", refused);
                insert_audit(&mut tx, &line).await?;
            }
            tx.commit().await?;
        }
        Ok(outcomes)
    }

    async fn recipients(&self, filter: &RecipientFilter) -> Result<Vec<EligibilityFacts>> {
        // Only the conditions a filter sets are in the statement: `($1 IS NULL OR …)`
        // hides the indexes from the planner, and a look-up by id would scan every
        // recipient (it is on the path of every message sent).
        let mut q = sqlx::QueryBuilder::<Db>::new(
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
            q.push(" AND r.id")
                .push(LIST_OPEN)
                .push_bind(id_list(ids.iter().map(|i| i.0)))
                .push(LIST_CLOSE);
        }
        q.push(
            " ORDER BY CASE r.role WHEN 'student' THEN 0 WHEN 'guardian' THEN 1
                                  WHEN 'teacher' THEN 2 ELSE 3 END,
                      r.name, r.external_id",
        );
        // Rows are read as they come rather than all at once: a whole school's rows,
        // each value copied out of the database, take several times the memory of
        // the recipients made from them.
        let mut recipients = Vec::new();
        let mut rows = q.build().fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
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
        // A stream holds its connection until it is dropped.
        drop(rows);

        // Guardians' consent comes from their students' contracts.
        let guardians = id_list(
            recipients
                .iter()
                .filter(|r| r.role == Role::Guardian)
                .map(|r| r.id.0),
        );
        let mut wards: Vec<(i64, i64)> = Vec::new();
        let mut rows = sqlx::query_as(concat!(
            "SELECT guardian_id, student_id FROM guardianships
             WHERE guardian_id",
            in_list!("$1")
        ))
        .bind(guardians)
        .fetch(&self.pool);
        while let Some(pair) = rows.try_next().await? {
            wards.push(pair);
        }
        drop(rows);
        let students = id_list(
            recipients
                .iter()
                .filter(|r| r.role == Role::Student)
                .map(|r| r.id.0)
                .chain(wards.iter().map(|(_, s)| *s)),
        );
        // Each student's contracts, side by side in one list in student order (a
        // map of small lists would spend more on the lists than on the contracts).
        let mut contracts = Contracts::default();
        let mut rows = sqlx::query(concat!(
            "SELECT c.student_id, s.external_id AS student, c.external_id, c.number, c.status,
                    c.consent_email, c.consent_email_at, c.consent_sms, c.consent_sms_at,
                    c.consent_source
             FROM contracts c JOIN recipients s ON s.id = c.student_id
             WHERE c.student_id",
            in_list!("$1"),
            "
             ORDER BY c.student_id, c.external_id"
        ))
        .bind(students)
        .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            contracts.students.push(row.try_get("student_id")?);
            contracts.consents.push(ContractConsent {
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
        drop(rows);
        let mut students_of: HashMap<i64, Vec<i64>> = HashMap::new();
        for (guardian, student) in wards {
            students_of.entry(guardian).or_default().push(student);
        }
        Ok(recipients
            .into_iter()
            .map(|recipient| {
                let own = [recipient.id.0];
                let students: &[i64] = match recipient.role {
                    Role::Guardian => students_of.get(&recipient.id.0).map_or(&[], Vec::as_slice),
                    _ => &own,
                };
                EligibilityFacts {
                    contracts: contracts.covering(students),
                    recipient,
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

    async fn names(&self, external_ids: &[&str]) -> Result<HashMap<String, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(concat!(
            "SELECT external_id, name FROM recipients WHERE external_id",
            in_list!("$1")
        ))
        .bind(text_list(external_ids))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn audience(&self, audience: &Audience, reach: Reach) -> Result<Vec<EligibilityFacts>> {
        // Whom the audience names (`base`), the students among them, and the people
        // reach makes of those, in one statement: a whole school's ids stay in the
        // database instead of crossing to Herald and back for each step.
        let mut q = sqlx::QueryBuilder::<Db>::new("WITH base(id) AS (");
        let members = "SELECT m.recipient_id FROM group_members m
                       JOIN groups g ON g.id = m.group_id
                       JOIN recipients r ON r.id = m.recipient_id
                       WHERE r.role = ";
        match audience {
            Audience::Recipient(external_id) => {
                q.push("SELECT id FROM recipients WHERE external_id = ")
                    .push_bind(external_id.clone());
            }
            Audience::List(ids) => {
                q.push("SELECT id FROM recipients WHERE external_id")
                    .push(LIST_OPEN)
                    .push_bind(text_list(ids))
                    .push(LIST_CLOSE);
            }
            Audience::Group(group) => {
                q.push(members)
                    .push("'student' AND g.external_id = ")
                    .push_bind(group.clone());
            }
            Audience::TeachersOf(group) => {
                q.push(members)
                    .push("'teacher' AND g.external_id = ")
                    .push_bind(group.clone());
            }
            Audience::Groups(groups) => {
                q.push(members)
                    .push("'student' AND g.external_id")
                    .push(LIST_OPEN)
                    .push_bind(text_list(groups))
                    .push(LIST_CLOSE);
            }
            Audience::AllGroups => {
                q.push(
                    "SELECT m.recipient_id FROM group_members m
                     JOIN recipients r ON r.id = m.recipient_id WHERE r.role = 'student'",
                );
            }
            Audience::ActiveContracts => {
                q.push("SELECT student_id FROM contracts WHERE status = 'active'");
            }
        }
        // Reach applies to the students among them; anyone else is written to as is.
        q.push(
            "), students(id) AS (
                 SELECT id FROM recipients WHERE role = 'student' AND id IN (SELECT id FROM base))
             SELECT DISTINCT id FROM base",
        );
        if reach == Reach::Guardians {
            q.push(" WHERE id NOT IN (SELECT id FROM students)");
        }
        if reach != Reach::Students {
            q.push(
                " UNION SELECT guardian_id FROM guardianships
                  WHERE student_id IN (SELECT id FROM students)",
            );
        }
        let ids: Vec<i64> = q.build_query_scalar().fetch_all(&self.pool).await?;
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
impl CalendarStore for Backend {
    async fn add_holiday(&self, holiday: &Holiday, audit: &AuditEntry) -> Result<Holiday> {
        let mut tx = self.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO holidays (name, first_day, last_day, created_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(&holiday.name)
        .bind(holiday.first_day)
        .bind(holiday.last_day)
        .bind(audit.at)
        .fetch_one(&mut *tx)
        .await?;
        insert_audit(&mut tx, &audit.for_id(id)).await?;
        tx.commit().await?;
        Ok(Holiday {
            id: Some(id),
            ..holiday.clone()
        })
    }

    async fn remove_holiday(&self, id: i64, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM holidays WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        commit_with_audit(tx, done.rows_affected(), audit).await
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

    async fn queued_between(
        &self,
        from: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM messages
             WHERE status = 'queued' AND ($1 IS NULL OR next_attempt_at >= $1)
               AND next_attempt_at < $2",
        )
        .bind(from)
        .bind(until)
        .fetch_one(&self.pool)
        .await?)
    }
}
