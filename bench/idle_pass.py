"""Helpers of bench/idle-pass.sh.

  seed DB N     writes N messages of history into the SQLite database DB (already
                migrated by Herald): 90 % informational emails sent long ago, the rest
                failed SMS, unknown SMS (no points held), expired periodic messages and
                cancelled ones, each with an attempt and an event; plus 1,000 emails
                queued for tomorrow (not due). One transaction, executemany.
  scrape PORT   reads /metrics on 127.0.0.1:PORT and prints the mean and count of
                herald_dispatch_pass_duration_seconds (outcome ok), in milliseconds.
"""

import sqlite3
import sys
import urllib.request
from datetime import datetime, timedelta, timezone


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def seed(path, n):
    db = sqlite3.connect(path)
    now = datetime.now(timezone.utc)
    long_ago = now - timedelta(days=200)
    tomorrow = now + timedelta(days=1)
    db.execute(
        "INSERT INTO recipients (external_id, role, name, email, sms_enabled, created_at, updated_at)"
        " VALUES ('g-1', 'guardian', 'Guardian', 'g1@example.pl', 1, ?, ?)",
        (ts(long_ago), ts(long_ago)),
    )
    recipient = db.execute("SELECT id FROM recipients WHERE external_id = 'g-1'").fetchone()[0]
    body = "A message of last term. " * 20

    def rows():
        for i in range(n):
            kind, channel, status, reason, expires = "informational", "email", "sent", None, None
            if i % 10 == 1:
                channel, status, reason = "sms", "failed", "rejected_by_server"
            elif i % 10 == 2 and i % 20 == 2:
                channel, status, reason = "sms", "unknown", "outcome_unknown"
            elif i % 10 == 3:
                kind, status, reason, expires = "periodic", "expired", "too_late", ts(long_ago)
            elif i % 10 == 4 and i % 20 == 4:
                status, reason = "cancelled", None
            at = ts(long_ago + timedelta(seconds=i))
            yield (kind, channel, recipient, "g-1", body, status, reason, at, at,
                   at if status == "sent" else None, expires)

    db.executemany(
        "INSERT INTO messages (kind, channel, recipient_id, recipient_external_id, body,"
        " status, reason, attempts, created_at, updated_at, sent_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
        rows(),
    )
    db.execute(
        "INSERT INTO attempts (message_id, number, started_at, finished_at, outcome, detail, worker)"
        " SELECT id, 1, created_at, created_at, CASE status WHEN 'sent' THEN 'sent'"
        " WHEN 'unknown' THEN 'unknown' ELSE 'permanent' END, '250 ok', 'bench' FROM messages"
    )
    db.execute(
        "INSERT INTO message_events (message_id, at, status, reason, note)"
        " SELECT id, created_at, status, reason, 'history' FROM messages"
    )
    db.executemany(
        "INSERT INTO messages (kind, channel, recipient_id, recipient_external_id, body,"
        " status, next_attempt_at, created_at, updated_at)"
        " VALUES ('informational', 'email', ?, 'g-1', ?, 'queued', ?, ?, ?)",
        [(recipient, body, ts(tomorrow), ts(now), ts(now))] * 1000,
    )
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def scrape(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("herald_dispatch_pass_duration_seconds_sum") and 'outcome="ok"' in line:
            total = float(line.split()[-1])
        if line.startswith("herald_dispatch_pass_duration_seconds_count") and 'outcome="ok"' in line:
            count = float(line.split()[-1])
    if not count:
        print("no pass recorded")
        return
    print(f"{total / count * 1000:.1f} ms mean over {int(count)} passes")


if __name__ == "__main__":
    if sys.argv[1] == "seed":
        seed(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "scrape":
        scrape(int(sys.argv[2]))
    else:
        sys.exit(__doc__)
