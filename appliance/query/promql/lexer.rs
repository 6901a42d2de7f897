//! PromQL lexer: turns query text into tokens with byte positions, mirroring the states of
//! Prometheus' `promql/parser/lex.go` (v3.x) so that the same inputs are accepted and the
//! same lexical errors come out at the same positions. It also owns the literal decoders
//! the parser needs: Go-style string unquoting, number parsing (`strconv.ParseInt(s, 0,
//! 64)` then `ParseFloat`) and Prometheus duration parsing (`model.ParseDuration`).
//!
//! The lexer is context sensitive like Prometheus': inside `{...}` keywords are plain
//! identifiers and `=~`/`!~` exist; inside `[...]` only numbers, durations, `:` and the
//! duration keywords are allowed.

use crate::query::promql::ast::AggregateOp;

/// What a token is. Its text is `input[start..end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Eof,
    /// A name without `:`.
    Identifier,
    /// A name containing `:` (recording-rule style); only valid as a metric name.
    MetricIdentifier,
    /// Decimal, hex, octal, `Inf` or `NaN`.
    Number,
    /// `5m`, `1h30m`, `100ms`, ...
    Duration,
    /// A quoted string, quotes included.
    String,
    LeftParen,
    RightParen,
    LeftBrace,
    RightBrace,
    LeftBracket,
    RightBracket,
    Comma,
    Colon,
    /// `=` (label matching).
    Eql,
    // Operators.
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    /// `==`.
    EqlC,
    Neq,
    Lss,
    Lte,
    Gtr,
    Gte,
    EqlRegex,
    NeqRegex,
    /// `</`, native-histogram trim (lexed so the error is precise; not supported).
    TrimUpper,
    /// `>/`.
    TrimLower,
    At,
    And,
    Or,
    Unless,
    Atan2,
    Aggregator(AggregateOp),
    // Keywords.
    Bool,
    By,
    GroupLeft,
    GroupRight,
    Fill,
    FillLeft,
    FillRight,
    Ignoring,
    Offset,
    Smoothed,
    Anchored,
    On,
    Without,
    // "Preprocessors": `@ start()`, `@ end()` and the duration-expression functions.
    Start,
    End,
    Step,
    Range,
    MaxOf,
    MinOf,
}

impl Kind {
    /// Operators as Prometheus groups them (`<op:+>` in messages).
    pub fn is_operator(self) -> bool {
        use Kind::*;
        matches!(
            self,
            Add | Div
                | EqlC
                | EqlRegex
                | Gte
                | Gtr
                | TrimUpper
                | TrimLower
                | And
                | Or
                | Lss
                | Lte
                | Unless
                | Mod
                | Mul
                | Neq
                | NeqRegex
                | Pow
                | Sub
                | At
                | Atan2
        )
    }

