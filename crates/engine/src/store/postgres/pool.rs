//! The store's connections: each owned by one thread of the store's own, which runs the jobs
//! that callers hand it and sends the results back.
//!
//! The synchronous client of rust-postgres drives its connection on a private current-thread
//! tokio runtime; it must never run on a thread inside another runtime (the engine calls the
//! store from tokio tasks). So a call packs its work into a closure, a free connection thread
//! runs it, and the caller waits for the answer on a channel, as it would wait for SQLite's
//! mutex and disk.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls, Statement};

use super::map_err;
use crate::error::StoreError;

/// A call's work. It gets the connection and `release`, which it calls when its result is
/// ready and before it hands the result over: the thread is then idle again (or has taken the
/// next job from the backlog) by the time the caller can make its next call, so sequential
/// calls keep using one thread.
type Job = Box<dyn FnOnce(&mut Conn, &mut dyn FnMut()) + Send>;

/// Limits on every connection of the store. A process that stalls inside a transaction (a
/// SIGSTOP, a long GC-like pause, a broken network) would otherwise hold its row locks for as
/// long as it stalls, and workers waiting on them with it: the server ends such a session
/// after 5 s idle in a transaction (rolling it back), and a statement waits at most 5 s for a
/// lock (then fails as busy, and is retried on a later pass).
const SESSION_LIMITS: &str =
    "SET idle_in_transaction_session_timeout = '5s'; SET lock_timeout = '5s';";

/// One connection with its prepared statements, reconnected on the next job after it broke.
pub(super) struct Conn {
    config: postgres::Config,
    search_path: Arc<str>,
    pub(super) label: Arc<str>,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
}

impl Conn {
    pub(super) fn new(config: postgres::Config, search_path: Arc<str>, label: Arc<str>) -> Self {
        Self {
            config,
            search_path,
            label,
            client: None,
            statements: HashMap::new(),
        }
    }

    /// The connection, opened again if it was never opened or has broken.
    pub(super) fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            self.client = None;
            let mut client = self.config.connect(NoTls).map_err(|e| StoreError::Open {
                path: self.label.to_string(),
                message: e.to_string(),
            })?;
            client
                .batch_execute(&format!(
                    "SET search_path TO {}; {SESSION_LIMITS}",
                    self.search_path
                ))
                .map_err(|e| map_err(&self.label, &e))?;
            self.client = Some(client);
        }
        self.client.as_mut().ok_or_else(|| StoreError::Open {
            path: self.label.to_string(),
            message: "no connection".into(),
        })
    }

    /// The client and a prepared statement for `sql` (prepared once per connection).
    pub(super) fn prepared(&mut self, sql: &str) -> Result<(&mut Client, Statement), StoreError> {
        self.client()?;
        let label = Arc::clone(&self.label);
        let client = self.client.as_mut().ok_or_else(|| StoreError::Open {
            path: label.to_string(),
            message: "no connection".into(),
        })?;
        let st = match self.statements.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = client.prepare(sql).map_err(|e| map_err(&label, &e))?;
                if self.statements.len() >= 256 {
                    self.statements.clear();
                }
                self.statements.insert(sql.to_string(), s.clone());
                s
            }
        };
        Ok((client, st))
    }
}

/// A fixed set of connection threads. A job goes to the thread that became idle last (its
/// connection and caches are the warmest, and sequential calls keep using one thread), through
/// that thread's own channel: handing a job over wakes exactly one thread. With every thread
/// busy, jobs wait in the backlog, which a thread drains before it goes idle.
pub(super) struct Pool {
    shared: Arc<Shared>,
    senders: Vec<Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    label: Arc<str>,
}

