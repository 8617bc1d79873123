//! `herald demo`, as steps: a demo school in a folder of its own (an SQLite file and
//! the import file it was loaded from), a system message, an email to every group
//! after a dry run and an approval, an SMS batch approved on the version its approver
//! saw with a wallet that covers only part of it, the periodic rules, and one
//! dispatch pass to `.eml` files and `sms.jsonl`. Everything goes through the
//! application layer, as a school's operators would, on one clock (`at`), so the
//! demo tells the same story on any date. It computes; the CLI tells the story.

mod school;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::app::{
    Actor, App, AppError, BatchView, Composed, OperatorRequest, SendContent, SendRequest,
};
use crate::clock::FixedClock;
use crate::config::{EmailTransport, Settings, SmsGateway};
use crate::daemon::{Daemon, DaemonError};
use crate::domain::access::OWNER_ROLE;
use crate::domain::{Audience, Channel, ChannelChoice, EligibilityFacts, HolidayCalendar, Reach};
use crate::import::ImportReport;
use crate::rules::{Rule, RunReport};
use crate::store::{
    self, Decision, DirectoryCounts, MessageFilter, PassCounts, RecipientFilter, StatusCount,
    Store, StoreError, WalletState,
};
use crate::templates::Variant;

pub use school::school;

/// The demo's owner, who approves its batches.
pub const OWNER: &str = "demo-owner";

/// The operators the console demo adds beside the owner: `(login, name, role,
/// teacher id)`. The teacher teaches two groups and may not approve.
pub const CONSOLE_OPERATORS: [(&str, &str, &str, Option<&str>); 2] = [
    ("demo-secretary", "Demo secretary", "secretary", None),
    ("demo-teacher", "Ewelina Sikora", "teacher", Some("t-03")),
];

/// The points the demo tops the wallet up with: fewer than its SMS batch needs.
pub const CREDIT: i64 = 10;