    /// Keywords as Prometheus groups them (`<by>` in messages).
    pub fn is_keyword(self) -> bool {
        use Kind::*;
        matches!(
            self,
            Bool | By
                | GroupLeft
                | GroupRight
                | Fill
                | FillLeft
                | FillRight
                | Ignoring
                | Offset
                | Smoothed
                | Anchored
                | On
                | Without
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// A lexical error: where the offending token started and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub pos: usize,
    pub message: String,
}

/// The tokens of `input` (comments dropped), ending with `Eof`, or ending early with the
/// first lexical error. The parser reports the error only when it reaches that point, so
/// an earlier syntax error wins as in Prometheus' pull-based lexer.
pub fn lex(input: &str) -> (Vec<Token>, Option<LexError>) {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        paren_depth: 0,
        brace_open: false,
        bracket_open: false,
        got_colon: false,
        got_duration: false,
        duration_state: false,
        tokens: Vec::new(),
    };
    let err = l.run().err();
    (l.tokens, err)
}

/// Maps a word to its keyword token, as Prometheus' `key` table (case-insensitive).
fn keyword(word: &str) -> Option<Kind> {
    let lower = word.to_ascii_lowercase();
    let k = match lower.as_str() {
        "and" => Kind::And,
        "or" => Kind::Or,
        "unless" => Kind::Unless,
        "atan2" => Kind::Atan2,
        "sum" => Kind::Aggregator(AggregateOp::Sum),
        "avg" => Kind::Aggregator(AggregateOp::Avg),
        "count" => Kind::Aggregator(AggregateOp::Count),
        "min" => Kind::Aggregator(AggregateOp::Min),
        "max" => Kind::Aggregator(AggregateOp::Max),
        "group" => Kind::Aggregator(AggregateOp::Group),
        "stddev" => Kind::Aggregator(AggregateOp::Stddev),
        "stdvar" => Kind::Aggregator(AggregateOp::Stdvar),
        "topk" => Kind::Aggregator(AggregateOp::Topk),
        "bottomk" => Kind::Aggregator(AggregateOp::Bottomk),
        "count_values" => Kind::Aggregator(AggregateOp::CountValues),
        "quantile" => Kind::Aggregator(AggregateOp::Quantile),
        "limitk" => Kind::Aggregator(AggregateOp::Limitk),
        "limit_ratio" => Kind::Aggregator(AggregateOp::LimitRatio),
        "offset" => Kind::Offset,
        "smoothed" => Kind::Smoothed,
        "anchored" => Kind::Anchored,
        "by" => Kind::By,
        "without" => Kind::Without,
        "on" => Kind::On,
        "ignoring" => Kind::Ignoring,
        "group_left" => Kind::GroupLeft,
        "group_right" => Kind::GroupRight,
        "fill" => Kind::Fill,
        "fill_left" => Kind::FillLeft,
        "fill_right" => Kind::FillRight,
        "bool" => Kind::Bool,
        "start" => Kind::Start,
        "end" => Kind::End,
        "step" => Kind::Step,
        "range" => Kind::Range,
        "max_of" => Kind::MaxOf,
        "min_of" => Kind::MinOf,
        "inf" | "nan" => Kind::Number,
        _ => return None,
    };
    Some(k)
}

/// Keywords recognised right after `[` (duration expressions).
fn duration_keyword(word: &str) -> Option<Kind> {
    match word.to_ascii_lowercase().as_str() {
        "step" => Some(Kind::Step),
        "range" => Some(Kind::Range),
        "max_of" => Some(Kind::MaxOf),
        "min_of" => Some(Kind::MinOf),
        _ => None,
    }
}

fn is_duration_keyword_start(c: char) -> bool {
    matches!(c.to_ascii_lowercase(), 's' | 'r' | 'm')
}

pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_alpha(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

/// Only ASCII digits: Prometheus deliberately ignores other Unicode digits.
fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn is_alnum(c: char) -> bool {
    is_alpha(c) || is_digit(c)
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    /// Start of the token being scanned.
    start: usize,
    paren_depth: i64,
    brace_open: bool,
    bracket_open: bool,
    got_colon: bool,
    got_duration: bool,
    /// Right after `[` (or an operator inside a duration expression) Prometheus lexes with
    /// its stricter `lexDurationExpr` state.
    duration_state: bool,
    tokens: Vec<Token>,
}

type LexResult = Result<(), LexError>;

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.input.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn is(&self, valid: &str) -> bool {
        self.peek().is_some_and(|c| valid.contains(c))
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn emit(&mut self, kind: Kind) {
        self.tokens.push(Token {
            kind,
            start: self.start,
            end: self.pos,
        });
        self.start = self.pos;
    }

    fn error(&self, message: String) -> LexError {
        LexError {
            pos: self.start,
            message,
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
        self.start = self.pos;
    }

    fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            self.pos += c.len_utf8();
        }
        self.start = self.pos;
    }

    fn run(&mut self) -> LexResult {
        loop {
            if self.brace_open {
                self.inside_braces()?;
            } else if self.duration_state {
                self.duration_expr()?;
            } else if self.statements()? {
                return Ok(());
            }
        }
    }

    /// Prometheus' `lexStatements`; returns true at the end of input.
    fn statements(&mut self) -> Result<bool, LexError> {
        if self.input[self.pos..].starts_with('#') {
            self.skip_comment();
            return Ok(false);
        }
        let Some(c) = self.next() else {
            if self.paren_depth != 0 {
                return Err(self.error("unclosed left parenthesis".into()));
            }
            if self.bracket_open {
                return Err(self.error("unclosed left bracket".into()));
            }
            self.emit(Kind::Eof);
            return Ok(true);
        };
        match c {
            ',' => self.emit(Kind::Comma),
            c if is_space(c) => self.skip_spaces(),
            '*' => self.emit(Kind::Mul),
            '/' => self.emit(Kind::Div),
            '%' => self.emit(Kind::Mod),
            '+' => self.emit(Kind::Add),
            '-' => self.emit(Kind::Sub),
            '^' => self.emit(Kind::Pow),
            '=' => match self.peek() {
                Some('=') => {
                    self.pos += 1;
                    self.emit(Kind::EqlC);
                }
                Some('~') => {
                    return Err(self.error("unexpected character after '=': '~'".into()));
                }
                _ => self.emit(Kind::Eql),
            },
            '!' => match self.next() {
                Some('=') => self.emit(Kind::Neq),
                t => {
                    return Err(
                        self.error(format!("unexpected character after '!': {}", quote_rune(t)))
                    );
                }
            },
            '<' => {
                if self.accept("=") {
                    self.emit(Kind::Lte);
                } else if self.accept("/") {
                    self.emit(Kind::TrimUpper);
                } else {
                    self.emit(Kind::Lss);
                }
            }
            '>' => {
                if self.accept("=") {
                    self.emit(Kind::Gte);
                } else if self.accept("/") {
                    self.emit(Kind::TrimLower);
                } else {
                    self.emit(Kind::Gtr);
                }
            }
            c if is_digit(c) || (c == '.' && self.peek().is_some_and(is_digit)) => {
                self.pos -= 1;
                self.number_or_duration()?;
            }
            '"' | '\'' => self.string(c)?,
            '`' => self.raw_string()?,
            c if is_alpha(c) || c == ':' => {
                if !self.bracket_open {
                    self.pos -= 1;
                    self.keyword_or_identifier();
                } else if c == ':' {
                    if self.got_colon {
                        return Err(self.error("unexpected colon ':'".into()));
                    }
                    self.emit(Kind::Colon);
                    self.got_colon = true;
                } else if !(is_duration_keyword_start(c) && self.duration_keyword()) {
                    return Err(self.error(format!(
                        "unexpected character: {}, expected ':'",
                        quote_rune(Some(c))
                    )));
                }
            }
            '(' => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(Kind::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    // Prometheus replaces the `)` item with the error, positioned after it.
                    self.tokens.pop();
                    return Err(self.error("unexpected right parenthesis ')'".into()));
                }
            }
            '{' => {
                self.emit(Kind::LeftBrace);
                self.brace_open = true;
            }
            '[' => {
                if self.bracket_open {
                    return Err(self.error("unexpected left bracket '['".into()));
                }
                self.got_colon = false;
                self.emit(Kind::LeftBracket);
                self.skip_spaces();
                self.bracket_open = true;
                self.duration_state = true;
            }
            ']' => {
                if !self.bracket_open {
                    return Err(self.error("unexpected right bracket ']'".into()));
                }
                self.emit(Kind::RightBracket);
                self.bracket_open = false;
            }
            '@' => self.emit(Kind::At),
            c => {
                return Err(self.error(format!("unexpected character: {}", quote_rune(Some(c)))));
            }
        }
        Ok(false)
    }

