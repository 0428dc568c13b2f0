//! Time, injected. The engine and the governor never read the system time
//! themselves: they ask a [`Clock`], so tests drive a [`VirtualClock`] and a
//! 24-hour gate timeout passes in a call to [`VirtualClock::advance`].
//!
//! Times are milliseconds since the Unix epoch (UTC): what timers are keyed
//! by in the store, and precise enough for every timeout a workflow can
//! declare.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The machine's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 reads as the epoch rather than panicking.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to. Clones share the same time, so a
/// test keeps one handle and gives another to the engine.
#[derive(Clone, Debug)]
pub struct VirtualClock {
    now: Arc<AtomicU64>,
}

/// 2026-01-01T00:00:00Z: where a [`VirtualClock::default`] starts, so event
/// times in golden files read like real dates.
pub const VIRTUAL_EPOCH_MS: u64 = 1_767_225_600_000;

impl Default for VirtualClock {
    fn default() -> VirtualClock {
        VirtualClock::new(VIRTUAL_EPOCH_MS)
    }
}

impl VirtualClock {
    pub fn new(start_ms: u64) -> VirtualClock {
        VirtualClock {
            now: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.advance_ms(u64::try_from(by.as_millis()).unwrap_or(u64::MAX));
    }

    pub fn advance_ms(&self, ms: u64) {
        // Saturating, so a huge step parks the clock at the end of time
        // instead of wrapping to 1970.
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(ms))
            });
    }

    /// Moves the clock to `ms` (backwards too, to test clock skew).
    pub fn set_ms(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// RFC 3339 in UTC with millisecond precision (`2026-01-01T00:00:00.000Z`),
/// the form of every `at` in run events.
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        // Beyond year 9999: not a time a clock reports, but never a panic.
        return format!("@{ms}ms");
    };
    let (year, month, day) = (at.year(), u8::from(at.month()), at.day());
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_told() {
        let clock = VirtualClock::default();
        let shared = clock.clone();
        assert_eq!(clock.now_ms(), VIRTUAL_EPOCH_MS);
        shared.advance(Duration::from_secs(24 * 3600));
        assert_eq!(clock.now_ms(), VIRTUAL_EPOCH_MS + 86_400_000);
        clock.advance_ms(u64::MAX);
        assert_eq!(clock.now_ms(), u64::MAX);
        clock.set_ms(5);
        assert_eq!(shared.now_ms(), 5);
    }

    #[test]
    fn formats_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339(VIRTUAL_EPOCH_MS), "2026-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(VIRTUAL_EPOCH_MS + 1_234),
            "2026-01-01T00:00:01.234Z"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert!(rfc3339(u64::MAX).starts_with('@'));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
    }
}
