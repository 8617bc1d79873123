//! The outbox workflow: an approval binds what was seen (edit sends the batch back),
//! approvals expire unused, whole batches can be cancelled.

use std::sync::Arc;

use herald::clock::FixedClock;
use herald::compose::{self, Content};
use herald::dispatcher::Outcome;
use herald::domain::{Audience, BatchStatus, MessageKind, MessageStatus, Reach, Reason};
use herald::store::{Decided, Decision, Hold};
use tokio_util::sync::CancellationToken;

use crate::conformance;
use crate::helpers::{OWNER, TestApp, audit_line, now, warsaw};
use crate::smtp::SmtpServer;
use herald::domain::audit::AuditAction;

conformance!(
    editing_an_approved_batch_sends_it_back_and_the_old_approval_sends_nothing,
    an_approval_unused_for_a_week_expires_back_into_the_outbox,
    a_cancelled_batch_sends_nothing,
    single_messages_are_approved_or_rejected_and_the_rest_wait,
    a_send_by_both_channels_or_sms_where_there_is_no_email,
);

async fn editing_an_approved_batch_sends_it_back_and_the_old_approval_sends_nothing(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let batch = app
        .approved_batch(
            &settings,
            Audience::Recipient("gd-2001".into()),
            Reach::Students,
            now(),
        )
        .await;
    let content = Content::email(
        "School closed on Friday",
        "Correction: Friday, not tomorrow.",
    )
    .unwrap();
    let edited = app
        .edit(
            batch,
            herald::domain::Channel::Email,
            content.subject.as_deref(),
            &content.body,
            None,
            None,
            OWNER,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(edited, Some(1));
    let b = &app.store.batches(None).await.unwrap()[0];
    assert_eq!(
        (b.status, b.decided_by.as_deref()),
        (BatchStatus::AwaitingApproval, None)
    );
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(
        (m.status, m.reason),
        (
            MessageStatus::AwaitingApproval,
            Some(Reason::AwaitingApproval)
        )
    );
    assert_eq!(m.subject.as_deref(), Some("School closed on Friday"));

    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(
        d.try_dispatch_next().await.unwrap(),
        None,
        "the old approval sends nothing"
    );
    assert!(smtp.received().is_empty());

    let decided = app
        .decide(batch, &Decision::Approve, OWNER, now())
        .await
        .unwrap();
    assert_eq!(decided, Decided::Done(1));
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    let received = smtp.received();
    assert_eq!(
        received[0].header("Subject").unwrap(),
        "School closed on Friday"
    );
    // A sent batch's messages are final: an edit changes nothing that went.
    let again = app
        .edit(
            batch,
            herald::domain::Channel::Email,
            Some("x"),
            "y",
            None,
            None,
            OWNER,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(again, Some(0));
}

async fn an_approval_unused_for_a_week_expires_back_into_the_outbox(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let batch = app
        .approved_batch(
            &settings,
            Audience::Recipient("gd-2001".into()),
            Reach::Students,
            now(),
        )
        .await;
    // Dispatch is held (an incident) for more than a week.
    let hold = Hold {
        since: now(),
        reason: "incident".into(),
        by: OWNER.into(),
    };
    app.store
        .set_hold(
            Some(&hold),
            &audit_line("owner", AuditAction::HoldOn, now()),
        )
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::new(now() + chrono::Duration::days(6)));
    let d = app.dispatcher_with(settings, &clock);
    d.run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        app.only_message_to("gd-2001").await.status,
        MessageStatus::Queued
    );

    clock.set(now() + chrono::Duration::days(8));
    d.run_pass(&MessageKind::ALL, &CancellationToken::new())
        .await
        .unwrap();
    let m = app.only_message_to("gd-2001").await;
    assert_eq!(
        (m.status, m.reason),
        (
            MessageStatus::AwaitingApproval,
            Some(Reason::ApprovalExpired)
        )
    );
    let b = &app.store.batches(None).await.unwrap()[0];
    assert_eq!(b.id, batch);
    assert_eq!(b.status, BatchStatus::AwaitingApproval);
    assert_eq!(b.decision_note.as_deref(), Some("approval expired unused"));

    // Lifting the hold sends nothing until someone approves again.
    app.store
        .set_hold(None, &audit_line("owner", AuditAction::HoldOff, now()))
        .await
        .unwrap();
    clock.set(warsaw("2026-12-03 10:00"));
    assert_eq!(d.try_dispatch_next().await.unwrap(), None);
    app.decide(batch, &Decision::Approve, OWNER, warsaw("2026-12-03 10:00"))
        .await
        .unwrap();
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
}

