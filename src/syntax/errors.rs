//! Turns a pest failure into a diagnostic in a user's words ("expected a value after `=`"),
//! never pest rule names. Must not decide recovery (that is `chunks.rs`).

use super::diagnostic::{Code, Diagnostic};
use super::grammar::Rule;
use super::span::{FileId, Span};

/// Whether `word` is a reserved keyword.
pub fn is_keyword(word: &str) -> bool {
    super::KEYWORDS.contains(&word)
}

/// What the user sees for an expected rule; `None` hides it.
fn words(rule: Rule) -> Option<&'static str> {
    use Rule::*;
    Some(match rule {
        ident => "a name",
        key | field_key => "a field name",
        field => "a field (`name = value`)",
        expr | operand | head_expr | head_operand | number | num_lit | string | string_inner
        | boolean | path | call | list | sweep | escalate | mix | neg | paren | kw_true
        | kw_false | kw_sweep | kw_escalate | kw_mix | kw_baseline | arg => "a value",
        assign => "`=`",
        colon => "`:`",
        block => "`{`",
        gate | kw_gate => "`gate`",
        on_clause | kw_on => "`on DEVICE`",
        decl_kw | decl | use_decl | kw_use | export_decl | kw_export | keyword => {
            "a declaration (`model`, `adapter`, `dataset`, `train`, `eval`, ...)"
        }
        kw_to => "`to`",
        kw_as => "`as`",
        bin_op | add_op => "an operator",
        quantized | kw_quantized => "`quantized`",
        unit => "a unit",
        use_path => "a module path",
        use_names => "`.{`",
        _ => return None,
    })
}

/// Builds the diagnostic for a failed parse of `source[start..end]` (one chunk) whose furthest
/// failure is at absolute offset `pos`.
pub fn syntax_error(
    source: &str,
    chunk_end: usize,
    pos: usize,
    rules: &[Rule],
    tokens: &[String],
    file: FileId,
) -> Diagnostic {
    let found = describe_found(source, pos, chunk_end);
    let (prev_char, prev_end) = previous_token(source, pos);
    // A number directly followed by letters: an unknown unit.
    if prev_char.is_some_and(|c| c.is_ascii_digit())
        && prev_end == pos
        && pos < chunk_end
        && starts_word(source, pos)
    {
        let word = word_at(source, pos);
        return Diagnostic::new(Code::UnknownUnit, file, Span::new(pos, pos + word.len()), format!("unknown unit `{word}`"))
            .with_label("not a unit")
            .with_help("units are %, B, KB, MB, GB, TB, KiB, MiB, GiB and TiB, written right after the number (`24GiB`)");
    }
    let mut expected: Vec<&str> = Vec::new();
    for r in rules {
        if let Some(w) = words(*r) {
            if !expected.contains(&w) {
                expected.push(w);
            }
        }
    }
    for t in tokens {
        let w = match t.as_str() {
            "}" => "`}`",
            "]" => "`]`",
            ")" => "`)`",
            "=" => "`=`",
            "{" => "`{`",
            "(" => "`(`",
            "," => "`,`",
            _ => continue,
        };
        if !expected.contains(&w) {
            expected.push(w);
        }
    }
    // Keyword used where a name was expected.
    let word = word_at(source, pos);
    if expected.contains(&"a name") && is_keyword(word) {
        return Diagnostic::new(
            Code::KeywordAsName,
            file,
            Span::new(pos, pos + word.len()),
            format!("`{word}` is a keyword and cannot be used as a name"),
        )
        .with_label("keyword")
        .with_help(format!(
            "choose another name, such as `{word}_1` or `my_{word}`"
        ));
    }
    // Ways to continue a complete value are noise next to what must come.
    let continuation = [
        "`quantized`",
        "a comparison (`>=`, `<`, ...)",
        "an operator",
        "`(`",
        "`,`",
        "`{`",
    ];
    if expected.iter().any(|w| !continuation.contains(w)) {
        expected.retain(|w| !continuation.contains(w));
    }
    if expected.contains(&"a field (`name = value`)") || expected.contains(&"`}`") {
        expected.retain(|w| *w != "a field name");
    }
    // `key =` then a new line that starts another field: the value of the line above is missing.
    if let Some(line_start) = dangling_assign(source, pos) {
        let span = Span::new(line_start, line_start);
        return Diagnostic::new(Code::Syntax, file, span, "expected a value after `=`")
            .with_label("the value is missing here")
            .with_help("a value is a number (`16`, `2e-4`, `10%`, `24GiB`), a string, a list `[..]`, a name or a call such as `hf(\"..\")`");
    }
    // `r == 8`: a comparison where a field is set.
    if expected.contains(&"`=`") && source.get(pos..).is_some_and(|r| r.starts_with("==")) {
        let key = word_before(source, pos);
        let help = if key.is_empty() {
            "a field is set with one `=`; `==` compares, in gates".to_string()
        } else {
            let value = source
                .get(pos + 2..)
                .and_then(|r| r.lines().next())
                .map(|v| v.trim().trim_end_matches(',').trim())
                .unwrap_or("");
            format!("a field is set with one `=`: write `{key} = {value}`")
        };
        return Diagnostic::new(
            Code::Syntax,
            file,
            Span::new(pos, pos + 2),
            "`==` compares values; a field is set with `=`",
        )
        .with_label("one `=` here")
        .with_help(help);
    }
    expected.sort_by_key(|w| rank(w));
    let what = join_or(&expected);
    let mut message = if what.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {what}, found {found}")
    };
    if prev_char == Some('=')
        && (expected.contains(&"a value") || source.get(pos..).is_some_and(|r| r.starts_with('=')))
    {
        message = format!("expected a value after `=`, found {found}");
    }
    let at_line_start = source
        .get(..pos)
        .map(|s| s.rsplit('\n').next().unwrap_or("").trim().is_empty())
        .unwrap_or(true);
    // Something missing at the end of the line above is shown there; an unexpected token (a
    // stray `}`) is shown where it is.
    let span = if what.is_empty() && pos < source.len() && found_len(source, pos) > 0 {
        Span::new(pos, pos + found_len(source, pos))
    } else if pos >= chunk_end || (at_line_start && prev_end < pos && !what.is_empty()) {
        Span::new(prev_end, prev_end)
    } else {
        Span::new(pos, pos + found_len(source, pos))
    };
    let label = if what.is_empty() {
        "unexpected here".to_string()
    } else {
        format!("expected {what} here")
    };
    let mut d = Diagnostic::new(Code::Syntax, file, span, message).with_label(label);
    if let Some(h) = hint(source, pos, &expected) {
        d = d.with_help(h);
    }
    d
}

