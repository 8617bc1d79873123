//! The `file` gateway: each SMS becomes one JSON line in a file, so Herald runs with
//! no gateway at all (the default on a fresh machine).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{Gateway, OutgoingSms};
use crate::channels::SendOutcome;

/// Appends SMS to a file.
pub struct FileGateway {
    path: PathBuf,
    // One writer at a time, so lines never interleave.
    lock: Arc<Mutex<()>>,
}

impl FileGateway {
    /// A gateway writing to `path` (created with its folder when needed).
    pub fn new(path: PathBuf) -> FileGateway {
        FileGateway {
            path,
            lock: Arc::new(Mutex::new(())),
        }
    }
}

#[async_trait]
impl Gateway for FileGateway {
    fn recognises_repeats(&self) -> bool {
        // Each line carries the message's key: a repeat is recognisable in the file.
        true
    }

    async fn probe(&self) -> crate::channels::Probe {
        use crate::channels::Probe;
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let ok = if self.path.exists() {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .map(drop)
        } else {
            crate::channels::writable(dir)
        };
        match ok {
            Ok(()) => Probe::Ok(format!("SMS are written to {}", self.path.display())),
            Err(e) => Probe::Failed(format!("{} cannot be written: {e}", self.path.display())),
        }
    }

    async fn send(&self, sms: &OutgoingSms<'_>) -> SendOutcome {
        let key = sms.idempotency_key();
        let mut line = serde_json::json!({
            "id": key,
            "to": sms.to.e164(),
            "sender": sms.sender,
            "text": sms.text,
            "encoding": sms.size.encoding,
            "segments": sms.size.segments,
        })
        .to_string();
        line.push('\n');
        // Waited for here, where a send given up on (a dispatcher stopping) stops
        // waiting; held until the append has finished, even if the send is given up
        // meanwhile, so that lines never interleave.
        let guard = Arc::clone(&self.lock).lock_owned().await;
        // One hop to a blocking thread for the whole append: tokio's file calls
        // each take one, and four of them per SMS, one SMS at a time under the
        // lock, were what bounded this gateway.
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let appended = append(&path, line.as_bytes());
            drop(guard);
            appended
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match written {
            Ok(()) => SendOutcome::Sent {
                code: None,
                detail: format!("appended to {}", self.path.display()),
                provider_id: Some(key),
            },
            Err(e) => SendOutcome::Transient {
                code: None,
                detail: format!("cannot write {}: {e}", self.path.display()),
            },
        }
    }
}

/// Appends `line` to the file at `path`, creating the file and its folder if needed.
/// Opened for each line, so a file moved away or removed while Herald runs is
/// simply started again.
fn append(path: &Path, line: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line)
}
