//! The directory's SQL: import (a chunk of records per transaction, each record whole
//! or not at all: what a chunk refers to and what exists read in one query per table,
//! the changes written in multi-row statements), recipients with what eligibility
//! needs, audiences, and the calendar.

use std::collections::HashSet;

use sqlx::FromRow;
use sqlx::query_builder::Separated;

use super::*;

/// Records applied per write transaction: large enough that an import of thousands of
/// rows is not a commit per row, small enough that readers never wait long.
const APPLY_CHUNK: usize = 500;

/// The most values one statement binds: SQLite's limit (`SQLITE_MAX_VARIABLE_NUMBER`,
/// 32,766); PostgreSQL's (65,535) is higher. A multi-row statement takes as many rows
/// as fit.
const MAX_BINDS: usize = 32_766;

/// Multi-row `INSERT INTO table (columns) VALUES (…), (…) tail` statements writing
/// `rows`, as many to a statement as [`MAX_BINDS`] allows; `bind` pushes one row's
/// values in the order of `columns`. None when there are no rows.
fn insert_statements<T>(
    table: &str,
    columns: &[&str],
    tail: &str,
    rows: &[T],
    mut bind: impl FnMut(Separated<'_, Db, &'static str>, &T),
) -> Vec<sqlx::QueryBuilder<Db>> {
    rows.chunks(MAX_BINDS / columns.len())
        .map(|slice| {
            let mut q = sqlx::QueryBuilder::<Db>::new(format!(
                "INSERT INTO {table} ({}) ",
                columns.join(", ")
            ));
            q.push_values(slice, &mut bind).push(" ").push(tail);
            q
        })
        .collect()
}

/// The rows a run of records names by key, as stored (read in one query), then as
/// each record leaves them: every record is judged against what the records before it
/// left, as if applied one at a time, and a key given twice is written once, with its
/// last values.
struct Judged<V> {
    rows: HashMap<String, (V, bool)>,
    changed: Vec<String>,
}

impl<V: PartialEq> Judged<V> {
    fn new(stored: impl IntoIterator<Item = (String, V)>) -> Self {
        Judged {
            rows: stored.into_iter().map(|(k, v)| (k, (v, false))).collect(),
            changed: Vec::new(),
        }
    }

    /// The rows `sql` finds by the platform's ids in `$1` (a list), as they stand:
    /// `external_id` is the key, the other columns make the row.
    async fn read<'a>(
        conn: &mut DbConn,
        sql: &'static str,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> Result<Self>
    where
        V: for<'r> FromRow<'r, <Db as sqlx::Database>::Row>,
    {
        let rows = sqlx::query(sql)
            .bind(text_list(keys))
            .fetch_all(conn)
            .await?;
        let mut stored = Vec::with_capacity(rows.len());
        for row in rows {
            stored.push((row.try_get("external_id")?, V::from_row(&row)?));
        }
        Ok(Judged::new(stored))
    }

    /// What the record with `key` does, `want` giving the row it asks for from the
    /// row as it stands (if any).
    fn judge(&mut self, key: &str, want: impl FnOnce(Option<&V>) -> V) -> Applied {
        let old = self.rows.get(key);
        let new = want(old.map(|(v, _)| v));
        let applied = match old {
            None => Applied::Created,
            Some((v, _)) if *v == new => return Applied::Unchanged,
            Some(_) => Applied::Updated,
        };
        let was_changed = self
            .rows
            .insert(key.to_owned(), (new, true))
            .is_some_and(|(_, changed)| changed);
        if !was_changed {
            self.changed.push(key.to_owned());
        }
        applied
    }

    /// The rows to write, by key, in the order the records first changed them.
    fn changed(&self) -> Vec<(&str, &V)> {
        self.changed
            .iter()
            .map(|k| (k.as_str(), &self.rows[k].0))
            .collect()
    }
}

/// Recipients by the platform's id, with Herald's id and their role: the people a
/// run of records refers to, read in one query.
struct People(HashMap<String, (i64, Role)>);

