//! SMS text: which encoding a text needs, how many units and segments it takes, and
//! transliteration that keeps Polish (and other Latin) text in GSM-7.
//!
//! Written here rather than taken from a crate: the counting must be exact (it is
//! money), and the one maintained-looking crate (sms_splitter) counts UCS-2 in bytes
//! and does not say how it treats surrogate pairs at a segment boundary. The rules
//! (3GPP TS 23.038): a text is GSM-7 when every character is in the basic table
//! (1 unit) or the extension table (2 units: escape + character); otherwise the whole
//! text is UCS-2, where a character outside the BMP takes 2 units (a surrogate pair).
//! One segment holds 160 GSM-7 or 70 UCS-2 units; a concatenated message holds 153 or
//! 67 per part, and a part never ends in the middle of an escape or surrogate pair.

use std::fmt;

/// The GSM 03.38 basic character set, as Unicode.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table: each costs two units (escape + character).
const GSM7_EXTENSION: &str = "\u{0C}^{}\\[~]|€";

/// An SMS encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The GSM 7-bit default alphabet.
    Gsm7,
    /// UCS-2 (UTF-16 code units).
    Ucs2,
}

impl Encoding {
    /// The stable code (`gsm7`, `ucs2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// Units in a message of one segment.
    pub fn single_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// Units per part of a concatenated message (the rest carries the header).
    pub fn part_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a text costs to send as SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SmsSize {
    /// The encoding the text needs.
    pub encoding: Encoding,
    /// Units (septets for GSM-7, UTF-16 code units for UCS-2).
    pub units: usize,
    /// Segments (messages the operator bills).
    pub segments: usize,
}

/// The GSM-7 units of a character: 1 (basic), 2 (extension) or `None` (not GSM-7).
pub fn gsm7_units(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Measures a text: its encoding, units and segments.
pub fn measure(text: &str) -> SmsSize {
    let gsm: Option<Vec<usize>> = text.chars().map(gsm7_units).collect();
    let (encoding, units) = match gsm {
        Some(units) => (Encoding::Gsm7, units),
        None => (
            Encoding::Ucs2,
            text.chars().map(char::len_utf16).collect::<Vec<_>>(),
        ),
    };
    let total: usize = units.iter().sum();
    let segments = if total == 0 {
        0
    } else if total <= encoding.single_limit() {
        1
    } else {
        // Pack parts greedily; a character's units never straddle two parts.
        let mut segments = 1;
        let mut used = 0;
        for u in units {
            if used + u > encoding.part_limit() {
                segments += 1;
                used = 0;
            }
            used += u;
        }
        segments
    };
    SmsSize {
        encoding,
        units: total,
        segments,
    }
}

/// Replaces characters outside GSM-7 by their closest GSM-7 spelling where one
/// exists (`ą` → `a`, `Ł` → `L`, `„` → `"`, `…` → `...`), so a Polish text costs
/// GSM-7 segments instead of UCS-2 ones. Characters already in GSM-7 (`é`, `ä`, `€`)
/// are kept, and so is anything without a short GSM-7 spelling (an emoji stays an
/// emoji, and the text stays UCS-2).
pub fn transliterate(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if gsm7_units(c).is_some() {
            out.push(c);
            continue;
        }
        match deunicode::deunicode_char(c) {
            Some(t)
                if !t.is_empty()
                    && t.chars().count() <= 3
                    && t.chars().all(|x| gsm7_units(x).is_some()) =>
            {
                out.push_str(t)
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Gsm7, Ucs2};

    fn rep(s: &str, n: usize) -> String {
        s.repeat(n)
    }

    #[test]
    fn texts_are_measured_exactly() {
        let cases: Vec<(String, Encoding, usize, usize)> = vec![
            (String::new(), Gsm7, 0, 0),
            ("Hello".into(), Gsm7, 5, 1),
            (rep("a", 160), Gsm7, 160, 1),
            (rep("a", 161), Gsm7, 161, 2),
            (rep("a", 306), Gsm7, 306, 2),
            (rep("a", 307), Gsm7, 307, 3),
            ("€".into(), Gsm7, 2, 1),
            (rep("€", 80), Gsm7, 160, 1),
            // 76 pairs fill 152 of a part's 153 units; the 77th pair goes on.
            (rep("€", 81), Gsm7, 162, 2),
            (rep("{", 153), Gsm7, 306, 3),
            (format!("{}€", rep("a", 159)), Gsm7, 161, 2),
            // An escape pair at the 153 boundary moves to the next part: 3, not 2.
            (format!("{}€{}", rep("a", 152), rep("a", 152)), Gsm7, 306, 3),
            (format!("{}€b", rep("a", 152)), Gsm7, 155, 1),
            ("\u{0C}".into(), Gsm7, 2, 1),
            ("[test]".into(), Gsm7, 8, 1),
            ("Price: 10€ {promo}".into(), Gsm7, 21, 1),
            ("€uro {x}".into(), Gsm7, 11, 1),
            ("Ä ö ñ ü à é".into(), Gsm7, 11, 1),
            ("ΔΦΓ".into(), Gsm7, 3, 1),
            ("Ça va? 5 £".into(), Gsm7, 10, 1),
            ("Zażółć gęślą jaźń".into(), Ucs2, 17, 1),
            (rep("ą", 70), Ucs2, 70, 1),
            (rep("ą", 71), Ucs2, 71, 2),
            (format!("{}a", rep("ą", 70)), Ucs2, 71, 2),
            (rep("ą", 134), Ucs2, 134, 2),
            (rep("ą", 135), Ucs2, 135, 3),
            ("ç".into(), Ucs2, 1, 1), // lower-case c cedilla is not in GSM-7
            ("δ".into(), Ucs2, 1, 1),
            ("Tab\there".into(), Ucs2, 8, 1),
            ("😀".into(), Ucs2, 2, 1),
            (rep("😀", 35), Ucs2, 70, 1),
            // 33 pairs fill 66 of a part's 67 units; a pair is never split.
            (rep("😀", 36), Ucs2, 72, 2),
            (rep("😀", 67), Ucs2, 134, 3),
            (format!("{}😀", rep("a", 66)), Ucs2, 68, 1),
            (format!("{}😀b", rep("ą", 66)), Ucs2, 69, 1),
        ];
        assert!(cases.len() >= 30);
        for (text, encoding, units, segments) in cases {
            let size = measure(&text);
            assert_eq!(
                (size.encoding, size.units, size.segments),
                (encoding, units, segments),
                "{text:?}"
            );
        }
    }

    #[test]
    fn transliteration_keeps_polish_text_in_gsm7() {
        let cases = [
            ("Zażółć gęślą jaźń", "Zazolc gesla jazn"),
            ("ZAŻÓŁĆ GĘŚLĄ JAŹŃ", "ZAZOLC GESLA JAZN"),
            (
                "Cześć! Jutro szkoła zamknięta.",
                "Czesc! Jutro szkola zamknieta.",
            ),
            ("Łódź, Kraków, Wrocław", "Lodz, Krakow, Wroclaw"),
            // Already GSM-7: untouched.
            ("Café Müller, 5 €", "Café Müller, 5 €"),
            ("Crème brûlée", "Crème brulée"),
            ("Dvořák, Čapek, Şahin", "Dvorak, Capek, Sahin"),
            ("Wait… it’s “fine” – ok", "Wait... it's \"fine\" - ok"),
        ];
        for (text, want) in cases {
            let out = transliterate(text);
            assert_eq!(out, want, "{text}");
            assert_eq!(measure(&out).encoding, Gsm7, "{out}");
        }
        // Characters with no GSM-7 spelling stay, and so does UCS-2.
        let out = transliterate("Brawo 😀");
        assert_eq!(out, "Brawo 😀");
        assert_eq!(measure(&out).encoding, Ucs2);
        // A transliterated Polish text costs GSM-7 segments.
        let long = rep("Zażółć gęślą jaźń. ", 8);
        assert_eq!(measure(&long).segments, 3);
        assert_eq!(measure(&transliterate(&long)).segments, 1);
    }
}
