//! Everything a host says is data. Before it reaches a terminal, control characters (ANSI and
//! OSC escapes, carriage returns, bells) are shown escaped (`\u{1b}`); in CSV, a cell that a
//! spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
//! return) gets a leading `'` (docs/json-output.md). JSON needs neither: its encoder escapes.

use std::borrow::Cow;

/// Characters that change how the text around them reads without being seen: direction
/// overrides and isolates (a name shown backwards), zero-width spaces and joiners, the BOM.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// `text` with every control character except a newline escaped, and the invisible
/// characters that reorder or hide text ([`is_invisible`]).
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| (c.is_control() && c != '\n') || is_invisible(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// A CSV cell that no spreadsheet will run as a formula, with control characters escaped.
pub fn csv_safe(text: &str) -> Cow<'_, str> {
    let risky = text
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    let escaped = terminal_safe(text);
    if risky {
        Cow::Owned(format!("'{escaped}"))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_reach_the_terminal_escaped() {
        assert_eq!(terminal_safe("2.6.91.0"), "2.6.91.0");
        assert_eq!(
            terminal_safe("\u{1b}]8;;http://x\u{7}2.6\u{1b}[31m"),
            "\\u{1b}]8;;http://x\\u{7}2.6\\u{1b}[31m"
        );
        assert_eq!(terminal_safe("a\r\nb"), "a\\u{d}\nb");
        assert_eq!(terminal_safe("\u{9b}31m"), "\\u{9b}31m", "C1 CSI too");
        assert_eq!(
            terminal_safe("ec01\u{202e}gpj.exe\u{200b}"),
            "ec01\\u{202e}gpj.exe\\u{200b}",
            "a name read backwards, a hidden space"
        );
    }

    #[test]
    fn formula_cells_are_neutralised() {
        assert_eq!(
            csv_safe("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(csv_safe("+1"), "'+1");
        assert_eq!(csv_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_safe("2.6.91.0"), "2.6.91.0");
        assert_eq!(csv_safe(""), "");
    }
}
