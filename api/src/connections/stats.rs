//! What the listener's timeouts and caps did, counted for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a connection was closed by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    HeadTimeout,
    BodyTimeout,
    IdleTimeout,
    WriteTimeout,
}

/// Which cap turned a connection away or made room for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Total,
    PerAddress,
}

/// What the listener did, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub(super) open: AtomicU64,
    pub(super) closed: [AtomicU64; 4],
    pub(super) evicted: [AtomicU64; 2],
    pub(super) refused: [AtomicU64; 2],
}

impl ConnectionStats {
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub fn closed(&self, reason: Closed) -> u64 {
        self.closed[reason as usize].load(Ordering::Relaxed)
    }

    pub fn evicted(&self, cap: Cap) -> u64 {
        self.evicted[cap as usize].load(Ordering::Relaxed)
    }

    pub fn refused(&self, cap: Cap) -> u64 {
        self.refused[cap as usize].load(Ordering::Relaxed)
    }
}

impl Closed {
    pub const ALL: [Closed; 4] = [
        Closed::HeadTimeout,
        Closed::BodyTimeout,
        Closed::IdleTimeout,
        Closed::WriteTimeout,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Closed::HeadTimeout => "head_timeout",
            Closed::BodyTimeout => "body_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::WriteTimeout => "write_timeout",
        }
    }
}

impl Cap {
    pub const ALL: [Cap; 2] = [Cap::Total, Cap::PerAddress];

    pub fn label(self) -> &'static str {
        match self {
            Cap::Total => "total",
            Cap::PerAddress => "per_address",
        }
    }
}
