#!/usr/bin/env python3
"""Dispatch benchmark (issue 17): Herald's sending rate beside the wire's limit.

Run by bench/dispatch.sh, which fetches Postfix's smtp-sink and smtp-source and says
how to call each part. Every part works in a fresh folder (and database), sets Herald
up as a new user would (an owner allowed to send without approval, N guardians with
consent imported from CSV, one batch to all of them), and checks what it measured:

  throughput      smtp-source (S sessions, connections reused, 1 KiB messages) into
                  smtp-sink, then `herald dispatch --once` with S SMTP connections into
                  the same sink; the rate of each, their ratio and Herald's peak RSS;
                  then every message of the batch is `sent` with one attempt row
                  (outcome sent) and the sink counted exactly N more messages
  scale           throughput at two sizes (10000 and 100000 queued) and their ratio
  system latency  `herald run` drains the batch while system messages are created
                  through the HTTP API; smtp-sink writes each message to its own file
                  (-d), whose modification time is when the message reached it; the
                  delay from each request to that moment, p50/p99/max
  postgres        one `herald dispatch --once` (or `herald run`) on a fresh database,
                  then three at once, each on its own batch of N
  sms             N SMS through a signed webhook gateway on loopback (this script
                  serves it and checks every signature), then N through the file
                  gateway; the wallet must add up to the point: balance = top-ups -
                  charges, nothing reserved, one reserve and one charge per message,
                  no refund, and every ledger row's balance_after/reserved_after equal
                  to the running sum of the rows before it

It exits non-zero when a check fails or a target is missed.
"""

import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import math
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kill_storm  # noqa: E402  (Db: SQL on either backend; herald(): run a command or stop)

OPERATOR = "bench"
DOMAIN = "herald-bench.example"
PROBE_ADDRESS = f"latency@{DOMAIN}"
PROBE_SUBJECT = "Latency probe"
SMS_TEXT = "The school is closed on Friday. Lessons resume on Monday at 8:00."
SMS_SPARE_POINTS = 7  # topped up beyond what the SMS cost, so the balance ends at exactly this

# Targets from the issue.
EMAIL_RATE = 5000
EMAIL_SHARE = 0.25
PEAK_MIB = 60
LATENCY_P99_S = 1.0
PG_ONE_RATE = 3000
PG_THREE_GAIN = 1.5
SMS_RATE = 2000


def body_1k():
    """About 1 KiB of plain text in short lines, like smtp-source -l 1024."""
    sentence = ("The school will be closed on Friday for the staff training day; lessons "
                "resume on Monday at eight. ")
    words, lines, line = (sentence * 20).split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > 70:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
        if sum(len(x) + 1 for x in lines) + len(line) >= 1024:
            break
    return "\n".join(lines + [line])[:1024]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine():
    """What else the machine is doing matters to every figure: say it."""
    return f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"


def percentile(values, p):
    """Nearest rank: with 100 values, p99 is the 99th smallest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Verdicts:
    """Every check and target of the run, for the summary and the exit code."""

    def __init__(self):
        self.items = []

    def check(self, name, ok):
        self.items.append(("check", name, bool(ok)))
        return ok

    def target(self, name, ok):
        self.items.append(("target", name, bool(ok)))
        return "met" if ok else "MISSED"

    def summary(self):
        print("\nsummary")
        for kind, name, ok in self.items:
            print(f"  {'ok  ' if ok else 'FAIL'} {kind:6} {name}")
        return all(ok for _, _, ok in self.items)


VERDICTS = Verdicts()


# --- Postfix's tools ---------------------------------------------------------------


class Sink:
    """smtp-sink on a loopback port, counting messages (-c); with dump_dir, every message
    is also written to a file of its own there (-d), modified last when it arrived."""

    def __init__(self, postfix, work, dump_dir=None):
        self.port = free_port()
        self.out_path = os.path.join(work, f"smtp-sink-{self.port}.out")
        argv = [os.path.join(postfix, "usr/sbin/smtp-sink"), "-c"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # it refuses to run as root otherwise
        if dump_dir:
            argv += ["-d", os.path.join(dump_dir, "%H%M/")]
        argv += [f"127.0.0.1:{self.port}", "1024"]
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"smtp-sink did not start: {open(self.out_path).read()}")
                time.sleep(0.05)

    def count(self):
        """Messages received so far (smtp-sink's running counter)."""
        with open(self.out_path, "rb") as f:
            f.seek(max(0, os.path.getsize(self.out_path) - 256))
            found = re.findall(rb"mesg=(\d+)", f.read())
        return int(found[-1]) if found else 0

    def settled_count(self):
        """The count once it stops moving (the last answers may still be on their way)."""
        last = self.count()
        for _ in range(20):
            time.sleep(0.1)
            now = self.count()
            if now == last:
                return now
            last = now
        return last

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.out.close()


def smtp_source(args, sink, n, label="smtp-source"):
    """The wire's limit: Postfix's generator, S sessions reusing their connections."""
    before = sink.count()
    argv = [os.path.join(args.postfix, "usr/sbin/smtp-source"), "-s", str(args.connections),
            "-d", "-l", "1024", "-m", str(n), "-f", f"source@{DOMAIN}", "-t", f"sink@{DOMAIN}",
            "-M", DOMAIN, f"127.0.0.1:{sink.port}"]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"smtp-source failed:\n{done.stdout}{done.stderr}")
    got = sink.settled_count() - before
    rate = n / seconds
    print(f"{label}: {n} msgs in {seconds:.1f} s = {rate:.0f}/s "
          f"({args.connections} sessions, connections reused, 1 KiB)")
    VERDICTS.check(f"{label}: the sink counted {got} of {n}", got == n)
    return rate


