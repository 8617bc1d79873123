//! The directory in the store: listings, filters, and eligibility from stored facts,
//! including consent that reaches a guardian through their students' contracts.

use herald::domain::contact::PhoneRegion;
use herald::domain::directory::Role;
use herald::domain::{Channel, ConsentRules, Reason};
use herald::store::RecipientFilter;

use crate::conformance;
use crate::helpers::{TestApp, now};

conformance!(
    eligibility_from_stored_facts_gives_each_reason_code,
    a_guardian_is_covered_by_any_of_their_students_contracts,
    listings_filter_by_role_group_and_search,
    groups_count_their_students_and_teachers,
);

fn reasons(app: &TestApp, f: &herald::domain::EligibilityFacts, channel: Channel) -> Vec<Reason> {
    f.check(
        channel,
        app.settings.school.phone_region,
        app.settings.eligibility,
    )
}

async fn eligibility_from_stored_facts_gives_each_reason_code(app: TestApp) {
    app.import_examples(now()).await;
    let expect: [(&str, Channel, &[Reason]); 8] = [
        ("gd-2001", Channel::Email, &[]),
        ("gd-2001", Channel::Sms, &[]),
        ("s-1001", Channel::Email, &[Reason::MissingEmail]),
        (
            "s-1002",
            Channel::Sms,
            &[Reason::MissingPhone, Reason::NoConsent],
        ),
        (
            "gd-2002",
            Channel::Email,
            &[Reason::InvalidEmail, Reason::NoConsent],
        ),
        ("s-1003", Channel::Sms, &[Reason::NoConsent]),
        ("t-3001", Channel::Sms, &[]),
        (
            "st-4001",
            Channel::Sms,
            &[Reason::InvalidPhone, Reason::PhoneNotSmsEnabled],
        ),
    ];
    for (id, channel, want) in expect {
        let facts = app.store.recipient(id).await.unwrap().unwrap();
        assert_eq!(reasons(&app, &facts, channel), want, "{id} on {channel}");
    }
    assert!(app.store.recipient("nobody").await.unwrap().is_none());
}

async fn a_guardian_is_covered_by_any_of_their_students_contracts(app: TestApp) {
    app.import_examples(now()).await;
    // Anna Nowak has two children: c-1001 consents to SMS, c-1002 does not.
    let anna = app.store.recipient("gd-2001").await.unwrap().unwrap();
    let mut contracts: Vec<&str> = anna.contracts.iter().map(|c| c.contract.as_str()).collect();
    contracts.sort();
    assert_eq!(contracts, ["c-1001", "c-1002"]);
    assert_eq!(
        anna.consenting_contract(Channel::Sms)
            .map(|c| c.contract.as_str()),
        Some("c-1001")
    );

    // When the consenting contract ends, SMS consent is gone; email still has c-1002.
    let ended = app.write(
        "contracts.csv",
        "external_id,student_id,status,consent\nc-1001,s-1001,ended,yes\n",
    );
    app.import(&ended, now()).await;
    let anna = app.store.recipient("gd-2001").await.unwrap().unwrap();
    assert_eq!(reasons(&app, &anna, Channel::Sms), [Reason::NoConsent]);
    assert!(reasons(&app, &anna, Channel::Email).is_empty());

    // Teachers need no consent by default, but do when configured.
    let teacher = app.store.recipient("t-3001").await.unwrap().unwrap();
    assert!(teacher.contracts.is_empty());
    let strict = ConsentRules {
        teachers_need_consent: true,
        staff_need_consent: true,
    };
    assert_eq!(
        teacher.check(Channel::Email, PhoneRegion::PL, strict),
        [Reason::NoConsent]
    );
}

async fn listings_filter_by_role_group_and_search(app: TestApp) {
    app.import_examples(now()).await;
    let ids = |list: Vec<herald::domain::EligibilityFacts>| -> Vec<String> {
        list.into_iter().map(|f| f.recipient.external_id).collect()
    };
    let guardians = app
        .store
        .recipients(&RecipientFilter {
            role: Some(Role::Guardian),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(guardians), ["gd-2001", "gd-2002"]);

    let group = app
        .store
        .recipients(&RecipientFilter {
            group: Some("g-1a".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // Students first, then teachers; by name within a role.
    assert_eq!(ids(group), ["s-1002", "s-1001", "t-3001"]);

    let by_phone = app
        .store
        .recipients(&RecipientFilter {
            search: Some("+48600100200".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(by_phone), ["gd-2001"]);
    let by_name = app
        .store
        .recipients(&RecipientFilter {
            search: Some("wiśniew".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(by_name), ["s-1003", "gd-2002"]);
}

async fn groups_count_their_students_and_teachers(app: TestApp) {
    app.import_examples(now()).await;
    let groups = app.store.groups().await.unwrap();
    let summary: Vec<(&str, i64, i64)> = groups
        .iter()
        .map(|g| (g.external_id.as_str(), g.students, g.teachers))
        .collect();
    assert_eq!(summary, [("g-1a", 2, 1), ("g-3c", 1, 1)]);
    let counts = app.store.counts().await.unwrap();
    assert_eq!(
        (
            counts.students,
            counts.guardians,
            counts.teachers,
            counts.staff
        ),
        (3, 2, 1, 1)
    );
    assert_eq!((counts.contracts, counts.active_contracts), (3, 2));
}