impl People {
    async fn read<'a>(conn: &mut DbConn, ids: impl IntoIterator<Item = &'a str>) -> Result<People> {
        let rows: Vec<(String, i64, String)> = json_rows(
            sqlx::query_scalar(concat!(
                json_rows!("external_id, id, role"),
                " FROM recipients WHERE external_id",
                in_list!("$1")
            ))
            .bind(text_list(ids))
            .fetch_one(conn)
            .await?,
        )?;
        let mut people = HashMap::with_capacity(rows.len());
        for (external_id, id, role) in rows {
            people.insert(external_id, (id, parse_role(&role)?));
        }
        Ok(People(people))
    }

    /// A reference that must exist and have one of `roles`: its id.
    fn require(
        &self,
        field: &'static str,
        external_id: &str,
        roles: &[Role],
        expected: &'static str,
    ) -> std::result::Result<i64, Refused> {
        let Some(&(id, role)) = self.0.get(external_id) else {
            return Err(Refused::Unknown {
                field,
                value: external_id.to_owned(),
                expected,
            });
        };
        if !roles.contains(&role) {
            return Err(Refused::WrongRole {
                field,
                value: external_id.to_owned(),
                found: role,
                expected,
            });
        }
        Ok(id)
    }
}

/// The rows of a `json_rows!` query, from the one JSON array it gives.
fn json_rows<T: serde::de::DeserializeOwned>(json: String) -> Result<Vec<T>> {
    serde_json::from_str(&json).map_err(|e| StoreError::Database(sqlx::Error::Decode(e.into())))
}

/// The people with these ids (given once each) with the contracts that speak for
/// each, in no particular order.
async fn facts_of(reads: &sqlx::Pool<Db>, ids: &[i64]) -> Result<Vec<EligibilityFacts>> {
    // Each person's facts are made as their row is read, in a list sized up
    // front: a whole school copied from one list into another, or into a list
    // grown by doubling, was twice the memory of the people read.
    let mut people = Vec::with_capacity(ids.len());
    let sql = concat!(
        json_rows!(
            "id, external_id, role, name, locale, email, phone,
             CASE WHEN sms_enabled THEN 1 ELSE 0 END,
             email_failing_since, email_failure, phone_failing_since, phone_failure"
        ),
        " FROM recipients WHERE id",
        in_list!("$1")
    );
    json_chunks(sql, ids, reads, |row: ListedRecipient| {
        people.push(EligibilityFacts {
            recipient: row.into_recipient()?,
            contracts: Vec::new(),
        });
        Ok(())
    })
    .await?;

    // Guardians' consent comes from their students' contracts.
    let guardians: Vec<i64> = people
        .iter()
        .filter(|f| f.recipient.role == Role::Guardian)
        .map(|f| f.recipient.id.0)
        .collect();
    let mut wards: Vec<(i64, i64)> = Vec::with_capacity(guardians.len());
    let sql = concat!(
        json_rows!("guardian_id, student_id"),
        " FROM guardianships WHERE guardian_id",
        in_list!("$1")
    );
    json_chunks(sql, &guardians, reads, |pair| {
        wards.push(pair);
        Ok(())
    })
    .await?;
    wards.sort_unstable();
    let mut students: Vec<i64> = people
        .iter()
        .filter(|f| f.recipient.role == Role::Student)
        .map(|f| f.recipient.id.0)
        .chain(wards.iter().map(|(_, s)| *s))
        .collect();
    // Once each, or a student in two chunks would bring their contracts twice.
    students.sort_unstable();
    students.dedup();
    // Each student's contracts, side by side in one list in student order (a
    // map of small lists would spend more on the lists than on the contracts).
    let sql = concat!(
        json_rows!(
            "c.student_id, s.external_id, c.external_id, c.number, c.status,
             CASE WHEN c.consent_email THEN 1 ELSE 0 END, c.consent_email_at,
             CASE WHEN c.consent_sms THEN 1 ELSE 0 END, c.consent_sms_at, c.consent_source"
        ),
        " FROM contracts c JOIN recipients s ON s.id = c.student_id WHERE c.student_id",
        in_list!("$1")
    );
    let mut contracts = Contracts(Vec::with_capacity(students.len()));
    json_chunks(sql, &students, reads, |row: ListedContract| {
        contracts.0.push((row.0, row.into_consent()?));
        Ok(())
    })
    .await?;
    contracts
        .0
        .sort_unstable_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.contract.cmp(&y.contract)));
    // The wards are in guardian order, so a guardian's students are one run.
    let mut theirs = Vec::new();
    for f in &mut people {
        theirs.clear();
        let id = f.recipient.id.0;
        if f.recipient.role == Role::Guardian {
            let from = wards.partition_point(|(g, _)| *g < id);
            let to = wards.partition_point(|(g, _)| *g <= id);
            theirs.extend(wards[from..to].iter().map(|(_, s)| *s));
        } else {
            theirs.push(id);
        }
        f.contracts = contracts.covering(&theirs);
    }
    Ok(people)
}

