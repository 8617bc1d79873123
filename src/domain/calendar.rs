//! The school's calendar of days off: holidays, breaks, single closed days.
//!
//! On a day off nothing that respects the send window goes; it waits for the next
//! open day instead of being dropped.

use chrono::NaiveDate;

/// A named day or run of days off, both ends included.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Holiday {
    /// The store's id, once stored.
    pub id: Option<i64>,
    /// What people call it ("Christmas break").
    pub name: String,
    /// The first day off.
    pub first_day: NaiveDate,
    /// The last day off (the same as `first_day` for a single day).
    pub last_day: NaiveDate,
}

/// Why a holiday cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HolidayError {
    /// The name is blank.
    #[error("a holiday needs a name")]
    MissingName,
    /// The range runs backwards.
    #[error("the last day {last} is before the first day {first}")]
    Backwards {
        /// The first day given.
        first: NaiveDate,
        /// The last day given.
        last: NaiveDate,
    },
}

impl Holiday {
    /// A holiday from `first_day` to `last_day`, both included.
    pub fn new(
        name: &str,
        first_day: NaiveDate,
        last_day: NaiveDate,
    ) -> Result<Self, HolidayError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(HolidayError::MissingName);
        }
        if last_day < first_day {
            return Err(HolidayError::Backwards {
                first: first_day,
                last: last_day,
            });
        }
        Ok(Holiday {
            id: None,
            name: name.to_owned(),
            first_day,
            last_day,
        })
    }

    /// Whether `day` is one of this holiday's days.
    pub fn covers(&self, day: NaiveDate) -> bool {
        self.first_day <= day && day <= self.last_day
    }
}

/// The days off that the send window skips.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolidayCalendar {
    holidays: Vec<Holiday>,
}

impl HolidayCalendar {
    /// A calendar of these holidays (overlaps are allowed).
    pub fn new(mut holidays: Vec<Holiday>) -> Self {
        holidays.sort_by_key(|h| (h.first_day, h.last_day));
        HolidayCalendar { holidays }
    }

    /// The holiday that `day` falls in, if any.
    pub fn holiday_on(&self, day: NaiveDate) -> Option<&Holiday> {
        self.holidays.iter().find(|h| h.covers(day))
    }

    /// All holidays, earliest first.
    pub fn holidays(&self) -> &[Holiday] {
        &self.holidays
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_range_covers_both_ends() {
        let cal = HolidayCalendar::new(vec![
            Holiday::new("Christmas break", d("2026-12-23"), d("2026-12-31")).unwrap(),
            Holiday::new("Independence Day", d("2026-11-11"), d("2026-11-11")).unwrap(),
        ]);
        assert_eq!(cal.holiday_on(d("2026-12-22")), None);
        assert_eq!(
            cal.holiday_on(d("2026-12-23")).unwrap().name,
            "Christmas break"
        );
        assert!(cal.holiday_on(d("2026-12-31")).is_some());
        assert_eq!(cal.holiday_on(d("2027-01-01")), None);
        assert_eq!(
            cal.holiday_on(d("2026-11-11")).unwrap().name,
            "Independence Day"
        );
        assert_eq!(cal.holidays()[0].name, "Independence Day");
    }

    #[test]
    fn a_holiday_needs_a_name_and_days_in_order() {
        assert_eq!(
            Holiday::new(" ", d("2026-01-01"), d("2026-01-01")),
            Err(HolidayError::MissingName)
        );
        assert!(matches!(
            Holiday::new("x", d("2026-01-02"), d("2026-01-01")),
            Err(HolidayError::Backwards { .. })
        ));
    }
}