async fn a_cancelled_batch_sends_nothing(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let content = Content::email("Trip", "On Friday.").unwrap();
    let send = compose::compose_send(
        &*app.store,
        &settings,
        &app.owner().await,
        &Audience::AllGroups,
        Reach::Both,
        &content,
    )
    .await
    .unwrap();
    let batch = app.store_send(&send, now()).await;
    app.decide(batch, &Decision::Approve, OWNER, now())
        .await
        .unwrap();
    assert_eq!(app.cancel(batch, OWNER, now()).await.unwrap(), 1);
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), None);
    assert!(smtp.received().is_empty());
    assert_eq!(
        app.only_message_to("gd-2001").await.status,
        MessageStatus::Cancelled
    );
    // Blocked messages stay blocked: their reason still answers "why not".
    assert_eq!(
        app.only_message_to("s-1001").await.status,
        MessageStatus::Blocked
    );
}

async fn single_messages_are_approved_or_rejected_and_the_rest_wait(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let content = Content::email("Staff meeting", "On Friday at 15:00.").unwrap();
    let send = compose::compose_send(
        &*app.store,
        &settings,
        &app.owner().await,
        &Audience::List(vec!["gd-2001".into(), "t-3001".into(), "st-4001".into()]),
        Reach::Students,
        &content,
    )
    .await
    .unwrap();
    let batch = app.store_send(&send, now()).await;
    let id_of = |who: &'static str| {
        let app = &app;
        async move { app.only_message_to(who).await.id }
    };
    let (anna, barbara, dorota) = (
        id_of("gd-2001").await,
        id_of("t-3001").await,
        id_of("st-4001").await,
    );
    // The teacher's message goes now; the parent's is taken out with a reason.
    assert_eq!(
        app.decide_some(batch, &[barbara], &Decision::Approve, OWNER, now())
            .await
            .unwrap(),
        Decided::Done(1)
    );
    assert_eq!(
        app.decide_some(
            batch,
            &[anna, barbara],
            &Decision::Reject("parents are not invited".into()),
            OWNER,
            now()
        )
        .await
        .unwrap(),
        Decided::Done(1),
        "only the message still awaiting approval is decided"
    );
    let batches = app.store.batches(None).await.unwrap();
    assert_eq!(batches[0].status, BatchStatus::AwaitingApproval);
    assert_eq!(
        app.only_message_to("gd-2001").await.status,
        MessageStatus::Rejected
    );
    assert_eq!(
        app.only_message_to("st-4001").await.status,
        MessageStatus::AwaitingApproval
    );

    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    assert_eq!(d.try_dispatch_next().await.unwrap(), None, "the rest waits");
    assert_eq!(smtp.received_for("b.malinowska@example.pl").len(), 1);
    // Approving the batch then sends what was still waiting, and nothing twice.
    assert_eq!(
        app.decide(batch, &Decision::Approve, OWNER, now())
            .await
            .unwrap(),
        Decided::Done(1)
    );
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    assert_eq!(d.try_dispatch_next().await.unwrap(), None);
    assert_eq!(smtp.received().len(), 2);
    // A message of another batch, or of a decided batch, is not touched.
    assert!(matches!(
        app.decide_some(batch, &[dorota], &Decision::Approve, OWNER, now())
            .await
            .unwrap(),
        Decided::AlreadyDecided(BatchStatus::Approved)
    ));
}

