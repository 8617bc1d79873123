//! Eligibility: may a message go to this recipient on this channel at all?
//!
//! Every failed check is a reason code; an empty list means eligible. The checks run
//! when a message is created and again just before it is sent, so they take the
//! facts as they are at that moment and nothing else.

use super::contact::{EmailAddress, PhoneNumber, PhoneRegion};
use super::directory::{ContractConsent, ContractStatus, Recipient, Role};
use super::message::Channel;
use super::reason::Reason;

/// Who needs a contract's consent before Herald writes to them.
///
/// Students and guardians always do (their consent is the contract's); teachers and
/// staff are the school's own people and by default do not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsentRules {
    /// Teachers need a contract with consent too.
    pub teachers_need_consent: bool,
    /// Staff need a contract with consent too.
    pub staff_need_consent: bool,
}

/// Everything the checks need to know of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EligibilityFacts {
    /// The recipient and their contact points.
    pub recipient: Recipient,
    /// The contracts that speak for them: a student's own, or for a guardian those of
    /// the students in their care.
    pub contracts: Vec<ContractConsent>,
}

impl EligibilityFacts {
    /// The failed checks for `channel`, in the design's order; empty means eligible.
    pub fn check(&self, channel: Channel, region: PhoneRegion, rules: ConsentRules) -> Vec<Reason> {
        let mut failed = Vec::new();
        let r = &self.recipient;
        match channel {
            Channel::Email => match r.email.as_deref().map(str::trim) {
                None | Some("") => failed.push(Reason::MissingEmail),
                Some(raw) => {
                    // An address the receiving server refused for good is as
                    // undeliverable as one that does not parse.
                    if EmailAddress::parse(raw).is_err() || r.email_failure.is_some() {
                        failed.push(Reason::InvalidEmail);
                    }
                }
            },
            Channel::Sms => match r.phone.as_deref().map(str::trim) {
                None | Some("") => failed.push(Reason::MissingPhone),
                Some(raw) => {
                    // A number a gateway reported as not existing is as unusable as
                    // one that does not parse.
                    if PhoneNumber::parse(raw, region).is_err() || r.phone_failure.is_some() {
                        failed.push(Reason::InvalidPhone);
                    }
                    // Both can fail at once, and the secretary should learn both
                    // before calling the family.
                    if !r.sms_enabled {
                        failed.push(Reason::PhoneNotSmsEnabled);
                    }
                }
            },
        }
        if self.needs_consent(rules) && self.consenting_contract(channel).is_none() {
            failed.push(Reason::NoConsent);
        }
        failed
    }

    /// Whether this recipient's role needs a contract's consent.
    pub fn needs_consent(&self, rules: ConsentRules) -> bool {
        match self.recipient.role {
            Role::Student | Role::Guardian => true,
            Role::Teacher => rules.teachers_need_consent,
            Role::Staff => rules.staff_need_consent,
        }
    }

    /// The first active contract with consent for `channel`, if any: where the
    /// recipient's consent comes from.
    pub fn consenting_contract(&self, channel: Channel) -> Option<&ContractConsent> {
        self.contracts.iter().find(|c| {
            c.status == ContractStatus::Active
                && match channel {
                    Channel::Email => c.email.given,
                    Channel::Sms => c.sms.given,
                }
        })
    }
}