    /// Prometheus' `lexDurationExpr`: the state right after `[`.
    fn duration_expr(&mut self) -> LexResult {
        let Some(c) = self.next() else {
            return Err(self.error("unexpected end of input in duration expression".into()));
        };
        match c {
            ']' => {
                self.emit(Kind::RightBracket);
                self.bracket_open = false;
                self.got_colon = false;
                self.duration_state = false;
            }
            ':' => {
                self.emit(Kind::Colon);
                if !self.got_duration {
                    return Err(self
                        .error("unexpected colon before duration in duration expression".into()));
                }
                if self.got_colon {
                    return Err(
                        self.error("unexpected repeated colon in duration expression".into())
                    );
                }
                self.got_colon = true;
            }
            '(' => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(Kind::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    // Prometheus replaces the `)` item with the error, positioned after it.
                    self.tokens.pop();
                    return Err(self.error("unexpected right parenthesis ')'".into()));
                }
            }
            c if is_space(c) => self.skip_spaces(),
            '+' => self.emit(Kind::Add),
            '-' => self.emit(Kind::Sub),
            '*' => self.emit(Kind::Mul),
            '/' => self.emit(Kind::Div),
            '%' => self.emit(Kind::Mod),
            '^' => self.emit(Kind::Pow),
            ',' => self.emit(Kind::Comma),
            c if is_duration_keyword_start(c) => {
                if !self.duration_keyword() {
                    return Err(self.error(format!(
                        "unexpected character in duration expression: {}",
                        quote_rune(Some(c))
                    )));
                }
            }
            c if is_digit(c) || (c == '.' && self.peek().is_some_and(is_digit)) => {
                self.pos -= 1;
                self.got_duration = true;
                self.duration_state = false;
                self.number_or_duration()?;
            }
            c => {
                return Err(self.error(format!(
                    "unexpected character in duration expression: {}",
                    quote_rune(Some(c))
                )));
            }
        }
        Ok(())
    }

    fn duration_keyword(&mut self) -> bool {
        while self.peek().is_some_and(is_alpha) {
            self.pos += 1;
        }
        match duration_keyword(&self.input[self.start..self.pos]) {
            Some(k) => {
                self.emit(k);
                true
            }
            None => false,
        }
    }

    /// Prometheus' `lexInsideBraces`.
    fn inside_braces(&mut self) -> LexResult {
        if self.input[self.pos..].starts_with('#') {
            self.skip_comment();
            return Ok(());
        }
        let Some(c) = self.next() else {
            return Err(self.error("unexpected end of input inside braces".into()));
        };
        match c {
            c if is_space(c) => self.skip_spaces(),
            c if is_alpha(c) => {
                while self.peek().is_some_and(is_alnum) {
                    self.pos += 1;
                }
                self.emit(Kind::Identifier);
            }
            ',' => self.emit(Kind::Comma),
            '"' | '\'' => self.string(c)?,
            '`' => self.raw_string()?,
            '=' => {
                if self.accept("~") {
                    self.emit(Kind::EqlRegex);
                } else {
                    self.emit(Kind::Eql);
                }
            }
            '!' => match self.next() {
                Some('~') => self.emit(Kind::NeqRegex),
                Some('=') => self.emit(Kind::Neq),
                t => {
                    return Err(self.error(format!(
                        "unexpected character after '!' inside braces: {}",
                        quote_rune(t)
                    )));
                }
            },
            '{' => return Err(self.error("unexpected left brace '{'".into())),
            '}' => {
                self.emit(Kind::RightBrace);
                self.brace_open = false;
            }
            c => {
                return Err(self.error(format!(
                    "unexpected character inside braces: {}",
                    quote_rune(Some(c))
                )));
            }
        }
        Ok(())
    }

    fn keyword_or_identifier(&mut self) {
        while self.peek().is_some_and(|c| is_alnum(c) || c == ':') {
            self.pos += 1;
        }
        let word = &self.input[self.start..self.pos];
        match keyword(word) {
            // `fill` & co. are keywords only before `(` so that metrics named `fill` keep
            // working, as in Prometheus.
            Some(Kind::Fill | Kind::FillLeft | Kind::FillRight)
                if !self.input[self.pos..]
                    .trim_start_matches(is_space)
                    .starts_with('(') =>
            {
                self.emit(Kind::Identifier)
            }
            Some(k) => self.emit(k),
            None if word.contains(':') => self.emit(Kind::MetricIdentifier),
            None => self.emit(Kind::Identifier),
        }
    }

    /// A quoted string; the opening quote has been consumed. Escapes are validated here
    /// (as Go's scanner does) and decoded later by [`unquote`].
    fn string(&mut self, quote: char) -> LexResult {
        loop {
            match self.next() {
                Some('\\') => self.escape(quote)?,
                None | Some('\n') => {
                    return Err(self.error("unterminated quoted string".into()));
                }
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::String);
        Ok(())
    }

    fn escape(&mut self, quote: char) -> LexResult {
        let Some(c) = self.next() else {
            return Err(self.error("escape sequence not terminated".into()));
        };
        let (mut n, base, max): (u32, u32, u32) = match c {
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => return Ok(()),
            c if c == quote => return Ok(()),
            '0'..='7' => {
                self.pos -= 1;
                (3, 8, 255)
            }
            'x' => (2, 16, 255),
            'u' => (4, 16, char::MAX as u32),
            'U' => (8, 16, char::MAX as u32),
            c => {
                return Err(self.error(format!("unknown escape sequence {}", go_unicode(c))));
            }
        };
        let mut x: u32 = 0;
        while n > 0 {
            let Some(c) = self.next() else {
                return Err(self.error("escape sequence not terminated".into()));
            };
            let d = c.to_digit(16).unwrap_or(16);
            if d >= base {
                return Err(self.error(format!(
                    "illegal character {} in escape sequence",
                    go_unicode(c)
                )));
            }
            x = x.saturating_mul(base).saturating_add(d);
            n -= 1;
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            return Err(self.error("escape sequence is an invalid Unicode code point".into()));
        }
        Ok(())
    }

    fn raw_string(&mut self) -> LexResult {
        loop {
            match self.next() {
                None => return Err(self.error("unterminated raw string".into())),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::String);
        Ok(())
    }

    fn number_or_duration(&mut self) -> LexResult {
        if self.scan_number() {
            self.emit(Kind::Number);
            return Ok(());
        }
        if self.accept_remaining_duration() {
            self.emit(Kind::Duration);
            return Ok(());
        }
        Err(self.error(format!(
            "bad number or duration syntax: {}",
            go_quote(&self.input[self.start..self.pos])
        )))
    }

    /// After a failed number scan: the unit letters and further `<digits><unit>` groups.
    /// Leaves `pos` after the duration on success; on failure `pos` marks how far the
    /// error message's text reaches (Prometheus quotes the consumed prefix).
    fn accept_remaining_duration(&mut self) -> bool {
        if !self.accept("smhdwy") {
            return false;
        }
        self.accept("s");
        while self.accept("0123456789") {
            self.accept_run("0123456789");
            if !self.accept("smhdw") {
                return false;
            }
            self.accept("s");
        }
        // Prometheus consumes one more rune to test it, and quotes it in the error.
        match self.peek() {
            Some(c) if is_alnum(c) => {
                self.pos += c.len_utf8();
                false
            }
            _ => true,
        }
    }

    /// Prometheus' `scanNumber`, quirks included (e.g. `0x1e` is rejected because `e` is
    /// taken for an exponent).
    fn scan_number(&mut self) -> bool {
        let initial = self.pos;
        let mut digits = "0123456789";
        if self.accept("0") {
            // A lone `0` stays consumed, which is harmless since it is a digit.
            if self.accept("xX") {
                self.accept("_");
                digits = "0123456789abcdefABCDEF";
            }
        }
        let hex = digits.len() > 10;
        self.accept(".");
        self.accept(digits);
        let mut dot = false;
        let mut exp = false;
        while self
            .peek()
            .is_some_and(|c| digits.contains(c) || matches!(c, '.' | '_' | 'e' | 'E'))
        {
            if self.is(".") && dot {
                self.accept(".");
                return false;
            }
            if self.is("eE") && exp {
                self.accept("eE");
                return false;
            }
            if self.accept(".") {
                dot = true;
                if self.accept("_.") {
                    return false;
                }
                if hex {
                    return false;
                }
                continue;
            }
            if self.accept("eE") {
                exp = true;
                self.accept("+-");
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            if self.accept("_") {
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            self.accept_run(digits);
        }
        if self.pos == initial {
            return false;
        }
        !self.peek().is_some_and(is_alnum)
    }
}

/// Go's `%q` for a rune (`'a'`, `'\n'`); `None` (end of input) prints like Go's EOF rune.
pub fn quote_rune(c: Option<char>) -> String {
    match c {
        None => "U+FFFFFFFFFFFFFFFF".to_string(),
        Some('\'') => "'\\''".to_string(),
        Some(c) => {
            let mut s = String::from("'");
            push_go_escaped(&mut s, c, '\'');
            s.push('\'');
            s
        }
    }
}

/// Go's `%#U`: `U+0063 'c'`.
fn go_unicode(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{}'", c as u32, c)
    }
}

/// Go's `strconv.Quote` (what `%q` prints for strings).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_go_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

fn push_go_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if c.is_control() => {
            if (c as u32) < 0x10000 {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c => out.push(c),
    }
}

/// Decodes a string token (quotes included) like Go's `strconv.Unquote`, which is what
/// Prometheus uses. The lexer has already validated the escapes, so errors here are only
/// defensive.
pub fn unquote(tok: &str) -> Result<String, String> {
    let mut chars = tok.chars();
    let quote = chars.next().ok_or("invalid syntax")?;
    if tok.len() < 2 || !tok.ends_with(quote) {
        return Err("invalid syntax".into());
    }
    let body = &tok[quote.len_utf8()..tok.len() - quote.len_utf8()];
    if quote == '`' {
        // Go drops carriage returns from raw strings.
        return Ok(body.replace('\r', ""));
    }
    let mut out = String::with_capacity(body.len());
    let mut it = body.chars().peekable();
    // Octal and \x escapes produce bytes. Go keeps invalid UTF-8 in its strings and
    // Prometheus then fails at evaluation ("invalid label name"); a Rust String cannot
    // hold such bytes, so they are refused here instead of being silently replaced.
    let mut bytes: Vec<u8> = Vec::new();
    let mut valid = true;
    let mut flush = |bytes: &mut Vec<u8>, out: &mut String| {
        if !bytes.is_empty() {
            match std::str::from_utf8(bytes) {
                Ok(s) => out.push_str(s),
                Err(_) => valid = false,
            }
            bytes.clear();
        }
    };
    while let Some(c) = it.next() {
        if c != '\\' {
            flush(&mut bytes, &mut out);
            out.push(c);
            continue;
        }
        let e = it.next().ok_or("invalid syntax")?;
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            '\'' | '"' => Some(e),
            _ => None,
        };
        if let Some(s) = simple {
            flush(&mut bytes, &mut out);
            out.push(s);
            continue;
        }
        let (n, base) = match e {
            '0'..='7' => (3, 8),
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            _ => return Err("invalid syntax".into()),
        };
        let mut v: u32 = if base == 8 {
            e.to_digit(8).unwrap_or(0)
        } else {
            0
        };
        let todo = if base == 8 { n - 1 } else { n };
        for _ in 0..todo {
            let d = it
                .next()
                .and_then(|c| c.to_digit(base))
                .ok_or("invalid syntax")?;
            v = v.saturating_mul(base).saturating_add(d);
        }
        if matches!(e, 'u' | 'U') {
            flush(&mut bytes, &mut out);
            out.push(char::from_u32(v).ok_or("invalid syntax")?);
        } else {
            bytes.push(u8::try_from(v).map_err(|_| "invalid syntax")?);
        }
    }
    flush(&mut bytes, &mut out);
    if !valid {
        return Err("invalid UTF-8 in escape sequence".into());
    }
    Ok(out)
}

/// Parses a number token as Prometheus does: `strconv.ParseInt(s, 0, 64)` (so `010` is
/// octal 8 and `0x1f` hex), falling back to `strconv.ParseFloat`.
pub fn parse_number(s: &str) -> Result<f64, String> {
    if let Some(v) = parse_go_int(s) {
        return Ok(v as f64);
    }
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "inf" => return Ok(f64::INFINITY),
        "nan" => return Ok(f64::NAN),
        _ => {}
    }
    let bad = || {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(s)
        )
    };
    if lower.starts_with("0x") {
        // Go's ParseFloat wants a `p` exponent for hex mantissas; the lexer never lets one
        // through, so an overflowing hex integer ends up here.
        return Err(bad());
    }
    let cleaned: String = s.chars().filter(|&c| c != '_').collect();
    let v: f64 = cleaned.parse().map_err(|_| bad())?;
    if v.is_infinite() {
        return Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            go_quote(s)
        ));
    }
    Ok(v)
}