async fn a_send_by_both_channels_or_sms_where_there_is_no_email(app: TestApp) {
    use herald::compose::Contents;
    use herald::domain::{Channel, ChannelChoice};
    app.import_examples(now()).await;
    // A teacher with a mobile phone and no email address.
    let extra = app.write(
        "recipients.csv",
        "external_id,role,name,email,phone,sms_enabled\nt-3009,teacher,Ewa Lis,,+48 603 100 309,yes\n",
    );
    app.import(&extra, now()).await;
    let owner = app.owner().await;
    let contents = |choice| Contents {
        choice,
        email: Some(Content::email("Closed tomorrow", "The school is closed tomorrow.").unwrap()),
        sms: Some(Content::sms("Szkola jutro zamknieta.", false, 3).unwrap()),
    };
    let audience = Audience::List(vec!["gd-2001".into(), "t-3009".into(), "s-1001".into()]);
    let channels_of = |send: &compose::Send, who: &str| {
        let mut v: Vec<(Channel, MessageStatus)> = send
            .messages
            .iter()
            .filter(|m| m.recipient_external_id == who)
            .map(|m| (m.channel, m.status))
            .collect();
        v.sort_by_key(|(c, _)| c.as_str());
        v
    };
    let both = compose::compose_send_to(
        &*app.store,
        &app.settings,
        &owner,
        &audience,
        Reach::Students,
        &contents(ChannelChoice::Both),
    )
    .await
    .unwrap();
    let waiting = MessageStatus::AwaitingApproval;
    assert_eq!(
        channels_of(&both, "gd-2001"),
        [(Channel::Email, waiting), (Channel::Sms, waiting)]
    );
    assert_eq!(
        channels_of(&both, "t-3009"),
        [
            (Channel::Email, MessageStatus::Blocked),
            (Channel::Sms, waiting)
        ]
    );
    let fallback = compose::compose_send_to(
        &*app.store,
        &app.settings,
        &owner,
        &audience,
        Reach::Students,
        &contents(ChannelChoice::SmsIfNoEmail),
    )
    .await
    .unwrap();
    assert_eq!(
        channels_of(&fallback, "gd-2001"),
        [(Channel::Email, waiting)]
    );
    assert_eq!(channels_of(&fallback, "t-3009"), [(Channel::Sms, waiting)]);
    // Reachable by neither: both kept as blocked, each with its own reason.
    let nobody: Vec<_> = fallback
        .messages
        .iter()
        .filter(|m| m.recipient_external_id == "s-1001")
        .map(|m| (m.channel, m.status, m.reason))
        .collect();
    assert_eq!(nobody.len(), 2, "{nobody:?}");
    assert!(
        nobody
            .iter()
            .all(|(_, s, r)| *s == MessageStatus::Blocked && r.is_some())
    );
    let id = app.store_send(&fallback, now()).await;
    let stored = &app.store.batches(None).await.unwrap()[0];
    assert_eq!(stored.id, id);
    assert_eq!(stored.channels, ChannelChoice::SmsIfNoEmail);
    assert_eq!(stored.channel, Channel::Email);
    assert_eq!(stored.subject.as_deref(), Some("Closed tomorrow"));
    // Editing the SMS text changes only the SMS.
    let edited = app
        .edit(
            id,
            Channel::Sms,
            None,
            "Szkola jutro nieczynna.",
            None,
            Some(1),
            OWNER,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(edited, Some(1));
    assert_eq!(
        app.store.batches(None).await.unwrap()[0].body,
        "The school is closed tomorrow."
    );
}

conformance!(an_html_variant_goes_beside_the_text_with_its_values_escaped);

async fn an_html_variant_goes_beside_the_text_with_its_values_escaped(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let v = herald::templates::Variant {
        name: "trip".into(),
        locale: "pl".into(),
        channel: herald::domain::Channel::Email,
        subject: Some("Wycieczka".into()),
        body: "Dzien dobry {{ recipient.first_name }}, jedziemy: {{ vars.where }}.".into(),
        html: Some(
            "<p>Dzien dobry <b>{{ recipient.first_name }}</b>, jedziemy: {{ vars.where }}.</p>"
                .into(),
        ),
    };
    herald::templates::check(&v).unwrap();
    app.store
        .save_template(&v, &audit_line(OWNER, AuditAction::TemplateSave, now()))
        .await
        .unwrap();
    let vars = [("where".to_owned(), "Torun & Bydgoszcz <3".to_owned())]
        .into_iter()
        .collect();
    let send = compose::compose_templated_send(
        &*app.store,
        &settings,
        &app.owner().await,
        &Audience::Recipient("gd-2001".into()),
        Reach::Students,
        herald::domain::ChannelChoice::Email,
        "trip",
        &vars,
        false,
    )
    .await
    .unwrap();
    let batch = app.store_send(&send, now()).await;
    assert!(app.store.batches(None).await.unwrap()[0].html.is_some());
    app.decide(batch, &Decision::Approve, OWNER, now())
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::new(warsaw("2026-11-24 10:00")));
    let d = app.dispatcher_with(settings, &clock);
    assert_eq!(d.try_dispatch_next().await.unwrap(), Some(Outcome::Sent));
    let got = smtp.received_for("anna.nowak@example.pl");
    assert_eq!(got.len(), 1);
    let data = &got[0].data;
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("Content-Type: text/plain"), "{data}");
    assert!(data.contains("Content-Type: text/html"), "{data}");
    assert!(data.contains("jedziemy: Torun & Bydgoszcz <3."), "{data}");
    assert!(
        data.contains("<b>Anna</b>, jedziemy: Torun &amp; Bydgoszcz &lt;3.</p>"),
        "{data}"
    );
}

