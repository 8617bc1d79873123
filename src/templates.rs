//! Templates: named texts with placeholders, one variant per locale and channel,
//! rendered with minijinja in strict mode.
//!
//! Strict means a template is checked when it is saved: every variable it names
//! must be one of the documented ones (or a free `vars.NAME` given at send time), and
//! a trial render with sample values must succeed, so an unknown filter or a typo is
//! an error then, never a blank in a sent message. Rendering has fuel, a recursion
//! limit and an output bound that stops it as it writes, so a template cannot loop
//! or grow without bound, whatever the data.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, State, UndefinedBehavior};
use serde::Serialize;

use crate::domain::Channel;

/// The variables a template may use, with what they hold.
pub const VARIABLES: [(&str, &str); 11] = [
    ("recipient.name", "the recipient's full name"),
    ("recipient.first_name", "the recipient's first name"),
    ("recipient.role", "student, guardian, teacher or staff"),
    (
        "school.name",
        "the school's name (school.name in the configuration)",
    ),
    (
        "students",
        "the students the message is about: a list of {name, first_name}; for a guardian, all their students in the audience",
    ),
    ("student.name / student.first_name", "the first of them"),
    (
        "contract.number",
        "the number of the student's (first) contract, if any",
    ),
    ("locale", "the locale the message is written in"),
    (
        "instalment.amount / instalment.due_date",
        "the instalment a reminder is about (periodic rules): its amount (use | money) and due date",
    ),
    (
        "arrears.amount / arrears.since / arrears.days",
        "the overdue balance a notice is about (periodic rules): amount, since when, days",
    ),
    (
        "vars.NAME",
        "a free variable given at send time (--var NAME=VALUE)",
    ),
];

/// The top-level names behind [`VARIABLES`].
const ALLOWED: [&str; 9] = [
    "recipient",
    "school",
    "students",
    "student",
    "contract",
    "locale",
    "vars",
    "instalment",
    "arrears",
];

/// Fuel for one render: enough for a letter with a loop over a family's students,
/// far too little for a runaway loop.
const FUEL: u64 = 50_000;

/// The longest rendered part, in bytes: rendering stops there, so a template (or a
/// family with very many children) cannot build a huge text first.
const MAX_OUTPUT: usize = 256 * 1024;

/// The rendered text, refusing to grow past its limit: the write that would cross
/// it fails, which ends the render at once.
struct Bounded {
    out: Vec<u8>,
    left: usize,
    overflowed: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            self.overflowed = true;
            return Err(std::io::Error::other("the rendered text is too long"));
        }
        self.left -= buf.len();
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One variant of a named template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    /// The template's name.
    pub name: String,
    /// Its locale (`pl`, `en`).
    pub locale: String,
    /// Its channel.
    pub channel: Channel,
    /// The subject (email).
    pub subject: Option<String>,
    /// The body (plain text).
    pub body: String,
    /// An HTML body sent beside the plain text (email only); values are HTML-escaped.
    pub html: Option<String>,
}

/// A variant rendered for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject (email).
    pub subject: Option<String>,
    /// The plain-text body.
    pub body: String,
    /// The HTML body, when the variant has one.
    pub html: Option<String>,
}

/// What is wrong with a template or its rendering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The text does not parse.
    #[error("the template's {part} does not parse: {detail}")]
    Syntax {
        /// `subject` or `body`.
        part: &'static str,
        /// The parser's words.
        detail: String,
    },
    /// A variable that is not documented.
    #[error(
        "the template's {part} uses {name:?}, which is not a template variable; expected one \
         of recipient, school, students, student, contract, locale, or vars.NAME"
    )]
    UnknownVariable {
        /// `subject` or `body`.
        part: &'static str,
        /// The name.
        name: String,
    },
    /// Rendering failed (an unknown filter, a missing free variable, too much work).
    #[error("the template's {part} cannot be rendered: {detail}")]
    Render {
        /// `subject` or `body`.
        part: &'static str,
        /// Why.
        detail: String,
    },
    /// An email subject rendered to more than one line.
    #[error("the rendered subject contains a line break")]
    SubjectLines,
    /// The variant is not usable for its channel.
    #[error("{0}")]
    Shape(&'static str),
}

/// Everything a template can see for one recipient.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    /// The recipient.
    pub recipient: Person,
    /// The school.
    pub school: School,
    /// The students the message is about.
    pub students: Vec<Person>,
    /// The first of them.
    pub student: Option<Person>,
    /// The student's first contract.
    pub contract: Option<Contract>,
    /// The locale written in.
    pub locale: String,
    /// Free variables.
    pub vars: BTreeMap<String, String>,
    /// The instalment a reminder is about.
    pub instalment: Option<Instalment>,
    /// The overdue balance a notice is about.
    pub arrears: Option<Arrears>,
}

