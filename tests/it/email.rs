//! The email channel on its own: the `.eml` file transport and DKIM signing.

use chrono::{TimeZone, Utc};
use herald::channels::SendOutcome;
use herald::channels::email::{EmailChannel, OutgoingEmail};
use herald::config::{DkimAlgorithm, DkimSettings, EmailTransport};
use herald::domain::{EmailAddress, MessageId};

use crate::helpers::default_settings;

fn outgoing<'a>(to: &'a EmailAddress) -> OutgoingEmail<'a> {
    OutgoingEmail {
        id: MessageId(7),
        created_at: Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
        to_name: "Anna Nowak",
        to,
        subject: "Zebranie rodziców",
        body: "Zapraszamy w czwartek o 18:00.",
        html: None,
        date: Utc.with_ymd_and_hms(2026, 11, 24, 9, 30, 0).unwrap(),
    }
}

#[tokio::test]
async fn the_file_transport_writes_one_eml_per_message_and_a_retry_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = default_settings().email;
    settings.transport = EmailTransport::File {
        dir: dir.path().join("outbox"),
    };
    let channel = EmailChannel::build(&settings).unwrap();
    let to = EmailAddress::parse("anna.nowak@example.pl").unwrap();
    for _ in 0..2 {
        let outcome = channel.send(&outgoing(&to)).await;
        assert!(matches!(outcome, SendOutcome::Sent { .. }), "{outcome:?}");
    }
    let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("Message-ID: <herald.7.1795510800@herald-school.example>"),
        "{text}"
    );
    assert!(
        text.contains("Date: Tue, 24 Nov 2026 09:30:00 +0000"),
        "{text}"
    );
    assert!(
        text.contains("To: \"Anna Nowak\" <anna.nowak@example.pl>"),
        "{text}"
    );
}

#[tokio::test]
async fn dkim_signs_with_the_configured_key_and_a_bad_key_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dkim.key");
    // An Ed25519 key is any 32 bytes, written as base64.
    std::fs::write(&key, "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=\n").unwrap();
    let mut settings = default_settings().email;
    settings.transport = EmailTransport::File {
        dir: dir.path().join("outbox"),
    };
    settings.dkim = Some(DkimSettings {
        selector: "herald2026".into(),
        domain: "herald-school.example".into(),
        algorithm: DkimAlgorithm::Ed25519,
        private_key_file: key.clone(),
    });
    let channel = EmailChannel::build(&settings).unwrap();
    let to = EmailAddress::parse("anna.nowak@example.pl").unwrap();
    channel.send(&outgoing(&to)).await;
    let file = std::fs::read_dir(dir.path().join("outbox"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(file).unwrap();
    // The header is folded over several lines: unfold it.
    let start = text
        .find("DKIM-Signature:")
        .unwrap_or_else(|| panic!("no DKIM-Signature in {text}"));
    let mut signature = String::new();
    for (i, line) in text[start..].split("\r\n").enumerate() {
        if i > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        signature.push_str(line.trim());
    }
    assert!(signature.contains("a=ed25519-sha256"), "{signature}");
    assert!(signature.contains("d=herald-school.example"), "{signature}");
    assert!(signature.contains("s=herald2026"), "{signature}");

    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    if let Some(dkim) = settings.dkim.as_mut() {
        dkim.algorithm = DkimAlgorithm::Rsa;
    }
    let err = EmailChannel::build(&settings)
        .err()
        .expect("a bad key is refused");
    let text = err.to_string();
    assert!(text.contains("email.dkim.private_key_file"), "{text}");
    assert!(text.contains("PKCS#1"), "{text}");
}

/// Text that could end an SMTP transaction early or smuggle a second one: a line
/// with a lone dot, bare CR and LF, "\r\n.\r\n" and a very long line. All of it
/// arrives as one message with the text intact after it, and nothing more.
#[tokio::test]
async fn a_body_that_looks_like_the_end_of_data_arrives_whole_as_one_message() {
    let smtp = crate::smtp::SmtpServer::start().await;
    let settings = crate::helpers::sqlite().await.smtp_settings(&smtp).email;
    let channel = EmailChannel::build(&settings).unwrap();
    let to = EmailAddress::parse("anna.nowak@example.pl").unwrap();
    let long = "x".repeat(2_000);
    let body = format!(
        "Linia 1\n.\nLinia 3\r\n.\r\nMAIL FROM:<evil@example.com>\rbare CR\n{long}\nkoniec"
    );
    let email = OutgoingEmail {
        body: &body,
        ..outgoing(&to)
    };
    let outcome = channel.send(&email).await;
    assert!(matches!(outcome, SendOutcome::Sent { .. }), "{outcome:?}");
    let received = smtp.received();
    assert_eq!(received.len(), 1, "one message, nothing smuggled");
    assert_eq!(received[0].to, ["anna.nowak@example.pl"]);
    let data = &received[0].data;
    // Whatever the encoding chosen for the long line, the text decodes to the body.
    let decoded = mail_text(data);
    for part in [
        "Linia 1",
        "Linia 3",
        "MAIL FROM:<evil@example.com>",
        "koniec",
        &long,
    ] {
        assert!(
            decoded.contains(part),
            "{part:?} is missing from {decoded:?}"
        );
    }
}

/// A display name or subject carrying a line break (which compose and import refuse,
/// so only a bug could bring one here) still cannot add a header: the channel
/// encodes them, and the server sees one recipient and no Bcc.
#[tokio::test]
async fn a_line_break_in_a_name_or_subject_cannot_add_a_header() {
    let smtp = crate::smtp::SmtpServer::start().await;
    let settings = crate::helpers::sqlite().await.smtp_settings(&smtp).email;
    let channel = EmailChannel::build(&settings).unwrap();
    let to = EmailAddress::parse("anna.nowak@example.pl").unwrap();
    let email = OutgoingEmail {
        to_name: "Anna\r\nBcc: evil@example.com",
        subject: "Zebranie\r\nBcc: evil@example.com\nX-Injected: yes",
        ..outgoing(&to)
    };
    let outcome = channel.send(&email).await;
    assert!(matches!(outcome, SendOutcome::Sent { .. }), "{outcome:?}");
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].to,
        ["anna.nowak@example.pl"],
        "no smuggled recipient"
    );
    let (head, _) = received[0].data.split_once("\r\n\r\n").unwrap();
    for line in head.split("\r\n") {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            name != "bcc" && name != "x-injected",
            "an injected header: {line:?} in {head}"
        );
        assert!(!line.contains('\r') && !line.contains('\n'), "{line:?}");
    }
}

/// The body of a one-part message as text: quoted-printable or base64 undone.
fn mail_text(data: &str) -> String {
    let (head, body) = data.split_once("\r\n\r\n").expect("headers and a body");
    let encoding = head.to_ascii_lowercase();
    if encoding.contains("content-transfer-encoding: base64") {
        use base64::Engine;
        let joined: String = body.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(joined.trim_end_matches('.'))
            .expect("base64");
        String::from_utf8_lossy(&bytes).into_owned()
    } else if encoding.contains("content-transfer-encoding: quoted-printable") {
        let soft = body.replace("=\r\n", "");
        let mut out = Vec::new();
        let bytes = soft.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                if let Ok(b) = u8::from_str_radix(hex, 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    } else {
        body.to_owned()
    }
}
