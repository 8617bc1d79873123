//! How things look on a terminal: tables, summaries, listings. Every printer here
//! takes what the application layer returned and only formats it.

use super::*;

/// One check on one line, with its fix below.
pub(super) fn print_check(c: &crate::diagnose::Check) {
    use crate::diagnose::Verdict;
    let mark = match c.verdict {
        Verdict::Ok => "ok     ",
        Verdict::Warning => "warning",
        Verdict::Error => "ERROR  ",
    };
    let reason = c.reason.map(|r| format!(" [{r}]")).unwrap_or_default();
    say!("  {mark} {}{reason}", c.text);
    if let Some(fix) = &c.fix {
        say!("          fix: {fix}");
    }
}

pub(super) fn print_message_diagnosis(m: &crate::diagnose::MessageDiagnosis, tz: Tz) {
    let v = &m.message;
    let at = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    say!(
        "  #{} {} {} {} — {}{}",
        v.id,
        at(v.created_at),
        v.kind,
        v.channel,
        m.status_text,
        v.subject
            .as_deref()
            .map(|s| format!(" — {s:?}"))
            .unwrap_or_default()
    );
    if let Some(next) = v
        .next_attempt_at
        .filter(|_| v.status == MessageStatus::Queued)
    {
        say!("      next attempt {}", at(next));
    }
    for (i, a) in m.attempts.iter().enumerate() {
        say!(
            "      attempt {} at {}: {:?}{} {}{}",
            i + 1,
            at(a.started_at),
            a.outcome,
            a.code.map(|c| format!(" {c}")).unwrap_or_default(),
            a.detail,
            a.provider_id
                .as_deref()
                .map(|p| format!(" (gateway id {p})"))
                .unwrap_or_default()
        );
    }
    if let Some(id) = &m.message_id {
        say!("      Message-ID: {id}");
    }
    for r in &m.delivery_reports {
        say!(
            "      delivery report from {} at {}: {}{} — {}",
            r.gateway,
            at(r.received_at),
            r.status,
            r.reported_at
                .map(|t| format!(" (happened {})", at(t)))
                .unwrap_or_default(),
            r.effect.as_str().replace('_', " ")
        );
    }
    for advice in &m.advice {
        say!("      → {advice}");
    }
}

pub(super) fn print_summary(s: &Summary) {
    say!(
        "Will go:   {} message(s){}",
        s.will_go,
        if s.sent > 0 {
            format!(" ({} sent already)", s.sent)
        } else {
            String::new()
        }
    );
    for (reason, n) in &s.blocked {
        let words = reason
            .parse::<Reason>()
            .map(|r| r.describe())
            .unwrap_or_default();
        say!("Blocked:   {n} — {reason}: {words}");
    }
    for (status, n) in &s.other {
        say!("Also:      {n} {status}");
    }
    if s.sms_segments > 0 {
        let short = s.sms_cost - s.wallet_balance;
        say!(
            "SMS cost:  {} segment(s) = {} point(s); the wallet holds {}{}",
            s.sms_segments,
            s.sms_cost,
            s.wallet_balance,
            if short > 0 {
                format!(" — {short} short: top it up or part of it waits")
            } else {
                String::new()
            }
        );
    }
    say!("When:      {}", s.when);
}

/// The hold switch in one prominent line.
pub(super) fn hold_banner(h: &crate::store::Hold, settings: &Settings) -> String {
    format!(
        "*** DISPATCH IS ON HOLD since {} by {}: {} — nothing is sent until `herald hold off` ***",
        h.since
            .with_timezone(&settings.school.time_zone)
            .format("%Y-%m-%d %H:%M"),
        h.by,
        h.reason
    )
}

pub(super) fn print_send(
    send: &compose::Send,
    id: Option<BatchId>,
    json: bool,
) -> anyhow::Result<()> {
    let mut counts: BTreeMap<(MessageStatus, Option<Reason>), i64> = BTreeMap::new();
    for m in &send.messages {
        *counts.entry((m.status, m.reason)).or_default() += 1;
    }
    if json {
        let counts: Vec<_> = counts
            .iter()
            .map(|((status, reason), count)| {
                serde_json::json!({"status": status, "reason": reason, "count": count})
            })
            .collect();
        say!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "batch_id": id,
                "dry_run": id.is_none(),
                "status": send.batch.status,
                "audience": send.batch.audience,
                "messages": send.messages.len(),
                "counts": counts,
            }))?
        );
        return Ok(());
    }
    match id {
        Some(id) => say!(
            "Batch {id} ({}): {}",
            send.batch.status,
            send.batch.audience
        ),
        None => say!("Dry run, nothing created: {}", send.batch.audience),
    }
    say!("  {} message(s):", send.messages.len());
    for ((status, reason), n) in &counts {
        say!("  {n:>5}  {}", status_words(*status, *reason));
    }
    if send.batch.status == BatchStatus::AwaitingApproval && id.is_some() {
        say!(
            "  It waits in the outbox: `herald approve {} --as LOGIN`.",
            id.unwrap_or(BatchId(0))
        );
    }
    Ok(())
}