/// An instalment as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct Instalment {
    /// Its amount in złoty.
    pub amount: f64,
    /// Its due date, written for the locale.
    pub due_date: String,
}

/// An overdue balance as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct Arrears {
    /// The balance in złoty.
    pub amount: f64,
    /// Since when it is overdue, written for the locale.
    pub since: String,
    /// Days in arrears.
    pub days: i64,
}

/// A date as people of `locale` write it: `01.12.2026` in Polish, ISO otherwise.
pub fn local_date(date: chrono::NaiveDate, locale: &str) -> String {
    if locale.starts_with("pl") {
        date.format("%d.%m.%Y").to_string()
    } else {
        date.format("%Y-%m-%d").to_string()
    }
}

/// A person as templates see them.
#[derive(Debug, Clone, Serialize)]
pub struct Person {
    /// Full name.
    pub name: String,
    /// First name.
    pub first_name: String,
    /// Role.
    pub role: String,
}

impl Person {
    /// A person from a full name and role.
    pub fn new(name: &str, role: &str) -> Person {
        Person {
            name: name.to_owned(),
            first_name: name.split_whitespace().next().unwrap_or(name).to_owned(),
            role: role.to_owned(),
        }
    }
}

/// The school as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct School {
    /// Its name.
    pub name: String,
}

/// A contract as templates see it.
#[derive(Debug, Clone, Serialize)]
pub struct Contract {
    /// Its number.
    pub number: String,
}

/// The environment for one part. In the HTML part every value is escaped, so a name
/// like `<b>Jan</b>` stays text.
fn environment(html: bool) -> Environment<'static> {
    let mut env = Environment::new();
    if html {
        env.set_auto_escape_callback(|_| AutoEscape::Html);
    } else {
        env.set_auto_escape_callback(|_| AutoEscape::None);
    }
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(20);
    env.add_filter("money", money);
    env
}

/// `{{ 1234.5 | money }}`: an amount in złoty, written for the message's locale
/// (`1 234,50 zł` in Polish, `PLN 1,234.50` otherwise).
fn money(state: &State, amount: f64) -> String {
    let locale = state
        .lookup("locale")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let cents = (amount * 100.0).round() as i64;
    let (whole, frac) = (cents.abs() / 100, cents.abs() % 100);
    let digits = whole.to_string();
    let polish = locale.starts_with("pl");
    let sep = if polish { ' ' } else { ',' };
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(sep);
        }
        grouped.push(c);
    }
    let sign = if cents < 0 { "-" } else { "" };
    if polish {
        format!("{sign}{grouped},{frac:02} zł")
    } else {
        format!("{sign}PLN {grouped}.{frac:02}")
    }
}

fn parts(v: &Variant) -> Vec<(&'static str, &str)> {
    let mut parts = Vec::new();
    if let Some(s) = &v.subject {
        parts.push(("subject", s.as_str()));
    }
    parts.push(("body", v.body.as_str()));
    if let Some(h) = &v.html {
        parts.push(("html", h.as_str()));
    }
    parts
}

/// Checks a variant before it is saved: its shape for the channel, its syntax, its
/// variables, and a trial render with sample values.
pub fn check(v: &Variant) -> Result<(), TemplateError> {
    preview(v).map(|_| ())
}

/// The variant rendered with sample values (a free variable shows as `<name>`),
/// after the same checks as [`check`].
pub fn preview(v: &Variant) -> Result<Rendered, TemplateError> {
    match v.channel {
        Channel::Email if v.subject.as_deref().is_none_or(|s| s.trim().is_empty()) => {
            return Err(TemplateError::Shape("an email template needs a subject"));
        }
        Channel::Sms if v.subject.is_some() => {
            return Err(TemplateError::Shape("an SMS template has no subject"));
        }
        Channel::Sms if v.html.is_some() => {
            return Err(TemplateError::Shape("an SMS template has no HTML body"));
        }
        _ => {}
    }
    if v.body.trim().is_empty() {
        return Err(TemplateError::Shape("the template's body is empty"));
    }
    if v.html.as_deref().is_some_and(|h| h.trim().is_empty()) {
        return Err(TemplateError::Shape("the template's HTML body is empty"));
    }
    let mut free = BTreeMap::new();
    for (part, source) in parts(v) {
        let env = environment(part == "html");
        let template = env
            .template_from_str(source)
            .map_err(|e| TemplateError::Syntax {
                part,
                detail: e.to_string(),
            })?;
        for name in template.undeclared_variables(true) {
            let top = name.split('.').next().unwrap_or_default();
            // Built-in functions (range, dict, …) are not variables.
            let builtin = env.globals().any(|(global, _)| global == top);
            if !ALLOWED.contains(&top) && !builtin {
                return Err(TemplateError::UnknownVariable { part, name });
            }
            if let Some(var) = name.strip_prefix("vars.") {
                free.insert(var.to_owned(), format!("<{var}>"));
            }
        }
    }
    render(v, &sample(free))
}