/// Ids per statement of `json_chunks`: a few hundred kilobytes of JSON each way.
const IDS_PER_CHUNK: usize = 5_000;

/// Each row that `sql` (a `json_rows!` query of rows whose id is in the list `$1`)
/// finds for `ids`, handed to `each`, the ids a chunk at a time: one value per chunk
/// is neither a hand-over between threads per row nor a whole school's rows in one
/// string. The rows come in no particular order.
async fn json_chunks<T: serde::de::DeserializeOwned>(
    sql: &'static str,
    ids: &[i64],
    reads: &sqlx::Pool<Db>,
    mut each: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    for chunk in ids.chunks(IDS_PER_CHUNK) {
        let rows: Vec<T> = json_rows(
            sqlx::query_scalar(sql)
                .bind(id_list(chunk.iter().copied()))
                .fetch_one(reads)
                .await?,
        )?;
        for row in rows {
            each(row)?;
        }
    }
    Ok(())
}

/// Herald's ids of the rows `sql` (a `json_rows!` query of `external_id, id`) finds by
/// the platform's ids (`$1`, a list): a run's references to groups or contracts, read
/// in one query.
async fn ids_named<'a>(
    conn: &mut DbConn,
    sql: &'static str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = json_rows(
        sqlx::query_scalar(sql)
            .bind(text_list(ids))
            .fetch_one(conn)
            .await?,
    )?;
    Ok(rows.into_iter().collect())
}

/// A reference to a group or contract that must exist: its id.
fn require_known(
    ids: &HashMap<String, i64>,
    field: &'static str,
    external_id: &str,
    expected: &'static str,
) -> std::result::Result<i64, Refused> {
    ids.get(external_id)
        .copied()
        .ok_or_else(|| Refused::Unknown {
            field,
            value: external_id.to_owned(),
            expected,
        })
}

/// Applies one chunk of records in order. A run of records of one kind is applied
/// together, and a later run sees what an earlier one wrote. Every record's
/// references are checked before anything is written, so a refused record has written
/// nothing.
async fn apply_chunk(
    conn: &mut DbConn,
    chunk: &[DirectoryRecord],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(chunk.len());
    for run in chunk.chunk_by(|a, b| std::mem::discriminant(a) == std::mem::discriminant(b)) {
        // Every record of a run is of the kind of its first.
        let applied = match &run[0] {
            DirectoryRecord::Recipient(_) => {
                let records = of_kind(run, |r| match r {
                    DirectoryRecord::Recipient(r) => Some(r),
                    _ => None,
                });
                apply_recipients(conn, &records, now).await?
            }
            DirectoryRecord::Group { .. } => {
                let groups = of_kind(run, |r| match r {
                    DirectoryRecord::Group { external_id, name } => Some((external_id, name)),
                    _ => None,
                });
                apply_groups(conn, &groups, now).await?
            }
            DirectoryRecord::Guardianship { .. } => {
                let links = of_kind(run, |r| match r {
                    DirectoryRecord::Guardianship { guardian, student } => {
                        Some((guardian.as_str(), student.as_str()))
                    }
                    _ => None,
                });
                apply_guardianships(conn, &links, now).await?
            }
            DirectoryRecord::Membership { .. } => {
                let links = of_kind(run, |r| match r {
                    DirectoryRecord::Membership { group, member } => {
                        Some((group.as_str(), member.as_str()))
                    }
                    _ => None,
                });
                apply_memberships(conn, &links, now).await?
            }
            DirectoryRecord::Contract(_) => {
                let records = of_kind(run, |r| match r {
                    DirectoryRecord::Contract(c) => Some(c),
                    _ => None,
                });
                apply_contracts(conn, &records, now).await?
            }
            DirectoryRecord::Instalment(_) => {
                let records = of_kind(run, |r| match r {
                    DirectoryRecord::Instalment(i) => Some(i),
                    _ => None,
                });
                apply_instalments(conn, &records, now).await?
            }
        };
        outcomes.extend(applied);
    }
    Ok(outcomes)
}

