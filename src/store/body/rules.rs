//! What the periodic rules read and write, and the look-ups of diagnosis.

use super::*;

#[async_trait]
impl RuleStore for Backend {
    async fn unpaid_instalments_due(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DueInstalment>> {
        let rows: Vec<(i64, String, String, String, NaiveDate, i64)> = sqlx::query_as(concat!(
            "SELECT i.id, i.external_id, coalesce(c.number, c.external_id), r.external_id,
                    i.due_date, i.amount_cents
             FROM instalments i
             JOIN contracts c ON c.id = i.contract_id
             JOIN recipients r ON r.id = c.student_id
             WHERE ",
            unpaid!(),
            " AND i.due_date >= $1 AND i.due_date <= $2
             ORDER BY i.due_date, i.id"
        ))
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
        Ok(sqlx::query_scalar(concat!(
            "SELECT key FROM occurrences WHERE key",
            in_list!("$1")
        ))
        .bind(text_list(keys))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn students_with_people(
        &self,
        students: &[String],
        reach: Reach,
    ) -> Result<Vec<StudentPeople>> {
        if students.is_empty() {
            return Ok(Vec::new());
        }
        // The same people `audience(&Audience::Recipient(student), reach)` names,
        // for every student at once: reach applies to students; anyone else is
        // written to as is.
        let found: Vec<(i64, String, String)> = sqlx::query_as(concat!(
            "SELECT id, external_id, role FROM recipients WHERE external_id",
            in_list!("$1")
        ))
        .bind(text_list(students))
        .fetch_all(&self.pool)
        .await?;
        let is_student = |role: &str| role == Role::Student.as_str();
        let wards: Vec<(i64, i64)> = if reach == Reach::Students {
            Vec::new()
        } else {
            sqlx::query_as(concat!(
                "SELECT student_id, guardian_id FROM guardianships WHERE student_id",
                in_list!("$1")
            ))
            .bind(id_list(
                found
                    .iter()
                    .filter(|(_, _, role)| is_student(role))
                    .map(|(id, _, _)| *id),
            ))
            .fetch_all(&self.pool)
            .await?
        };
        let mut guardians: HashMap<i64, Vec<i64>> = HashMap::new();
        for (student, guardian) in wards {
            guardians.entry(student).or_default().push(guardian);
        }
        let mut people_of: HashMap<&str, (i64, std::collections::BTreeSet<i64>)> = HashMap::new();
        for (id, external_id, role) in &found {
            let mut ids: std::collections::BTreeSet<i64> = std::collections::BTreeSet::new();
            if is_student(role) {
                ids.extend(guardians.get(id).into_iter().flatten().copied());
            }
            if reach != Reach::Guardians || !is_student(role) {
                ids.insert(*id);
            }
            people_of.insert(external_id.as_str(), (*id, ids));
        }
        // Everyone in one read, in the order `recipients` gives (role, then name);
        // each student's people keep that order.
        let everyone: std::collections::BTreeSet<i64> = people_of
            .values()
            .flat_map(|(id, ids)| std::iter::once(*id).chain(ids.iter().copied()))
            .collect();
        let facts = self
            .recipients(&RecipientFilter {
                ids: Some(everyone.into_iter().map(RecipientId).collect()),
                ..RecipientFilter::default()
            })
            .await?;
        let position: HashMap<i64, usize> = facts
            .iter()
            .enumerate()
            .map(|(i, f)| (f.recipient.id.0, i))
            .collect();
        Ok(students
            .iter()
            .map(|student| {
                let Some((id, ids)) = people_of.get(student.as_str()) else {
                    return StudentPeople::default();
                };
                let mut people: Vec<usize> = ids
                    .iter()
                    .filter_map(|i| position.get(i).copied())
                    .collect();
                people.sort_unstable();
                StudentPeople {
                    student: position.get(id).map(|&i| facts[i].clone()),
                    people: people.into_iter().map(|i| facts[i].clone()).collect(),
                }
            })
            .collect())
    }

    async fn create_occurrences(
        &self,
        occurrences: &[NewOccurrence],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>> {
        if occurrences.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        // The keys decide: a second run, a restart or another instance finds them
        // and writes nothing for them.
        let mut fresh = insert_occurrence_keys(&mut tx, occurrences, now).await?;
        // A key given twice is created once, by its first occurrence.
        let created: Vec<bool> = occurrences.iter().map(|o| fresh.remove(&o.key)).collect();
        if !created.contains(&true) {
            // Nothing of ours: dropping the transaction rolls it back.
            return Ok(created);
        }
        let fresh: Vec<&NewOccurrence> = occurrences
            .iter()
            .zip(&created)
            .filter_map(|(o, &c)| c.then_some(o))
            .collect();
        // Each rule and day has one batch, made by its first new occurrence, as when
        // occurrences were written one at a time.
        let mut days: Vec<(&str, Vec<&NewOccurrence>)> = Vec::new();
        for &o in &fresh {
            match days.iter_mut().find(|(key, _)| *key == o.periodic_key) {
                Some((_, of_day)) => of_day.push(o),
                None => days.push((o.periodic_key.as_str(), vec![o])),
            }
        }
        let mut written = 0u64;
        for (_, of_day) in days {
            let batch = day_batch(&mut tx, of_day[0], now).await?;
            sqlx::query(concat!(
                "UPDATE occurrences SET batch_id = $1 WHERE key",
                in_list!("$2")
            ))
            .bind(batch)
            .bind(text_list(of_day.iter().map(|o| &o.key)))
            .execute(&mut *tx)
            .await?;
            // Each message's "created" event names who wrote it: the rule.
            for run in of_day.chunk_by(|a, b| a.batch.created_by == b.batch.created_by) {
                let messages: Vec<&NewMessage> = run.iter().flat_map(|o| &o.messages).collect();
                // Those awaiting approval are counted when approved.
                written += messages
                    .iter()
                    .filter(|m| m.status == MessageStatus::Queued)
                    .count() as u64;
                bulk::insert_messages_returning(
                    &mut tx,
                    Some(batch),
                    &messages,
                    &run[0].batch.created_by,
                    now,
                )
                .await?;
            }
        }
        tx.commit().await?;
        // Refreshed once the rule's run ends (`record_rule_run`).
        self.count_queued(written);
        Ok(created)
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
                 last_run_at = CASE WHEN excluded.last_run_at > rule_runs.last_run_at
                                    THEN excluded.last_run_at ELSE rule_runs.last_run_at END,
                 covered_through = CASE WHEN excluded.last_run_at >= rule_runs.last_run_at
                     THEN excluded.covered_through ELSE rule_runs.covered_through END",
        )
        .bind(rule)
        .bind(run.last_run_at)
        .bind(run.covered_through)
        .execute(&self.pool)
        .await?;
        // The run's end: what its parts counted (`create_occurrences`) is refreshed.
        self.refresh_statistics(ANALYZE_QUEUE).await;
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
                    .fetch_optional(&self.reads)
                    .await?
            }
            "arrears" => {
                sqlx::query_scalar(
                    "SELECT coalesce(balance_cents, 0) > 0 AND arrears_since IS NOT NULL
                     FROM contracts WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.reads)
                .await?
            }
            _ => Some(true),
        };
        // Gone from the directory: nothing left to remind of.
        Ok(relevant.unwrap_or(false))
    }

    async fn expire_overdue(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
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

/// Inserts the occurrences' keys, each unless it exists already; returns the keys
/// inserted now. They go in sorted, so two instances inserting overlapping keys on
/// PostgreSQL wait for each other in one order and never deadlock.
async fn insert_occurrence_keys(
    conn: &mut DbConn,
    occurrences: &[NewOccurrence],
    now: DateTime<Utc>,
) -> Result<std::collections::HashSet<String>> {
    let mut sorted: Vec<&NewOccurrence> = occurrences.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    sorted.dedup_by(|a, b| a.key == b.key);
    let mut inserted = std::collections::HashSet::with_capacity(sorted.len());
    for rows in sorted.chunks(BIND_LIMIT / 3) {
        let mut q =
            sqlx::QueryBuilder::<Db>::new("INSERT INTO occurrences (key, rule, created_at) ");
        q.push_values(rows, |mut row, o| {
            row.push_bind(&o.key).push_bind(&o.rule).push_bind(now);
        });
        q.push(" ON CONFLICT (key) DO NOTHING RETURNING key");
        let keys: Vec<String> = q.build_query_scalar().fetch_all(&mut *conn).await?;
        inserted.extend(keys);
    }
    Ok(inserted)
}

/// The batch of `o`'s rule and day, made from `o` unless it exists.
async fn day_batch(conn: &mut DbConn, o: &NewOccurrence, now: DateTime<Utc>) -> Result<i64> {
    let b = &o.batch;
    // The day's batch, locked: an approval cannot slip in between the check below
    // and the messages joining it.
    let _: Option<i64> = sqlx::query_scalar(concat!(
        "SELECT id FROM batches WHERE periodic_key = $1",
        for_update!()
    ))
    .bind(&o.periodic_key)
    .fetch_optional(&mut *conn)
    .await?;
    if b.status == BatchStatus::AwaitingApproval {
        // The day's batch was decided already: what comes now was not seen by
        // whoever decided, so it starts a batch of its own (the old one keeps its
        // key with its id appended).
        sqlx::query(
            "UPDATE batches SET periodic_key = periodic_key || '/' || id
             WHERE periodic_key = $1 AND status <> 'awaiting_approval'",
        )
        .bind(&o.periodic_key)
        .execute(&mut *conn)
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
    .bind(&o.periodic_key)
    .execute(&mut *conn)
    .await?;
    Ok(
        sqlx::query_scalar("SELECT id FROM batches WHERE periodic_key = $1")
            .bind(&o.periodic_key)
            .fetch_one(&mut *conn)
            .await?,
    )
}

#[async_trait]
impl DiagnosisStore for Backend {
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
