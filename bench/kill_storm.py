#!/usr/bin/env python3
"""The kill storm: `herald run` killed with SIGKILL while it sends, then counted.

Sends N emails and N SMS (one of each to N guardians) through servers on loopback
that this script runs and counts: an SMTP server, and an SMS gateway that speaks
either SMSAPI (which refuses a repeated `idx`) or Twilio (which has no idempotency
key: a repeat is a second SMS, paid twice). While the messages go, it kills a
random `herald run` instance with SIGKILL K times at random moments and starts it
again; then it lets the queue drain and prints, from the servers' side and from
Herald's database:

  delivered   messages that reached the server (at least once)
  duplicates  copies beyond the first that reached the server
  unknown     messages Herald holds for a person (handed to a gateway that would
              not know a repeat, answer never recorded)
  lost        messages Herald recorded as sent that never arrived, or that are
              still queued or sending after the drain
  wallet      top-ups - charges = balance + reserved; reserves = charges + refunds
              + reserved; the reserved points all belong to messages in flight or
              unknown

It exits non-zero when anything is lost, an SMS reached a gateway twice, more
emails came twice than sends could be in flight at the kills (kills x the
dispatcher's tasks in flight, 2 x (SMTP connections + 8)), or the wallet does not
add up. Run by bench/kill-storm.sh; see there for the arguments.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import shutil
import signal
import socketserver
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How long the servers take before answering: long enough that a kill often lands
# between the server's acceptance and Herald's record of it, the moment that matters.
SERVER_DELAY = (0.002, 0.030)
LEASE_S = 14
SMTP_CONNECTIONS = 4


class Tally:
    """What the servers received, by address."""

    def __init__(self):
        self.lock = threading.Lock()
        self.emails = collections.Counter()
        self.sms = collections.Counter()
        self.idx_seen = set()
        self.idx_repeats = 0

    def email(self, address):
        with self.lock:
            self.emails[address] += 1

    def sms_once(self, address, idx):
        """SMSAPI with check_idx: a known idx is refused (error 53), not sent again."""
        with self.lock:
            if idx in self.idx_seen:
                self.idx_repeats += 1
                return False
            self.idx_seen.add(idx)
            self.sms[address] += 1
            return True

    def sms_always(self, address):
        with self.lock:
            self.sms[address] += 1


# --- the SMTP server ---------------------------------------------------------------


async def smtp_session(reader, writer, tally):
    def send(line):
        writer.write(line.encode() + b"\r\n")

    send("220 storm ESMTP")
    rcpts = []
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line.decode("utf-8", "replace").strip()
            upper = verb.upper()
            if upper.startswith("EHLO"):
                send("250-storm")
                send("250-8BITMIME")
                send("250 SMTPUTF8")
            elif upper.startswith("HELO"):
                send("250 storm")
            elif upper.startswith("MAIL FROM"):
                rcpts = []
                send("250 OK")
            elif upper.startswith("RCPT TO"):
                rcpts.append(verb.split(":", 1)[1].strip().strip("<>").split(">")[0].lower())
                send("250 OK")
            elif upper == "DATA":
                send("354 go on")
                await writer.drain()
                while True:
                    data = await reader.readline()
                    if not data or data == b".\r\n":
                        break
                if not data:
                    break
                await asyncio.sleep(random.uniform(*SERVER_DELAY))
                # Accepted here: from now on the message has arrived, whatever
                # happens to the sender before it reads the answer.
                for r in rcpts:
                    tally.email(r)
                send("250 OK queued")
            elif upper == "RSET":
                rcpts = []
                send("250 OK")
            elif upper == "NOOP":
                send("250 OK")
            elif upper == "QUIT":
                send("221 bye")
                await writer.drain()
                break
            else:
                send("502 not here")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def start_smtp(tally):
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port = []

    async def main():
        server = await asyncio.start_server(
            lambda r, w: smtp_session(r, w, tally), "127.0.0.1", 0
        )
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        async with server:
            await server.serve_forever()

    threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True).start()
    ready.wait()
    return port[0]


# --- the SMS gateways --------------------------------------------------------------


def start_gateway(tally):
    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            time.sleep(random.uniform(*SERVER_DELAY))
            if self.path.startswith("/sms.do"):
                to = "+" + form["to"][0]
                if tally.sms_once(to, form["idx"][0]):
                    self.answer(
                        200,
                        {"count": 1, "list": [{"id": form["idx"][0], "points": 1,
                                               "parts": 1, "status": "QUEUE"}]},
                    )
                else:
                    self.answer(200, {"error": 53, "message": "idx already used"})
            elif self.path.endswith("/Messages.json"):
                tally.sms_always(form["To"][0])
                self.answer(201, {"sid": "SM%032x" % random.getrandbits(128),
                                  "status": "queued", "num_segments": "1"})
            else:
                self.answer(404, {"error": "not here"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    server.daemon_threads = True
    # A killed Herald leaves answers with nobody to read them: not worth a traceback.
    server.handle_error = lambda request, address: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


# --- the database ------------------------------------------------------------------


class Db:
    def __init__(self, backend, work):
        self.backend = backend
        if backend == "sqlite":
            self.path = os.path.join(work, "storm.db")
            self.url = f"sqlite://{self.path}"
        else:
            base = os.environ.get("HERALD_STORM_POSTGRES",
                                  "postgres://postgres@127.0.0.1:5432/postgres")
            self.admin = base
            self.name = f"herald_storm_{os.getpid()}"
            self.psql(f"DROP DATABASE IF EXISTS {self.name}", db=base)
            self.psql(f"CREATE DATABASE {self.name}", db=base)
            self.url = base.rsplit("/", 1)[0] + "/" + self.name

    def psql(self, sql, db=None):
        out = subprocess.run(
            ["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
             db or self.url, "-c", sql],
            check=True, capture_output=True, text=True,
        ).stdout
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    def rows(self, sql):
        if self.backend == "sqlite":
            con = sqlite3.connect(self.path, timeout=30)
            try:
                return [tuple(str(v) if v is not None else "" for v in row)
                        for row in con.execute(sql).fetchall()]
            finally:
                con.close()
        return self.psql(sql)

    def drop(self):
        if self.backend == "postgres":
            self.psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)", db=self.admin)


# --- Herald ------------------------------------------------------------------------


def herald_env(args, db, work, smtp_port, gateway_port):
    env = dict(os.environ)
    env.update({
        "HERALD__DATABASE__URL": db.url,
        "HERALD__TELEMETRY__LEVEL": "warn",
        "HERALD__HTTP__LISTEN": "",
        "HERALD__DISPATCH__SCHEDULE": "* * * * * *",
        "HERALD__DISPATCH__LEASE": f"{LEASE_S}s",
        "HERALD__DISPATCH__RETRY_BASE": "1s",
        "HERALD__DISPATCH__RETRY_MAX": "2s",
        "HERALD__DISPATCH__MAX_ATTEMPTS": "50",
        "HERALD__DISPATCH__SHUTDOWN_GRACE": "5s",
        "HERALD__KINDS__INFORMATIONAL__RESPECT_SEND_WINDOW": "false",
        "HERALD__EMAIL__TRANSPORT": "smtp",
        "HERALD__EMAIL__SMTP__HOST": "127.0.0.1",
        "HERALD__EMAIL__SMTP__PORT": str(smtp_port),
        "HERALD__EMAIL__SMTP__TIMEOUT": "3s",
        "HERALD__EMAIL__SMTP__MAX_CONNECTIONS": str(SMTP_CONNECTIONS),
        "HERALD__SMS__GATEWAY": args.gateway,
        "HERALD__SMS__TIMEOUT": "3s",
        "HERALD__SMS__SEGMENTS_PER_SECOND": "1000",
        "HERALD__SMS__ALLOW_LOOPBACK_HTTP": "true",
    })
    if args.gateway == "smsapi":
        env["HERALD__SMS__SMSAPI__URL"] = f"http://127.0.0.1:{gateway_port}/sms.do"
        env["HERALD__SMS__SMSAPI__TOKEN"] = "storm-token"
    else:
        env["HERALD__SMS__TWILIO__URL"] = f"http://127.0.0.1:{gateway_port}"
        env["HERALD__SMS__TWILIO__ACCOUNT_SID"] = "AC" + "0" * 32
        env["HERALD__SMS__TWILIO__AUTH_TOKEN"] = "storm-token"
    return env


def herald(args, env, *argv, capture=True):
    done = subprocess.run([args.herald, *argv], env=env, capture_output=capture, text=True)
    if done.returncode != 0:
        sys.exit(f"herald {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def school_files(work, n, domain="example.pl", extra_recipients=()):
    """Writes the CSV files of a school of N students, each with a guardian (email,
    phone, SMS on) and an active contract with consent, all in one group; returns
    their paths."""
    rows = {
        "recipients.csv": ["external_id,role,name,email,phone,sms_enabled"]
        + [line for i in range(n) for line in (
            f"s-{i},student,Student {i},,,no",
            f"g-{i},guardian,Guardian {i},guardian{i}@{domain},"
            f"+48 600 {i // 1000:03d} {i % 1000:03d},yes")]
        + list(extra_recipients),
        "groups.csv": ["external_id,name", "grp-1,Everyone"],
        "guardianships.csv": ["guardian_id,student_id"] + [f"g-{i},s-{i}" for i in range(n)],
        "memberships.csv": ["group_id,member_id"] + [f"grp-1,s-{i}" for i in range(n)],
        "contracts.csv": ["external_id,student_id,status,consent"]
        + [f"c-{i},s-{i},active,yes" for i in range(n)],
    }
    files = []
    for name, lines in rows.items():
        path = os.path.join(work, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        files.append(path)
    return files


def prepare(args, env, work):
    n = args.messages
    files = school_files(work, n)
    herald(args, env, "operators", "add", "storm", "--role", "owner")
    herald(args, env, "import", *files, "--as", "storm")
    # Exactly what the SMS will cost: a point spent twice would leave one waiting
    # for credit, and the drain would not finish.
    herald(args, env, "wallet", "top-up", str(n), "--as", "storm", "--note", "storm")
    herald(args, env, "send", "--as", "storm", "--group", "grp-1", "--reach", "guardians",
           "--channel", "both", "--subject", "Storm", "--body", "The school is closed on Friday.")
    batches = json.loads(herald(args, env, "outbox", "--json"))
    for batch in batches:
        herald(args, env, "approve", str(batch["id"]), "--as", "storm")


def start_instance(args, env, work, k):
    log = open(os.path.join(work, f"herald-{k}.log"), "a")
    return subprocess.Popen([args.herald, "run"], env=env, stdout=log, stderr=log)


def in_flight(db):
    return int(db.rows(
        "SELECT count(*) FROM messages WHERE status IN ('queued', 'sending')")[0][0])


def storm(args, env, work, db):
    rng = random.Random(args.seed)
    procs = [start_instance(args, env, work, k) for k in range(args.instances)]
    kills = 0
    started = time.monotonic()
    try:
        while kills < args.kills:
            time.sleep(rng.uniform(0.3, 2.0))
            if in_flight(db) == 0:
                break
            k = rng.randrange(args.instances)
            procs[k].send_signal(signal.SIGKILL)
            procs[k].wait()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.5))
            procs[k] = start_instance(args, env, work, k)
        # The drain: claims of killed instances come back when their lease runs out.
        deadline = time.monotonic() + args.drain_timeout
        while in_flight(db) > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    return kills, time.monotonic() - started


def report(args, db, tally, kills, seconds):
    n = args.messages
    messages = db.rows("SELECT channel, status, address FROM messages")
    status = collections.Counter((c, s) for c, s, _ in messages)
    ok = True
    label = f"{db.backend}, {args.instances} instance(s), {args.gateway}"
    print(f"kill storm: {label}: {n} emails + {n} SMS, {kills} kills, {seconds:.0f} s")
    problems = []

    def channel_report(channel, received, bound_dups):
        nonlocal ok
        ours = [(s, a) for c, s, a in messages if c == channel]
        delivered = sum(1 for a in received if received[a] > 0)
        dups = sum(c - 1 for c in received.values() if c > 1)
        sent = [a for s, a in ours if s in ("sent", "delivered")]
        lost_sent = [a for a in sent if received.get(normal(channel, a), 0) == 0]
        stuck = [a for s, a in ours if s in ("queued", "sending")]
        unknown = [a for s, a in ours if s == "unknown"]
        unknown_arrived = sum(1 for a in unknown if received.get(normal(channel, a), 0) > 0)
        other = collections.Counter(s for s, _ in ours
                                    if s not in ("sent", "delivered", "unknown", "queued", "sending"))
        lost = len(lost_sent) + len(stuck)
        print(f"  {channel:5}  delivered {delivered}/{n}  duplicates {dups}"
              f" (allowed {bound_dups})  unknown {len(unknown)}"
              f" (of which arrived {unknown_arrived})  lost {lost}"
              + (f"  other {dict(other)}" if other else ""))
        if lost:
            problems.append(f"{channel}: {len(lost_sent)} recorded sent but never arrived, "
                            f"{len(stuck)} still queued or sending")
        if dups > bound_dups:
            problems.append(f"{channel}: {dups} duplicates, more than {bound_dups}")
        if other:
            problems.append(f"{channel}: unexpected statuses {dict(other)}")
        return dups

    # Emails: a repeat carries the same Message-ID; at most the sends in flight when
    # an instance died may go twice: those on a connection, and those whose answer
    # came and whose record was waiting for its group's commit (a dispatcher claims
    # two messages per send slot, its SMTP connections plus eight).
    channel_report("email", tally.emails, kills * 2 * (SMTP_CONNECTIONS + 8))
    # SMS: never twice through either gateway (SMSAPI refuses a known idx; Twilio's
    # would be paid twice, so Herald holds those as unknown instead).
    channel_report("sms", tally.sms, 0)
    paid = sum(tally.sms.values())
    if args.gateway == "smsapi":
        print(f"         repeats refused by idx {tally.idx_repeats}")
    wallet = db.rows("SELECT balance, reserved FROM wallet")[0]
    balance, reserved = int(wallet[0]), int(wallet[1])
    ledger = dict((e, int(p)) for e, p in db.rows(
        "SELECT entry, coalesce(sum(points), 0) FROM wallet_ledger GROUP BY entry"))
    top_ups, charges = ledger.get("top_up", 0), ledger.get("charge", 0)
    reserves, refunds = ledger.get("reserve", 0), ledger.get("refund", 0)
    held = int(db.rows("SELECT coalesce(sum(reserved_points), 0) FROM messages")[0][0])
    orphans = int(db.rows(
        "SELECT count(*) FROM messages WHERE reserved_points > 0 "
        "AND status NOT IN ('queued', 'sending', 'unknown')")[0][0])
    invariant = (top_ups - charges == balance + reserved
                 and reserves == charges + refunds + reserved
                 and held == reserved and orphans == 0)
    print(f"  wallet top-ups {top_ups} - charges {charges} = balance {balance} + reserved"
          f" {reserved}; reserves {reserves} = charges + refunds {refunds} + reserved;"
          f" held by messages {held}, by finished ones {orphans}: "
          + ("true" if invariant else "FALSE"))
    print(f"  gateway accepted {paid} SMS; Herald charged {charges} points")
    if not invariant:
        problems.append("the wallet does not add up")
    if charges > paid:
        problems.append(f"charged {charges} points for {paid} SMS the gateway accepted")
    for p in problems:
        print(f"  PROBLEM: {p}")
    return not problems


def normal(channel, address):
    return address.lower() if channel == "email" else address.replace(" ", "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--herald", required=True, help="the herald binary")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--gateway", choices=["smsapi", "twilio"], default="twilio")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--drain-timeout", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    work = tempfile.mkdtemp(prefix="herald-storm-")
    tally = Tally()
    smtp_port = start_smtp(tally)
    gateway_port = start_gateway(tally)
    db = Db(args.backend, work)
    ok = False
    try:
        env = herald_env(args, db, work, smtp_port, gateway_port)
        prepare(args, env, work)
        kills, seconds = storm(args, env, work, db)
        ok = report(args, db, tally, kills, seconds)
        print(f"  seed {args.seed}" + (f", logs in {work}" if args.keep or not ok else ""))
    finally:
        db.drop()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