/// The records of a run, which are all of one kind, as that kind.
fn of_kind<'a, T>(
    run: &'a [DirectoryRecord],
    pick: impl Fn(&'a DirectoryRecord) -> Option<T>,
) -> Vec<T> {
    run.iter().filter_map(pick).collect()
}

/// A recipient as stored, compared whole to what a record asks for.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct RecipientRow {
    role: String,
    name: String,
    locale: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    phone_e164: Option<String>,
    sms_enabled: bool,
    birth_date: Option<NaiveDate>,
}

async fn apply_recipients(
    conn: &mut DbConn,
    records: &[&RecipientRecord],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let mut judged: Judged<RecipientRow> = Judged::read(
        conn,
        concat!(
            "SELECT external_id, role, name, locale, email, phone, phone_e164, sms_enabled,
                    birth_date
             FROM recipients WHERE external_id",
            in_list!("$1")
        ),
        records.iter().map(|r| &r.external_id),
    )
    .await?;
    let outcomes: Vec<Outcome> = records
        .iter()
        .map(|r| {
            Ok(judged.judge(&r.external_id, |_| RecipientRow {
                role: r.role.as_str().to_owned(),
                name: r.name.clone(),
                locale: r.locale.clone(),
                email: r.email.clone(),
                phone: r.phone.clone(),
                phone_e164: r.phone_e164.clone(),
                sms_enabled: r.sms_enabled,
                birth_date: r.birth_date,
            }))
        })
        .collect();
    for mut q in insert_statements(
        "recipients",
        &[
            "external_id",
            "role",
            "name",
            "locale",
            "email",
            "phone",
            "phone_e164",
            "sms_enabled",
            "created_at",
            "updated_at",
            "birth_date",
        ],
        "ON CONFLICT (external_id) DO UPDATE
         SET role = excluded.role, name = excluded.name, locale = excluded.locale,
             email = excluded.email, phone = excluded.phone, phone_e164 = excluded.phone_e164,
             sms_enabled = excluded.sms_enabled, updated_at = excluded.updated_at,
             birth_date = excluded.birth_date,
             -- A new address is a fresh start: the old one's refusal no longer applies.
             email_failing_since = CASE WHEN recipients.email IS NOT DISTINCT FROM excluded.email
                                        THEN recipients.email_failing_since END,
             email_failure = CASE WHEN recipients.email IS NOT DISTINCT FROM excluded.email
                                  THEN recipients.email_failure END,
             phone_failing_since = CASE WHEN recipients.phone_e164 IS NOT DISTINCT FROM excluded.phone_e164
                                        THEN recipients.phone_failing_since END,
             phone_failure = CASE WHEN recipients.phone_e164 IS NOT DISTINCT FROM excluded.phone_e164
                                  THEN recipients.phone_failure END",
        &judged.changed(),
        |mut row, (external_id, r)| {
            row.push_bind(external_id.to_owned())
                .push_bind(r.role.clone())
                .push_bind(r.name.clone())
                .push_bind(r.locale.clone())
                .push_bind(r.email.clone())
                .push_bind(r.phone.clone())
                .push_bind(r.phone_e164.clone())
                .push_bind(r.sms_enabled)
                .push_bind(now)
                .push_bind(now)
                .push_bind(r.birth_date);
        },
    ) {
        q.build().execute(&mut *conn).await?;
    }
    Ok(outcomes)
}

async fn apply_groups(
    conn: &mut DbConn,
    groups: &[(&String, &String)],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let stored: Vec<(String, String)> = sqlx::query_as(concat!(
        "SELECT external_id, name FROM groups WHERE external_id",
        in_list!("$1")
    ))
    .bind(text_list(groups.iter().map(|(id, _)| id)))
    .fetch_all(&mut *conn)
    .await?;
    let mut judged = Judged::new(stored);
    let outcomes: Vec<Outcome> = groups
        .iter()
        .map(|(id, name)| Ok(judged.judge(id, |_| (*name).clone())))
        .collect();
    for mut q in insert_statements(
        "groups",
        &["external_id", "name", "created_at", "updated_at"],
        "ON CONFLICT (external_id) DO UPDATE
         SET name = excluded.name, updated_at = excluded.updated_at",
        &judged.changed(),
        |mut row, (id, name)| {
            row.push_bind(id.to_string())
                .push_bind(name.to_string())
                .push_bind(now)
                .push_bind(now);
        },
    ) {
        q.build().execute(&mut *conn).await?;
    }
    Ok(outcomes)
}

