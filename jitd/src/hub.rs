//! Telling people, as events happen: each `jitctl watch` caller who may see an event gets it
//! as a D-Bus signal addressed to that caller alone (never a broadcast, which every user on
//! the system bus could read), and roles with `notify_terminals` write new requests to
//! their approvers' terminals and decisions to the requester's.
//!
//! Who gets what is decided under the state lock, from the state the event left behind
//! ([`Hub::plan`]); the sending happens on a thread of its own ([`Hub::start`]), so a slow
//! bus or terminal never holds the lock. Notifier programs are [`crate::outbox`]'s.

use crate::error::{Error, Refusal, Result};
use crate::grants::Core;
use crate::model::Actor;
use crate::names::UserName;
use crate::notices::Notice;
use crate::policy::EventKind;
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Subscriptions one uid may hold at once.
pub const MAX_WATCHES_PER_UID: usize = 8;
/// Subscriptions of everyone together.
pub const MAX_WATCHES: usize = 1024;

/// What one event goes out as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event document.
    pub body: String,
    /// The unique bus names of the subscribers who may see it.
    pub to: Vec<String>,
    /// Terminals (`/dev/pts/N`) and what is written to each.
    pub terminals: Vec<(String, String)>,
}

#[derive(Default)]
pub struct Hub {
    /// Subscribed connections (unique bus name) and who they are.
    watchers: Mutex<HashMap<String, Actor>>,
    /// Requests someone waits on at a prompt (`Wait`): their decision reaches the prompt,
    /// not the terminal as well.
    waiting: Mutex<HashMap<u64, usize>>,
    out: OnceLock<Mutex<Sender<Delivery>>>,
    conn: OnceLock<zbus::Connection>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each change is one statement on a map: a panic cannot leave it torn.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    /// Subscribes the connection `name` of `who`. Refused beyond the limits.
    pub fn subscribe(&self, name: &str, who: &Actor) -> Result<()> {
        let mut w = lock(&self.watchers);
        if w.contains_key(name) {
            return Ok(());
        }
        let mine = w.values().filter(|a| a.uid == who.uid).count();
        if mine >= MAX_WATCHES_PER_UID || w.len() >= MAX_WATCHES {
            return Err(Error::refused(
                Refusal::Busy,
                format!(
                    "{} already watches from {mine} connection(s) (at most {MAX_WATCHES_PER_UID}, \
                     {MAX_WATCHES} for everyone); stop one first",
                    who.name
                ),
            ));
        }
        w.insert(name.to_string(), who.clone());
        Ok(())
    }

    /// Forgets a connection that left the bus.
    pub fn unsubscribe(&self, name: &str) -> bool {
        lock(&self.watchers).remove(name).is_some()
    }

    pub fn watchers(&self) -> usize {
        lock(&self.watchers).len()
    }

