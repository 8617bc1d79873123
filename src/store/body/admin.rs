//! The wallet, the hold switch and the audit log, templates, operators and roles.

use super::*;

#[async_trait]
impl WalletStore for Backend {
    async fn wallet(&self) -> Result<WalletState> {
        let (balance, reserved, low_since): (i64, i64, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT balance, reserved, low_since FROM wallet WHERE id = 1")
                .fetch_one(&self.reads)
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
        .fetch_all(&self.reads)
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
            "SELECT entry, CAST(coalesce(sum(points), 0) AS BIGINT) FROM wallet_ledger GROUP BY entry",
        )
        .fetch_all(&self.reads)
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

    async fn top_up(&self, points: i64, note: &str, audit: &AuditEntry) -> Result<WalletState> {
        let (actor, now) = (audit.actor.as_str(), audit.at);
        let mut tx = self.begin_write().await?;
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
        insert_audit(&mut tx, &audit.with_detail("balance_after", after.0)).await?;
        tx.commit().await?;
        self.wallet().await
    }

    async fn reserve(
        &self,
        id: MessageId,
        claim: i64,
        points: i64,
        now: DateTime<Utc>,
    ) -> Result<Reservation> {
        let mut tx = self.begin_write().await?;
        let asked = Reserving {
            id,
            claim,
            points,
            at: now,
        };
        let reservation = reserve_many(&mut tx, &[asked]).await?;
        tx.commit().await?;
        Ok(reservation[0])
    }

    async fn charge_undecided(&self, before: DateTime<Utc>, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        // Locked, so a person's resend at the same moment waits instead of having its
        // new reservation charged here.
        let ids: Vec<i64> = sqlx::query_scalar(concat!(
            "SELECT id FROM messages
             WHERE status = 'unknown' AND reserved_points > 0 AND updated_at < $1
             ORDER BY id",
            for_update!()
        ))
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            super::outbox::settle(&mut tx, *id, true, now).await?;
            insert_event(
                &mut tx,
                *id,
                now,
                MessageStatus::Unknown,
                Some(crate::domain::Reason::OutcomeUnknown),
                None,
                "charged: undecided for longer than sms.unknown_charged_after",
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    async fn sms_segments_due(&self, before: DateTime<Utc>) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(coalesce(sum(segments), 0) AS BIGINT) FROM messages
             WHERE channel = 'sms' AND status = 'queued' AND next_attempt_at < $1",
        )
        .bind(before)
        .fetch_one(&self.reads)
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

/// The hold switch as it is; `lock`ed for the rest of a transaction that changes it
/// (a plain read takes no lock, so it needs no write privilege and waits for nobody).
async fn hold_row(conn: &mut DbConn, lock: bool) -> Result<Option<Hold>> {
    macro_rules! read {
        () => {
            "SELECT on_since, reason, set_by FROM hold_switch WHERE id = 1"
        };
    }
    let sql = if lock {
        concat!(read!(), for_update!())
    } else {
        read!()
    };
    let row: (Option<DateTime<Utc>>, Option<String>, Option<String>) =
        sqlx::query_as(sql).fetch_one(conn).await?;
    Ok(match row {
        (Some(since), reason, by) => Some(Hold {
            since,
            reason: reason.unwrap_or_default(),
            by: by.unwrap_or_default(),
        }),
        _ => None,
    })
}

#[async_trait]
impl AdminStore for Backend {
    async fn hold(&self) -> Result<Option<Hold>> {
        let mut conn = self.reads.acquire().await?;
        hold_row(&mut conn, false).await
    }

    async fn set_hold(&self, hold: Option<&Hold>, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let before = hold_row(&mut tx, true).await?;
        let done = match hold {
            Some(h) => {
                sqlx::query(
                    "UPDATE hold_switch SET on_since = $1, reason = $2, set_by = $3
                     WHERE id = 1 AND on_since IS NULL",
                )
                .bind(h.since)
                .bind(&h.reason)
                .bind(&h.by)
                .execute(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE hold_switch SET on_since = NULL, reason = NULL, set_by = NULL
                     WHERE id = 1 AND on_since IS NOT NULL",
                )
                .execute(&mut *tx)
                .await?
            }
        };
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        let audit = match (hold, before) {
            (None, Some(was)) => audit.with_detail("was", was),
            _ => audit.clone(),
        };
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(true)
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
             ORDER BY id DESC LIMIT $4",
        )
        .bind(&filter.actor)
        .bind(filter.action.map(|a| a.as_str()))
        .bind(filter.since)
        .bind(filter.limit.unwrap_or(i64::MAX))
        .fetch_all(&self.reads)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, actor, action, subject, details)| {
                Ok(AuditEntry {
                    at,
                    actor,
                    action: parse_code("audit_log.action", &action)?,
                    subject,
                    details: serde_json::from_str(&details)
                        .unwrap_or(serde_json::Value::String(details)),
                })
            })
            .collect::<Result<_>>()?)
    }
}