async fn apply_guardianships(
    conn: &mut DbConn,
    links: &[(&str, &str)],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let people = People::read(conn, links.iter().flat_map(|(g, s)| [*g, *s])).await?;
    let resolved: Vec<std::result::Result<(i64, i64), Refused>> = links
        .iter()
        .map(|(guardian, student)| {
            Ok((
                people.require("guardian_id", guardian, &[Role::Guardian], "guardian")?,
                people.require("student_id", student, &[Role::Student], "student")?,
            ))
        })
        .collect();
    insert_links(conn, &GUARDIANSHIPS, resolved, now).await
}

async fn apply_memberships(
    conn: &mut DbConn,
    links: &[(&str, &str)],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let groups = ids_named(
        conn,
        concat!(
            json_rows!("external_id, id"),
            " FROM groups WHERE external_id",
            in_list!("$1")
        ),
        links.iter().map(|(g, _)| *g),
    )
    .await?;
    let people = People::read(conn, links.iter().map(|(_, m)| *m)).await?;
    let resolved: Vec<std::result::Result<(i64, i64), Refused>> = links
        .iter()
        .map(|(group, member)| {
            Ok((
                require_known(&groups, "group_id", group, "group")?,
                people.require(
                    "member_id",
                    member,
                    &[Role::Student, Role::Teacher],
                    "student or teacher",
                )?,
            ))
        })
        .collect();
    insert_links(conn, &MEMBERSHIPS, resolved, now).await
}

/// A table of links between two rows (guardianships, memberships).
struct LinkTable {
    table: &'static str,
    columns: [&'static str; 2],
    /// The stored links of the ids in `$1` (a list) on one side, the side with few
    /// links per id (a `json_rows!` query).
    stored: &'static str,
    /// Which side `stored` takes: 0 for the first column, 1 for the second.
    side: usize,
}

/// A guardian has a few students.
const GUARDIANSHIPS: LinkTable = LinkTable {
    table: "guardianships",
    columns: ["guardian_id", "student_id"],
    stored: concat!(
        json_rows!("guardian_id, student_id"),
        " FROM guardianships WHERE guardian_id",
        in_list!("$1")
    ),
    side: 0,
};

/// A member is in a few groups; a group has many members.
const MEMBERSHIPS: LinkTable = LinkTable {
    table: "group_members",
    columns: ["group_id", "recipient_id"],
    stored: concat!(
        json_rows!("group_id, recipient_id"),
        " FROM group_members WHERE recipient_id",
        in_list!("$1")
    ),
    side: 1,
};

/// Inserts the links that are not stored yet, read in one query. A link is `Created`
/// by the record that first gives it, and `Unchanged` when it was stored or a record
/// before gave it. (A link another import makes meanwhile is not made twice: the
/// insert does nothing on a conflict.)
async fn insert_links(
    conn: &mut DbConn,
    links: &LinkTable,
    resolved: Vec<std::result::Result<(i64, i64), Refused>>,
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let side = |(a, b): (i64, i64)| if links.side == 0 { a } else { b };
    let stored: Vec<(i64, i64)> = json_rows(
        sqlx::query_scalar(links.stored)
            .bind(id_list(resolved.iter().flatten().map(|link| side(*link))))
            .fetch_one(&mut *conn)
            .await?,
    )?;
    let mut known: HashSet<(i64, i64)> = stored.into_iter().collect();
    let mut new = Vec::new();
    let outcomes = resolved
        .into_iter()
        .map(|link| {
            let link = link?;
            Ok(if known.insert(link) {
                new.push(link);
                Applied::Created
            } else {
                Applied::Unchanged
            })
        })
        .collect();
    let [a, b] = links.columns;
    for mut q in insert_statements(
        links.table,
        &[a, b, "created_at"],
        "ON CONFLICT DO NOTHING",
        &new,
        |mut row, (x, y)| {
            row.push_bind(*x).push_bind(*y).push_bind(now);
        },
    ) {
        q.build().execute(&mut *conn).await?;
    }
    Ok(outcomes)
}

/// A contract as stored, compared whole to what a record asks for.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct ContractRow {
    student_id: i64,
    number: Option<String>,
    status: String,
    consent_email: bool,
    consent_email_at: Option<DateTime<Utc>>,
    consent_sms: bool,
    consent_sms_at: Option<DateTime<Utc>>,
    consent_source: Option<String>,
    balance_cents: Option<i64>,
    arrears_since: Option<NaiveDate>,
}

