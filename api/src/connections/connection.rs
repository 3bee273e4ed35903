//! One connection's phase and deadline, kept in atomics: its socket reads, its request and
//! response bodies move it along, and its task reads the deadline whenever it is woken.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Closed, Limits};

/// Where a connection is in its life; the deadline that applies follows from it.
pub(super) const WAITING: u8 = 0; // for a request head: nothing read yet, or part of one
pub(super) const IDLE: u8 = 1; // between requests
pub(super) const RECEIVING: u8 = 2; // a request whose body has not all arrived
pub(super) const ANSWERING: u8 = 3; // the request is read; its answer is being made or sent
pub(super) const EVICTED: u8 = 4; // closed to make room: it takes no further request

/// One open connection, as its task and the listener see it.
pub(super) struct Connection {
    pub(super) id: u64,
    pub(super) address: IpAddr,
    /// When its deadline started: opened, idle since, head started, body started (in
    /// milliseconds since the listener started).
    pub(super) since: AtomicU64,
    pub(super) phase: AtomicU8,
    /// Since when a write has waited on the client (0: no write is waiting).
    pub(super) write_blocked: AtomicU64,
    /// Cancelled when the listener closes it to make room.
    pub(super) evict: CancellationToken,
    pub(super) clock: Instant,
}

impl Connection {
    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Moves from `from` (any phase but evicted when `None`) to `to`, and starts its deadline;
    /// false when it was not in `from`.
    pub(super) fn advance(&self, from: Option<u8>, to: u8) -> bool {
        let moved = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |phase| {
                let left = from.map_or(phase != EVICTED, |from| phase == from);
                left.then_some(to)
            })
            .is_ok();
        if moved {
            self.since.store(self.now(), Ordering::Relaxed);
        }
        moved
    }

    pub(super) fn enter(&self, phase: u8) {
        self.advance(None, phase);
    }

    /// A request starts, unless the connection was evicted meanwhile.
    pub(super) fn enter_request(&self, phase: u8) -> bool {
        self.advance(Some(WAITING), phase) || self.advance(Some(IDLE), phase)
    }

    /// Bytes arrived: between requests, they start the next head and its deadline.
    pub(super) fn read_some(&self) {
        self.advance(Some(IDLE), WAITING);
    }

    /// Takes it out of service if it serves no request and owes its client no bytes: a request
    /// that starts later finds it evicted and is refused before anything runs.
    pub(super) fn evict(&self) -> bool {
        if self.write_blocked.load(Ordering::Acquire) != 0 {
            return false;
        }
        self.advance(Some(WAITING), EVICTED) || self.advance(Some(IDLE), EVICTED)
    }

    /// The earliest moment it may be closed, and why (in listener milliseconds).
    pub(super) fn deadline(&self, limits: &Limits) -> Option<(u64, Closed)> {
        let since = self.since.load(Ordering::Relaxed);
        let after = |timeout: Duration| {
            since.saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
        };
        let phase = match self.phase.load(Ordering::Relaxed) {
            WAITING => Some((after(limits.head), Closed::HeadTimeout)),
            IDLE => Some((after(limits.idle), Closed::IdleTimeout)),
            RECEIVING => Some((after(limits.body), Closed::BodyTimeout)),
            _ => None,
        };
        let blocked = self.write_blocked.load(Ordering::Relaxed);
        let write = (blocked > 0).then(|| {
            let write = u64::try_from(limits.write.as_millis()).unwrap_or(u64::MAX);
            (blocked.saturating_add(write), Closed::WriteTimeout)
        });
        match (phase, write) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }
}