#[async_trait]
impl TemplateStore for Backend {
    async fn save_template(&self, v: &Variant, audit: &AuditEntry) -> Result<()> {
        let mut tx = self.begin_write().await?;
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
        .bind(audit.at)
        .bind(&audit.actor)
        .bind(&v.html)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
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
        .fetch_all(&self.reads)
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

#[async_trait]
impl OperatorStore for Backend {
    async fn operator(&self, login: &str) -> Result<Option<Operator>> {
        let rows: Vec<OperatorRow> = sqlx::query_as(
            "SELECT login, name, role, teacher, locale, password_set_at FROM operators
                 WHERE login = $1",
        )
        .bind(login)
        .fetch_all(&self.reads)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let exceptions: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT login, permission, granted FROM operator_permissions WHERE login = $1",
        )
        .bind(login)
        .fetch_all(&self.reads)
        .await?;
        let roles = self.roles().await?;
        Ok(build_operators(rows, exceptions, &roles)?.pop())
    }

    async fn operators(&self) -> Result<Vec<Operator>> {
        let rows: Vec<OperatorRow> = sqlx::query_as(
            "SELECT login, name, role, teacher, locale, password_set_at FROM operators
                 ORDER BY login",
        )
        .fetch_all(&self.reads)
        .await?;
        let exceptions: Vec<(String, String, bool)> =
            sqlx::query_as("SELECT login, permission, granted FROM operator_permissions")
                .fetch_all(&self.reads)
                .await?;
        let roles = self.roles().await?;
        build_operators(rows, exceptions, &roles)
    }

    async fn roles(&self) -> Result<Vec<RoleDef>> {
        let rows: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT name, description, builtin FROM roles ORDER BY builtin DESC, name",
        )
        .fetch_all(&self.reads)
        .await?;
        let permissions: Vec<(String, String)> =
            sqlx::query_as("SELECT role, permission FROM role_permissions ORDER BY permission")
                .fetch_all(&self.reads)
                .await?;
        build_roles(rows, permissions)
    }

    async fn add_operator(
        &self,
        new: &NewOperator,
        first: bool,
        audit: &AuditEntry,
    ) -> Result<AddOperator> {
        let mut tx = self.begin_write().await?;
        // Two "first owner" commands at once must not both see an empty table.
        lock_operators(&mut tx).await?;
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
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE operators SET role = $2, updated_at = $3
             WHERE login = $1 AND EXISTS (SELECT 1 FROM roles WHERE name = $2)",
        )
        .bind(login)
        .bind(role)
        .bind(audit.at)
        .execute(&mut *tx)
        .await?;
        commit_with_audit(tx, done.rows_affected(), audit).await
    }

    async fn set_password(&self, login: &str, hash: &str, audit: &AuditEntry) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE operators SET password_hash = $2, password_set_at = $3, updated_at = $3
             WHERE login = $1",
        )
        .bind(login)
        .bind(hash)
        .bind(audit.at)
        .execute(&mut *tx)
        .await?;
        commit_with_audit(tx, done.rows_affected(), audit).await
    }

    async fn set_locale(
        &self,
        login: &str,
        locale: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // Only a change counts (and is audited): choosing the language shown is no
        // news.
        let done = sqlx::query(
            "UPDATE operators SET locale = $2, updated_at = $3
             WHERE login = $1 AND locale IS DISTINCT FROM $2",
        )
        .bind(login)
        .bind(locale)
        .bind(audit.at)
        .execute(&mut *tx)
        .await?;
        commit_with_audit(tx, done.rows_affected(), audit).await
    }

    async fn password_hash(&self, login: &str) -> Result<Option<String>> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM operators WHERE login = $1")
                .bind(login)
                .fetch_optional(&self.reads)
                .await?;
        Ok(hash.flatten())
    }

    async fn set_permission(
        &self,
        login: &str,
        permission: Permission,
        granted: Option<bool>,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
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

/// A reservation asked for: `points` for claim `claim` of message `id`, at `at`.
pub(super) struct Reserving {
    pub(super) id: MessageId,
    pub(super) claim: i64,
    pub(super) points: i64,
    pub(super) at: DateTime<Utc>,
}

/// Reserves credit for many claims at once ([`Store::reserve`], [`Store::record`]) in
/// the caller's transaction, in order: each is `Reserved` while the balance covers
/// it, and nothing changes for the others.
pub(super) async fn reserve_many(
    conn: &mut DbConn,
    asked: &[Reserving],
) -> Result<Vec<Reservation>> {
    if asked.is_empty() {
        return Ok(Vec::new());
    }
    // Tied to the claim: a dispatcher whose lease ran out reserves nothing for a
    // message that is someone else's now (or back in the queue).
    let ours: Vec<(i64, i64)> = sqlx::query_as(concat!(
        "SELECT id, claim FROM messages WHERE status = 'sending' AND id",
        in_list!("$1"),
        " ORDER BY id",
        for_update!()
    ))
    .bind(id_list(asked.iter().map(|r| r.id.0)))
    .fetch_all(&mut *conn)
    .await?;
    let ours: HashMap<i64, i64> = ours.into_iter().collect();
    // The balance can never go below zero: the wallet is read under the write lock
    // (SQLite's, or the row's on PostgreSQL) and each reservation taken from what is
    // left, whoever else reserves at the same moment.
    let (mut left, _) = super::outbox::wallet_for_update(conn).await?;
    let mut taken = Vec::new();
    let answers = asked
        .iter()
        .map(|r| {
            if ours.get(&r.id.0) != Some(&r.claim) {
                Reservation::ClaimLost
            } else if left < r.points {
                Reservation::ShortOfCredit
            } else {
                left -= r.points;
                taken.push(super::outbox::Movement {
                    id: r.id.0,
                    entry: super::outbox::Entry::Reserve,
                    points: r.points,
                    at: r.at,
                });
                Reservation::Reserved
            }
        })
        .collect();
    if !taken.is_empty() {
        // Added to what the message holds, never in place of it, so no points go
        // astray.
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "UPDATE messages SET reserved_points = coalesce(messages.reserved_points, 0) + v.column2
             FROM (",
        );
        q.push_values(&taken, |mut row, m| {
            row.push_bind(m.id).push_bind(m.points);
        });
        q.push(") AS v WHERE messages.id = v.column1");
        q.build().persistent(false).execute(&mut *conn).await?;
        super::outbox::move_credit(conn, &taken).await?;
    }
    Ok(answers)
}