async fn apply_contracts(
    conn: &mut DbConn,
    records: &[&ContractRecord],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let people = People::read(conn, records.iter().map(|c| c.student.as_str())).await?;
    let mut judged: Judged<ContractRow> = Judged::read(
        conn,
        concat!(
            "SELECT external_id, student_id, number, status, consent_email, consent_email_at,
                    consent_sms, consent_sms_at, consent_source, balance_cents, arrears_since
             FROM contracts WHERE external_id",
            in_list!("$1")
        ),
        records.iter().map(|c| &c.external_id),
    )
    .await?;
    let outcomes: Vec<Outcome> = records
        .iter()
        .map(|c| {
            let student_id =
                people.require("student_id", &c.student, &[Role::Student], "student")?;
            Ok(judged.judge(&c.external_id, |old| {
                let (email_at, sms_at) = match old {
                    // A new contract's consent dates from when the platform says, or
                    // from now.
                    None => {
                        let at = c.consent_at.unwrap_or(now);
                        (Some(at), Some(at))
                    }
                    Some(old) => (
                        consent_at(
                            c.consent_at,
                            c.consent_email,
                            old.consent_email,
                            old.consent_email_at,
                            now,
                        ),
                        consent_at(
                            c.consent_at,
                            c.consent_sms,
                            old.consent_sms,
                            old.consent_sms_at,
                            now,
                        ),
                    ),
                };
                ContractRow {
                    student_id,
                    number: c.number.clone(),
                    status: c.status.as_str().to_owned(),
                    consent_email: c.consent_email,
                    consent_email_at: email_at,
                    consent_sms: c.consent_sms,
                    consent_sms_at: sms_at,
                    consent_source: c.consent_source.clone(),
                    balance_cents: c.balance_cents,
                    arrears_since: c.arrears_since,
                }
            }))
        })
        .collect();
    for mut q in insert_statements(
        "contracts",
        &[
            "external_id",
            "student_id",
            "number",
            "status",
            "consent_email",
            "consent_email_at",
            "consent_sms",
            "consent_sms_at",
            "consent_source",
            "created_at",
            "updated_at",
            "balance_cents",
            "arrears_since",
        ],
        "ON CONFLICT (external_id) DO UPDATE
         SET student_id = excluded.student_id, number = excluded.number,
             status = excluded.status, consent_email = excluded.consent_email,
             consent_email_at = excluded.consent_email_at, consent_sms = excluded.consent_sms,
             consent_sms_at = excluded.consent_sms_at, consent_source = excluded.consent_source,
             updated_at = excluded.updated_at, balance_cents = excluded.balance_cents,
             arrears_since = excluded.arrears_since",
        &judged.changed(),
        |mut row, (external_id, c)| {
            row.push_bind(external_id.to_owned())
                .push_bind(c.student_id)
                .push_bind(c.number.clone())
                .push_bind(c.status.clone())
                .push_bind(c.consent_email)
                .push_bind(c.consent_email_at)
                .push_bind(c.consent_sms)
                .push_bind(c.consent_sms_at)
                .push_bind(c.consent_source.clone())
                .push_bind(now)
                .push_bind(now)
                .push_bind(c.balance_cents)
                .push_bind(c.arrears_since);
        },
    ) {
        q.build().execute(&mut *conn).await?;
    }
    Ok(outcomes)
}

/// An instalment as stored, compared whole to what a record asks for.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct InstalmentRow {
    contract_id: i64,
    due_date: NaiveDate,
    amount_cents: i64,
    paid: bool,
    paid_amount_cents: Option<i64>,
}