conformance!(a_templated_send_names_all_of_a_guardians_students_in_their_own_locale,);

async fn a_templated_send_names_all_of_a_guardians_students_in_their_own_locale(app: TestApp) {
    app.import_examples(now()).await;
    // Piotr reads English (and has a valid address now).
    let piotr = app.write(
        "recipients.csv",
        "external_id,role,name,email,locale\ngd-2002,guardian,Piotr Wiśniewski,piotr.w@example.pl,en\n",
    );
    app.import(&piotr, now()).await;
    let contract = app.write(
        "contracts.csv",
        "external_id,student_id,status,consent\nc-1003,s-1003,active,yes\n",
    );
    app.import(&contract, now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    for (locale, subject, body) in [
        (
            "pl",
            "Zebranie {{ vars.day }}",
            "Dzień dobry {{ recipient.first_name }}, zapraszamy w sprawie: {% for s in students %}{{ s.first_name }}{% if not loop.last %} i {% endif %}{% endfor %}.",
        ),
        (
            "en",
            "Meeting {{ vars.day }}",
            "Hello {{ recipient.first_name }}, about: {% for s in students %}{{ s.first_name }}{% if not loop.last %} and {% endif %}{% endfor %}.",
        ),
    ] {
        let v = herald::templates::Variant {
            name: "meeting".into(),
            locale: locale.into(),
            channel: herald::domain::Channel::Email,
            subject: Some(subject.into()),
            body: body.into(),
            html: None,
        };
        herald::templates::check(&v).unwrap();
        app.store
            .save_template(&v, &audit_line(OWNER, AuditAction::TemplateSave, now()))
            .await
            .unwrap();
    }
    let vars = [("day".to_owned(), "czwartek".to_owned())]
        .into_iter()
        .collect();
    let send = compose::compose_templated_send(
        &*app.store,
        &settings,
        &app.owner().await,
        &Audience::AllGroups,
        Reach::Guardians,
        herald::domain::ChannelChoice::Email,
        "meeting",
        &vars,
        false,
    )
    .await
    .unwrap();
    let anna = send
        .messages
        .iter()
        .filter(|m| m.recipient_external_id == "gd-2001")
        .collect::<Vec<_>>();
    assert_eq!(anna.len(), 1, "one message for a guardian of two students");
    assert_eq!(anna[0].subject.as_deref(), Some("Zebranie czwartek"));
    assert!(
        anna[0].body.contains("Zofia i Jan") || anna[0].body.contains("Jan i Zofia"),
        "{}",
        anna[0].body
    );
    let piotr = send
        .messages
        .iter()
        .find(|m| m.recipient_external_id == "gd-2002")
        .unwrap();
    assert_eq!(piotr.subject.as_deref(), Some("Meeting czwartek"));
    assert_eq!(&*piotr.body, "Hello Piotr, about: Maja.");
    // The approver reads one rendered message per locale.
    let batch = app.store_send(&send, now()).await;
    let samples = app.store.sample_messages(batch).await.unwrap();
    let seen: Vec<(Option<&str>, Option<&str>)> = samples
        .iter()
        .map(|m| (m.locale.as_deref(), m.subject.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("en"), Some("Meeting czwartek")),
            (Some("pl"), Some("Zebranie czwartek"))
        ]
    );
}

