//! The console's words in Polish and English; a page takes the set its reader's
//! browser prefers.

use serde::Serialize;

/// Every word a console page shows; each field is the word or sentence its name says.
#[derive(Debug, Serialize)]
pub struct Words {
    /// The page's `lang`.
    pub lang: &'static str,
    pub menu: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub login: &'static str,
    pub password: &'static str,
    pub no_password: &'static str,
    pub wrong: &'static str,
    pub throttled: &'static str,
    pub failed: &'static str,
    pub start: &'static str,
    pub awaiting: &'static str,
    pub wallet: &'static str,
    pub points: &'static str,
    pub reserved: &'static str,
    pub low: &'static str,
    pub hold_on: &'static str,
}

/// Polish.
pub static PL: Words = Words {
    lang: "pl",
    menu: "Menu",
    sign_in: "Zaloguj się",
    sign_out: "Wyloguj",
    login: "Login",
    password: "Hasło",
    no_password: "Nie masz hasła? Poproś właściciela konta o `herald operators set-password`.",
    wrong: "Login lub hasło się nie zgadza.",
    throttled: "Zbyt wiele prób. Odczekaj minutę i spróbuj ponownie.",
    failed: "Coś poszło nie tak po stronie Heralda; spróbuj za chwilę.",
    start: "Start",
    awaiting: "Czeka na zatwierdzenie",
    wallet: "Portfel SMS",
    points: "pkt",
    reserved: "Zarezerwowane",
    low: "niski stan",
    hold_on: "Wysyłka wstrzymana",
};

/// English.
pub static EN: Words = Words {
    lang: "en",
    menu: "Menu",
    sign_in: "Sign in",
    sign_out: "Sign out",
    login: "Login",
    password: "Password",
    no_password: "No password yet? Ask the owner for `herald operators set-password`.",
    wrong: "The login or the password does not match.",
    throttled: "Too many attempts. Wait a minute and try again.",
    failed: "Something went wrong on Herald's side; try again in a moment.",
    start: "Start",
    awaiting: "Awaiting approval",
    wallet: "SMS wallet",
    points: "points",
    reserved: "Reserved",
    low: "low",
    hold_on: "Dispatch is on hold",
};