async fn apply_instalments(
    conn: &mut DbConn,
    records: &[&InstalmentRecord],
    now: DateTime<Utc>,
) -> Result<Vec<Outcome>> {
    let contracts = ids_named(
        conn,
        concat!(
            json_rows!("external_id, id"),
            " FROM contracts WHERE external_id",
            in_list!("$1")
        ),
        records.iter().map(|i| i.contract.as_str()),
    )
    .await?;
    let mut judged: Judged<InstalmentRow> = Judged::read(
        conn,
        concat!(
            "SELECT external_id, contract_id, due_date, amount_cents, paid, paid_amount_cents
             FROM instalments WHERE external_id",
            in_list!("$1")
        ),
        records.iter().map(|i| &i.external_id),
    )
    .await?;
    let outcomes: Vec<Outcome> = records
        .iter()
        .map(|i| {
            let contract_id = require_known(&contracts, "contract_id", &i.contract, "contract")?;
            Ok(judged.judge(&i.external_id, |_| InstalmentRow {
                contract_id,
                due_date: i.due_date,
                amount_cents: i.amount_cents,
                paid: i.paid,
                paid_amount_cents: i.paid_amount_cents,
            }))
        })
        .collect();
    for mut q in insert_statements(
        "instalments",
        &[
            "external_id",
            "contract_id",
            "due_date",
            "amount_cents",
            "paid",
            "paid_amount_cents",
            "created_at",
            "updated_at",
        ],
        "ON CONFLICT (external_id) DO UPDATE
         SET contract_id = excluded.contract_id, due_date = excluded.due_date,
             amount_cents = excluded.amount_cents, paid = excluded.paid,
             paid_amount_cents = excluded.paid_amount_cents, updated_at = excluded.updated_at",
        &judged.changed(),
        |mut row, (external_id, i)| {
            row.push_bind(external_id.to_owned())
                .push_bind(i.contract_id)
                .push_bind(i.due_date)
                .push_bind(i.amount_cents)
                .push_bind(i.paid)
                .push_bind(i.paid_amount_cents)
                .push_bind(now)
                .push_bind(now);
        },
    ) {
        q.build().execute(&mut *conn).await?;
    }
    Ok(outcomes)
}

/// A recipient as `recipients` reads it, one array of a `json_rows!` value, in the
/// order of its columns (flags as 0 or 1, so that both backends spell them alike).
#[derive(serde::Deserialize)]
struct ListedRecipient(
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    u8,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<String>,
);

impl ListedRecipient {
    fn into_recipient(self) -> Result<Recipient> {
        let ListedRecipient(
            id,
            external_id,
            role,
            name,
            locale,
            email,
            phone,
            sms,
            email_since,
            email_failure,
            phone_since,
            phone_failure,
        ) = self;
        Ok(Recipient {
            id: RecipientId(id),
            external_id,
            role: parse_role(&role)?,
            name,
            locale,
            email,
            phone,
            sms_enabled: sms != 0,
            email_failure: failure_mark(email_failure, email_since),
            phone_failure: failure_mark(phone_failure, phone_since),
        })
    }
}

/// A contract as `recipients` reads it: the student's id, then what eligibility needs.
#[derive(serde::Deserialize)]
struct ListedContract(
    i64,
    String,
    String,
    Option<String>,
    String,
    u8,
    Option<DateTime<Utc>>,
    u8,
    Option<DateTime<Utc>>,
    Option<String>,
);

impl ListedContract {
    fn into_consent(self) -> Result<ContractConsent> {
        let ListedContract(
            _,
            student,
            contract,
            number,
            status,
            email,
            email_at,
            sms,
            sms_at,
            source,
        ) = self;
        Ok(ContractConsent {
            contract,
            number,
            student,
            status: parse_status(&status)?,
            email: Consent {
                given: email != 0,
                changed_at: email_at,
            },
            sms: Consent {
                given: sms != 0,
                changed_at: sms_at,
            },
            source,
        })
    }
}

/// Contracts read for a listing of recipients, each beside its student's id, in
/// student order (each student's by contract id), so a student's contracts are one
/// run found by binary search.
struct Contracts(Vec<(i64, ContractConsent)>);

