//! The weekly send window: the hours, per weekday, when messages may reach people.
//!
//! Times are wall-clock times in the school's time zone, so "08:00" means eight in
//! the morning in winter and in summer. A window edge that falls into a DST gap opens
//! at the first minute that exists; in the autumn overlap the earlier instant counts.

use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Timelike, Utc,
    Weekday,
};
use chrono_tz::Tz;

use super::calendar::HolidayCalendar;
use super::reason::Reason;

/// Minutes from midnight; 1440 stands for 24:00, the end of the day.
type Minute = u16;

const DAY_END: Minute = 24 * 60;

/// How far ahead `next_opening` looks before it says there is none: a year and a bit,
/// so that even a calendar with a long summer break finds September.
const SEARCH_DAYS: i64 = 400;

/// An open span of one day, `start` included, `end` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    start: Minute,
    end: Minute,
}

impl Span {
    fn contains(self, minute: Minute) -> bool {
        self.start <= minute && minute < self.end
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// Why a day's hours could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a list of opening hours ({why}); expected \"HH:MM-HH:MM\", several \
     separated by commas (\"08:00-12:00, 13:00-20:00\"), or \"closed\""
)]
pub struct HoursError {
    /// The text as given.
    pub value: String,
    /// What is wrong with it.
    pub why: String,
}

/// Parses one weekday's hours: `"08:00-20:00"`, `"08:00-12:00, 13:00-20:00"`, or
/// `"closed"` (also an empty string). `24:00` may end a span.
pub fn parse_hours(text: &str) -> Result<Vec<Span>, HoursError> {
    let err = |why: String| HoursError {
        value: text.to_owned(),
        why,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    let mut spans = Vec::new();
    for part in trimmed.split(',') {
        let (from, to) = part
            .split_once('-')
            .ok_or_else(|| err(format!("{:?} has no '-'", part.trim())))?;
        let start = parse_minute(from).map_err(&err)?;
        let end = parse_minute(to).map_err(&err)?;
        if start >= end {
            return Err(err(format!("{:?} ends before it starts", part.trim())));
        }
        if start == DAY_END {
            return Err(err("a span cannot start at 24:00".into()));
        }
        spans.push(Span { start, end });
    }
    spans.sort();
    if let Some(pair) = spans.windows(2).find(|w| w[0].end > w[1].start) {
        return Err(err(format!("{} overlaps {}", pair[0], pair[1])));
    }
    Ok(spans)
}

fn parse_minute(text: &str) -> Result<Minute, String> {
    let t = text.trim();
    if t == "24:00" {
        return Ok(DAY_END);
    }
    let time = NaiveTime::parse_from_str(t, "%H:%M")
        .map_err(|_| format!("{t:?} is not a time of day HH:MM"))?;
    Ok((time.hour() * 60 + time.minute()) as Minute)
}

/// The weekly send window in the school's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    tz: Tz,
    /// Spans per weekday, Monday first, each sorted and disjoint.
    days: [Vec<Span>; 7],
}

impl SendWindow {
    /// A window from each weekday's spans, Monday first.
    pub fn new(tz: Tz, days: [Vec<Span>; 7]) -> Self {
        SendWindow { tz, days }
    }

    /// The design's default: Monday to Saturday, 08:00 to 20:00.
    pub fn default_for(tz: Tz) -> Self {
        let day = vec![Span {
            start: 8 * 60,
            end: 20 * 60,
        }];
        let mut days: [Vec<Span>; 7] = Default::default();
        for d in days.iter_mut().take(6) {
            *d = day.clone();
        }
        SendWindow { tz, days }
    }

    /// The school's time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// Whether no weekday has any open hour (nothing that respects the window would
    /// ever go).
    pub fn is_empty(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }

    /// A weekday's spans.
    pub fn spans(&self, day: Weekday) -> &[Span] {
        &self.days[day.num_days_from_monday() as usize]
    }

