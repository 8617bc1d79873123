//! The retry policy: how long to wait after a passing failure.
//!
//! Exponential backoff with jitter, as the reliable senders do it (Postal, GOV.UK
//! Notify): the delay doubles per attempt up to a ceiling, and a random ±20% keeps a
//! batch that failed together from retrying together. The randomness is a parameter,
//! so the policy is a plain function.

use std::time::Duration;

/// The spread of the jitter: the delay is multiplied by a factor in `1 ± JITTER`.
pub const JITTER: f64 = 0.2;

/// The delay before attempt `attempts + 1`, after `attempts` failed ones (≥ 1).
/// `unit` is a random number in `[0, 1)`.
pub fn retry_delay(attempts: u32, base: Duration, max: Duration, unit: f64) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << doublings).min(max);
    let factor = 1.0 - JITTER + 2.0 * JITTER * unit.clamp(0.0, 1.0);
    raw.mul_f64(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_delay_doubles_per_attempt_up_to_the_ceiling() {
        let mid = 0.5; // no jitter
        assert_eq!(retry_delay(1, MIN, HOUR, mid), MIN);
        assert_eq!(retry_delay(2, MIN, HOUR, mid), 2 * MIN);
        assert_eq!(retry_delay(3, MIN, HOUR, mid), 4 * MIN);
        assert_eq!(retry_delay(7, MIN, HOUR, mid), HOUR);
        assert_eq!(retry_delay(60, MIN, HOUR, mid), HOUR);
    }

    #[test]
    fn jitter_spreads_the_delay_by_a_fifth_either_way() {
        assert_eq!(retry_delay(1, MIN, HOUR, 0.0), Duration::from_secs(48));
        assert_eq!(retry_delay(1, MIN, HOUR, 0.999_999).as_secs(), 71);
        assert!(
            retry_delay(10, MIN, HOUR, 0.999) <= HOUR,
            "never above the ceiling"
        );
    }
}