/// Why the demo could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The folder holds a demo already.
    #[error("{0} already holds a demo database")]
    Exists(PathBuf),
    /// The folder holds no demo to serve.
    #[error(
        "{0} holds no demo database (a herald.db with the demo's owner); run `herald demo` first"
    )]
    Missing(PathBuf),
    /// A file or folder could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The demo school did not import cleanly (a bug in the demo).
    #[error("the demo school did not import cleanly")]
    Import(Box<ImportReport>),
    /// An operation was refused.
    #[error(transparent)]
    App(#[from] AppError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A rule could not run.
    #[error(transparent)]
    Rule(#[from] crate::rules::RuleError),
    /// The dispatch pass failed.
    #[error(transparent)]
    Dispatch(#[from] DaemonError),
}

/// A demo school, created and loaded.
pub struct DemoSchool {
    /// Its folder.
    pub dir: PathBuf,
    /// Its SQLite database.
    pub database: PathBuf,
    /// The import file it was loaded from.
    pub school_file: PathBuf,
    /// The settings it runs with (its database, then its `.eml` folder and SMS file).
    pub settings: Settings,
    /// The demo's one instant.
    pub at: DateTime<Utc>,
    store: Arc<dyn Store>,
}

/// The directory as the demo shows it.
pub struct Directory {
    /// How many people, groups and contracts.
    pub counts: DirectoryCounts,
    /// The groups with their sizes.
    pub groups: Vec<crate::domain::directory::GroupSummary>,
    /// Everyone, with their verdict per channel.
    pub everyone: Vec<(
        EligibilityFacts,
        std::collections::BTreeMap<Channel, Vec<crate::domain::Reason>>,
    )>,
    /// The calendar around the demo's day.
    pub calendar: HolidayCalendar,
}

/// What the demo sent, and what an approver saw first.
pub struct Sends {
    /// The email to all groups, as its dry run showed it.
    pub dry_run: Composed,
    /// The same email, stored and approved.
    pub email: Composed,
    /// The SMS to the guardians, stored.
    pub sms: Composed,
    /// The approver's view of the SMS batch, whose version the approval named.
    pub sms_view: BatchView,
}

/// One rule's run.
pub struct RuleRun {
    /// The rule.
    pub rule: Rule,
    /// What it wrote.
    pub report: RunReport,
    /// Whether its messages wait for approval.
    pub requires_approval: bool,
}

/// The dispatch pass and where things ended up.
pub struct Pass {
    /// The pass's counts.
    pub counts: PassCounts,
    /// Every message, per status and reason.
    pub statuses: Vec<StatusCount>,
    /// The folder of `.eml` files and how many there are.
    pub outbox: (PathBuf, usize),
    /// The SMS file and how many lines it has.
    pub sms: (PathBuf, usize),
    /// The wallet after the pass.
    pub wallet: WalletState,
}

/// Points `settings` at a demo folder's files: its SQLite database, its folder of
/// `.eml` files and its SMS file.
fn use_files(settings: &mut Settings, dir: &Path) {
    settings.database.use_sqlite_file(&dir.join("herald.db"));
    settings.email.transport = EmailTransport::File {
        dir: dir.join("outbox"),
    };
    settings.sms.gateway = SmsGateway::File {
        path: dir.join("sms.jsonl"),
    };
}

/// A password of 16 letters and digits (no look-alikes such as `l` and `1`), from
/// the operating system's random source: about 90 bits.
fn fresh_password() -> Result<String, DemoError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| DemoError::App(AppError::Internal(format!("no random source: {e}"))))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// A folder under the current one that does not exist yet: `herald-demo`,
/// `herald-demo-2`, …
pub fn fresh_dir() -> Option<PathBuf> {
    (1..1000)
        .map(|n| match n {
            1 => PathBuf::from("herald-demo"),
            n => PathBuf::from(format!("herald-demo-{n}")),
        })
        .find(|p| !p.exists())
}

impl DemoSchool {
    /// Creates the folder, the database and the import file, imports the school and
    /// adds its Christmas break.
    pub async fn create(
        mut settings: Settings,
        dir: &Path,
        at: DateTime<Utc>,
    ) -> Result<DemoSchool, DemoError> {
        let database = dir.join("herald.db");
        if database.exists() {
            return Err(DemoError::Exists(dir.to_owned()));
        }
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| DemoError::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(write_err(dir))?;
        use_files(&mut settings, dir);
        let store = store::open(&settings.database).await?;
        // The school's dates (birthdays, due dates) are set around the demo's day.
        let today = at.with_timezone(&settings.school.time_zone).date_naive();
        let (document, (holiday, first, last)) = school(today);
        let school_file = dir.join("school.json");
        let text = serde_json::to_string_pretty(&document).expect("JSON values serialise");
        std::fs::write(&school_file, text).map_err(write_err(&school_file))?;
        let demo = DemoSchool {
            dir: dir.to_owned(),
            database,
            school_file,
            settings,
            at,
            store,
        };
        let app = demo.app();
        let system = Actor::System("demo");
        let report = app.import_file(&system, &demo.school_file, None).await?;
        if report.has_errors() {
            return Err(DemoError::Import(Box::new(report)));
        }
        app.add_holiday(&system, &holiday, first, last).await?;
        Ok(demo)
    }

    /// Opens a demo school made before in `dir` (by `herald demo`), to serve it.
    pub async fn open(
        mut settings: Settings,
        dir: &Path,
        at: DateTime<Utc>,
    ) -> Result<DemoSchool, DemoError> {
        let database = dir.join("herald.db");
        if !database.exists() {
            return Err(DemoError::Missing(dir.to_owned()));
        }
        use_files(&mut settings, dir);
        let store = store::open(&settings.database).await?;
        // Only a demo's database: serving makes its operators new passwords.
        if store.operator(OWNER).await?.is_none() {
            store.close().await;
            return Err(DemoError::Missing(dir.to_owned()));
        }
        Ok(DemoSchool {
            dir: dir.to_owned(),
            database,
            school_file: dir.join("school.json"),
            settings,
            at,
            store,
        })
    }

    /// The console's demo operators (the owner, a secretary, a teacher), each with a
    /// new random password, to be shown once: `(login, role, password)`.
    pub async fn console_sign_ins(&self) -> Result<Vec<(String, String, String)>, DemoError> {
        let app = self.app();
        let owner = Actor::operator(OWNER);
        let known = self.store.operators().await?;
        for (login, name, role, teacher) in CONSOLE_OPERATORS {
            if !known.iter().any(|o| o.login == login) {
                let request = OperatorRequest {
                    login: login.to_owned(),
                    name: Some(name.to_owned()),
                    role: role.to_owned(),
                    teacher: teacher.map(str::to_owned),
                };
                app.add_operator(Some(&owner), &request).await?;
            }
        }
        let mut out = Vec::new();
        let logins = std::iter::once((OWNER, OWNER_ROLE))
            .chain(CONSOLE_OPERATORS.iter().map(|(l, _, r, _)| (*l, *r)));
        for (login, role) in logins {
            let password = fresh_password()?;
            app.set_password(
                &owner,
                login,
                &secrecy::SecretString::from(password.clone()),
            )
            .await?;
            out.push((login.to_owned(), role.to_owned(), password));
        }
        Ok(out)
    }

    /// The store the demo runs on.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// The application over the demo's store, at the demo's instant.
    pub fn app(&self) -> App {
        App::new(
            Arc::clone(&self.store),
            Arc::new(self.settings.clone()),
            Arc::new(FixedClock::new(self.at)),
        )
    }

    /// The directory: counts, groups, everyone's verdicts, the calendar.
    pub async fn directory(&self) -> Result<Directory, DemoError> {
        let app = self.app();
        let tz = self.settings.school.time_zone;
        let everyone = self
            .store
            .recipients(&RecipientFilter::default())
            .await?
            .into_iter()
            .map(|f| {
                let v = app.verdicts(&f);
                (f, v)
            })
            .collect();
        Ok(Directory {
            counts: self.store.counts().await?,
            groups: self.store.groups().await?,
            everyone,
            calendar: self
                .store
                .calendar(self.at.with_timezone(&tz).date_naive())
                .await?,
        })
    }

    /// The owner, a welcome message, the email to all groups (a dry run, then stored
    /// and approved) and the SMS to the guardians (approved on the version shown),
    /// with a wallet that covers only part of it.
    pub async fn send(&mut self) -> Result<Sends, DemoError> {
        let app = self.app();
        let owner = Actor::operator(OWNER);
        let request = OperatorRequest {
            login: OWNER.to_owned(),
            name: Some("Demo owner".to_owned()),
            role: OWNER_ROLE.to_owned(),
            teacher: None,
        };
        app.add_operator(None, &request).await?;
        let welcome = crate::compose::Content::email(
            "Your parent account is ready",
            "Good morning,\n\nyour account in the school's parent portal has been created.\n",
        )
        .map_err(AppError::from)?;
        app.notify(&Actor::System("platform"), "gd-01", &welcome)
            .await?;
        let evening = text_to_all_groups(
            Reach::Both,
            ChannelChoice::Email,
            Some("Parents' evening on Thursday"),
            "Dear students and parents,\n\nthe parents' evening is on Thursday at 18:00 in the \
             main hall.\n\nThe school office\n",
        );
        let dry_run = app.send(&owner, &evening, true).await?;
        let email = app.send(&owner, &evening, false).await?;
        let batch = email.batch.expect("a stored send has a batch");
        app.decide(&owner, batch, &[], Decision::Approve, None)
            .await?;
        app.top_up(&owner, CREDIT, "demo credit").await?;
        let mut reminder = text_to_all_groups(
            Reach::Guardians,
            ChannelChoice::Sms,
            None,
            "Przypomnienie: zebranie rodziców w czwartek o 18:00. Sekretariat.",
        );
        reminder.transliterate = true;
        let sms = app.send(&owner, &reminder, false).await?;
        let sms_batch = sms.batch.expect("a stored send has a batch");
        let sms_view = app.batch_view(&owner, sms_batch).await?;
        app.decide(
            &owner,
            sms_batch,
            &[],
            Decision::Approve,
            Some(&sms_view.version),
        )
        .await?;
        Ok(Sends {
            dry_run,
            email,
            sms,
            sms_view,
        })
    }

    /// The school's templates saved, the three rules switched on, and one run each.
    pub async fn run_rules(&mut self) -> Result<Vec<RuleRun>, DemoError> {
        let app = self.app();
        for variant in templates() {
            app.save_template(&Actor::operator(OWNER), &variant).await?;
        }
        let rules = &mut self.settings.rules;
        for (rule, template, approval) in [
            (&mut rules.instalment_due, "reminder", false),
            (&mut rules.arrears, "arrears", true),
            (&mut rules.birthday, "birthday", false),
        ] {
            rule.enabled = true;
            rule.template = template.to_owned();
            rule.requires_approval = approval;
        }
        let mut runs = Vec::new();
        for rule in Rule::ALL {
            let report =
                crate::rules::run_rule(&*self.store, &self.settings, rule, self.at).await?;
            runs.push(RuleRun {
                rule,
                report,
                requires_approval: rule.settings(&self.settings).requires_approval,
            });
        }
        Ok(runs)
    }

    /// One dispatch pass at the demo's instant, and where everything ended up.
    pub async fn dispatch(&self) -> Result<Pass, DemoError> {
        let daemon = Daemon::build_with(
            self.settings.clone(),
            Arc::clone(&self.store),
            Arc::new(FixedClock::new(self.at)),
        )?;
        let counts = daemon.run_once().await?;
        let outbox = self.dir.join("outbox");
        let files = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
        let sms = self.dir.join("sms.jsonl");
        let texts = std::fs::read_to_string(&sms)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        Ok(Pass {
            counts,
            statuses: self.store.message_counts(&MessageFilter::default()).await?,
            outbox: (outbox, files),
            sms: (sms, texts),
            wallet: self.store.wallet().await?,
        })
    }
}

/// A text to every group.
fn text_to_all_groups(
    reach: Reach,
    channel: ChannelChoice,
    subject: Option<&str>,
    body: &str,
) -> SendRequest {
    SendRequest {
        audience: Audience::AllGroups,
        reach,
        channel,
        content: SendContent::Text {
            subject: subject.map(str::to_owned),
            body: body.to_owned(),
            html: None,
        },
        transliterate: false,
    }
}

/// The school's templates for the periodic rules, in Polish.
fn templates() -> Vec<Variant> {
    [
        (
            "reminder",
            "Rata {{ instalment.amount | money }} do {{ instalment.due_date }}",
            "Dzień dobry,\n\nprzypominamy, że {{ instalment.due_date }} mija termin raty \
             {{ instalment.amount | money }} za {{ student.first_name }} (umowa \
             {{ contract.number }}).\n\nSekretariat\n",
        ),
        (
            "arrears",
            "Zaległa płatność: {{ arrears.amount | money }}",
            "Dzień dobry,\n\nod {{ arrears.since }} ({{ arrears.days }} dni) pozostaje do zapłaty \
             {{ arrears.amount | money }} (umowa {{ contract.number }}).\n\nSekretariat\n",
        ),
        (
            "birthday",
            "Wszystkiego najlepszego, {{ recipient.first_name }}!",
            "Sto lat! Cała szkoła życzy Ci wszystkiego najlepszego.\n",
        ),
    ]
    .into_iter()
    .map(|(name, subject, body)| Variant {
        name: name.to_owned(),
        locale: "pl".to_owned(),
        channel: Channel::Email,
        subject: Some(subject.to_owned()),
        body: body.to_owned(),
        html: None,
    })
    .collect()
}