# --- Herald --------------------------------------------------------------------------


class Db(kill_storm.Db):
    """kill_storm's database helper (rows() on either backend, drop()), on a database
    of this benchmark's own: a file in the work folder, or a fresh PostgreSQL database
    created through `admin` (a URL of a role that may create databases)."""

    def __init__(self, backend, work, admin=None):
        self.backend = backend
        if backend == "sqlite":
            self.path = os.path.join(work, "herald.db")
            self.url = f"sqlite://{self.path}"
            return
        self.admin = admin
        self.name = f"herald_bench_{os.getpid()}"
        self.psql(f"DROP DATABASE IF EXISTS {self.name}", db=admin)
        self.psql(f"CREATE DATABASE {self.name}", db=admin)
        self.url = urllib.parse.urlsplit(admin)._replace(path="/" + self.name).geturl()

    def one(self, sql):
        return self.rows(sql)[0]

    def epoch(self, column):
        """SQL for a timestamp column as seconds since 1970."""
        if self.backend == "sqlite":
            return f"((julianday({column}) - 2440587.5) * 86400.0)"
        return f"extract(epoch FROM {column})"


def herald_env(args, db, smtp_port=None, http_port=None, sms=None):
    """Settings as environment variables (no file): SMTP to the sink with S
    connections, no send window for informational messages, HTTP only when asked."""
    env = dict(os.environ)
    env.update({
        "HERALD__DATABASE__URL": db.url,
        "HERALD__TELEMETRY__LEVEL": "warn",
        "HERALD__HTTP__LISTEN": f"127.0.0.1:{http_port}" if http_port else "",
        "HERALD__KINDS__INFORMATIONAL__RESPECT_SEND_WINDOW": "false",
        "HERALD__DISPATCH__SCHEDULE": "* * * * * *",
        "HERALD__EMAIL__FROM": f"Herald Bench <no-reply@{DOMAIN}>",
    })
    if smtp_port:
        env.update({
            "HERALD__EMAIL__TRANSPORT": "smtp",
            "HERALD__EMAIL__SMTP__HOST": "127.0.0.1",
            "HERALD__EMAIL__SMTP__PORT": str(smtp_port),
            "HERALD__EMAIL__SMTP__TLS": "none",
            "HERALD__EMAIL__SMTP__MAX_CONNECTIONS": str(args.connections),
        })
    if sms:
        env.update({"HERALD__SMS__SEGMENTS_PER_SECOND": "1000000",
                    "HERALD__SMS__PRICE_PER_SEGMENT": "1",
                    "HERALD__SMS__ALLOW_LOOPBACK_HTTP": "true"})
        env.update(sms)
    return env


def set_up_school(args, env, work, n, probe=False):
    """N students, each with a guardian (email, phone, SMS on) and an active contract
    with consent, all in one group; the owner `bench`, allowed to send without approval."""
    probes = [f"staff-latency,staff,Latency Probe,{PROBE_ADDRESS},,no"] if probe else []
    files = kill_storm.school_files(work, n, DOMAIN, probes)
    kill_storm.herald(args, env, "operators", "add", OPERATOR, "--role", "owner")
    kill_storm.herald(args, env, "operators", "grant", OPERATOR, "send_without_approval",
                      "--as", OPERATOR)
    started = time.monotonic()
    kill_storm.herald(args, env, "import", *files, "--as", OPERATOR)
    print(f"  set-up: {n} guardians with consent imported in {time.monotonic() - started:.1f} s")


