//! A small SMTP server on a loopback port for the tests: it records what it receives
//! and can be told, per recipient, to answer 4xx or 5xx, to stall, or to drop the
//! connection after DATA.
//!
//! Written for the tests rather than taken from a crate (mailin-embedded): the faults
//! that matter here sit at exact points of the transaction (a reply to RCPT, silence
//! or a dropped socket after the final dot) and a server of our own makes each one a
//! line of code.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as sent (headers and body, dot-unstuffed).
    pub data: String,
}

impl Received {
    /// The value of a header (first occurrence), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.data
            .split("\r\n")
            .take_while(|l| !l.is_empty())
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }
}

/// What the server does to the next transaction for a recipient.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer RCPT with this code and text (e.g. 451, 550 5.1.1).
    RcptReply(u16, &'static str),
    /// Take the data, then close the connection without a reply.
    DropAfterData,
    /// Take the data, then say nothing for this long before accepting.
    StallAfterData(Duration),
    /// Take the message (it counts as received), tell the gate, and say nothing until
    /// the gate opens: the moment between a server's acceptance and the sender's
    /// record of it.
    AcceptThenWait(Arc<Gate>),
}

/// Where a test meets the server inside a transaction (see [`Fault::AcceptThenWait`]).
#[derive(Debug, Default)]
pub struct Gate {
    /// Notified when the message has been received.
    pub arrived: tokio::sync::Notify,
    /// Notify to let the server answer.
    pub open: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    faults: HashMap<String, VecDeque<Fault>>,
    every_data_stall: Option<Duration>,
}

/// The running server; it stops when dropped.
pub struct SmtpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _ = session(socket, state).await;
                });
            }
        });
        SmtpServer { addr, state, task }
    }

    /// Queues a fault for the next transaction to `recipient`.
    pub fn fail_next(&self, recipient: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(recipient.to_ascii_lowercase())
            .or_default()
            .push_back(fault);
    }

    /// Makes every accepted message wait this long before its final reply.
    pub fn slow_down(&self, stall: Duration) {
        self.state.lock().unwrap().every_data_stall = Some(stall);
    }

    /// Everything accepted so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// What was accepted for `recipient`.
    pub fn received_for(&self, recipient: &str) -> Vec<Received> {
        let r = recipient.to_ascii_lowercase();
        self.received()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(&r)))
            .collect()
    }
}

fn address(arg: &str) -> String {
    let start = arg.find('<').map(|i| i + 1).unwrap_or(0);
    let end = arg.find('>').unwrap_or(arg.len());
    arg[start..end].to_ascii_lowercase()
}

async fn session(socket: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 herald-test ESMTP\r\n").await?;
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut pending: Option<Fault> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end();
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write
                .write_all(b"250-herald-test\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
                .await?;
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&command[10..]);
            to.clear();
            pending = None;
            write.write_all(b"250 2.1.0 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = address(&command[8..]);
            let fault = state
                .lock()
                .unwrap()
                .faults
                .get_mut(&rcpt)
                .and_then(VecDeque::pop_front);
            match fault {
                Some(Fault::RcptReply(code, text)) => {
                    write
                        .write_all(format!("{code} {text}\r\n").as_bytes())
                        .await?;
                }
                other => {
                    pending = other;
                    to.push(rcpt);
                    write.write_all(b"250 2.1.5 OK\r\n").await?;
                }
            }
        } else if upper == "DATA" {
            if to.is_empty() {
                write
                    .write_all(b"503 5.5.1 no valid recipients\r\n")
                    .await?;
                continue;
            }
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            let stall = state.lock().unwrap().every_data_stall;
            let mut gate = None;
            match pending.take() {
                Some(Fault::DropAfterData) => return Ok(()),
                Some(Fault::StallAfterData(d)) => tokio::time::sleep(d).await,
                Some(Fault::AcceptThenWait(g)) => gate = Some(g),
                _ => {
                    if let Some(d) = stall {
                        tokio::time::sleep(d).await;
                    }
                }
            }
            let n = {
                let mut s = state.lock().unwrap();
                s.received.push(Received {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
                s.received.len()
            };
            if let Some(gate) = gate {
                gate.arrived.notify_one();
                gate.open.notified().await;
            }
            write
                .write_all(format!("250 2.0.0 OK queued as {n}\r\n").as_bytes())
                .await?;
        } else if upper.starts_with("RSET") {
            to.clear();
            pending = None;
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"502 5.5.2 not implemented\r\n").await?;
        }
    }
}