impl Contracts {
    /// The contracts of `students`, in that order (each student's by contract id), in
    /// a list of exactly their number.
    fn covering(&self, students: &[i64]) -> Vec<ContractConsent> {
        let run = |s: &i64| {
            let from = self.0.partition_point(|(x, _)| x < s);
            let to = self.0.partition_point(|(x, _)| x <= s);
            &self.0[from..to]
        };
        let mut covering = Vec::with_capacity(students.iter().map(|s| run(s).len()).sum());
        for s in students {
            covering.extend(run(s).iter().map(|(_, c)| c.clone()));
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
            // A failing statement returns here, and dropping the transaction rolls
            // the chunk back.
            let applied = apply_chunk(&mut tx, chunk, now).await?;
            let mut counts = [0u64; 4];
            for outcome in &applied {
                counts[match outcome {
                    Ok(Applied::Created) => 0,
                    Ok(Applied::Updated) => 1,
                    Ok(Applied::Unchanged) => 2,
                    Err(_) => 3,
                }] += 1;
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
            outcomes.extend(applied);
        }
        Ok(outcomes)
    }

    async fn recipients(&self, filter: &RecipientFilter) -> Result<Vec<EligibilityFacts>> {
        // Only the conditions a filter sets are in the statement: `($1 IS NULL OR …)`
        // hides the indexes from the planner, and a look-up by id would scan every
        // recipient (it is on the path of every message sent).
        //
        // Who, in order, as one list of ids; then their rows a chunk at a time, in
        // no order, each put in its place. One statement giving every row in order
        // would hand each row across from sqlx's SQLite thread, or hold a whole
        // school in one string, or sort it twice to cut it into pages.
        let mut q = sqlx::QueryBuilder::<Db>::new(concat!(
            json_rows!(
                "r.id",
                order by "CASE r.role WHEN 'student' THEN 0 WHEN 'guardian' THEN 1
                                      WHEN 'teacher' THEN 2 ELSE 3 END,
                          r.name, r.external_id"
            ),
            " FROM recipients r WHERE TRUE"
        ));
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
        let ids: Vec<(i64,)> = json_rows(q.build_query_scalar().fetch_one(&self.reads).await?)?;
        let ids: Vec<i64> = ids.into_iter().map(|(id,)| id).collect();
        let mut people = facts_of(&self.reads, &ids).await?;
        let place: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        people.sort_by_cached_key(|f| place.get(&f.recipient.id.0).copied());
        Ok(people)
    }

    async fn facts_of(&self, ids: &[RecipientId]) -> Result<Vec<EligibilityFacts>> {
        let mut ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        ids.sort_unstable();
        ids.dedup();
        facts_of(&self.reads, &ids).await
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
        .fetch_all(&self.reads)
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
        .fetch_one(&self.reads)
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
        Ok(facts_of(&self.reads, &[id.0]).await?.into_iter().next())
    }

    async fn names(&self, external_ids: &[&str]) -> Result<HashMap<String, String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(concat!(
            "SELECT external_id, name FROM recipients WHERE external_id",
            in_list!("$1")
        ))
        .bind(text_list(external_ids))
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn audience(&self, audience: &Audience, reach: Reach) -> Result<Vec<EligibilityFacts>> {
        // Whom the audience names (`base`), the students among them, and the people
        // reach makes of those, in one statement: a whole school's ids stay in the
        // database instead of crossing to Herald and back for each step.
        // The ids come back as one JSON value (see `json_rows!`).
        let mut q =
            sqlx::QueryBuilder::<Db>::new(concat!(json_rows!("id"), " FROM (WITH base(id) AS ("));
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
        // A group's members are read as students already.
        let only_students = matches!(
            audience,
            Audience::Group(_) | Audience::Groups(_) | Audience::AllGroups
        );
        q.push(if only_students {
            "), students(id) AS (SELECT id FROM base) "
        } else {
            "), students(id) AS (
                 SELECT b.id FROM base b JOIN recipients r ON r.id = b.id WHERE r.role = 'student') "
        });
        // Someone may be named twice (a guardian of two students): the look-up by id
        // below reads each person once, so nothing here sorts a school to remove them.
        let mut parts = Vec::new();
        match reach {
            Reach::Guardians if only_students => {}
            Reach::Guardians => parts.push(
                "SELECT b.id FROM base b JOIN recipients r ON r.id = b.id
                 WHERE r.role <> 'student'",
            ),
            _ => parts.push("SELECT id FROM base"),
        }
        if reach != Reach::Students {
            parts.push(
                "SELECT guardian_id AS id FROM guardianships
                 WHERE student_id IN (SELECT id FROM students)",
            );
        }
        q.push(parts.join(" UNION ALL "));
        q.push(") AS audience");
        let ids: Vec<(i64,)> = json_rows(q.build_query_scalar().fetch_one(&self.reads).await?)?;
        let filter = RecipientFilter {
            ids: Some(ids.into_iter().map(|(id,)| RecipientId(id)).collect()),
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
        .fetch_all(&self.reads)
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
        .fetch_one(&self.reads)
        .await?)
    }
}
