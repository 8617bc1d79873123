//! The holiday calendar in the store, and the send window reading it.

use chrono::{NaiveDate, TimeZone, Utc};
use herald::domain::{Holiday, Reason};

use crate::conformance;
use crate::helpers::{TestApp, audit_line, now};
use herald::domain::audit::AuditAction;

conformance!(
    holidays_are_added_listed_and_removed,
    a_stored_holiday_holds_messages_and_moves_the_next_opening,
);

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

async fn holidays_are_added_listed_and_removed(app: TestApp) {
    let christmas = Holiday::new("Christmas break", day("2026-12-23"), day("2026-12-31")).unwrap();
    let past = Holiday::new("Independence Day", day("2026-11-11"), day("2026-11-11")).unwrap();
    let stored = app
        .store
        .add_holiday(
            &christmas,
            &audit_line("owner", AuditAction::HolidayAdd, now()),
        )
        .await
        .unwrap();
    app.store
        .add_holiday(&past, &audit_line("owner", AuditAction::HolidayAdd, now()))
        .await
        .unwrap();
    assert!(stored.id.is_some());

    let all = app.store.holidays(None).await.unwrap();
    let names: Vec<&str> = all.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["Independence Day", "Christmas break"]);
    let upcoming = app.store.holidays(Some(day("2026-11-24"))).await.unwrap();
    assert_eq!(upcoming, vec![stored.clone()]);

    assert!(
        app.store
            .remove_holiday(
                stored.id.unwrap(),
                &audit_line("owner", AuditAction::HolidayRemove, now())
            )
            .await
            .unwrap()
    );
    assert!(
        !app.store
            .remove_holiday(
                stored.id.unwrap(),
                &audit_line("owner", AuditAction::HolidayRemove, now())
            )
            .await
            .unwrap()
    );
    assert_eq!(app.store.holidays(None).await.unwrap().len(), 1);
}

async fn a_stored_holiday_holds_messages_and_moves_the_next_opening(app: TestApp) {
    // Friday 2026-12-11 is a staff training day.
    let training = Holiday::new("Staff training", day("2026-12-11"), day("2026-12-12")).unwrap();
    app.store
        .add_holiday(
            &training,
            &audit_line("owner", AuditAction::HolidayAdd, now()),
        )
        .await
        .unwrap();
    let calendar = app.store.calendar(day("2026-12-10")).await.unwrap();
    let window = &app.settings.send_window;
    let friday_noon = Utc.with_ymd_and_hms(2026, 12, 11, 11, 0, 0).unwrap();
    assert_eq!(
        window.hold_reason(friday_noon, &calendar),
        Some(Reason::Holiday)
    );
    // Friday and Saturday off, Sunday closed: Monday 08:00 Warsaw.
    let next = window.next_opening(friday_noon, &calendar).unwrap();
    assert_eq!(next.to_rfc3339(), "2026-12-14T08:00:00+01:00");
}