conformance!(audiences_of_lists_several_groups_and_teachers_name_each_person_once);

async fn audiences_of_lists_several_groups_and_teachers_name_each_person_once(app: TestApp) {
    app.import_examples(now()).await;
    let smtp = SmtpServer::start().await;
    let settings = app.smtp_settings(&smtp);
    let content = Content::email("Note", "Text").unwrap();
    let people = |send: &compose::Send| {
        let mut ids: Vec<(String, MessageStatus)> = send
            .messages
            .iter()
            .map(|m| (m.recipient_external_id.clone(), m.status))
            .collect();
        ids.sort_by(|a, b| a.0.cmp(&b.0));
        ids
    };
    let owner = app.owner().await;
    let compose = |audience: Audience, reach: Reach| {
        let owner = owner.clone();
        let store = Arc::clone(&app.store);
        let settings = settings.clone();
        let content = content.clone();
        async move {
            compose::compose_send(&*store, &settings, &owner, &audience, reach, &content)
                .await
                .unwrap()
        }
    };
    let list = compose(
        Audience::List(vec!["gd-2001".into(), "t-3001".into(), "nobody".into()]),
        Reach::Students,
    )
    .await;
    assert_eq!(
        people(&list),
        [
            ("gd-2001".to_owned(), MessageStatus::AwaitingApproval),
            ("nobody".to_owned(), MessageStatus::Blocked),
            ("t-3001".to_owned(), MessageStatus::AwaitingApproval),
        ]
    );
    // g-1a has Zofia and Jan, g-3c has Maja: each once; their guardians once each.
    let groups = compose(
        Audience::Groups(vec!["g-1a".into(), "g-3c".into()]),
        Reach::Guardians,
    )
    .await;
    let ids: Vec<String> = people(&groups).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["gd-2001", "gd-2002"]);
    let teachers = compose(Audience::TeachersOf("g-3c".into()), Reach::Students).await;
    let ids: Vec<String> = people(&teachers).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["t-3001"]);
    let err = compose::compose_send(
        &*app.store,
        &settings,
        &app.owner().await,
        &Audience::Groups(vec!["g-1a".into(), "g-9z".into()]),
        Reach::Students,
        &content,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("g-9z"), "{err}");
}

conformance!(
    a_batch_larger_than_one_insert_is_stored_whole_with_its_blocked_messages,
    a_batch_that_fails_past_its_first_insert_stores_nothing,
);

/// Guardians `g-0`…, one student each (`s-0`…) in ten groups: every tenth guardian has
/// no email address, and every seventh contract no consent (a guardian can be both).
async fn import_guardians(app: &TestApp, count: usize) {
    use herald::domain::directory::{
        ContractRecord, ContractStatus, DirectoryRecord, RecipientRecord, Role,
    };
    let person = |id: String, role, email: Option<String>| {
        DirectoryRecord::Recipient(RecipientRecord {
            name: format!("Person {id}"),
            external_id: id,
            role,
            locale: None,
            email,
            phone: None,
            phone_e164: None,
            sms_enabled: false,
            birth_date: None,
        })
    };
    let mut records: Vec<DirectoryRecord> = (0..10)
        .map(|k| DirectoryRecord::Group {
            external_id: format!("grp-{k}"),
            name: format!("Group {k}"),
        })
        .collect();
    for i in 0..count {
        let email = (i % 10 != 9).then(|| format!("guardian{i}@example.pl"));
        records.extend([
            person(format!("s-{i}"), Role::Student, None),
            person(format!("g-{i}"), Role::Guardian, email),
            DirectoryRecord::Guardianship {
                guardian: format!("g-{i}"),
                student: format!("s-{i}"),
            },
            DirectoryRecord::Membership {
                group: format!("grp-{}", i % 10),
                member: format!("s-{i}"),
            },
            DirectoryRecord::Contract(ContractRecord {
                external_id: format!("c-{i}"),
                student: format!("s-{i}"),
                number: None,
                status: ContractStatus::Active,
                consent_email: i % 7 != 6,
                consent_sms: false,
                consent_at: None,
                consent_source: None,
                balance_cents: None,
                arrears_since: None,
            }),
        ]);
    }
    let outcomes = app
        .store
        .apply(&records, &audit_line("test", AuditAction::Import, now()))
        .await
        .unwrap();
    assert!(outcomes.iter().all(Result::is_ok));
}

