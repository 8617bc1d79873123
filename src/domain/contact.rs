//! Contact points: email addresses and mobile numbers, valid by construction.
//!
//! The directory stores what the platform sent, as it was sent, so that a bad value
//! can be shown back to people; these types are what that value must parse into
//! before a message may use it. A failed parse is the `invalid_email` or
//! `invalid_phone` reason.

use std::fmt;

use phonenumber::Mode;
pub use phonenumber::country::Id as PhoneRegion;

/// An email address that a mail server can deliver to.
///
/// Stricter than RFC 5322 allows, on purpose: `email_address`'s defaults accept
/// `user@localhost`, `a@[127.0.0.1]` and `"Jan <jan@example.com>"`, none of which a
/// school should send a parent's letter to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

/// Why a string is not an email address Herald sends to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing was given.
    #[error("the email address is empty")]
    Empty,
    /// The text does not parse.
    #[error("{value:?} is not a deliverable email address ({cause})")]
    Invalid {
        /// The text as given.
        value: String,
        /// What the parser objected to.
        cause: String,
    },
}

impl EmailAddress {
    /// Parses an address: one mailbox, no display name, no IP literal, a domain with a
    /// top-level part. Surrounding white space is ignored.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        let options = email_address::Options::default()
            .with_required_tld()
            .without_display_text()
            .without_domain_literal();
        email_address::EmailAddress::parse_with_options(trimmed, options)
            .map(|a| EmailAddress(a.email()))
            .map_err(|e| EmailError::Invalid {
                value: raw.to_owned(),
                cause: e.to_string(),
            })
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `@`, e.g. to suggest checking a domain's spam filter.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mobile number in E.164 form that an SMS gateway accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    e164: String,
    international: String,
}

/// Why a string is not a mobile number Herald sends SMS to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing was given.
    #[error("the phone number is empty")]
    Empty,
    /// The text is not a phone number at all.
    #[error("{0:?} is not a phone number")]
    NotANumber(String),
    /// It parses, but no such number exists in its country's numbering plan.
    #[error("{value:?} is not a valid number in {region}'s numbering plan")]
    NotValid {
        /// The text as given.
        value: String,
        /// The region the number was read in.
        region: String,
    },
    /// A valid number, but a landline or a service number that cannot receive SMS.
    #[error("{0} is not a mobile number (a landline or service number cannot receive SMS)")]
    NotMobile(String),
}