/// A context with sample values, for checks and previews without a recipient.
pub fn sample(vars: BTreeMap<String, String>) -> Context {
    let student = Person::new("Zofia Nowak", "student");
    Context {
        recipient: Person::new("Anna Nowak", "guardian"),
        school: School {
            name: "Herald School".into(),
        },
        students: vec![student.clone(), Person::new("Jan Nowak", "student")],
        student: Some(student),
        contract: Some(Contract {
            number: "UM/2026/001".into(),
        }),
        locale: "pl".into(),
        vars,
        instalment: Some(Instalment {
            amount: 300.0,
            due_date: "01.12.2026".into(),
        }),
        arrears: Some(Arrears {
            amount: 450.0,
            since: "10.10.2026".into(),
            days: 45,
        }),
    }
}

/// Renders a variant for one recipient: the subject (email), the body and the HTML
/// body (when there is one).
pub fn render(v: &Variant, ctx: &Context) -> Result<Rendered, TemplateError> {
    Compiled::new(v).render(ctx)
}

/// A variant parsed once, to render for many recipients: a rule's run writes to
/// thousands of people from one template, and parsing it again for each of them
/// cost more than rendering. Fuel and the output bound still count per render.
pub struct Compiled {
    /// Each part in rendering order, with its own environment (the HTML part escapes
    /// what the others do not), or why it does not parse. A part that does not parse
    /// fails when it is rendered, after the parts before it, as [`render`] always
    /// did.
    parts: Vec<(&'static str, Result<Environment<'static>, String>)>,
}

/// The name each part is compiled under: the one minijinja gives a template made
/// from a string, so the errors read as they did when each render parsed anew.
const PART_NAME: &str = "<string>";

impl Compiled {
    /// Parses every part of `v`.
    pub fn new(v: &Variant) -> Compiled {
        let parts = parts(v)
            .into_iter()
            .map(|(part, source)| {
                let mut env = environment(part == "html");
                let compiled = env
                    .add_template_owned(PART_NAME, source.to_owned())
                    .map(|()| env)
                    .map_err(|e| e.to_string());
                (part, compiled)
            })
            .collect();
        Compiled { parts }
    }

    /// Renders the variant for one recipient, as [`render`] does.
    pub fn render(&self, ctx: &Context) -> Result<Rendered, TemplateError> {
        let mut out = Rendered {
            subject: None,
            body: String::new(),
            html: None,
        };
        let value = minijinja::Value::from(minijinja::value::Serde(ctx));
        for (part, env) in &self.parts {
            let part = *part;
            let mut text = Bounded {
                out: Vec::new(),
                left: MAX_OUTPUT,
                overflowed: false,
            };
            let rendered = match env {
                Ok(env) => env
                    .get_template(PART_NAME)
                    .and_then(|t| t.render_captured_to(value.clone(), &mut text).map(|_| ())),
                Err(detail) => {
                    return Err(TemplateError::Render {
                        part,
                        detail: detail.clone(),
                    });
                }
            };
            if let Err(e) = rendered {
                let detail = if text.overflowed {
                    format!(
                        "longer than {} KiB (stopped while rendering)",
                        MAX_OUTPUT / 1024
                    )
                } else {
                    e.to_string()
                };
                return Err(TemplateError::Render { part, detail });
            }
            // Whole writes of UTF-8 strings: the bytes are UTF-8.
            let text = String::from_utf8_lossy(&text.out).into_owned();
            match part {
                "subject" => {
                    if text.contains(['\r', '\n']) {
                        return Err(TemplateError::SubjectLines);
                    }
                    out.subject = Some(text);
                }
                "html" => out.html = Some(text),
                _ => out.body = text,
            }
        }
        Ok(out)
    }
}

/// The variant for `locale`, else for `default_locale`, else the first one.
pub fn pick<'a>(
    variants: &'a [Variant],
    locale: Option<&str>,
    default_locale: &str,
) -> Option<&'a Variant> {
    pick_index(variants, locale, default_locale).map(|i| &variants[i])
}