    /// The weekday's hours as text, e.g. `08:00-20:00` or `closed`.
    pub fn describe_day(&self, day: Weekday) -> String {
        let spans = self.spans(day);
        if spans.is_empty() {
            "closed".into()
        } else {
            spans
                .iter()
                .map(Span::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// Why a message that respects the window must wait at `now`, or `None` if it may
    /// go: `holiday` on a day off, `outside_send_window` outside the hours.
    pub fn hold_reason(&self, now: DateTime<Utc>, calendar: &HolidayCalendar) -> Option<Reason> {
        let local = now.with_timezone(&self.tz);
        if calendar.holiday_on(local.date_naive()).is_some() {
            return Some(Reason::Holiday);
        }
        let minute = (local.hour() * 60 + local.minute()) as Minute;
        let open = self
            .spans(local.weekday())
            .iter()
            .any(|s| s.contains(minute));
        (!open).then_some(Reason::OutsideSendWindow)
    }

    /// Whether a message may go at `now`.
    pub fn is_open(&self, now: DateTime<Utc>, calendar: &HolidayCalendar) -> bool {
        self.hold_reason(now, calendar).is_none()
    }

    /// The first instant at or after `now` when the window is open, skipping days
    /// off; `None` when nothing opens within about a year.
    pub fn next_opening(
        &self,
        now: DateTime<Utc>,
        calendar: &HolidayCalendar,
    ) -> Option<DateTime<Tz>> {
        if self.is_open(now, calendar) {
            return Some(now.with_timezone(&self.tz));
        }
        let today = now.with_timezone(&self.tz).date_naive();
        (0..SEARCH_DAYS)
            .filter_map(|offset| today.checked_add_signed(Duration::days(offset)))
            .filter(|day| calendar.holiday_on(*day).is_none())
            .find_map(|day| {
                self.spans(day.weekday())
                    .iter()
                    .filter_map(|span| self.instant(day, span.start))
                    .find(|start| start.with_timezone(&Utc) > now)
            })
    }

    /// The instant of a wall-clock minute on `day`. A minute inside a DST gap does not
    /// exist: the first one after the gap stands for it. In the autumn overlap the
    /// earlier of the two instants counts.
    fn instant(&self, day: NaiveDate, minute: Minute) -> Option<DateTime<Tz>> {
        local_instant(self.tz, day, minute)
    }
}

/// The instant of a wall-clock minute of `day` in `tz`: in a DST gap the first minute
/// after it, in the autumn overlap the earlier instant.
fn local_instant(tz: Tz, day: NaiveDate, minute: Minute) -> Option<DateTime<Tz>> {
    let midnight = day.and_hms_opt(0, 0, 0)?;
    let wall = midnight + Duration::minutes(i64::from(minute));
    // Gaps are at most a few hours long anywhere in the tz database.
    (0..=180).find_map(
        |shift| match tz.from_local_datetime(&(wall + Duration::minutes(shift))) {
            LocalResult::Single(t) => Some(t),
            LocalResult::Ambiguous(earlier, _) => Some(earlier),
            LocalResult::None => None,
        },
    )
}

/// When `day` begins in `tz` (its first existing minute), as an instant.
pub fn start_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    local_instant(tz, day, 0)
        .map(|t| t.with_timezone(&Utc))
        // No zone skips a whole day's first three hours; stay total all the same.
        .unwrap_or_else(|| day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::Holiday;
    use chrono_tz::Europe::Warsaw;

    /// A Warsaw wall-clock time as a UTC instant (earlier instant when ambiguous).
    fn at(local: &str) -> DateTime<Utc> {
        let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
        Warsaw
            .from_local_datetime(&naive)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn window() -> SendWindow {
        SendWindow::default_for(Warsaw)
    }

    fn no_holidays() -> HolidayCalendar {
        HolidayCalendar::default()
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn default_window_edges_on_a_weekday() {
        let w = window();
        let cal = no_holidays();
        // 2026-11-24 is a Tuesday.
        assert_eq!(
            w.hold_reason(at("2026-11-24 07:59"), &cal),
            Some(Reason::OutsideSendWindow)
        );
        assert!(w.is_open(at("2026-11-24 08:00"), &cal));
        assert!(w.is_open(at("2026-11-24 19:59"), &cal));
        assert_eq!(
            w.hold_reason(at("2026-11-24 20:00"), &cal),
            Some(Reason::OutsideSendWindow)
        );
    }

    #[test]
    fn saturday_is_open_and_sunday_is_closed() {
        let w = window();
        let cal = no_holidays();
        assert!(w.is_open(at("2026-11-28 12:00"), &cal)); // Saturday
        assert_eq!(
            w.hold_reason(at("2026-11-29 12:00"), &cal), // Sunday
            Some(Reason::OutsideSendWindow)
        );
    }

    #[test]
    fn a_holiday_closes_the_whole_day_with_its_own_reason() {
        let w = window();
        let cal = HolidayCalendar::new(vec![
            Holiday::new("Independence Day", day("2026-11-11"), day("2026-11-11")).unwrap(),
        ]);
        assert_eq!(
            w.hold_reason(at("2026-11-11 12:00"), &cal),
            Some(Reason::Holiday)
        );
        assert!(w.is_open(at("2026-11-12 12:00"), &cal));
    }

    #[test]
    fn the_window_keeps_wall_clock_hours_on_both_dst_days() {
        let w = window();
        let cal = no_holidays();
        // Spring forward: Sunday 2026-03-29 (closed anyway); Saturday before, Monday after.
        assert!(!w.is_open(at("2026-03-28 07:59"), &cal));
        assert!(w.is_open(at("2026-03-28 08:00"), &cal));
        assert!(w.is_open(at("2026-03-30 08:00"), &cal));
        assert!(!w.is_open(at("2026-03-30 20:00"), &cal));
        // Fall back: Sunday 2026-10-25.
        assert!(!w.is_open(at("2026-10-25 12:00"), &cal));
        assert!(w.is_open(at("2026-10-26 08:00"), &cal));
        // 08:00 Warsaw is 07:00 UTC in winter and 06:00 UTC in summer.
        let winter = Utc.with_ymd_and_hms(2026, 10, 26, 7, 0, 0).unwrap();
        let summer = Utc.with_ymd_and_hms(2026, 10, 23, 6, 0, 0).unwrap();
        assert!(w.is_open(winter, &cal));
        assert!(w.is_open(summer, &cal));
        assert!(!w.is_open(winter - Duration::minutes(1), &cal));
    }

    #[test]
    fn a_window_open_on_sunday_night_crosses_the_dst_gap_and_overlap() {
        let mut days: [Vec<Span>; 7] = Default::default();
        days[6] = parse_hours("02:30-03:30").unwrap();
        let w = SendWindow::new(Warsaw, days);
        let cal = no_holidays();
        // Spring: 02:00-03:00 does not exist; the window opens at 03:00 (+02:00).
        let open = w.next_opening(at("2026-03-29 01:00"), &cal).unwrap();
        assert_eq!(open.to_rfc3339(), "2026-03-29T03:00:00+02:00");
        assert!(w.is_open(open.with_timezone(&Utc), &cal));
        // Autumn: 02:30 happens twice; the window opens at the first one.
        let open = w.next_opening(at("2026-10-25 01:00"), &cal).unwrap();
        assert_eq!(open.to_rfc3339(), "2026-10-25T02:30:00+02:00");
    }

    #[test]
    fn next_opening_from_saturday_evening_skips_sunday_and_a_holiday_monday() {
        let w = window();
        let cal = HolidayCalendar::new(vec![
            Holiday::new("Easter Monday", day("2026-04-06"), day("2026-04-06")).unwrap(),
        ]);
        // Saturday 2026-04-04 20:00 → Sunday closed → Monday holiday → Tuesday 08:00.
        let open = w.next_opening(at("2026-04-04 20:00"), &cal).unwrap();
        assert_eq!(open.to_rfc3339(), "2026-04-07T08:00:00+02:00");
    }

    #[test]
    fn next_opening_is_now_when_open_and_later_today_before_opening() {
        let w = window();
        let cal = no_holidays();
        let now = at("2026-11-24 10:00");
        assert_eq!(w.next_opening(now, &cal).unwrap().with_timezone(&Utc), now);
        let open = w.next_opening(at("2026-11-24 06:15"), &cal).unwrap();
        assert_eq!(open.to_rfc3339(), "2026-11-24T08:00:00+01:00");
    }

    #[test]
    fn next_opening_across_the_autumn_change_uses_winter_time() {
        let w = window();
        let open = w
            .next_opening(at("2026-10-24 21:00"), &no_holidays())
            .unwrap();
        assert_eq!(open.to_rfc3339(), "2026-10-26T08:00:00+01:00");
    }

    #[test]
    fn an_empty_window_never_opens() {
        let w = SendWindow::new(Warsaw, Default::default());
        assert!(w.is_empty());
        assert_eq!(w.next_opening(at("2026-11-24 10:00"), &no_holidays()), None);
    }

    #[test]
    fn hours_parse_with_several_spans_and_closed_days() {
        assert_eq!(parse_hours("closed").unwrap(), vec![]);
        assert_eq!(parse_hours("").unwrap(), vec![]);
        let spans = parse_hours("13:00-20:00, 08:00-12:00").unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].to_string(), "08:00-12:00");
        assert_eq!(
            parse_hours("00:00-24:00").unwrap()[0].to_string(),
            "00:00-24:00"
        );
        for bad in [
            "8-20",
            "08:00",
            "20:00-08:00",
            "08:00-12:00,11:00-13:00",
            "25:00-26:00",
        ] {
            assert!(parse_hours(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn describe_day_prints_the_hours() {
        let w = window();
        assert_eq!(w.describe_day(Weekday::Mon), "08:00-20:00");
        assert_eq!(w.describe_day(Weekday::Sun), "closed");
    }
}