fn hint(source: &str, pos: usize, expected: &[&str]) -> Option<String> {
    let word = word_at(source, pos);
    if expected.contains(&"`=`") && !word.is_empty() {
        return Some("fields are written `name = value`".into());
    }
    if expected.contains(&"a value") {
        return Some("a value is a number (`16`, `2e-4`, `10%`, `24GiB`), a string, a list `[..]`, a name or a call such as `hf(\"..\")`".into());
    }
    if source.get(pos..)?.starts_with(';') {
        return Some("`.peft` files need no `;`: separate fields with newlines or commas".into());
    }
    None
}

fn rank(w: &str) -> u8 {
    match w {
        "a name" => 0,
        "a field (`name = value`)" => 1,
        "a field name" => 2,
        "`=`" => 3,
        "a value" => 4,
        "`gate`" => 7,
        "`on DEVICE`" => 8,
        "`}`" | "`]`" | "`)`" => 9,
        _ => 5,
    }
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

fn starts_word(source: &str, pos: usize) -> bool {
    source
        .get(pos..)
        .and_then(|s| s.chars().next())
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
}

/// The word that ends just before `pos` (skipping blanks).
fn word_before(source: &str, pos: usize) -> &str {
    let before = source.get(..pos).unwrap_or("").trim_end();
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .map_or(0, |i| i + 1);
    &before[start..]
}

fn word_at(source: &str, pos: usize) -> &str {
    let rest = source.get(pos..).unwrap_or("");
    let n = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..n]
}

fn found_len(source: &str, pos: usize) -> usize {
    let w = word_at(source, pos);
    if !w.is_empty() {
        return w.len();
    }
    source
        .get(pos..)
        .and_then(|s| s.chars().next())
        .map(|c| c.len_utf8())
        .unwrap_or(0)
}

/// The last non-blank char before `pos` (skipping comments is not needed: pest stops at tokens)
/// and the offset just after it.
fn previous_token(source: &str, pos: usize) -> (Option<char>, usize) {
    let before = source.get(..pos).unwrap_or("");
    let mut end = before.len();
    // Skip trailing whitespace and whole comment lines.
    loop {
        let trimmed = before[..end].trim_end();
        end = trimmed.len();
        let line_start = trimmed.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = &trimmed[line_start..];
        match comment_start(line) {
            Some(c) => end = line_start + c,
            None => break,
        }
        if end == 0 {
            break;
        }
    }
    (before[..end].chars().last(), end)
}

/// Offset of `//` outside a string in one line.
fn comment_start(line: &str) -> Option<usize> {
    let mut in_str = false;
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b.get(i) {
            Some(b'\\') if in_str => i += 1,
            Some(b'"') => in_str = !in_str,
            Some(b'/') if !in_str && b.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn describe_found(source: &str, pos: usize, chunk_end: usize) -> String {
    if pos >= source.len() {
        return "the end of the file".into();
    }
    if pos >= chunk_end {
        return "the end of the declaration".into();
    }
    let rest = source.get(pos..).unwrap_or("");
    let Some(c) = rest.chars().next() else {
        return "the end of the file".into();
    };
    if c == '"' {
        return "a string".into();
    }
    if c.is_ascii_digit() {
        let n = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '%'))
            .unwrap_or(rest.len());
        return format!("the number `{}`", &rest[..n]);
    }
    let w = word_at(source, pos);
    if !w.is_empty() {
        if is_keyword(w) {
            return format!("keyword `{w}`");
        }
        return format!("`{w}`");
    }
    format!("`{c}`")
}

/// When the error sits on a line `name = ...` and the line above ends with `=`, the offset
/// just after that `=`.
pub fn dangling_assign(source: &str, pos: usize) -> Option<usize> {
    let before = source.get(..pos)?;
    let line_start = before.rfind('\n').map(|i| i + 1)?;
    let this_line = &before[line_start..];
    let t = this_line.trim_start();
    let word_end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))?;
    if word_end == 0
        || !t[word_end..].trim_start().is_empty() && !source.get(pos..)?.starts_with('=')
    {
        return None;
    }
    let prev = source.get(..line_start)?.trim_end();
    if prev.ends_with('=')
        && !prev.ends_with("==")
        && !prev.ends_with(">=")
        && !prev.ends_with("<=")
        && !prev.ends_with("!=")
    {
        return Some(prev.len());
    }
    None
}