/// Where [`pick`]'s choice is in `variants`, for a caller that keeps something
/// beside each variant (its [`Compiled`] form).
pub fn pick_index(
    variants: &[Variant],
    locale: Option<&str>,
    default_locale: &str,
) -> Option<usize> {
    locale
        .and_then(|l| variants.iter().position(|v| v.locale == l))
        .or_else(|| variants.iter().position(|v| v.locale == default_locale))
        .or_else(|| (!variants.is_empty()).then_some(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(body: &str) -> Variant {
        Variant {
            name: "t".into(),
            locale: "pl".into(),
            channel: Channel::Email,
            subject: Some("Dzień dobry {{ recipient.first_name }}".into()),
            body: body.into(),
            html: None,
        }
    }

    #[test]
    fn unknown_variables_and_filters_are_refused_at_save() {
        assert!(check(&email("Zebranie dla {{ student.first_name }}.")).is_ok());
        assert!(matches!(
            check(&email("Dla {{ studnet.name }}")),
            Err(TemplateError::UnknownVariable { .. })
        ));
        assert!(matches!(
            check(&email("{{ school.name | shout }}")),
            Err(TemplateError::Render { .. })
        ));
        assert!(matches!(
            check(&email("{% if %}")),
            Err(TemplateError::Syntax { .. })
        ));
        // A free variable is declared by using it under vars.
        assert!(check(&email("Wycieczka: {{ vars.place }}")).is_ok());
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let v =
            email("{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}");
        match check(&v) {
            Err(TemplateError::Render { detail, .. }) => {
                assert!(detail.contains("fuel"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn output_is_bounded_while_rendering_also_when_the_data_makes_it_grow() {
        // The template is short and cheap in fuel; the data makes it long.
        let v = email("{% for c in vars.children | split(',') %}{{ vars.pad }}{% endfor %}");
        let mut vars = BTreeMap::new();
        vars.insert("children".to_owned(), vec!["Jan"; 200].join(","));
        vars.insert("pad".to_owned(), "x".repeat(2000));
        match render(&v, &sample(vars)) {
            Err(TemplateError::Render { part, detail }) => {
                assert_eq!(part, "body");
                assert!(detail.contains("256 KiB"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // A string repeated to 100 MB is refused (out of fuel), not built.
        let v = email("{{ 'x' * 100000000 }}");
        let refused = render(&v, &sample(BTreeMap::new()));
        assert!(
            matches!(refused, Err(TemplateError::Render { .. })),
            "{refused:?}"
        );
        // Within the bound, the same loop renders.
        let mut vars = BTreeMap::new();
        vars.insert("children".to_owned(), "Jan,Ola".to_owned());
        vars.insert("pad".to_owned(), "x".repeat(2000));
        assert_eq!(render(&v_loop(), &sample(vars)).unwrap().body.len(), 4000);
    }

    fn v_loop() -> Variant {
        email("{% for c in vars.children | split(',') %}{{ vars.pad }}{% endfor %}")
    }

    #[test]
    fn amounts_are_written_for_the_locale() {
        let v = email("Kwota: {{ 1234.5 | money }}");
        let body = render(&v, &sample(BTreeMap::new())).unwrap().body;
        assert_eq!(body, "Kwota: 1 234,50 zł");
        let mut ctx = sample(BTreeMap::new());
        ctx.locale = "en".into();
        let body = render(&v, &ctx).unwrap().body;
        assert_eq!(body, "Kwota: PLN 1,234.50");
    }

    #[test]
    fn the_html_part_escapes_values_and_the_text_part_does_not() {
        let mut v = email("Dla {{ vars.who }}");
        v.html = Some("<p>Dla <b>{{ vars.who }}</b></p>".into());
        assert!(check(&v).is_ok());
        let mut vars = BTreeMap::new();
        vars.insert("who".to_owned(), "Jan <Kowalski> & syn".to_owned());
        let out = render(&v, &sample(vars)).unwrap();
        assert_eq!(out.body, "Dla Jan <Kowalski> & syn");
        assert_eq!(
            out.html.as_deref(),
            Some("<p>Dla <b>Jan &lt;Kowalski&gt; &amp; syn</b></p>")
        );
        v.html = Some("{{ studnet }}".into());
        assert!(matches!(
            check(&v),
            Err(TemplateError::UnknownVariable { part: "html", .. })
        ));
        let sms = Variant {
            channel: Channel::Sms,
            subject: None,
            html: Some("<p>x</p>".into()),
            ..email("x")
        };
        assert!(matches!(check(&sms), Err(TemplateError::Shape(_))));
    }

    #[test]
    fn a_subject_that_renders_a_line_break_is_refused() {
        let mut v = email("x");
        v.subject = Some("Hi {{ vars.x }}".into());
        let mut vars = BTreeMap::new();
        vars.insert("x".to_owned(), "a\r\nBcc: all@example.pl".to_owned());
        assert_eq!(render(&v, &sample(vars)), Err(TemplateError::SubjectLines));
    }

    #[test]
    fn the_recipients_locale_wins_then_the_school_default() {
        let mk = |l: &str| Variant {
            locale: l.into(),
            ..email("x")
        };
        let variants = vec![mk("en"), mk("pl")];
        assert_eq!(pick(&variants, Some("en"), "pl").unwrap().locale, "en");
        assert_eq!(pick(&variants, Some("de"), "pl").unwrap().locale, "pl");
        assert_eq!(pick(&variants, None, "cs").unwrap().locale, "en");
    }
}
