//! A queue that hands whatever has gathered to a writer as one batch: the machinery shared by
//! group commit ([`super::group`]), the api's grouped command records
//! ([`super::accept`]) and the rounds of append notifications ([`super::notify`]).
//!
//! There is no timer: a batch is what queued while the writers were busy with the previous
//! ones, so an idle service writes each item at once and a busy one writes larger batches.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

/// The sending side; the writers end when the last clone is dropped.
pub(crate) struct Batcher<T> {
    queue: mpsc::UnboundedSender<T>,
}

impl<T> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static> Batcher<T> {
    /// Starts `writers` writers on the current runtime, each calling `write` with batches of at
    /// most `max` items. `None` outside a runtime, where callers write alone.
    pub(crate) fn start<W, Fut>(writers: usize, max: usize, write: W) -> Option<Self>
    where
        W: Fn(Vec<T>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, receiver) = mpsc::unbounded_channel();
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers {
            let (receiver, write) = (receiver.clone(), write.clone());
            runtime.spawn(async move {
                loop {
                    let mut batch = Vec::with_capacity(max);
                    if receiver.lock().await.recv_many(&mut batch, max).await == 0 {
                        return;
                    }
                    write(batch).await;
                }
            });
        }
        Some(Self { queue })
    }

    /// Queues `item`; gives it back when the writers are gone.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        self.queue.send(item).map_err(|error| error.0)
    }
}
