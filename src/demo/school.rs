//! The demo school: a small, believable directory with the faults real data has
//! (missing and invalid contacts, contracts without consent, a phone not marked for
//! SMS), so that `herald demo` shows every reason code a secretary will meet.
//!
//! The school is written as an import file and loaded through the ordinary import,
//! so the demo also shows the JSON format and exercises the same path as real data.

use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

const GIRLS: [&str; 15] = [
    "Zofia", "Julia", "Maja", "Hanna", "Lena", "Alicja", "Oliwia", "Laura", "Pola", "Amelia",
    "Emilia", "Wiktoria", "Natalia", "Antonina", "Helena",
];
const BOYS: [&str; 15] = [
    "Antoni",
    "Jan",
    "Aleksander",
    "Franciszek",
    "Nikodem",
    "Leon",
    "Ignacy",
    "Stanisław",
    "Mikołaj",
    "Szymon",
    "Filip",
    "Wojciech",
    "Kacper",
    "Tymon",
    "Adam",
];
const SURNAMES: [(&str, &str); 15] = [
    ("Nowak", "Nowak"),
    ("Kowalski", "Kowalska"),
    ("Wiśniewski", "Wiśniewska"),
    ("Wójcik", "Wójcik"),
    ("Kowalczyk", "Kowalczyk"),
    ("Kamiński", "Kamińska"),
    ("Lewandowski", "Lewandowska"),
    ("Zieliński", "Zielińska"),
    ("Szymański", "Szymańska"),
    ("Woźniak", "Woźniak"),
    ("Dąbrowski", "Dąbrowska"),
    ("Kozłowski", "Kozłowska"),
    ("Jankowski", "Jankowska"),
    ("Mazur", "Mazur"),
    ("Krawczyk", "Krawczyk"),
];
const MOTHERS: [&str; 8] = [
    "Anna",
    "Katarzyna",
    "Magdalena",
    "Agnieszka",
    "Monika",
    "Ewa",
    "Joanna",
    "Marta",
];
const FATHERS: [&str; 8] = [
    "Piotr",
    "Tomasz",
    "Paweł",
    "Marcin",
    "Michał",
    "Krzysztof",
    "Łukasz",
    "Grzegorz",
];

/// Number of students in the demo school.
pub const STUDENTS: usize = 30;

