//! Everything a host says is data. Before it reaches a terminal, control characters (ANSI and
//! OSC escapes, carriage returns, bells) are shown escaped (`\u{1b}`); in CSV, a cell that a
//! spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage
//! return) gets a leading `'` (docs/json-output.md). JSON needs neither: its encoder escapes.

use std::borrow::Cow;

/// `text` with every control character except a newline escaped.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() && c != '\n' {
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