/// Go's `strconv.ParseInt(s, 0, 64)` for the shapes our lexer produces; `None` on error.
fn parse_go_int(s: &str) -> Option<i64> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    // Go allows `_` only between digits or right after a base prefix.
    let prefixed = radix != 10;
    let b = digits.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let prev_ok = if i == 0 { prefixed } else { b[i - 1] != b'_' };
            if !prev_ok || i + 1 == b.len() {
                return None;
            }
        }
    }
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() {
        return None;
    }
    i64::from_str_radix(&cleaned, radix).ok()
}

/// Prometheus' `model.ParseDuration`: `[0-9]+` unit groups in decreasing unit order
/// (`y w d h m s ms`, each at most once). Returns milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(s));
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    let mut last_unit = 0;
    while i < b.len() {
        let d0 = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == d0 {
            return Err(invalid());
        }
        let v: u64 = s[d0..i].parse().map_err(|_| invalid())?;
        let u0 = i;
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
        if i == u0 {
            return Err(invalid());
        }
        let unit = &s[u0..i];
        let (rank, ms): (u32, u128) = match unit {
            "y" => (1, 365 * 24 * 3_600_000),
            "w" => (2, 7 * 24 * 3_600_000),
            "d" => (3, 24 * 3_600_000),
            "h" => (4, 3_600_000),
            "m" => (5, 60_000),
            "s" => (6, 1000),
            "ms" => (7, 1),
            _ => {
                return Err(format!(
                    "unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                ));
            }
        };
        if rank <= last_unit {
            return Err(invalid());
        }
        last_unit = rank;
        total += u128::from(v) * ms;
        // time.Duration is int64 nanoseconds.
        if total * 1_000_000 > i64::MAX as u128 {
            return Err("duration out of range".into());
        }
    }
    i64::try_from(total).map_err(|_| "duration out of range".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<Kind> {
        let (toks, err) = lex(input);
        assert!(err.is_none(), "{input}: {err:?}");
        toks.into_iter().map(|t| t.kind).collect()
    }

    struct Case {
        input: &'static str,
        kinds: &'static [Kind],
    }

    #[test]
    fn tokens_are_recognised_in_each_lexer_state() {
        use Kind::*;
        let cases = [
            Case {
                input: "foo:bar_1",
                kinds: &[MetricIdentifier, Eof],
            },
            Case {
                input: "sum BY (a) Offset",
                kinds: &[
                    Aggregator(AggregateOp::Sum),
                    By,
                    LeftParen,
                    Identifier,
                    RightParen,
                    Offset,
                    Eof,
                ],
            },
            Case {
                input: "a{by=~'x',on!~\"y\",c!=`z`}",
                kinds: &[
                    Identifier, LeftBrace, Identifier, EqlRegex, String, Comma, Identifier,
                    NeqRegex, String, Comma, Identifier, Neq, String, RightBrace, Eof,
                ],
            },
            Case {
                input: "1 + 2 - 3 * 4 / 5 % 6 ^ 7 == 8 != 9 < 1 <= 2 > 3 >= 4",
                kinds: &[
                    Number, Add, Number, Sub, Number, Mul, Number, Div, Number, Mod, Number, Pow,
                    Number, EqlC, Number, Neq, Number, Lss, Number, Lte, Number, Gtr, Number, Gte,
                    Number, Eof,
                ],
            },
            Case {
                input: "x[5m:1m] @ start() # comment\n",
                kinds: &[
                    Identifier,
                    LeftBracket,
                    Duration,
                    Colon,
                    Duration,
                    RightBracket,
                    At,
                    Start,
                    LeftParen,
                    RightParen,
                    Eof,
                ],
            },
            Case {
                input: "Inf NaN nan 0x1F 1e3 .5 1_000 1h30m 100ms",
                kinds: &[
                    Number, Number, Number, Number, Number, Number, Number, Duration, Duration, Eof,
                ],
            },
            Case {
                input: "fill + fill(1)",
                kinds: &[Identifier, Add, Fill, LeftParen, Number, RightParen, Eof],
            },
        ];
        for c in cases {
            assert_eq!(kinds(c.input), c.kinds, "{}", c.input);
        }
    }

    #[test]
    fn lexical_errors_carry_prometheus_messages_and_positions() {
        let cases: &[(&str, usize, &str)] = &[
            (".", 0, "unexpected character: '.'"),
            ("2.5.", 0, r#"bad number or duration syntax: "2.5.""#),
            ("100..4", 0, r#"bad number or duration syntax: "100..""#),
            ("0deadbeef", 0, r#"bad number or duration syntax: "0de""#),
            ("(1))", 4, "unexpected right parenthesis ')'"),
            ("((1)", 4, "unclosed left parenthesis"),
            ("1 !~ 1", 2, "unexpected character after '!': '~'"),
            ("1 =~ 1", 2, "unexpected character after '=': '~'"),
            ("{", 1, "unexpected end of input inside braces"),
            (
                "foo{a:b=\"b\"}",
                5,
                "unexpected character inside braces: ':'",
            ),
            ("foo[5mm]", 4, r#"bad number or duration syntax: "5mm""#),
            (
                "foo[\"5m\"]",
                4,
                "unexpected character in duration expression: '\"'",
            ),
            ("foo[5s x 5s]", 7, "unexpected character: 'x', expected ':'"),
            (
                "foo{bar=\"baz\"}[",
                15,
                "unexpected end of input in duration expression",
            ),
            ("`\\``", 3, "unterminated raw string"),
            ("\"\\", 0, "escape sequence not terminated"),
            ("\"\\c\"", 0, "unknown escape sequence U+0063 'c'"),
            (
                "\"\\x.\"",
                0,
                "illegal character U+002E '.' in escape sequence",
            ),
            (
                "\"\\uD800\"",
                0,
                "escape sequence is an invalid Unicode code point",
            ),
            ("\"abc", 0, "unterminated quoted string"),
        ];
        for (input, pos, msg) in cases {
            let (_, err) = lex(input);
            let err = err.unwrap_or_else(|| panic!("{input} lexed"));
            assert_eq!((err.pos, err.message.as_str()), (*pos, *msg), "{input}");
        }
    }

    #[test]
    fn strings_unquote_with_go_escapes() {
        let cases: &[(&str, &str)] = &[
            (r#""a\nb\t\"c\\""#, "a\nb\t\"c\\"),
            (r#"'it\'s'"#, "it's"),
            (r#""\x41\101\u00e9\U0001F600""#, "AAé😀"),
            (r#""\xc3\xa9""#, "é"),
            ("`raw\\n`", "raw\\n"),
            (r#""\a\b\f\v""#, "\x07\x08\x0c\x0b"),
        ];
        for (tok, want) in cases {
            assert_eq!(unquote(tok).as_deref(), Ok(*want), "{tok}");
        }
    }

    #[test]
    fn numbers_parse_like_go_strconv() {
        let cases: &[(&str, f64)] = &[
            ("1", 1.0),
            ("010", 8.0),
            ("089", 89.0),
            ("0x1F", 31.0),
            ("0X_ff", 255.0),
            ("1e3", 1000.0),
            ("1.5E-1", 0.15),
            (".5", 0.5),
            ("5.", 5.0),
            ("1_000", 1000.0),
            ("Inf", f64::INFINITY),
            ("iNF", f64::INFINITY),
        ];
        for (s, want) in cases {
            assert_eq!(parse_number(s), Ok(*want), "{s}");
        }
        assert!(parse_number("NaN").is_ok_and(f64::is_nan));
        assert!(parse_number(&"9".repeat(400)).is_err());
    }

    #[test]
    fn durations_parse_like_prometheus_model() {
        let ok: &[(&str, i64)] = &[
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("100ms", 100),
            ("1y", 365 * 86_400_000),
            ("2w3d", 17 * 86_400_000),
            ("0", 0),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(*want), "{s}");
        }
        let bad: &[(&str, &str)] = &[
            ("5m1h", r#"not a valid duration string: "5m1h""#),
            ("5m1m", r#"not a valid duration string: "5m1m""#),
            ("5y1hs", r#"unknown unit "hs" in duration "5y1hs""#),
            ("999999999999y", "duration out of range"),
        ];
        for (s, want) in bad {
            assert_eq!(parse_duration(s), Err(want.to_string()), "{s}");
        }
    }
}
