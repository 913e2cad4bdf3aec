//! Restart backoff: how long to wait before restarting a unit that stopped on its own.
//!
//! The first restart after a stable run is immediate (a one-off crash should cost nothing), then the
//! delay doubles from `restart-delay` up to `restart-delay-max`, each with ±10 % jitter so that many
//! units failing together (say, after their common dependency died) do not restart in lockstep. A run
//! that lasted at least `restart-reset-after` starts the sequence over. Pure: no clock, no syscalls;
//! the jitter comes from a tiny seedable xorshift generator so tests are deterministic.

use std::time::Duration;

/// The policy knobs, copied from the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub delay: Duration,
    pub delay_max: Duration,
    pub reset_after: Duration,
}

/// xorshift64*: enough randomness for jitter, a few bytes of code, seedable for tests.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The backoff state of one unit.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Restarts since the last stable run.
    attempts: u32,
    rng: XorShift,
}

impl Backoff {
    pub fn new(seed: u64) -> Self {
        Self {
            attempts: 0,
            rng: XorShift::new(seed),
        }
    }

    /// Restarts since the last stable run.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay before the next restart, given how long the run that just ended lasted.
    pub fn next_delay(&mut self, policy: &BackoffPolicy, ran_for: Duration) -> Duration {
        if ran_for >= policy.reset_after {
            self.attempts = 0;
        }
        let attempt = self.attempts;
        self.attempts = self.attempts.saturating_add(1);
        if attempt == 0 {
            return Duration::ZERO;
        }
        // delay * 2^(attempt-1), saturating, capped at the maximum.
        let shift = (attempt - 1).min(32);
        let base = policy
            .delay
            .checked_mul(1u32 << shift.min(31))
            .unwrap_or(policy.delay_max)
            .min(policy.delay_max);
        self.jitter(base)
    }

    /// `d` ± up to 10 %.
    fn jitter(&mut self, d: Duration) -> Duration {
        // In u128 micros: a delay near Duration::MAX must neither wrap nor overflow.
        let micros = d.as_micros();
        let tenth = micros / 10;
        if tenth == 0 {
            return d;
        }
        let offset = u128::from(self.rng.next_u64()) % (2 * tenth + 1);
        let jittered = micros - tenth + offset;
        u64::try_from(jittered).map_or(Duration::MAX, Duration::from_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            delay: Duration::from_millis(100),
            delay_max: Duration::from_secs(2),
            reset_after: Duration::from_secs(10),
        }
    }

    fn within(d: Duration, base_ms: u64) -> bool {
        let lo = Duration::from_micros(base_ms * 900);
        let hi = Duration::from_micros(base_ms * 1100);
        d >= lo && d <= hi
    }

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_cap() {
        let mut b = Backoff::new(7);
        let p = policy();
        let short = Duration::from_millis(5);
        assert_eq!(b.next_delay(&p, short), Duration::ZERO);
        let expected = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for ms in expected {
            let d = b.next_delay(&p, short);
            assert!(within(d, ms), "{d:?} not within 10% of {ms} ms");
        }
        assert_eq!(b.attempts(), 9);
    }

    #[test]
    fn stable_run_resets_the_sequence() {
        let mut b = Backoff::new(1);
        let p = policy();
        for _ in 0..5 {
            b.next_delay(&p, Duration::ZERO);
        }
        assert!(b.next_delay(&p, Duration::ZERO) > Duration::from_secs(1));
        assert_eq!(b.next_delay(&p, Duration::from_secs(10)), Duration::ZERO);
        assert!(within(b.next_delay(&p, Duration::from_secs(1)), 100));
    }

    #[test]
    fn jitter_varies_and_is_deterministic_per_seed() {
        let p = policy();
        let run = |seed| {
            let mut b = Backoff::new(seed);
            (0..6)
                .map(|_| b.next_delay(&p, Duration::ZERO))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        let mut b = Backoff::new(3);
        let mut seen = crate::collections::keyset::KeySet::new();
        for _ in 0..20 {
            b.attempts = 3;
            seen.insert(b.next_delay(&p, Duration::ZERO));
        }
        assert!(seen.len() > 5, "jitter should spread delays: {seen:?}");
    }

    #[test]
    fn huge_attempt_counts_saturate_at_the_cap() {
        let mut b = Backoff::new(9);
        b.attempts = u32::MAX - 1;
        let p = policy();
        assert!(within(b.next_delay(&p, Duration::ZERO), 2000));
        assert!(within(b.next_delay(&p, Duration::ZERO), 2000));
        let mut x = XorShift::new(0);
        assert_ne!(x.next_u64(), 0);
    }

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let p = BackoffPolicy {
            delay: Duration::MAX,
            delay_max: Duration::MAX,
            reset_after: Duration::MAX,
        };
        let mut b = Backoff::new(7);
        assert_eq!(b.next_delay(&p, Duration::ZERO), Duration::ZERO);
        for _ in 0..5 {
            let d = b.next_delay(&p, Duration::ZERO);
            assert!(d >= Duration::MAX / 10 * 9, "{d:?}");
        }
    }
}
