//! Group commit of a dispatcher's writes: the hand-overs, reservations and outcomes
//! of the messages in flight are written together, one transaction for as many as
//! arrived while the previous one was committing.
//!
//! One transaction per outcome caps a dispatcher at what the database commits per
//! second (a few hundred on SQLite with a busy disk), far below what a mail server
//! takes. Nothing waits on a timer: a write that finds the recorder idle is
//! committed at once, alone; under load, the writes that arrive during a commit
//! form the next group, so the group grows with the load and the wait stays one
//! commit long. Each sender awaits its own answer, so the order "recorded, then
//! the next step" holds for every message exactly as with single writes.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError, Write, Written};

/// The most writes in one transaction: past this a group gains little, and one
/// refused write makes the whole group be written again one by one.
const MAX_GROUP: usize = 512;

type Reply = oneshot::Sender<Result<Written, StoreError>>;

/// Writes a dispatcher's records in groups (see the module).
pub(super) struct Recorder {
    store: Arc<dyn Store>,
    owner: String,
    /// Started with the first write, inside the runtime that makes it.
    queue: OnceLock<mpsc::UnboundedSender<(Write, Reply)>>,
}

impl Recorder {
    pub(super) fn new(store: Arc<dyn Store>, owner: String) -> Recorder {
        Recorder {
            store,
            owner,
            queue: OnceLock::new(),
        }
    }

    /// Records `write` with whatever else is being recorded now, and answers as the
    /// store's method for that write would.
    pub(super) async fn write(&self, write: Write) -> Result<Written, StoreError> {
        let queue = self.queue.get_or_init(|| {
            let (queue, writes) = mpsc::unbounded_channel();
            tokio::spawn(record(Arc::clone(&self.store), self.owner.clone(), writes));
            queue
        });
        let (reply, answer) = oneshot::channel();
        if let Err(refused) = queue.send((write, reply)) {
            // The recorder's task is gone (its runtime is shutting down): written
            // alone, here.
            let (write, _) = refused.0;
            let mut written = self
                .store
                .record(&self.owner, std::slice::from_ref(&write))
                .await?;
            return Ok(written.remove(0));
        }
        // No answer: the task ended inside a commit, which may or may not have
        // happened; the caller treats it as the database being away.
        answer
            .await
            .unwrap_or(Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
    }
}

/// The recorder's task: takes what is queued, up to [`MAX_GROUP`], writes it in one
/// transaction, answers each sender, and again, until every sender is gone.
async fn record(
    store: Arc<dyn Store>,
    owner: String,
    mut queue: mpsc::UnboundedReceiver<(Write, Reply)>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let (writes, replies): (Vec<Write>, Vec<Reply>) = group.drain(..).unzip();
        match store.record(&owner, &writes).await {
            Ok(written) => {
                for (reply, written) in replies.into_iter().zip(written) {
                    let _ = reply.send(Ok(written));
                }
            }
            // The database is away (or the write was alone): every sender meets the
            // same failure and deals with it as with a single write.
            Err(e) if e.is_outage() || writes.len() == 1 => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Shared(Arc::clone(&e))));
                }
            }
            // One write the database refuses for good must not fail the others:
            // each is written alone, and only the culprit fails.
            Err(_) => {
                for (write, reply) in writes.into_iter().zip(replies) {
                    let written = store
                        .record(&owner, std::slice::from_ref(&write))
                        .await
                        .map(|mut w| w.remove(0));
                    let _ = reply.send(written);
                }
            }
        }
    }
}