def queue_batch(args, env, db, n, channel="email"):
    """One batch to every guardian, sent without approval: N messages queued."""
    argv = ["send", "--as", OPERATOR, "--group", "grp-1", "--reach", "guardians",
            "--channel", channel]
    if channel == "email":
        argv += ["--subject", "Friday", "--body", body_1k()]
    else:
        argv += ["--body", SMS_TEXT]
    started = time.monotonic()
    kill_storm.herald(args, env, *argv)
    seconds = time.monotonic() - started
    batch = int(db.one("SELECT max(id) FROM batches")[0])
    counts = dict(db.rows(
        f"SELECT status, count(*) FROM messages WHERE batch_id = {batch} GROUP BY status"))
    if counts != {"queued": str(n)}:
        sys.exit(f"batch {batch}: expected {n} queued {channel} messages, found {counts}")
    print(f"  set-up: batch {batch}, {n} {channel} messages queued in {seconds:.1f} s "
          f"(`herald send`, no approval needed)")
    return batch


class Herald:
    """One Herald process; wait() gives its wall time and peak RSS in KiB.

    The peak is the kernel's high-water mark of the process's own memory (`VmHWM` in
    /proc/PID/status), read every 10 ms until it exits. Not wait4's ru_maxrss: Linux
    counts in it the image the process had before exec, which is a copy of this
    Python process (holding the benchmark's set-up), so it grows with the queue
    whatever Herald does."""

    def __init__(self, args, env, argv, log_path):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.started = time.monotonic()
        self.started_at = time.time()
        self.proc = subprocess.Popen([args.herald, *argv], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.seconds = self.peak_kib = self.code = None
        self.hwm_kib = 0
        self.sampler = threading.Thread(target=self.sample_hwm, daemon=True)
        self.sampler.start()

    def sample_hwm(self):
        """Follows VmHWM of the process while it runs, and of its children: with
        `--herald` naming a wrapper (time, perf), Herald is the wrapper's child."""
        while self.code is None:
            pids = [self.proc.pid]
            while pids:
                pid = pids.pop()
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
                                break
                    with open(f"/proc/{pid}/task/{pid}/children") as f:
                        pids.extend(int(c) for c in f.read().split())
                except (OSError, ValueError):
                    pass
            time.sleep(0.01)

    def wait(self):
        _, status, _ = os.wait4(self.proc.pid, 0)
        self.seconds = time.monotonic() - self.started
        self.code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.code
        self.sampler.join()
        self.peak_kib = self.hwm_kib
        self.log.close()
        if self.code not in (0, -signal.SIGTERM):
            print(f"  herald {' '.join(self.argv)} exited {self.code}:")
            with open(self.log_path) as f:
                print("    " + "    ".join(f.readlines()[-20:]))
            VERDICTS.check(f"herald {' '.join(self.argv)} exited 0", False)
        return self

    def stop(self):
        if self.proc.poll() is None and self.code is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait()


def verify_email(db, batch, n, received, label):
    """Every message of the batch sent, once, with its attempt recorded; the sink got N."""
    statuses = dict(db.rows(
        f"SELECT status, count(*) FROM messages WHERE batch_id = {batch} GROUP BY status"))
    sent = int(statuses.get("sent", 0))
    rows, distinct, sent_rows = (int(x) for x in db.one(
        "SELECT count(*), count(DISTINCT a.message_id), "
        "coalesce(sum(CASE WHEN a.outcome = 'sent' THEN 1 ELSE 0 END), 0) "
        f"FROM attempts a JOIN messages m ON m.id = a.message_id WHERE m.batch_id = {batch}"))
    once = int(db.one(
        f"SELECT count(*) FROM messages WHERE batch_id = {batch} AND status = 'sent' "
        "AND attempts = 1 AND sent_at IS NOT NULL")[0])
    ok = sent == n and rows == distinct == sent_rows == n and once == n and received == n
    print(f"  recorded: {sent}/{n} sent ({once} with attempts = 1 and sent_at), {rows} attempt "
          f"rows ({sent_rows} outcome sent) for {distinct} messages; the sink received "
          f"{received}: {'ok' if ok else 'PROBLEM ' + json.dumps(statuses)}")
    VERDICTS.check(f"{label}: every message sent once and recorded", ok)
    return ok


def attempt_span(db, batch):
    """First attempt's start to last attempt's end, in seconds, from Herald's records."""
    first, last = db.one(f"SELECT min({db.epoch('a.started_at')}), "
                         f"max({db.epoch('a.finished_at')}) FROM attempts a "
                         f"JOIN messages m ON m.id = a.message_id WHERE m.batch_id = {batch}")
    return float(last) - float(first) if first and last else float("nan")


def rate_line(name, n, seconds, reference, extra=""):
    rate = n / seconds
    share = rate / reference
    verdict = VERDICTS.target(
        f"{name} at {n}: >= {EMAIL_RATE}/s and >= {EMAIL_SHARE}x smtp-source",
        rate >= EMAIL_RATE and share >= EMAIL_SHARE)
    print(f"{name}: {n} msgs in {seconds:.1f} s = {rate:.0f}/s ({share:.2f} x smtp-source; "
          f"target >= {EMAIL_RATE}/s and >= {EMAIL_SHARE}x: {verdict})" + extra)
    return rate


def peak_line(name, n, kib):
    mib = kib / 1024
    verdict = VERDICTS.target(f"peak RSS of {name} on {n} < {PEAK_MIB} MiB", mib < PEAK_MIB)
    print(f"peak RSS of {name}: {kib} KiB = {mib:.1f} MiB (target < {PEAK_MIB} MiB: {verdict})")


class Work:
    """A fresh folder, removed afterwards unless --keep or something failed."""

    def __init__(self, args, name):
        self.args = args
        self.path = tempfile.mkdtemp(prefix=f"herald-{name}-")
        self.cleanups = []
        self.folders = [self.path]  # removed with it

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as e:  # noqa: BLE001  a failed clean-up must not hide the run
                print(f"  (clean-up: {e})")
        failed = kind is not None or not all(ok for k, _, ok in VERDICTS.items if k == "check")
        if self.args.keep or failed:
            print(f"  work folder kept: {' '.join(self.folders)}")
        else:
            for folder in self.folders:
                shutil.rmtree(folder, ignore_errors=True)


# --- the parts -----------------------------------------------------------------------


def throughput(args, n):
    """`herald dispatch --once` on N queued emails, beside smtp-source; SQLite.

    With --runs R (default 3), the queued database is copied once and put back before
    each run, and each run of Herald follows one of smtp-source: the figures judged
    are the medians, so one run disturbed by the rest of the machine does not decide.
    """
    print(f"\n== throughput: {n} emails, SQLite, `herald dispatch --once`, "
          f"{args.connections} SMTP connections to smtp-sink, median of {args.runs} "
          f"({machine()})")
    with Work(args, "dispatch") as work:
        sink = Sink(args.postfix, work.path)
        work.cleanups.append(sink.stop)
        db = Db("sqlite", work.path)
        env = herald_env(args, db, smtp_port=sink.port)
        set_up_school(args, env, work.path, n)
        batch = queue_batch(args, env, db, n)
        # The queued database as Herald left it (no process has it open now).
        files = [p for p in (db.path, db.path + "-wal", db.path + "-shm") if os.path.exists(p)]
        for path in files:
            shutil.copyfile(path, path + ".queued")
        references, rates, peaks, spans = [], [], [], []
        for k in range(args.runs):
            if k > 0:
                for path in (db.path + "-wal", db.path + "-shm"):
                    if os.path.exists(path):
                        os.remove(path)
                for path in files:
                    shutil.copyfile(path + ".queued", path)
            references.append(smtp_source(args, sink, n))
            before = sink.count()
            run = Herald(args, env, ["dispatch", "--once"],
                         os.path.join(work.path, f"dispatch.{k}.log"))
            run.wait()
            received = sink.settled_count() - before
            spans.append(attempt_span(db, batch))
            rates.append(n / run.seconds)
            peaks.append(run.peak_kib)
            print(f"  run {k + 1}: herald {rates[-1]:.0f}/s in {run.seconds:.2f} s "
                  f"(attempts span {spans[-1]:.2f} s), peak RSS {run.peak_kib / 1024:.1f} MiB")
            verify_email(db, batch, n, received, f"throughput {n}, run {k + 1}")
        reference = statistics.median(references)
        rate = statistics.median(rates)
        print(f"smtp-source, median of {args.runs}: {reference:.0f}/s "
              f"({', '.join(f'{r:.0f}' for r in references)})")
        rate_line("herald", n, n / rate, reference,
                  f"\n  (median of {', '.join(f'{r:.0f}' for r in rates)}; wall time of the "
                  f"process, start-up included)")
        peak_line("herald dispatch --once", n, max(peaks))
        return rate


def scale(args, small, large):
    rates = {n: throughput(args, n) for n in (small, large)}
    print(f"\nmessages/s at {large} queued vs at {small}: {rates[large]:.0f}/s vs "
          f"{rates[small]:.0f}/s = {rates[large] / rates[small]:.2f}")


def api(port, token, method, path, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read() or b"null")


def system_latency(args, n):
    """`herald run` drains N emails; 100 system messages created through the API on the
    way; smtp-sink dumps each message to a file whose mtime is its arrival."""
    print(f"\n== system messages while {n} emails drain: `herald run`, SQLite, "
          f"{args.probes} system messages through the HTTP API ({machine()})")
    with Work(args, "latency") as work:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else work.path
        dump = tempfile.mkdtemp(prefix="herald-sink-", dir=base)
        os.chmod(dump, 0o777)  # smtp-sink writes as nobody
        work.folders.append(dump)
        sink = Sink(args.postfix, work.path, dump_dir=dump)
        work.cleanups.append(sink.stop)
        db = Db("sqlite", work.path)
        http_port = free_port()
        env = herald_env(args, db, smtp_port=sink.port, http_port=http_port)
        set_up_school(args, env, work.path, n, probe=True)
        token = kill_storm.herald(args, env, "tokens", "create", "platform", "--operator",
                                  OPERATOR, "--as", OPERATOR).split()[-1]
        batch = queue_batch(args, env, db, n)
        reference = smtp_source(args, sink, n, "smtp-source into the sink writing each message")
        source_size = next(dumped_sizes(dump), 0)
        for entry in os.scandir(dump):
            shutil.rmtree(entry.path, ignore_errors=True)
        daemon = Herald(args, env, ["run"], os.path.join(work.path, "run.log"))
        work.cleanups.append(lambda: daemon.code is None and daemon.stop())
        deadline = time.monotonic() + 60
        while sink.count() <= n:  # the batch is on its way
            if time.monotonic() > deadline or daemon.proc.poll() is not None:
                sys.exit("herald run did not start sending within 60 s")
            time.sleep(0.02)
        # Spread the probes over the drain: at most --probe-interval apart, and all
        # within about 70% of the time the batch is left to go at its first half second.
        early = sink.count()
        time.sleep(0.5)
        pace = (sink.count() - early) / 0.5
        left = (2 * n - sink.count()) / pace if pace > 0 else float("inf")
        interval = min(args.probe_interval, 0.7 * left / args.probes)
        print(f"  the batch goes at about {pace:.0f}/s: a system message every "
              f"{interval * 1000:.0f} ms")
        probes, answers, refused = {}, {}, []

        def probe(k, at):
            time.sleep(max(0.0, at - time.time()))
            probes[k] = time.time()
            try:
                status, _ = api(http_port, token, "POST", "/api/v1/notifications", {
                    "recipient": "staff-latency", "subject": f"{PROBE_SUBJECT} {k}",
                    "body": f"A password reset, probe {k}."})
            except (OSError, urllib.error.HTTPError) as e:
                status = str(e)
            answers[k] = time.time() - probes[k]
            if status not in (200, 201, 202):
                refused.append(f"probe {k}: {status}")

        # Each on its own schedule, so that a slow answer does not push the next ones
        # later (and out of the drain).
        begin = time.time()
        threads = [threading.Thread(target=probe, args=(k, begin + k * interval))
                   for k in range(args.probes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if refused:
            print(f"  the API refused {len(refused)} system messages: {refused[:3]}")
        VERDICTS.check("latency: the API took every system message", not refused)
        drained = wait_drained(db, f"batch_id = {batch} OR kind = 'system'",
                               timeout=max(120, n / 50))
        daemon.stop()
        received = sink.settled_count() - n
        arrivals, first, last, size = scan_dump(dump)
        delays = [arrivals[k] - probes[k] for k in probes if k in arrivals]
        during = sum(1 for k in probes if first <= probes[k] <= last)
        herald_delays = [float(d) for (d,) in db.rows(
            f"SELECT {db.epoch('sent_at')} - {db.epoch('created_at')} FROM messages "
            "WHERE kind = 'system' AND sent_at IS NOT NULL")]
        print(f"  a batch message as smtp-sink wrote it: {size} bytes "
              f"(an smtp-source message: {source_size} bytes)")
        print(f"  {args.probes} system messages created every {interval * 1000:.0f} ms; "
              f"{during} of them between the batch's first and last arrival at the sink; "
              f"the API answered in p50 {percentile(answers.values(), 50) * 1000:.0f} ms, "
              f"p99 {percentile(answers.values(), 99) * 1000:.0f} ms")
        if delays:
            p99 = percentile(delays, 99)
            verdict = VERDICTS.target("system message p99 to the sink <= 1 s while the batch "
                                      "drains",
                                      p99 <= LATENCY_P99_S and len(delays) == args.probes)
            print(f"system message to the sink: p50 {percentile(delays, 50) * 1000:.0f} ms, "
                  f"p99 {p99 * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms over {len(delays)} "
                  f"(target p99 <= {LATENCY_P99_S * 1000:.0f} ms: {verdict})")
        if herald_delays:
            print(f"  Herald's own record (sent_at - created_at): p50 "
                  f"{percentile(herald_delays, 50) * 1000:.0f} ms, "
                  f"p99 {percentile(herald_delays, 99) * 1000:.0f} ms")
        VERDICTS.check(f"latency: all {args.probes} system messages reached the sink",
                       len(delays) == args.probes)
        VERDICTS.check(f"latency: all {args.probes} created while the batch drained",
                       during == args.probes)
        if VERDICTS.check("latency: the batch and the system messages drained",
                          drained is not None):
            span = last - first
            print(f"herald run: {n} msgs in {span:.1f} s from the first to the last at the "
                  f"sink = {n / span:.0f}/s ({n / span / reference:.2f} x smtp-source into "
                  f"the sink writing each message); "
                  f"{last - daemon.started_at:.1f} s from the daemon's start")
        peak_line("herald run", n, daemon.peak_kib)
        verify_email(db, batch, n, received - len(arrivals), "latency batch")


def wait_drained(db, which, timeout, started=None):
    """Seconds until no message `which` (an SQL condition, or a batch id) is queued or
    sending (None: timed out)."""
    started = started or time.monotonic()
    if isinstance(which, int):
        which = f"batch_id = {which}"
    while time.monotonic() - started < timeout:
        left = int(db.one(f"SELECT count(*) FROM messages WHERE ({which}) "
                          "AND status IN ('queued', 'sending')")[0])
        if left == 0:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def dumped_sizes(dump):
    for folder in os.scandir(dump):
        for entry in os.scandir(folder.path):
            yield entry.stat().st_size


def scan_dump(dump):
    """Arrival of each probe by number; first and last arrival of a batch message; the
    size of one batch message."""
    arrivals, first, last, size = {}, float("inf"), 0.0, 0
    marker = f"X-Rcpt-Args: <{PROBE_ADDRESS}>".encode()
    pattern = re.compile(rb"^Subject: " + PROBE_SUBJECT.encode() + rb" (\d+)\r?$", re.M)
    for folder in os.scandir(dump):
        for entry in os.scandir(folder.path):
            at = entry.stat().st_mtime_ns / 1e9
            with open(entry.path, "rb") as f:
                head = f.read(4096)
            if marker in head:
                found = pattern.search(head)
                if found:
                    arrivals[int(found.group(1))] = at
            else:
                first, last = min(first, at), max(last, at)
                size = size or entry.stat().st_size
    return arrivals, first, last, size


def postgres(args, n):
    """One instance, then three, on one fresh PostgreSQL database, each on a batch of N."""
    how = ["dispatch", "--once"] if args.pg_command == "once" else ["run"]
    print(f"\n== PostgreSQL: {n} emails with one `herald {' '.join(how)}`, then {n} more "
          f"with three at once ({machine()})")
    with Work(args, "pg") as work:
        sink = Sink(args.postfix, work.path)
        work.cleanups.append(sink.stop)
        db = Db("postgres", work.path, admin=args.postgres)
        work.cleanups.append(db.drop)
        env = herald_env(args, db, smtp_port=sink.port)
        set_up_school(args, env, work.path, n)
        reference = smtp_source(args, sink, n)
        rates = {}
        for instances in (1, 3):
            batch = queue_batch(args, env, db, n)
            before = sink.count()
            started = time.monotonic()
            runs = [Herald(args, env, how, os.path.join(work.path, f"pg-{instances}-{k}.log"))
                    for k in range(instances)]
            if how == ["run"]:
                seconds = wait_drained(db, batch, timeout=max(120, n / 50), started=started)
                for r in runs:
                    r.stop()
                if seconds is None:
                    VERDICTS.check(f"postgres x{instances}: the batch drained", False)
                    seconds = time.monotonic() - started
            else:
                for r in runs:
                    r.wait()
                seconds = time.monotonic() - started
            received = sink.settled_count() - before
            rate = rates[instances] = n / seconds
            workers = db.rows(f"SELECT a.worker, count(*) FROM attempts a JOIN messages m "
                              f"ON m.id = a.message_id WHERE m.batch_id = {batch} "
                              "GROUP BY a.worker ORDER BY 2 DESC")
            if instances == 1:
                verdict = VERDICTS.target(f"postgres, one instance >= {PG_ONE_RATE}/s",
                                          rate >= PG_ONE_RATE)
                print(f"herald x1 (postgres): {n} msgs in {seconds:.1f} s = {rate:.0f}/s "
                      f"({rate / reference:.2f} x smtp-source; target >= {PG_ONE_RATE}/s: "
                      f"{verdict})")
            else:
                gain = rate / rates[1]
                verdict = VERDICTS.target(
                    f"postgres, three instances >= {PG_THREE_GAIN}x one", gain >= PG_THREE_GAIN)
                print(f"herald x3 (postgres): {n} msgs in {seconds:.1f} s = {rate:.0f}/s "
                      f"= {gain:.2f} x one instance (target >= {PG_THREE_GAIN}x: {verdict})")
            print(f"  attempts per instance: {', '.join(c for _, c in workers)}; peak RSS "
                  f"{', '.join(f'{r.peak_kib / 1024:.1f}' for r in runs)} MiB")
            verify_email(db, batch, n, received, f"postgres x{instances}")


# --- SMS -----------------------------------------------------------------------------


class WebhookGateway:
    """The school's own gateway (sms.gateway = "webhook") on loopback: checks each
    request's X-Herald-Signature, takes each Idempotency-Key once, answers 200 {"id"}."""

    def __init__(self, secret):
        self.secret = secret.encode()
        self.keys = set()
        self.repeats = self.bad_signatures = 0
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def main():
            server = await asyncio.start_server(self.session, "127.0.0.1", 0, backlog=512)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await server.serve_forever()

        threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True).start()
        ready.wait()

    async def session(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                status, answer = self.take(headers, body)
                data = json.dumps(answer).encode()
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s"
                             % (status, b"OK" if status == 200 else b"Unauthorized",
                                len(data), data))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def take(self, headers, body):
        expected = b"sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(headers.get(b"x-herald-signature", b""), expected):
            self.bad_signatures += 1
            return 401, {"error": "bad_signature"}
        key = json.loads(body)["id"]
        if key in self.keys:
            self.repeats += 1
        self.keys.add(key)
        return 200, {"id": f"gw-{key}"}


def verify_wallet(db, topped_up, label):
    """The wallet to the point, and the ledger row by row."""
    balance, reserved = (int(x) for x in db.one("SELECT balance, reserved FROM wallet"))
    ledger = db.rows("SELECT entry, points, message_id, balance_after, reserved_after "
                     "FROM wallet_ledger ORDER BY id")
    b = r = 0
    out_of_step = 0
    per_message = collections.defaultdict(collections.Counter)
    totals = collections.Counter()
    for entry, points, message, balance_after, reserved_after in ledger:
        p = int(points)
        totals[entry] += p
        if entry == "top_up":
            b += p
        elif entry == "reserve":
            b, r = b - p, r + p
        elif entry == "charge":
            r -= p
        elif entry == "refund":
            b, r = b + p, r - p
        if (b, r) != (int(balance_after), int(reserved_after)):
            out_of_step += 1
        if message:
            per_message[message][entry] += p
    sent = db.rows("SELECT id, segments FROM messages WHERE channel = 'sms' AND status = 'sent'")
    exact = sum(1 for m, segments in sent
                if per_message[m] == collections.Counter(reserve=int(segments),
                                                         charge=int(segments)))
    held = int(db.one("SELECT coalesce(sum(reserved_points), 0) FROM messages")[0])
    charges = totals["charge"]
    ok = (totals["top_up"] == topped_up and balance == topped_up - charges and reserved == 0
          and held == 0 and totals["refund"] == 0 and out_of_step == 0
          and (b, r) == (balance, reserved)
          and exact == len(sent) and charges == sum(int(s) for _, s in sent))
    print(f"  wallet: top-ups {totals['top_up']} - charges {charges} = balance {balance} "
          f"(expected {topped_up - charges}); reserved {reserved}, held by messages {held}; "
          f"refunds {totals['refund']}; {exact}/{len(sent)} sent SMS with exactly one reserve and "
          f"one charge of their segments; ledger rows out of step with the running sum: "
          f"{out_of_step} of {len(ledger)}: {'ok' if ok else 'PROBLEM'}")
    VERDICTS.check(f"{label}: the wallet adds up", ok)


def sms(args, n):
    print(f"\n== SMS: {n} through a webhook gateway on loopback, then {n} through the file "
          f"gateway, `herald dispatch --once`, SQLite ({machine()})")
    with Work(args, "sms") as work:
        secret = os.urandom(16).hex()
        gateway = WebhookGateway(secret)
        sms_file = os.path.join(work.path, "sms.jsonl")
        db = Db("sqlite", work.path)
        settings = {"HERALD__SMS__GATEWAY": "webhook",
                    "HERALD__SMS__WEBHOOK__URL": f"http://127.0.0.1:{gateway.port}/sms",
                    "HERALD__SMS__WEBHOOK__SECRET": secret,
                    "HERALD__SMS__FILE__PATH": sms_file}
        env = herald_env(args, db, sms=settings)
        set_up_school(args, env, work.path, n)
        topped_up = 0
        for name in ("webhook", "file"):
            env["HERALD__SMS__GATEWAY"] = name
            kill_storm.herald(args, env, "wallet", "top-up", str(n + SMS_SPARE_POINTS),
                              "--as", OPERATOR, "--note", f"bench {name}")
            topped_up += n + SMS_SPARE_POINTS
            batch = queue_batch(args, env, db, n, channel="sms")
            run = Herald(args, env, ["dispatch", "--once"],
                         os.path.join(work.path, f"sms-{name}.log")).wait()
            rate = n / run.seconds
            verdict = VERDICTS.target(f"SMS through the {name} gateway >= {SMS_RATE}/s",
                                      rate >= SMS_RATE)
            print(f"herald sms ({name} gateway): {n} SMS in {run.seconds:.1f} s = {rate:.0f}/s "
                  f"(target >= {SMS_RATE}/s: {verdict}); peak RSS {run.peak_kib / 1024:.1f} MiB")
            statuses = dict(db.rows(f"SELECT status, count(*) FROM messages "
                                    f"WHERE batch_id = {batch} GROUP BY status"))
            attempts = int(db.one(f"SELECT count(*) FROM attempts a JOIN messages m ON "
                                  f"m.id = a.message_id WHERE m.batch_id = {batch} "
                                  "AND a.outcome = 'sent'")[0])
            if name == "webhook":
                got, extra = len(gateway.keys), (f", {gateway.repeats} repeated keys, "
                                                  f"{gateway.bad_signatures} bad signatures")
                clean = gateway.repeats == gateway.bad_signatures == 0
            else:
                with open(sms_file) as f:
                    ids = [json.loads(line)["id"] for line in f]
                got, extra = len(set(ids)), f", {len(ids) - len(set(ids))} written twice"
                clean = len(ids) == len(set(ids))
            ok = statuses == {"sent": str(n)} and attempts == n and got == n and clean
            print(f"  recorded: {statuses}, {attempts} sent attempts; the gateway took {got}"
                  f"{extra}: {'ok' if ok else 'PROBLEM'}")
            VERDICTS.check(f"SMS ({name}): every message sent once and recorded", ok)
            verify_wallet(db, topped_up, f"SMS ({name})")


# --- main ----------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--herald", required=True, help="the herald binary")
    parser.add_argument("--postfix", required=True, help="where postfix's package is unpacked")
    parser.add_argument("counts", nargs="*", type=int,
                        help="N (or SMALL LARGE with --scale)")
    parser.add_argument("--scale", action="store_true", help="10000 vs 100000 queued")
    parser.add_argument("--system-latency", action="store_true")
    parser.add_argument("--postgres", metavar="URL")
    parser.add_argument("--pg-command", choices=["once", "run"], default="once",
                        help="what the PostgreSQL instances run: dispatch --once (default) "
                             "or herald run until the batch drained")
    parser.add_argument("--sms", action="store_true")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3,
                        help="throughput: runs of each on the same queue; medians judged")
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--probe-interval", type=float, default=0.1)
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    args = parser.parse_args()
    counts = args.counts
    chosen = args.scale or args.system_latency or args.postgres or args.sms
    if args.all or args.scale:
        small, large = (counts + [10000, 100000][len(counts):])[:2]
        scale(args, small, large)
    if args.all or args.system_latency:
        system_latency(args, 100000 if args.all or not counts else counts[0])
    if args.postgres:
        postgres(args, 100000 if args.all or not counts else counts[0])
    if args.all or args.sms:
        sms(args, 20000 if args.all or not counts else counts[0])
    if not chosen and not args.all:
        throughput(args, counts[0] if counts else 100000)
    sys.exit(0 if VERDICTS.summary() else 1)


if __name__ == "__main__":
    main()