/// A send to all groups' guardians, composed by the owner (it waits for approval).
async fn send_to_guardians(app: &TestApp) -> compose::Send {
    let content = Content::email("Meeting", "The meeting is on Thursday.").unwrap();
    compose::compose_send(
        &*app.store,
        &app.settings,
        &app.owner().await,
        &Audience::AllGroups,
        Reach::Guardians,
        &content,
    )
    .await
    .unwrap()
}

/// More messages than one insert statement takes (the store writes them some
/// 1,800 rows at a time): every one is stored, in order, with its `created` event,
/// and the blocked ones keep their reasons.
async fn a_batch_larger_than_one_insert_is_stored_whole_with_its_blocked_messages(app: TestApp) {
    let count = 4000;
    import_guardians(&app, count).await;
    let send = send_to_guardians(&app).await;
    assert_eq!(send.messages.len(), count);
    let batch = app.store_send(&send, now()).await;
    let stored = app
        .store
        .messages(&herald::store::MessageFilter {
            batch: Some(batch),
            ..Default::default()
        })
        .await
        .unwrap();
    // Newest first: in composing order, ids ascend.
    let stored: Vec<_> = stored.into_iter().rev().collect();
    assert_eq!(stored.len(), count);
    for (m, planned) in stored.iter().zip(&send.messages) {
        assert_eq!(
            (&m.recipient, m.status, m.reason, &m.address),
            (
                &planned.recipient_external_id,
                planned.status,
                planned.reason,
                &planned.address
            )
        );
    }
    // Guardian i: no email when i % 10 == 9 (reported first), else no consent when
    // i % 7 == 6.
    let missing_email = count / 10;
    let no_consent = (0..count).filter(|i| i % 10 != 9 && i % 7 == 6).count();
    let counts = app.store.batches(None).await.unwrap()[0].counts.clone();
    let count_of = |status, reason| {
        counts
            .iter()
            .find(|c| c.status == status && c.reason == reason)
            .map_or(0, |c| c.count as usize)
    };
    assert_eq!(
        count_of(MessageStatus::Blocked, Some(Reason::MissingEmail)),
        missing_email
    );
    assert_eq!(
        count_of(MessageStatus::Blocked, Some(Reason::NoConsent)),
        no_consent
    );
    assert_eq!(
        count_of(
            MessageStatus::AwaitingApproval,
            Some(Reason::AwaitingApproval)
        ),
        count - missing_email - no_consent
    );
    for m in [
        &stored[0],
        &stored[9],
        &stored[count / 2],
        &stored[count - 1],
    ] {
        let events = app.store.events(m.id).await.unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            (
                events[0].status.as_str(),
                events[0].reason.as_deref(),
                events[0].actor.as_deref(),
                events[0].note.as_deref()
            ),
            (
                m.status.as_str(),
                m.reason.map(|r| r.as_str()),
                Some(OWNER),
                Some("created")
            )
        );
    }
}

/// A message the database refuses in the batch's second insert statement: the
/// statements before it are undone, and the batch, its messages and its audit line
/// are not there at all.
async fn a_batch_that_fails_past_its_first_insert_stores_nothing(app: TestApp) {
    let count = 2500;
    import_guardians(&app, count).await;
    let mut send = send_to_guardians(&app).await;
    send.messages[count - 1].recipient_id = Some(herald::domain::RecipientId(i64::MAX));
    let audit = herald::store::AuditEntry {
        subject: "batch {id}".into(),
        ..audit_line(OWNER, AuditAction::Send, now())
    };
    assert!(
        app.store
            .create_batch(&send.batch, &send.messages, &audit)
            .await
            .is_err()
    );
    assert!(app.store.batches(None).await.unwrap().is_empty());
    let all = herald::store::MessageFilter::default();
    assert!(app.store.messages(&all).await.unwrap().is_empty());
    let sends = app
        .store
        .audit_log(&herald::store::AuditFilter {
            action: Some(AuditAction::Send),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(sends.is_empty());
}
