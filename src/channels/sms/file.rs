//! The `file` gateway: each SMS becomes one JSON line in a file, so Herald runs with
//! no gateway at all (the default on a fresh machine).

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{Gateway, OutgoingSms};
use crate::channels::SendOutcome;

/// Appends SMS to a file.
pub struct FileGateway {
    path: PathBuf,
    // One writer at a time, so lines never interleave.
    lock: Mutex<()>,
}

impl FileGateway {
    /// A gateway writing to `path` (created with its folder when needed).
    pub fn new(path: PathBuf) -> FileGateway {
        FileGateway {
            path,
            lock: Mutex::new(()),
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
        let _guard = self.lock.lock().await;
        let written = async {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .await?;
            file.write_all(line.as_bytes()).await?;
            file.flush().await
        }
        .await;
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