/// The result of the checks for a recipient who is not in the directory at all.
pub fn unknown_recipient() -> Vec<Reason> {
    vec![Reason::RecipientUnknown]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::directory::{Consent, RecipientId};

    const PL: PhoneRegion = PhoneRegion::PL;

    fn person(role: Role, email: Option<&str>, phone: Option<&str>, sms: bool) -> Recipient {
        Recipient {
            id: RecipientId(1),
            external_id: "p1".into(),
            role,
            name: "Ola Nowak".into(),
            locale: None,
            email: email.map(Into::into),
            phone: phone.map(Into::into),
            sms_enabled: sms,
            email_failure: None,
            phone_failure: None,
        }
    }

    fn contract(status: ContractStatus, email: bool, sms: bool) -> ContractConsent {
        ContractConsent {
            contract: "c1".into(),
            number: None,
            student: "s1".into(),
            status,
            email: Consent {
                given: email,
                changed_at: None,
            },
            sms: Consent {
                given: sms,
                changed_at: None,
            },
            source: None,
        }
    }

    fn facts(recipient: Recipient, contracts: Vec<ContractConsent>) -> EligibilityFacts {
        EligibilityFacts {
            recipient,
            contracts,
        }
    }

    fn check(f: &EligibilityFacts, channel: Channel) -> Vec<Reason> {
        f.check(channel, PL, ConsentRules::default())
    }

    const GOOD_EMAIL: Option<&str> = Some("ola@example.pl");
    const GOOD_PHONE: Option<&str> = Some("600 100 200");

    #[test]
    fn a_student_with_contacts_and_consent_is_eligible_on_both_channels() {
        let f = facts(
            person(Role::Student, GOOD_EMAIL, GOOD_PHONE, true),
            vec![contract(ContractStatus::Active, true, true)],
        );
        assert!(check(&f, Channel::Email).is_empty());
        assert!(check(&f, Channel::Sms).is_empty());
    }

    #[test]
    fn each_reason_code_for_the_matching_fault() {
        let ok = || vec![contract(ContractStatus::Active, true, true)];
        let cases: Vec<(EligibilityFacts, Channel, Vec<Reason>)> = vec![
            (
                facts(person(Role::Guardian, None, GOOD_PHONE, true), ok()),
                Channel::Email,
                vec![Reason::MissingEmail],
            ),
            (
                facts(person(Role::Guardian, Some("  "), GOOD_PHONE, true), ok()),
                Channel::Email,
                vec![Reason::MissingEmail],
            ),
            (
                facts(
                    person(Role::Guardian, Some("ola@gmail"), GOOD_PHONE, true),
                    ok(),
                ),
                Channel::Email,
                vec![Reason::InvalidEmail],
            ),
            (
                facts(person(Role::Guardian, GOOD_EMAIL, None, true), ok()),
                Channel::Sms,
                vec![Reason::MissingPhone],
            ),
            (
                facts(person(Role::Guardian, GOOD_EMAIL, Some("123"), true), ok()),
                Channel::Sms,
                vec![Reason::InvalidPhone],
            ),
            (
                // A landline is not a mobile number.
                facts(
                    person(Role::Guardian, GOOD_EMAIL, Some("22 123 45 67"), true),
                    ok(),
                ),
                Channel::Sms,
                vec![Reason::InvalidPhone],
            ),
            (
                facts(person(Role::Guardian, GOOD_EMAIL, GOOD_PHONE, false), ok()),
                Channel::Sms,
                vec![Reason::PhoneNotSmsEnabled],
            ),
            (
                facts(
                    person(Role::Guardian, GOOD_EMAIL, Some("123"), false),
                    vec![],
                ),
                Channel::Sms,
                vec![
                    Reason::InvalidPhone,
                    Reason::PhoneNotSmsEnabled,
                    Reason::NoConsent,
                ],
            ),
            (
                facts(person(Role::Student, GOOD_EMAIL, GOOD_PHONE, true), vec![]),
                Channel::Email,
                vec![Reason::NoConsent],
            ),
        ];
        for (f, channel, want) in cases {
            assert_eq!(check(&f, channel), want, "{:?} on {channel}", f.recipient);
        }
        assert_eq!(unknown_recipient(), vec![Reason::RecipientUnknown]);
    }

    #[test]
    fn an_address_marked_failing_is_invalid_until_it_changes() {
        let mut p = person(Role::Teacher, GOOD_EMAIL, GOOD_PHONE, true);
        p.email_failure = Some("550 5.1.1 no such user".into());
        let f = facts(p, vec![]);
        assert_eq!(check(&f, Channel::Email), vec![Reason::InvalidEmail]);
        assert!(check(&f, Channel::Sms).is_empty());
        let mut p = person(Role::Teacher, GOOD_EMAIL, GOOD_PHONE, true);
        p.phone_failure = Some("SMSAPI error 13: no correct phone numbers".into());
        let f = facts(p, vec![]);
        assert_eq!(check(&f, Channel::Sms), vec![Reason::InvalidPhone]);
    }

    #[test]
    fn consent_counts_only_from_an_active_contract_and_per_channel() {
        let p = || person(Role::Student, GOOD_EMAIL, GOOD_PHONE, true);
        for status in [
            ContractStatus::Pending,
            ContractStatus::Suspended,
            ContractStatus::Ended,
        ] {
            let f = facts(p(), vec![contract(status, true, true)]);
            assert_eq!(
                check(&f, Channel::Email),
                vec![Reason::NoConsent],
                "{status}"
            );
        }
        let email_only = facts(p(), vec![contract(ContractStatus::Active, true, false)]);
        assert!(check(&email_only, Channel::Email).is_empty());
        assert_eq!(check(&email_only, Channel::Sms), vec![Reason::NoConsent]);
    }

    #[test]
    fn one_consenting_contract_among_several_is_enough() {
        let f = facts(
            person(Role::Guardian, GOOD_EMAIL, GOOD_PHONE, true),
            vec![
                contract(ContractStatus::Ended, true, true),
                contract(ContractStatus::Active, false, false),
                contract(ContractStatus::Active, true, true),
            ],
        );
        assert!(check(&f, Channel::Email).is_empty());
        assert_eq!(
            f.consenting_contract(Channel::Email).map(|c| c.status),
            Some(ContractStatus::Active)
        );
    }

    #[test]
    fn teachers_and_staff_need_no_consent_unless_configured() {
        for role in [Role::Teacher, Role::Staff] {
            let f = facts(person(role, GOOD_EMAIL, GOOD_PHONE, true), vec![]);
            assert!(check(&f, Channel::Email).is_empty(), "{role}");
            let strict = ConsentRules {
                teachers_need_consent: true,
                staff_need_consent: true,
            };
            assert_eq!(
                f.check(Channel::Email, PL, strict),
                vec![Reason::NoConsent],
                "{role}"
            );
        }
    }
}
