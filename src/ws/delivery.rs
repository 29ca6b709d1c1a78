//! The threads that write to sockets: every connection's writer runs on a runtime of its own
//! (`--ws-delivery-threads`, default one per core), apart from the runtime that reads requests,
//! runs the actors and waits on the database.
//!
//! ## Why apart
//! One event to 10,000 subscribers wakes 10,000 writers. On one runtime they fill its queues,
//! and a task woken from outside (a SQLite commit's completion comes from its connection's own
//! thread) joins the back of the queue behind all of them. The next event's write path has
//! several such hops (the command read, the commit, the fan-out), so under a steady stream of
//! events each write waited for the previous event's whole delivery: on two cores, at 10 events
//! a second to 10,000 sockets, a write was acknowledged after 170 ms (p50) and delivered after
//! 250 ms. With the writers here the write path finds its runtime's queues short, the writers
//! share the cores through the kernel's scheduler, and deliveries took 100 ms (p50)
//! (`loadtest/README.md`, History, 2026-12-01, night).
//!
//! A writer still uses its socket as registered with the main runtime: its readiness comes from
//! that runtime's I/O driver, which wakes the writer here. A write that fits in the socket's
//! buffer (nearly all of them) needs no readiness at all.

use std::future::Future;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

/// The socket writers' runtime. Dropping it stops its tasks without waiting for them (a writer
/// whose socket is gone has nothing left to do), so it may be dropped inside async code.
pub struct Delivery {
    handle: Handle,
    /// Taken only when dropped.
    runtime: Option<Runtime>,
}

impl Delivery {
    /// A runtime of `threads` threads (at least one), named `boardroom-delivery`.
    pub fn start(threads: usize) -> std::io::Result<Delivery> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("boardroom-delivery")
            .enable_all()
            .build()?;
        Ok(Delivery { handle: runtime.handle().clone(), runtime: Some(runtime) })
    }

    /// Threads to start when the setting is unset: one per core.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// Runs `task` on the delivery runtime.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasks run on the delivery threads, not the caller's, and the runtime can be dropped
    /// inside async code (where dropping a tokio runtime otherwise panics).
    #[tokio::test]
    async fn tasks_run_on_the_delivery_threads_and_it_drops_inside_async_code() {
        let delivery = Delivery::start(2).unwrap();
        let name = delivery
            .spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("boardroom-delivery"));
        let pending = delivery.spawn(std::future::pending::<()>());
        drop(delivery);
        assert!(pending.await.unwrap_err().is_cancelled(), "shut down, not leaked");
    }
}