impl PhoneNumber {
    /// Parses a number written as people write them (`600 100 200`, `+48 600-100-200`,
    /// `0048600100200`) and keeps it only if it is a valid mobile number. Numbers
    /// without a country code are read in `default_region`.
    pub fn parse(raw: &str, default_region: PhoneRegion) -> Result<Self, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let number = phonenumber::parse(Some(default_region), trimmed)
            .map_err(|_| PhoneError::NotANumber(raw.to_owned()))?;
        // `parse` accepts any digits (`123` becomes `+48123`); validity is a separate
        // check against the numbering plan.
        if !number.is_valid() {
            let region = number
                .country()
                .id()
                .map(|id| format!("{id:?}"))
                .unwrap_or_else(|| format!("+{}", number.code().value()));
            return Err(PhoneError::NotValid {
                value: raw.to_owned(),
                region,
            });
        }
        let international = number.format().mode(Mode::International).to_string();
        match number.number_type(&phonenumber::metadata::DATABASE) {
            phonenumber::Type::Mobile | phonenumber::Type::FixedLineOrMobile => Ok(PhoneNumber {
                e164: number.format().mode(Mode::E164).to_string(),
                international,
            }),
            _ => Err(PhoneError::NotMobile(international)),
        }
    }

    /// The number in E.164 form, e.g. `+48600100200`: what gateways and the store use.
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The number as people read it, e.g. `+48 600 100 200`.
    pub fn international(&self) -> &str {
        &self.international
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

/// Parses a region code such as `PL` (ISO 3166-1 alpha-2, any case).
pub fn parse_region(code: &str) -> Option<PhoneRegion> {
    code.trim().to_ascii_uppercase().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PL: PhoneRegion = PhoneRegion::PL;

    #[test]
    fn email_addresses_that_a_server_can_deliver_to_parse() {
        for (raw, want) in [
            ("jan.kowalski@example.com", "jan.kowalski@example.com"),
            ("  anna@szkola.edu.pl ", "anna@szkola.edu.pl"),
            ("ola+rodzic@example.org", "ola+rodzic@example.org"),
            ("x@sub.domain.example.pl", "x@sub.domain.example.pl"),
        ] {
            assert_eq!(EmailAddress::parse(raw).unwrap().as_str(), want, "{raw}");
        }
    }

    #[test]
    fn email_addresses_herald_refuses() {
        for raw in [
            "jan.kowalski@gmail",      // no top-level domain
            "user@localhost",          // no top-level domain
            "a@[127.0.0.1]",           // domain literal
            "Jan <jan@example.com>",   // display text
            "jan.kowalski.example.pl", // no @
            "jan@@example.pl",
            "jan kowalski@example.pl",
            "jan@example.pl\r\nBcc: x@example.pl", // header injection
        ] {
            assert!(
                matches!(EmailAddress::parse(raw), Err(EmailError::Invalid { .. })),
                "{raw:?} should be invalid"
            );
        }
        assert_eq!(EmailAddress::parse("   "), Err(EmailError::Empty));
    }

    #[test]
    fn email_domain_is_the_part_after_the_at_sign() {
        let a = EmailAddress::parse("ola@szkola.edu.pl").unwrap();
        assert_eq!(a.domain(), "szkola.edu.pl");
    }

    #[test]
    fn polish_mobile_numbers_in_every_usual_spelling_parse_to_e164() {
        for raw in [
            "600100200",
            "600 100 200",
            "600-100-200",
            "+48600100200",
            "+48 600 100 200",
            "+48 600-100-200",
            "48600100200",
            "0048600100200",
            "(+48) 600 100 200",
        ] {
            let p = PhoneNumber::parse(raw, PL).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(p.e164(), "+48600100200", "{raw}");
        }
        assert_eq!(
            PhoneNumber::parse("600100200", PL).unwrap().international(),
            "+48 600 100 200"
        );
    }

    #[test]
    fn a_number_with_a_country_code_ignores_the_default_region() {
        let p = PhoneNumber::parse("+49 1512 3456789", PL).unwrap();
        assert_eq!(p.e164(), "+4915123456789");
        let p = PhoneNumber::parse("07400 123456", PhoneRegion::GB).unwrap();
        assert_eq!(p.e164(), "+447400123456");
    }

    #[test]
    fn numbers_that_cannot_receive_sms_are_refused_with_why() {
        assert!(matches!(
            PhoneNumber::parse("123", PL),
            Err(PhoneError::NotValid { .. })
        ));
        assert!(matches!(
            PhoneNumber::parse("+48 100 200 300", PL),
            Err(PhoneError::NotValid { .. })
        ));
        assert!(matches!(
            PhoneNumber::parse("not a number", PL),
            Err(PhoneError::NotANumber(_))
        ));
        // A Warsaw landline is a valid number, but not a mobile one.
        assert!(matches!(
            PhoneNumber::parse("22 123 45 67", PL),
            Err(PhoneError::NotMobile(_))
        ));
        assert_eq!(PhoneNumber::parse(" ", PL), Err(PhoneError::Empty));
    }

    #[test]
    fn region_codes_parse_in_any_case() {
        assert_eq!(parse_region("pl"), Some(PhoneRegion::PL));
        assert_eq!(parse_region("PL"), Some(PhoneRegion::PL));
        assert_eq!(parse_region("XX"), None);
    }
}
