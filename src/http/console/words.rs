//! The console's words in Polish and English, one line per word: its key, the
//! Polish, the English. A page takes the set its reader chose or their browser
//! prefers; templates read them as `t.key`, handlers as `t.w("key")`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Serialize;

/// Every word a console page shows: `(key, Polish, English)`, one line each.
#[rustfmt::skip]
const WORDS: &[(&str, &str, &str)] = &[
    // The frame, signing in.
    ("menu", "Menu", "Menu"),
    ("skip", "Przejdź do treści", "Skip to the content"),
    ("other_language", "Zmień język", "Change the language"),
    ("sign_in", "Zaloguj się", "Sign in"),
    ("sign_out", "Wyloguj", "Sign out"),
    ("login", "Login", "Login"),
    ("password", "Hasło", "Password"),
    ("no_password", "Nie masz hasła? Poproś właściciela konta o `herald operators set-password`.", "No password yet? Ask the owner for `herald operators set-password`."),
    ("wrong", "Login lub hasło się nie zgadza.", "The login or the password does not match."),
    ("throttled", "Zbyt wiele prób. Odczekaj minutę i spróbuj ponownie.", "Too many attempts. Wait a minute and try again."),
    ("failed", "Coś poszło nie tak po stronie Heralda; spróbuj za chwilę.", "Something went wrong on Herald's side; try again in a moment."),
    ("not_done", "Nie wykonano", "Not done"),
    // The menu's pages.
    ("start", "Start", "Start"),
    ("outbox", "Do zatwierdzenia", "Outbox"),
    ("compose", "Nowa wiadomość", "Compose"),
    ("messages", "Wszystkie wiadomości", "Messages – All"),
    ("why", "Dlaczego nie dostał(a)?", "Why didn't they get it?"),
    ("wallet", "Portfel SMS", "SMS wallet"),
    ("calendar", "Kalendarz", "Calendar"),
    ("templates", "Szablony", "Templates"),
    ("operators", "Operatorzy", "Operators"),
    ("audit", "Dziennik zmian", "Audit log"),
    // The start page.
    ("awaiting", "Czeka na zatwierdzenie", "Awaiting approval"),
    ("failed_today", "Nieudane dziś", "Failed today"),
    ("dispatcher", "Wysyłka", "Dispatcher"),
    ("unknown_wait", "Wynik nieznany: do decyzji", "Outcome unknown: for you to decide"),
    ("unknown_why", "Przekazane do bramki bez odpowiedzi. Mogły dotrzeć, więc nie idą ponownie same: wyślij ponownie albo anuluj.", "Handed to the gateway without an answer. They may have arrived, so they do not go again by themselves: send again or cancel."),
    ("hold_switch", "Wstrzymanie wysyłki", "Hold switch"),
    ("hold_on", "Wysyłka wstrzymana", "Dispatch is on hold"),
    ("hold_off_state", "Wysyłka działa.", "Dispatch is running."),
    ("hold_reason", "Dlaczego wstrzymać", "Why to hold"),
    ("hold_pause", "Wstrzymaj całą wysyłkę", "Hold all dispatch"),
    ("hold_resume", "Wznów wysyłkę", "Resume dispatch"),
    ("hold_manage", "wznów", "resume"),
    ("points", "pkt", "points"),
    ("reserved", "Zarezerwowane", "Reserved"),
    ("low", "niski stan", "low"),
    ("need", "Potrzeba na 24 h", "Needed in 24 h"),
    ("fix", "Co zrobić", "What to do"),
    // The outbox and a batch.
    ("audience", "Odbiorcy", "Audience"),
    ("channel", "Kanał", "Channel"),
    ("sender", "Nadawca", "Sender"),
    ("created", "Utworzono", "Created"),
    ("text", "Treść", "Text"),
    ("subject", "Temat", "Subject"),
    ("body", "Treść wiadomości", "Message text"),
    ("nothing_waits", "Nic nie czeka na zatwierdzenie.", "Nothing waits for approval."),
    ("decided", "Ostatnie decyzje", "Recent decisions"),
    ("decided_by", "Decyzja", "Decided by"),
    ("batch", "Wysyłka", "Batch"),
    ("who", "Kto dostanie", "Who gets it"),
    ("will_go", "wiadomości pójdzie", "messages will go"),
    ("will_go_short", "Pójdzie", "Will go"),
    ("blocked", "Nie dostaną (powód)", "Will not get it (reason)"),
    ("blocked_short", "Nie dostanie", "Blocked"),
    ("already_sent", "Już wysłane", "Already sent"),
    ("cost", "Koszt", "Cost"),
    ("when", "Kiedy", "When"),
    ("segments", "części", "segments"),
    ("segment", "część", "segment"),
    ("wallet_short", "za mało w portfelu", "more than the wallet holds"),
    ("as_for", "Tak, jak zobaczy", "As seen by"),
    ("decide", "Decyzja", "Decision"),
    ("approve", "Zatwierdź", "Approve"),
    ("reject", "Odrzuć", "Reject"),
    ("reject_reason", "Powód odrzucenia", "Why it is rejected"),
    ("version_note", "Zatwierdzasz dokładnie ten widok:", "You decide on exactly this view:"),
    ("cannot_approve", "Nie masz uprawnienia do zatwierdzania; zrobi to sekretariat.", "You may not approve; the office will."),
    ("stale", "Wysyłka zmieniła się od chwili, gdy ją otwarto; sprawdź ją jeszcze raz.", "The batch changed since you opened it; look at it again."),
    ("choose", "Wybierz", "Choose"),
    ("approve_ticked", "Zatwierdź zaznaczone", "Approve the ticked ones"),
    ("reject_ticked", "Odrzuć zaznaczone", "Reject the ticked ones"),
    ("press_a_button", "Nic nie zrobiono: wybierz „Zatwierdź zaznaczone” albo „Odrzuć zaznaczone”.", "Nothing done: press “Approve the ticked ones” or “Reject the ticked ones”."),
    ("tick_some", "Zaznacz co najmniej jedną wiadomość.", "Tick at least one message."),
    ("edit_text", "Zmień treść", "Change the text"),
    ("save_text", "Zapisz treść", "Save the text"),
    ("edit_note", "Po zmianie treści wysyłka znów czeka na zatwierdzenie.", "After a change of text the batch waits for approval again."),
    ("transliterate", "SMS bez polskich znaków (taniej)", "SMS without national characters (cheaper)"),
    ("recipient", "Odbiorca", "Recipient"),
    ("address", "Adres", "Address"),
    // Compose.
    ("aud_groups", "Grupy", "Groups"),
    ("aud_people", "Wybrane osoby", "Chosen people"),
    ("aud_all_groups", "Wszystkie grupy", "All groups"),
    ("aud_active", "Wszyscy z aktywną umową", "Everyone with an active contract"),
    ("no_groups", "Brak grup.", "No groups."),
    ("people_ids", "lub identyfikatory, po przecinku", "or ids, separated by commas"),
    ("reach", "Do kogo w rodzinie", "Who in the family"),
    ("reach_both", "Uczniowie i opiekunowie", "Students and guardians"),
    ("reach_students", "Tylko uczniowie", "Students only"),
    ("reach_guardians", "Tylko opiekunowie", "Guardians only"),
    ("channel_email", "E-mail", "Email"),
    ("channel_sms", "SMS", "SMS"),
    ("channel_both", "E-mail i SMS", "Email and SMS"),
    ("channel_sms_if_no_email", "E-mail, a SMS tym bez e-maila", "Email, and SMS to those without one"),
    ("sms_no_reply", "Na SMS nie można odpowiedzieć: podaj w treści, jak się skontaktować.", "An SMS cannot be replied to: say in the text how to get in touch."),
    ("free_text", "Własna treść", "Your own text"),
    ("use_template", "Szablon", "A template"),
    ("template", "Szablon", "Template"),
    ("vars", "Wartości szablonu (nazwa=wartość, po jednej w linii)", "Template values (name=value, one per line)"),
    ("characters", "znaków", "characters"),
    ("per_recipient", "na osobę", "per person"),
    ("too_long", "za długi; najwyżej części:", "too long; at most segments:"),
    ("transliteration_saves", "bez polskich znaków części:", "without national characters, segments:"),
    ("preview_for", "Podgląd dla osoby (identyfikator)", "Preview for a person (id)"),
    ("preview_hint", "np. st-01", "e.g. st-01"),
    ("preview", "Podgląd", "Preview"),
    ("dry_run", "Sprawdź (nic nie wysyła)", "Check (sends nothing)"),
    ("submit_send", "Wyślij do zatwierdzenia", "Submit"),
    ("changed_since_check", "Formularz zmienił się od sprawdzenia: oto nowe sprawdzenie. Wyślij, jeśli się zgadza.", "The form changed since it was checked: here is a new check. Submit if it is right."),
    ("change_something", "…albo popraw poniżej i sprawdź ponownie", "…or change something below and check again"),
    ("dry_run_result", "Tak pójdzie ta wysyłka", "What this send will do"),
    ("messages_made", "wiadomości", "messages"),
    ("goes_to_outbox", "Po wysłaniu trafi do zatwierdzenia przez sekretariat.", "Once submitted it waits in the outbox for approval."),
    ("goes_at_once", "Możesz wysyłać bez zatwierdzania: pójdzie przy najbliższym przebiegu.", "You send without approval: it goes on the next pass."),
    // Messages – All and a message.
    ("filters", "Filtry", "Filters"),
    ("status", "Stan", "Status"),
    ("reason", "Powód", "Reason"),
    ("kind", "Rodzaj", "Kind"),
    ("any", "dowolny", "any"),
    ("from_day", "Od dnia", "From"),
    ("to_day", "Do dnia", "To"),
    ("show", "Pokaż", "Show"),
    ("clear", "Wyczyść", "Clear"),
    ("per_status", "Według stanu", "Per status"),
    ("all", "wszystkich", "in all"),
    ("newest", "Najnowsze", "Newest"),
    ("older", "Starsze", "Older"),
    ("no_messages_here", "Żadna wiadomość nie pasuje.", "No message matches."),
    ("message", "Wiadomość", "Message"),
    ("what", "Co i do kogo", "What and to whom"),
    ("sent_at", "Wysłano", "Sent"),
    ("next_try", "Następna próba", "Next try"),
    ("resend", "Wyślij ponownie", "Send again"),
    ("cancel_message", "Anuluj", "Cancel"),
    ("timeline", "Historia", "Timeline"),
    ("attempts", "Próby wysłania", "Attempts"),
    ("outcome", "Wynik", "Outcome"),
    ("code", "Kod", "Code"),
    ("detail", "Szczegóły", "Detail"),
    ("delivery_reports", "Raporty doręczenia", "Delivery reports"),
    ("status_blocked", "zablokowana", "blocked"),
    ("status_awaiting_approval", "czeka na zatwierdzenie", "awaiting approval"),
    ("status_rejected", "odrzucona", "rejected"),
    ("status_queued", "w kolejce", "queued"),
    ("status_sending", "w trakcie wysyłki", "sending"),
    ("status_sent", "wysłana", "sent"),
    ("status_delivered", "doręczona", "delivered"),
    ("status_failed", "nieudana", "failed"),
    ("status_unknown", "wynik nieznany", "unknown"),
    ("status_cancelled", "anulowana", "cancelled"),
    ("status_expired", "przeterminowana", "expired"),
    ("batch_awaiting_approval", "czeka na zatwierdzenie", "awaiting approval"),
    ("batch_approved", "zatwierdzona", "approved"),
    ("batch_rejected", "odrzucona", "rejected"),
    ("kind_system", "systemowa", "system"),
    ("kind_informational", "informacyjna", "informational"),
    ("kind_periodic", "cykliczna", "periodic"),
    // Why didn't they get it?
    ("find_person", "Imię i nazwisko, e-mail, telefon lub identyfikator", "Name, email, phone or id"),
    ("find", "Szukaj", "Find"),
    ("nobody", "Nikt nie pasuje do", "Nobody matches"),
    ("which", "Pasuje kilka osób — o kogo chodzi?", "Several people match — which one?"),
    ("reachable", "dociera", "reachable"),
    ("not_reachable", "nie dociera", "not reachable"),
    ("timing", "Okno wysyłki, kalendarz, dyspozytor", "Send window, calendar, dispatcher"),
    ("recent", "Ostatnie wiadomości", "Recent messages"),
    ("advice", "Co sprawdzić", "What to check"),
    ("no_messages", "Brak wiadomości do tej osoby.", "No messages to this person."),
    // The wallet.
    ("balance", "Stan", "Balance"),
    ("low_state", "Niski stan portfela", "The wallet is low"),
    ("since", "od", "since"),
    ("enough", "Stan wystarcza.", "The balance is enough."),
    ("threshold", "Próg niskiego stanu", "Low-balance threshold"),
    ("price", "Cena", "Price"),
    ("totals", "Razem doładowania / opłaty", "Top-ups / charges in all"),
    ("refunds", "zwroty", "refunds"),
    ("top_up", "Doładuj", "Top up"),
    ("points_to_add", "Ile punktów", "How many points"),
    ("top_up_note", "Za co (faktura, przelew)", "Paid by (invoice, transfer)"),
    ("ledger", "Historia portfela", "Ledger"),
    ("entry", "Pozycja", "Entry"),
    ("who_note", "Kto / uwagi", "Who / note"),
    ("no_ledger", "Historia jest pusta.", "The ledger is empty."),
    ("ledger_top_up", "doładowanie", "top-up"),
    ("ledger_reserve", "rezerwacja", "reservation"),
    ("ledger_charge", "opłata", "charge"),
    ("ledger_refund", "zwrot", "refund"),
    // The calendar.
    ("week", "Okno wysyłki w tygodniu", "The weekly send window"),
    ("closed", "zamknięte", "closed"),
    ("window_note", "Poza oknem i w dni wolne wiadomości czekają i idą, gdy okno się otworzy.", "Outside the window and on days off messages wait and go when it opens."),
    ("day_mon", "Poniedziałek", "Monday"),
    ("day_tue", "Wtorek", "Tuesday"),
    ("day_wed", "Środa", "Wednesday"),
    ("day_thu", "Czwartek", "Thursday"),
    ("day_fri", "Piątek", "Friday"),
    ("day_sat", "Sobota", "Saturday"),
    ("day_sun", "Niedziela", "Sunday"),
    ("add_day_off", "Dodaj dzień wolny", "Add a day off"),
    ("day_off_name", "Nazwa", "Name"),
    ("day_off_example", "np. Przerwa świąteczna", "e.g. Christmas break"),
    ("first_day", "Pierwszy dzień", "First day"),
    ("last_day", "Ostatni dzień (dla zakresu)", "Last day (for a range)"),
    ("would_hold", "Czekających wiadomości, które wstrzyma", "Waiting messages it will hold"),
    ("held_unknown", "Wybierz dni, by zobaczyć, ile wiadomości wstrzymają.", "Choose the days to see how many messages they will hold."),
    ("held_now", "Wstrzymane nim wiadomości", "Waiting messages it holds"),
    ("days_off", "Dni wolne", "Days off"),
    ("from_today", "Od dziś", "From today"),
    ("show_past", "Pokaż także minione", "Show past ones too"),
    ("remove", "Usuń", "Remove"),
    ("no_days_off", "Brak dni wolnych.", "No days off."),
    // Templates.
    ("name", "Nazwa", "Name"),
    ("locale", "Język", "Locale"),
    ("no_templates", "Brak szablonów.", "No templates."),
    ("new_template", "Nowy szablon", "New template"),
    ("new_variant", "Nowy wariant (język, kanał)", "New variant (locale, channel)"),
    ("save_template", "Sprawdź i zapisz", "Check and save"),
    ("template_check_note", "Szablon zapisze się tylko, jeśli da się go wypełnić.", "A template is saved only if it renders."),
    ("not_saved", "Nie zapisano", "Not saved"),
    // Operators and the audit log.
    ("role", "Rola", "Role"),
    ("roles", "Role", "Roles"),
    ("teacher", "Nauczyciel", "Teacher"),
    ("teacher_id", "Identyfikator nauczyciela (jeśli jest)", "The teacher's id (if a teacher)"),
    ("exceptions", "Wyjątki od roli", "Exceptions to the role"),
    ("change", "Zmień", "Change"),
    ("add_operator", "Dodaj operatora", "Add an operator"),
    ("password_note", "Hasło nadaje się poleceniem `herald operators set-password LOGIN`.", "Set the password with `herald operators set-password LOGIN`."),
    ("who_did", "Kto", "Who"),
    ("action", "Czynność", "Action"),
    ("subject_of", "Czego dotyczy", "Concerning"),
    ("details", "Szczegóły", "Details"),
    ("no_entries", "Brak wpisów.", "No entries."),
    // Notices after a change.
    ("done_approved", "Zatwierdzono; wiadomości pójdą przy najbliższym przebiegu.", "Approved; the messages go on the next pass."),
    ("done_rejected", "Odrzucono.", "Rejected."),
    ("done_approved_some", "Zatwierdzono zaznaczone wiadomości.", "The ticked messages are approved."),
    ("done_rejected_some", "Odrzucono zaznaczone wiadomości.", "The ticked messages are rejected."),
    ("done_edited", "Zapisano nową treść; wysyłka czeka na zatwierdzenie.", "The new text is saved; the batch waits for approval."),
    ("done_submitted", "Wysłano do zatwierdzenia.", "Submitted: it waits for approval."),
    ("done_submitted_approved", "Zapisano; pójdzie przy najbliższym przebiegu.", "Saved; it goes on the next pass."),
    ("done_resent", "Wiadomość wróciła do kolejki.", "The message is queued again."),
    ("done_cancelled", "Wiadomość anulowano.", "The message is cancelled."),
    ("done_topped_up", "Portfel doładowano.", "The wallet is topped up."),
    ("done_day_off_added", "Dodano dzień wolny.", "The day off is added."),
    ("done_day_off_removed", "Usunięto dzień wolny.", "The day off is removed."),
    ("done_template_saved", "Szablon zapisano.", "The template is saved."),
    ("done_operator_added", "Dodano operatora.", "The operator is added."),
    ("done_role_changed", "Zmieniono rolę.", "The role is changed."),
    ("done_hold_on", "Wysyłka wstrzymana.", "Dispatch is on hold."),
    ("done_hold_off", "Wysyłka wznowiona.", "Dispatch resumed."),
];