/// What the callers and the threads share.
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Idle threads, the most recently idle last.
    idle: Vec<usize>,
    /// Jobs that found no idle thread, oldest first.
    backlog: std::collections::VecDeque<Job>,
    /// Set when the pool is dropped: threads stop instead of waiting for work.
    closed: bool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A job runs outside the lock and a panic inside it is caught, so the state is never
        // left half-changed: a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Pool {
    pub(super) fn start(
        config: &postgres::Config,
        search_path: &Arc<str>,
        label: &Arc<str>,
        size: usize,
    ) -> Result<Self, StoreError> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
        });
        let mut senders = Vec::with_capacity(size);
        let mut threads = Vec::with_capacity(size);
        for i in 0..size {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            let shared_ = Arc::clone(&shared);
            let mut conn = Conn::new(config.clone(), Arc::clone(search_path), Arc::clone(label));
            let t = std::thread::Builder::new()
                .name(format!("miyabi-pg-{i}"))
                .spawn(move || connection_thread(i, &shared_, &rx, &mut conn))
                .map_err(|e| StoreError::Open {
                    path: label.to_string(),
                    message: format!("cannot start a connection thread: {e}"),
                })?;
            senders.push(tx);
            threads.push(t);
        }
        Ok(Self {
            shared,
            senders,
            threads,
            label: Arc::clone(label),
        })
    }

    /// Runs `f` on a connection thread and returns its result.
    pub(super) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = sync_channel(1);
        let job: Job = Box::new(move |c: &mut Conn, release: &mut dyn FnMut()| {
            let r = f(c);
            release();
            let _ = tx.send(r);
        });
        let stopped = || StoreError::Other {
            path: self.label.to_string(),
            message: "the store's connection threads have stopped".into(),
        };
        let idle = {
            let mut st = self.shared.state();
            match st.idle.pop() {
                Some(i) => Some((i, job)),
                None => {
                    st.backlog.push_back(job);
                    None
                }
            }
        };
        if let Some((i, job)) = idle {
            self.senders
                .get(i)
                .ok_or_else(stopped)?
                .send(job)
                .map_err(|_| stopped())?;
        }
        rx.recv().map_err(|_| StoreError::Other {
            path: self.label.to_string(),
            message: "a store call panicked on its connection thread".into(),
        })?
    }
}

/// A connection thread: runs the jobs handed to it and those in the backlog, and marks itself
/// idle when there are none.
fn connection_thread(i: usize, shared: &Shared, rx: &Receiver<Job>, conn: &mut Conn) {
    // Takes the next job from the backlog, or marks this thread idle; `false` once the pool
    // is closed.
    let release = |next: &mut Option<Job>| -> bool {
        let mut st = shared.state();
        if st.closed {
            return false;
        }
        match st.backlog.pop_front() {
            Some(job) => *next = Some(job),
            None => st.idle.push(i),
        }
        true
    };
    let mut next: Option<Job> = None;
    if !release(&mut next) {
        return;
    }
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut released: Option<bool> = None;
        let mut taken: Option<Job> = None;
        let mut on_ready = || {
            if released.is_none() {
                released = Some(release(&mut taken));
            }
        };
        // A panicking job drops its reply sender: the caller gets an error, the thread and
        // its connection stay.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn, &mut on_ready)));
        // (A job that panicked before it was ready has not released the thread yet.)
        let open = match released {
            Some(open) => open,
            None => release(&mut taken),
        };
        if !open {
            return;
        }
        next = taken;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        // Closing the channels ends the threads' waits.
        self.senders.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The thread that listens for the store's notifications (`LISTEN`) and wakes the engine's
/// worker. Reconnects after a failure; stops when the store is dropped.
pub(super) struct Listener {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    pub(super) fn start(
        config: postgres::Config,
        channel: String,
        wake: Arc<tokio::sync::Notify>,
    ) -> Option<Self> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("miyabi-pg-listen".into())
            .spawn(move || {
                use std::sync::atomic::Ordering;
                while !flag.load(Ordering::Relaxed) {
                    let mut client = match config.connect(NoTls) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(error = %e, "postgres LISTEN connection failed; retrying");
                            std::thread::sleep(Duration::from_secs(1));
                            continue;
                        }
                    };
                    if let Err(e) = client.batch_execute(&format!("LISTEN \"{channel}\"")) {
                        tracing::warn!(error = %e, "postgres LISTEN failed; retrying");
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                    // Whatever happened while no connection listened: look once.
                    wake.notify_one();
                    while !flag.load(Ordering::Relaxed) {
                        let next = {
                            let mut n = client.notifications();
                            let mut it = n.timeout_iter(Duration::from_millis(200));
                            postgres::fallible_iterator::FallibleIterator::next(&mut it)
                        };
                        match next {
                            Ok(Some(_)) => wake.notify_one(),
                            Ok(None) => {
                                if client.is_closed() {
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "postgres LISTEN connection broke");
                                break;
                            }
                        }
                    }
                }
            })
            .ok()?;
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
