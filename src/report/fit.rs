//! Tables that fit a terminal: plain aligned columns, one line per cell except the last column,
//! which wraps in whole words (a code is a word) to at most [`MAX_LINES`] lines and ends in `…`
//! when there is more. Columns that do not fit are cut with `…`; when the last column would be
//! too narrow to read, the widest other columns give way first. So at 80 columns a host takes at
//! most three lines, never one word per line. `--wide` and piped output use the full tables.

/// Lines a row may take.
pub const MAX_LINES: usize = 3;
/// The narrowest the wrapping column may be before the others give way.
const MIN_WRAP: usize = 28;
const GAP: &str = "  ";

/// One column: its header and the widest it may be (the last column takes what is left).
pub struct Col {
    pub header: &'static str,
    pub max: usize,
}

impl Col {
    /// A column headed `header`, at most `max` wide (0: the last column, what is left).
    pub const fn new(header: &'static str, max: usize) -> Col {
        Col { header, max }
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` cut to `w` characters, `…` marking the cut.
fn cut(text: &str, w: usize) -> String {
    if width(text) <= w {
        return text.to_string();
    }
    let mut s: String = text.chars().take(w.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// `text` in whole words on lines of at most `w`, at most `max_lines` of them (the last ends in
/// `…` when words were left over; a word longer than a line is cut).
pub fn wrap(text: &str, w: usize, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let mut words = text.split_whitespace().peekable();
    for word in words.by_ref() {
        let needed = if line.is_empty() {
            width(word)
        } else {
            width(&line) + 1 + width(word)
        };
        if needed <= w {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        if lines.len() == max_lines {
            break;
        }
        line = cut(word, w);
    }
    let left_over = words.peek().is_some() || (!line.is_empty() && lines.len() == max_lines);
    if !line.is_empty() && lines.len() < max_lines {
        lines.push(line);
    }
    if left_over && let Some(last) = lines.last_mut() {
        let mut shortened = cut(last, w.saturating_sub(1));
        if width(&shortened) == width(last) {
            // There was room: the mark goes after the last word.
            shortened = last.clone();
        } else if shortened.ends_with('…') {
            shortened.pop();
        }
        *last = format!("{}…", shortened.trim_end());
        if width(last) > w {
            *last = cut(last, w);
        }
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// Every line of `text` wrapped in whole words to `w` columns (no limit on lines; a line's
/// indentation is kept): the summary lines under a fitted table.
pub fn wrap_all(text: &str, w: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indent: String = line.chars().take_while(|c| *c == ' ').collect();
        let room = w.saturating_sub(indent.len() + 2).max(8);
        for (i, l) in wrap(line, room, usize::MAX).into_iter().enumerate() {
            out.push_str(&indent);
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// The rows (cells of text; newlines inside a cell become `; `) as a table of at most `total`
/// columns.
pub fn render(cols: &[Col], rows: &[Vec<String>], total: usize) -> String {
    let flat: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| {
                    c.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .collect()
        })
        .collect();
    let last = cols.len() - 1;
    // Each fixed column as wide as its widest cell, within its cap.
    let mut widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let widest = flat
                .iter()
                .map(|r| r.get(i).map_or(0, |s| width(s)))
                .max()
                .unwrap_or(0);
            widest.max(width(c.header)).min(c.max.max(width(c.header)))
        })
        .collect();
    let fixed = |widths: &[usize]| widths[..last].iter().sum::<usize>() + GAP.len() * last;
    // The wrapping column too narrow: the widest fixed columns give way, down to their header.
    while total.saturating_sub(fixed(&widths)) < MIN_WRAP {
        let Some((i, _)) = widths[..last]
            .iter()
            .enumerate()
            .filter(|(i, w)| **w > width(cols[*i].header).max(6))
            .max_by_key(|(_, w)| **w)
        else {
            break;
        };
        widths[i] -= 1;
    }
    widths[last] = total.saturating_sub(fixed(&widths)).max(8);
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let mut text = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str(GAP);
            }
            if i == last {
                text.push_str(c);
            } else {
                text.push_str(&format!("{c:<w$}", w = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(
        cols.iter()
            .enumerate()
            .map(|(i, c)| cut(c.header, widths[i]))
            .collect(),
        &mut out,
    );
    for r in &flat {
        let wrapped = wrap(
            r.get(last).map_or("", String::as_str),
            widths[last],
            MAX_LINES,
        );
        for (n, text) in wrapped.into_iter().enumerate() {
            let mut cells: Vec<String> = (0..last)
                .map(|i| {
                    if n == 0 {
                        cut(r.get(i).map_or("", String::as_str), widths[i])
                    } else {
                        String::new()
                    }
                })
                .collect();
            cells.push(text);
            line(cells, &mut out);
        }
    }
    out
}

/// Writes `rows` fitted under `cols` to `width` columns, each cell escaped for the terminal
/// here (what hosts send is data), then the lines `under` (a summary) wrapped to the width.
pub fn write_fitted(
    out: &mut dyn std::io::Write,
    cols: &[Col],
    rows: Vec<Vec<String>>,
    width: usize,
    under: &[u8],
) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            r.iter()
                .map(|c| super::sanitize::terminal_safe(c).into_owned())
                .collect()
        })
        .collect();
    write!(out, "{}", render(cols, &rows, width))?;
    write!(out, "{}", wrap_all(&String::from_utf8_lossy(under), width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_wrap_whole_to_three_lines_and_say_when_there_was_more() {
        assert_eq!(wrap("a bb ccc", 4, 3), ["a bb", "ccc"]);
        let long =
            "backup: the configuration export failed on the host: access denied to the database";
        let lines = wrap(long, 20, 3);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| width(l) <= 20), "{lines:?}");
        assert!(lines[2].ends_with('…'), "{lines:?}");
        assert_eq!(lines[0], "backup: the");
        // A code longer than a line is cut, never split over lines.
        assert_eq!(wrap("tls12-not-enforced", 8, 3), ["tls12-n…"]);
    }

    #[test]
    fn a_table_fits_its_width_and_gives_each_row_at_most_three_lines() {
        let cols = [
            Col {
                header: "host",
                max: 24,
            },
            Col {
                header: "outcome",
                max: 16,
            },
            Col {
                header: "notes",
                max: 0,
            },
        ];
        let rows = vec![
            vec!["t02-behind".into(), "verified".into(), "backup: x".into()],
            vec![
                "a-very-long-host-name-of-a-customer".into(),
                "failed".into(),
                "word ".repeat(90),
            ],
        ];
        for total in [40, 60, 100] {
            let text = render(&cols, &rows, total);
            for l in text.lines() {
                assert!(width(l) <= total, "{l:?}\n{text}");
            }
            // The header, one line, three lines with a mark that there was more.
            assert_eq!(text.lines().count(), 1 + 1 + 3, "{text}");
            assert!(text.contains("a-ver") && text.contains("…"), "{text}");
            assert!(text.lines().nth(2).unwrap().contains("failed"), "{text}");
        }
        // Wide enough: nothing cut but the notes.
        let text = render(&cols, &rows, 200);
        assert!(text.contains("a-very-long-host-name-o… "), "{text}");
    }
}