/// ASCII letters for an email local part ("Wiśniewska" → "wisniewska").
fn ascii(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'ą' => 'a',
            'ć' => 'c',
            'ę' => 'e',
            'ł' | 'Ł' => 'l',
            'ń' => 'n',
            'ó' => 'o',
            'ś' | 'Ś' => 's',
            'ź' | 'ż' | 'Ż' => 'z',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// The demo school as an import document (the JSON import format), plus the
/// holiday the demo adds: the next Christmas break after `today`.
pub fn school(today: NaiveDate) -> (Value, (String, NaiveDate, NaiveDate)) {
    let mut recipients = Vec::new();
    let mut guardianships = Vec::new();
    let mut memberships = Vec::new();
    let mut contracts = Vec::new();
    let mut instalments = Vec::new();
    let groups = [
        ("g-1a", "1A Beginners"),
        ("g-2b", "2B Intermediate"),
        ("g-3c", "3C Exam class"),
    ];

    let teachers = [
        (
            "t-01",
            "Barbara Malinowska",
            "b.malinowska@szkola-herald.pl",
            "601 200 301",
        ),
        (
            "t-02",
            "Robert Pawlak",
            "r.pawlak@szkola-herald.pl",
            "601 200 302",
        ),
        (
            "t-03",
            "Ewelina Sikora",
            "e.sikora@szkola-herald.pl",
            "601 200 303",
        ),
    ];
    for (i, (id, name, email, phone)) in teachers.iter().enumerate() {
        recipients.push(json!({
            "external_id": id, "role": "teacher", "name": name, "email": email,
            "phone": phone, "sms_enabled": true, "locale": "pl",
        }));
        memberships.push(json!({"group_id": groups[i].0, "member_id": id}));
    }
    // Ewelina Sikora also teaches the beginners.
    memberships.push(json!({"group_id": "g-1a", "member_id": "t-03"}));
    recipients.push(json!({
        "external_id": "staff-01", "role": "staff", "name": "Dorota Michalska",
        "email": "sekretariat@szkola-herald.pl", "phone": "22 628 10 10", "sms_enabled": false,
    }));

    let mut guardian_number = 0;
    for s in 0..STUDENTS {
        let student = format!("s-{:02}", s + 1);
        let family = s % SURNAMES.len();
        let girl = s % 2 == 0;
        let (his, her) = SURNAMES[family];
        let first = if girl { GIRLS[s / 2] } else { BOYS[s / 2] };
        let surname = if girl { her } else { his };
        let group = groups[s / 10].0;
        // Students of the exam class are adults with their own contact points.
        let adult = s >= 20;
        let mut student_row = json!({
            "external_id": student, "role": "student",
            "name": format!("{first} {surname}"), "locale": "pl",
        });
        if adult {
            student_row["email"] = json!(format!(
                "{}.{}@poczta.example.pl",
                ascii(first),
                ascii(surname)
            ));
            student_row["phone"] = json!(format!("+48 512 300 {:03}", s));
            student_row["sms_enabled"] = json!(true);
        }
        // Birthdays: s-21 (an adult with an email address) turns 19 today, s-22 too
        // (but her contract has ended); the others at other times of the year.
        let born = match s {
            20 | 21 => today
                .with_year(today.year() - 19)
                .unwrap_or_else(|| today - chrono::Duration::days(365 * 19)),
            _ => NaiveDate::from_ymd_opt(2010 + (s % 8) as i32, 1 + (s % 12) as u32, 1 + s as u32)
                .expect("a valid date"),
        };
        student_row["birth_date"] = json!(born.to_string());
        recipients.push(student_row);
        memberships.push(json!({"group_id": group, "member_id": student}));

        // Siblings: students 15..30 share their family with student s-15, so their
        // guardians are the same people (one message each, not one per child).
        if s < SURNAMES.len() && !adult {
            guardian_number += 1;
            let mother = format!("gd-{:02}", guardian_number);
            let mother_name = format!("{} {}", MOTHERS[s % MOTHERS.len()], her);
            let mut row = json!({
                "external_id": mother, "role": "guardian", "name": mother_name, "locale": "pl",
                "email": format!("{}.{}@rodzice.example.pl", ascii(MOTHERS[s % MOTHERS.len()]), ascii(her)),
                "phone": format!("+48 600 100 {:03}", s), "sms_enabled": true,
            });
            // The faults every school's data has.
            match s {
                2 => row["email"] = Value::Null, // never gave an email
                4 => row["email"] = json!(format!("{}@gmail", ascii(her))), // no domain ending
                6 => row["phone"] = json!("123 456"), // not a phone number
                8 => row["sms_enabled"] = json!(false), // a number that does not take SMS
                10 => row["phone"] = Value::Null, // no phone at all
                _ => {}
            }
            recipients.push(row);
            guardianships.push(json!({"guardian_id": mother, "student_id": student}));
            if s % 3 == 0 {
                guardian_number += 1;
                let father = format!("gd-{:02}", guardian_number);
                recipients.push(json!({
                    "external_id": father, "role": "guardian",
                    "name": format!("{} {}", FATHERS[s % FATHERS.len()], his), "locale": "pl",
                    "email": format!("{}.{}@rodzice.example.pl", ascii(FATHERS[s % FATHERS.len()]), ascii(his)),
                    "phone": format!("600-200-{:03}", s), "sms_enabled": true,
                }));
                guardianships.push(json!({"guardian_id": father, "student_id": student}));
            }
        } else if !adult {
            // A younger sibling of student s-(s-14): the same mother.
            let sibling = s - SURNAMES.len();
            let mother = guardianships
                .iter()
                .find(|g| g["student_id"] == json!(format!("s-{:02}", sibling + 1)))
                .map(|g| g["guardian_id"].clone())
                .expect("every family's first child has a guardian");
            guardianships.push(json!({"guardian_id": mother, "student_id": student}));
        }

        let (status, email_consent, sms_consent) = match s {
            1 | 12 => ("active", false, false), // the form was never signed
            5 => ("active", true, false),       // email yes, SMS no
            21 => ("ended", true, true),        // left the school in June
            23 => ("suspended", true, true),    // a break the family asked for
            _ => ("active", true, true),
        };
        let contract = format!("c-2026-{:03}", s + 1);
        let mut row = json!({
            "external_id": contract, "student_id": student,
            "number": format!("UM/2026/{:03}", s + 1), "status": status,
            "consent_email": email_consent, "consent_sms": sms_consent,
            "consent_date": "2026-09-01", "consent_source": "enrolment form",
        });
        // One family is four weeks behind with 450 zł: an arrears notice today.
        if s == 3 {
            row["balance"] = json!("450.00");
            row["arrears_since"] = json!((today - chrono::Duration::days(28)).to_string());
        }
        contracts.push(row);
        // Every active contract has an instalment due in a week (the first
        // family has paid already): reminders go today, seven days before.
        if status == "active" {
            instalments.push(json!({
                "external_id": format!("i-{:03}-next", s + 1), "contract_id": contract,
                "due_date": (today + chrono::Duration::days(7)).to_string(),
                "amount": if s >= 20 { "540.00" } else { "320.00" },
                "paid": s == 0,
            }));
        }
    }

    let groups: Vec<Value> = groups
        .iter()
        .map(|(id, name)| json!({"external_id": id, "name": name}))
        .collect();
    let document = json!({
        "recipients": recipients,
        "groups": groups,
        "guardianships": guardianships,
        "memberships": memberships,
        "contracts": contracts,
        "instalments": instalments,
    });

    // The break of this school year's December (still current from the 23rd to the 31st).
    let year = today.year();
    let first = NaiveDate::from_ymd_opt(year, 12, 23).expect("a valid date");
    let last = NaiveDate::from_ymd_opt(year, 12, 31).expect("a valid date");
    (document, ("Christmas break".to_owned(), first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_school_has_thirty_students_three_groups_and_faults() {
        let (doc, holiday) = school(NaiveDate::from_ymd_opt(2026, 11, 24).unwrap());
        let recipients = doc["recipients"].as_array().unwrap();
        let students = recipients.iter().filter(|r| r["role"] == "student").count();
        assert_eq!(students, STUDENTS);
        assert_eq!(doc["groups"].as_array().unwrap().len(), 3);
        assert!(
            recipients
                .iter()
                .any(|r| r["email"] == json!("kowalczyk@gmail"))
        );
        assert!(recipients.iter().any(|r| r["sms_enabled"] == json!(false)));
        assert_eq!(holiday.1.to_string(), "2026-12-23");
        assert_eq!(ascii("Wiśniewska"), "wisniewska");
    }
}