/// The words of one language.
#[derive(Debug)]
pub struct Words {
    /// The page's `lang`.
    pub lang: &'static str,
    map: BTreeMap<&'static str, &'static str>,
}

impl Words {
    fn new(lang: &'static str, polish: bool) -> Words {
        Words {
            lang,
            map: WORDS
                .iter()
                .map(|&(key, pl, en)| (key, if polish { pl } else { en }))
                .collect(),
        }
    }

    /// The word `key`, if the console has it.
    pub fn get(&self, key: &str) -> Option<&'static str> {
        self.map.get(key).copied()
    }

    /// The word `key`; the key itself if there is none (a test renders every page
    /// in both languages, so that shows only on a page no test saw).
    pub fn w(&self, key: &str) -> &'static str {
        self.get(key).unwrap_or_else(|| {
            tracing::warn!(key, "a console word is missing");
            "?"
        })
    }
}

impl Serialize for Words {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

/// Polish.
pub static PL: LazyLock<Words> = LazyLock::new(|| Words::new("pl", true));

/// English.
pub static EN: LazyLock<Words> = LazyLock::new(|| Words::new("en", false));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_there_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (key, pl, en) in WORDS {
            assert!(seen.insert(key), "{key} twice");
            assert!(!pl.is_empty() && !en.is_empty(), "{key}");
        }
    }

    #[test]
    fn every_code_a_page_names_has_its_words() {
        use crate::domain::{BatchStatus, MessageKind, MessageStatus};
        for s in MessageStatus::ALL {
            assert!(EN.get(&format!("status_{s}")).is_some(), "status_{s}");
        }
        for s in BatchStatus::ALL {
            assert!(EN.get(&format!("batch_{s}")).is_some(), "batch_{s}");
        }
        for k in MessageKind::ALL {
            assert!(EN.get(&format!("kind_{k}")).is_some(), "kind_{k}");
        }
    }
}