pub(super) fn status_words(status: MessageStatus, reason: Option<Reason>) -> String {
    match reason {
        Some(r) => format!("{status} ({}: {})", r.as_str(), r.describe()),
        None => status.to_string(),
    }
}

pub(super) fn print_batches(
    batches: &[crate::store::BatchSummary],
    json: bool,
    all: bool,
) -> anyhow::Result<()> {
    if json {
        say!("{}", serde_json::to_string_pretty(batches)?);
        return Ok(());
    }
    if batches.is_empty() {
        say!(
            "{}",
            if all {
                "No batches."
            } else {
                "Nothing waits for approval."
            }
        );
        return Ok(());
    }
    for b in batches {
        let total: i64 = b.counts.iter().map(|c| c.count).sum();
        say!(
            "Batch {} — {} — {} {} by {} at {}",
            b.id,
            b.status,
            b.kind,
            b.channel,
            b.created_by,
            b.created_at.format("%Y-%m-%d %H:%M UTC")
        );
        say!("  to:      {} ({total} message(s))", b.audience);
        say!("  subject: {}", b.subject.as_deref().unwrap_or("-"));
        if let (Some(by), Some(at)) = (&b.decided_by, b.decided_at) {
            say!(
                "  decided: {} by {by} at {}{}",
                b.status,
                at.format("%Y-%m-%d %H:%M UTC"),
                b.decision_note
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
        }
        for c in &b.counts {
            say!("  {:>5}  {}", c.count, status_words(c.status, c.reason));
        }
        say!();
    }
    Ok(())
}

pub(super) fn print_counts(counts: &[crate::store::StatusCount], json: bool) -> anyhow::Result<()> {
    if json {
        say!("{}", serde_json::to_string_pretty(counts)?);
        return Ok(());
    }
    if counts.is_empty() {
        say!("No messages match.");
    }
    for c in counts {
        say!("{:>7}  {}", c.count, status_words(c.status, c.reason));
    }
    Ok(())
}

pub(super) fn print_messages(
    settings: &Settings,
    messages: &[crate::store::MessageView],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        say!("{}", serde_json::to_string_pretty(messages)?);
        return Ok(());
    }
    if messages.is_empty() {
        say!("No messages match.");
        return Ok(());
    }
    let tz = settings.school.time_zone;
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%m-%d %H:%M").to_string();
    let rows = messages
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.batch_id
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
                m.kind.to_string(),
                m.channel.to_string(),
                m.recipient.clone(),
                m.status.to_string(),
                m.reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                m.attempts.to_string(),
                local(m.created_at),
                match (m.sent_at, m.next_attempt_at) {
                    (Some(t), _) => format!("sent {}", local(t)),
                    (None, Some(t)) if m.status == MessageStatus::Queued => {
                        format!("next {}", local(t))
                    }
                    _ => String::new(),
                },
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "BATCH",
            "KIND",
            "CHANNEL",
            "RECIPIENT",
            "STATUS",
            "REASON",
            "TRIES",
            "CREATED",
            "WHEN",
        ],
        rows,
    );
    Ok(())
}

pub(super) fn print_import_report(file: &Path, report: &ImportReport) {
    say!("{}:", file.display());
    for (kind, c) in &report.counts {
        say!(
            "  {kind:<14} {} created, {} updated, {} unchanged, {} failed",
            c.created,
            c.updated,
            c.unchanged,
            c.failed
        );
    }
    for w in &report.warnings {
        say!("  warning: {w}");
    }
    for e in &report.errors {
        say!("  error: {e}");
    }
    if report.has_errors() {
        say!(
            "  {} row(s) were not imported; fix them and import the file again (the \
             rows already in are left as they are).",
            report.errors.len()
        );
    }
}

pub(super) fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "SMS",
    }
}

/// Prints rows under headers, each column as wide as its widest cell.
pub(super) fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        say!("{}", text.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
