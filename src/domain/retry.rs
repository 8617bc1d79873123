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

/// How far past the window's opening retries that fell outside it are spread: a
/// night's worth of failures must not all land on 08:00:00 and meet the same
/// rate limit and the same busy server at once.
pub const OPENING_SPREAD: Duration = Duration::from_secs(10 * 60);

/// When a retry that would have fallen outside the window goes: `opening` plus a
/// share of [`OPENING_SPREAD`] (`unit` a random number in `[0, 1)`). The caller
/// keeps it at `opening` if the window closes again before then.
pub fn spread_after_opening(
    opening: chrono::DateTime<chrono::Utc>,
    unit: f64,
) -> chrono::DateTime<chrono::Utc> {
    let spread = OPENING_SPREAD.mul_f64(unit.clamp(0.0, 1.0));
    opening + chrono::Duration::from_std(spread).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_after_the_opening_are_spread_over_its_first_minutes() {
        let opening = chrono::DateTime::parse_from_rfc3339("2026-11-24T07:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let times: Vec<_> = (0..1000)
            .map(|i| spread_after_opening(opening, f64::from(i) / 1000.0))
            .collect();
        assert!(times.iter().all(|t| *t >= opening));
        assert!(
            times
                .iter()
                .all(|t| *t < opening + chrono::Duration::minutes(10))
        );
        // No second holds more than a few: a thousand retries over six hundred seconds.
        let mut per_second = std::collections::BTreeMap::new();
        for t in &times {
            *per_second.entry(t.timestamp()).or_insert(0) += 1;
        }
        assert!(per_second.values().all(|n| *n <= 3), "{per_second:?}");
        assert!(per_second.len() >= 500);
    }

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