    /// Marks request `id` as waited on at a prompt until the returned guard is dropped.
    pub fn waiting_on(&self, id: u64) -> Waiting<'_> {
        *lock(&self.waiting).entry(id).or_insert(0) += 1;
        Waiting { hub: self, id }
    }

    fn is_waited_on(&self, id: u64) -> bool {
        lock(&self.waiting).contains_key(&id)
    }

    /// Who gets each of `notices`, decided from the state they left behind.
    pub fn plan(&self, core: &Core, notices: &[Notice]) -> Vec<Delivery> {
        let watchers: Vec<(String, Actor)> = lock(&self.watchers)
            .iter()
            .map(|(n, a)| (n.clone(), a.clone()))
            .collect();
        let mut terminals_now: Option<Vec<(u32, String)>> = None;
        let mut out = Vec::new();
        for n in notices {
            let to = watchers
                .iter()
                .filter(|(_, a)| core.may_see(a, &n.row).unwrap_or(false))
                .map(|(name, _)| name.clone())
                .collect();
            let terminals = if core
                .policy()
                .role(&n.row.role)
                .is_ok_and(|r| r.notify_terminals)
            {
                let logged_in = terminals_now.get_or_insert_with(crate::sessions::login_terminals);
                self.terminal_notes(core, n, logged_in)
            } else {
                Vec::new()
            };
            out.push(Delivery {
                body: n.body.clone(),
                to,
                terminals,
            });
        }
        out
    }

    /// A new or escalated request to the approvers who may decide it now; a decision to
    /// the requester when no prompt of theirs waits for it.
    fn terminal_notes(
        &self,
        core: &Core,
        n: &Notice,
        logged_in: &[(u32, String)],
    ) -> Vec<(String, String)> {
        let text = format!("\r\n\x07jit: {}\r\n", n.line);
        match n.kind {
            EventKind::Submitted | EventKind::Escalated => {
                let mut names: HashMap<u32, bool> = HashMap::new();
                logged_in
                    .iter()
                    .filter(|(uid, _)| *uid != n.row.uid)
                    .filter(|(uid, _)| {
                        *names
                            .entry(*uid)
                            .or_insert_with(|| approver_uid(core, n, *uid))
                    })
                    .map(|(_, t)| (t.clone(), text.clone()))
                    .collect()
            }
            EventKind::Decided if !self.is_waited_on(n.row.id) => logged_in
                .iter()
                .filter(|(uid, _)| *uid == n.row.uid)
                .map(|(_, t)| (t.clone(), text.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Starts the thread that sends what [`Hub::plan`] decided.
    pub fn start(self: &std::sync::Arc<Self>) -> std::result::Result<(), String> {
        let (tx, rx) = channel();
        let _ = self.out.set(Mutex::new(tx));
        let hub = self.clone();
        std::thread::Builder::new()
            .name("hub".into())
            .spawn(move || hub.run(&rx))
            .map(|_| ())
            .map_err(|e| format!("starting the event thread: {e}"))
    }

    /// The bus connection signals go out on (once jitd is on the bus).
    pub fn set_connection(&self, conn: zbus::Connection) {
        let _ = self.conn.set(conn);
    }

    /// Hands deliveries to the sending thread (dropped if it was never started).
    pub fn send(&self, deliveries: Vec<Delivery>) {
        if let Some(tx) = self.out.get() {
            let tx = lock(tx);
            for d in deliveries {
                let _ = tx.send(d);
            }
        }
    }

    fn run(&self, rx: &Receiver<Delivery>) {
        while let Ok(d) = rx.recv() {
            if let Some(conn) = self.conn.get() {
                for name in &d.to {
                    let sent = zbus::block_on(conn.emit_signal(
                        Some(name.as_str()),
                        jit_proto::OBJECT_PATH,
                        jit_proto::USER_INTERFACE,
                        jit_proto::EVENT_SIGNAL,
                        &(d.body.as_str(),),
                    ));
                    if let Err(e) = sent {
                        tracing::warn!("cannot send an event to {name}: {e}");
                    }
                }
            }
            for (path, text) in &d.terminals {
                if let Err(e) = crate::sessions::write_terminal(path, text) {
                    tracing::info!("cannot write the event to {path}: {e}");
                }
            }
        }
    }
}

/// Whether the user with `uid` may decide the notice's request now.
fn approver_uid(core: &Core, n: &Notice, uid: u32) -> bool {
    let Ok(Some(name)) = core.directory().name_of(uid) else {
        return false;
    };
    let Ok(name) = UserName::new(name) else {
        return false;
    };
    let who = Actor {
        name,
        uid,
        origin: String::new(),
        login_uid: None,
        tty: String::new(),
    };
    core.is_approver(&n.row, &who).unwrap_or(false)
}

/// A prompt waiting for a decision; see [`Hub::waiting_on`].
pub struct Waiting<'a> {
    hub: &'a Hub,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut w = lock(&self.hub.waiting);
        if let Some(n) = w.get_mut(&self.id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                w.remove(&self.id);
            }
        }
    }
}
