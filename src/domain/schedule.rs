//! Cron schedules read on the school's wall clock, correct across DST.
//!
//! The `cron` crate walks instants in the time zone it is given: a time inside the
//! spring-forward gap is skipped (a daily 02:30 run does not happen that day) and a
//! time in the autumn overlap happens twice. Herald wants a schedule to mean wall-clock
//! times, each once: so it walks the schedule over naive wall-clock time and maps each
//! wall time to an instant the way the send window does — inside a gap, the first
//! minute after it; in the overlap, the earlier instant — and never returns an instant
//! that is not after the one given. That is right for the periodic rules (a daily
//! reminder once a day); the dispatch tick, which must keep ticking through the
//! repeated hour, walks instants with `cron` itself.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The first wall-clock time of `schedule` in `tz` whose instant is after `after`.
pub fn next_fire(schedule: &cron::Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let wall_after = after.with_timezone(&tz).naive_local();
    // Naive wall-clock times, walked as if they were UTC (which has no DST). Starting
    // a little before `after` catches a gap's shifted time that maps after it.
    let start = Utc.from_utc_datetime(&(wall_after - Duration::hours(3)));
    let horizon = wall_after + Duration::days(400);
    schedule
        .after(&start)
        .take_while(|wall| wall.naive_utc() <= horizon)
        .filter_map(|wall| instant(tz, wall.naive_utc()))
        .find(|t| *t > after)
}

/// A wall-clock time in `tz`: in a DST gap the first existing minute after it, in
/// the autumn overlap the earlier instant.
fn instant(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    (0..=180).find_map(
        |shift| match tz.from_local_datetime(&(wall + Duration::minutes(shift))) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
            LocalResult::None => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Warsaw;
    use std::str::FromStr;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Every fire from `from` up to `to`.
    fn fires(expr: &str, from: &str, to: &str) -> Vec<String> {
        let schedule = cron::Schedule::from_str(expr).unwrap();
        let (mut at, to) = (utc(from), utc(to));
        let mut out = Vec::new();
        while let Some(next) = next_fire(&schedule, Warsaw, at) {
            if next > to {
                break;
            }
            out.push(next.with_timezone(&Warsaw).to_rfc3339());
            at = next;
        }
        out
    }

    #[test]
    fn a_daily_run_in_the_spring_gap_fires_once_just_after_it() {
        // 2026-03-29: clocks go from 02:00 to 03:00 in Warsaw.
        assert_eq!(
            fires(
                "0 30 2 * * *",
                "2026-03-28T00:00:00Z",
                "2026-03-30T23:00:00Z"
            ),
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
    }

    #[test]
    fn a_daily_run_in_the_autumn_overlap_fires_once() {
        // 2026-10-25: clocks go from 03:00 back to 02:00; 02:30 happens twice.
        assert_eq!(
            fires(
                "0 30 2 * * *",
                "2026-10-24T00:00:00Z",
                "2026-10-26T23:00:00Z"
            ),
            [
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00"
            ]
        );
        // A morning run is untouched on both days.
        assert_eq!(
            fires(
                "0 0 7 * * *",
                "2026-10-24T12:00:00Z",
                "2026-10-25T23:00:00Z"
            ),
            ["2026-10-25T07:00:00+01:00"]
        );
    }

    #[test]
    fn after_the_second_pass_of_the_overlap_the_repeated_time_does_not_fire_again() {
        let schedule = cron::Schedule::from_str("0 30 2 * * *").unwrap();
        // 02:40 in the second pass (+01:00) of 2026-10-25.
        let next = next_fire(&schedule, Warsaw, utc("2026-10-25T01:40:00Z")).unwrap();
        assert_eq!(
            next.with_timezone(&Warsaw).to_rfc3339(),
            "2026-10-26T02:30:00+01:00"
        );
    }

    #[test]
    fn an_every_second_schedule_still_finds_its_next_fire() {
        let schedule = cron::Schedule::from_str("* * * * * *").unwrap();
        let at = utc("2026-11-24T07:00:00Z");
        assert_eq!(
            next_fire(&schedule, Warsaw, at),
            Some(at + Duration::seconds(1))
        );
    }

    #[test]
    fn a_half_hourly_run_goes_through_the_spring_gap() {
        let spring = fires(
            "0 */30 * * * *",
            "2026-03-29T00:10:00Z",
            "2026-03-29T01:40:00Z",
        );
        assert_eq!(
            spring,
            [
                "2026-03-29T01:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T03:30:00+02:00"
            ]
        );
    }
}
