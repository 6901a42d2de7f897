//! PromQL parser: recursive descent with precedence climbing over the tokens of
//! [`super::lexer`], producing the type-checked AST of [`super::ast`]. It follows
//! Prometheus 3.x (`promql/parser/generated_parser.y` and `parse.go`): the same grammar,
//! the same type rules, and error messages worded like Prometheus' so the HTTP API can pass
//! them on (`1:5: parse error: unexpected <op:*>`).
//!
//! Errors come in two kinds, as in Prometheus: syntax errors stop parsing at once, while
//! type errors (Prometheus' `checkAST`) are collected and only reported when the whole
//! input is syntactically valid, so `rate(foo) +` reports the missing operand, not the
//! type of `foo`.
//!
//! The experimental syntax of Prometheus 3.x is accepted as a server started with
//! `--enable-feature=promql-experimental-functions,promql-extended-range-selectors,promql-binop-fill-modifiers`
//! accepts it: duration expressions in ranges, subquery steps and offsets (folded here
//! unless they use `step()`/`range()`, which the evaluator resolves per query),
//! `anchored`/`smoothed` selectors, `fill()`/`fill_left()`/`fill_right()` modifiers, the
//! experimental functions and `limitk`/`limit_ratio`. Only the native-histogram trim
//! operators (`</`, `>/`) are refused, with an explicit error.

use super::ast::{
    Aggregate, AggregateOp, AtModifier, Binary, BinaryOp, Call, Cardinality, DurationExpr, Expr,
    Grouping, MatrixSelector, Span, Subquery, ValueType, VectorMatching, VectorSelector,
};
use super::functions;
use super::lexer::{self, Kind, LexError, Token, go_quote};
use crate::model::{METRIC_NAME, MatchOp, Matcher};

/// A parse error with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

impl ParseError {
    fn new(pos: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            pos,
            message: message.into(),
        }
    }

    /// Prometheus' user-facing form, `<line>:<col>: parse error: <message>`, with a
    /// 1-based line and a 1-based byte column (`posrange.StartPosInput`).
    pub fn display_with_position(&self, input: &str) -> String {
        format!(
            "{}: parse error: {}",
            line_col(input, self.pos),
            self.message
        )
    }
}

fn line_col(input: &str, pos: usize) -> String {
    if input.is_empty() {
        return "unknown position".to_string();
    }
    if pos > input.len() {
        return "invalid position".to_string();
    }
    let before = &input.as_bytes()[..pos];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let col = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => pos - nl,
        None => pos + 1,
    };
    format!("{line}:{col}")
}

impl From<LexError> for ParseError {
    fn from(e: LexError) -> ParseError {
        ParseError::new(e.pos, e.message)
    }
}

/// Deeper nesting than this is refused; real queries stay far below it, and Prometheus'
/// own test suite nests a few dozen levels at most.
const MAX_DEPTH: usize = 256;

/// Recursive descent needs stack in proportion to nesting (several KiB a level in debug
/// builds). Nesting cannot exceed the token count, so short queries are parsed on the
/// caller's stack and longer ones on a helper thread with a stack sized for `MAX_DEPTH`.
const INLINE_TOKENS: usize = 48;
const PARSE_STACK_BYTES: usize = 32 << 20;

/// `time.Duration` holds int64 nanoseconds; Prometheus refuses durations beyond that.
const MAX_DURATION_SECONDS: f64 = 9_223_372_036.854_776;

const EMPTY_MATCHER_MSG: &str = "vector selector must contain at least one non-empty matcher";

/// Parses a PromQL expression.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let (tokens, lex_err) = lexer::lex(input);
    if tokens.len() <= INLINE_TOKENS {
        return parse_tokens(input, tokens, lex_err, INLINE_TOKENS);
    }
    std::thread::scope(|s| {
        let (tokens, lex_err) = (tokens.clone(), lex_err.clone());
        std::thread::Builder::new()
            .name("promql-parse".into())
            .stack_size(PARSE_STACK_BYTES)
            .spawn_scoped(s, move || parse_tokens(input, tokens, lex_err, MAX_DEPTH))
            .ok()
            .and_then(|h| h.join().ok())
    })
    // Without a helper thread, parse here with a nesting limit the caller's stack can
    // afford.
    .unwrap_or_else(|| parse_tokens(input, tokens, lex_err, INLINE_TOKENS))
}

fn parse_tokens(
    input: &str,
    tokens: Vec<Token>,
    lex_err: Option<LexError>,
    max_depth: usize,
) -> Result<Expr, ParseError> {
    let mut p = Parser {
        input,
        tokens,
        lex_err,
        next: 0,
        checks: Vec::new(),
        depth: 0,
        max_depth,
    };
    if p.peek()?.kind == Kind::Eof {
        return Err(ParseError::new(0, "no expression found in input"));
    }
    let expr = p.expr(0)?;
    let t = p.peek()?;
    if t.kind != Kind::Eof {
        return Err(p.unexpected(t, "", ""));
    }
    match p.checks.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(expr.e),
    }
}

/// An expression with the span it covers, which the AST does not keep for every node.
struct P {
    e: Expr,
    span: Span,
}

impl P {
    fn ty(&self) -> ValueType {
        self.e.value_type()
    }
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    lex_err: Option<LexError>,
    next: usize,
    /// Type errors, reported only if parsing succeeds (Prometheus' `checkAST`).
    checks: Vec<ParseError>,
    depth: usize,
    max_depth: usize,
}

type R<T> = Result<T, ParseError>;

/// Binding power of binary operators, lowest first (`or` < `and unless` < comparisons
/// < `+ -` < `* / % atan2` < `^`).
fn binary_op(kind: Kind) -> Option<(BinaryOp, u8)> {
    let op = match kind {
        Kind::Or => (BinaryOp::Or, 1),
        Kind::And => (BinaryOp::And, 2),
        Kind::Unless => (BinaryOp::Unless, 2),
        Kind::EqlC => (BinaryOp::Eq, 3),
        Kind::Neq => (BinaryOp::Ne, 3),
        Kind::Gtr => (BinaryOp::Gt, 3),
        Kind::Lss => (BinaryOp::Lt, 3),
        Kind::Gte => (BinaryOp::Ge, 3),
        Kind::Lte => (BinaryOp::Le, 3),
        Kind::Add => (BinaryOp::Add, 4),
        Kind::Sub => (BinaryOp::Sub, 4),
        Kind::Mul => (BinaryOp::Mul, 5),
        Kind::Div => (BinaryOp::Div, 5),
        Kind::Mod => (BinaryOp::Mod, 5),
        Kind::Atan2 => (BinaryOp::Atan2, 5),
        Kind::Pow => (BinaryOp::Pow, 6),
        _ => return None,
    };
    Some(op)
}

/// Unary minus binds like `*` in Prometheus' grammar: its operand takes only `^` and
/// postfix modifiers, so `-2^2` is `-(2^2)` and `-a * b` is `(-a) * b`.
const UNARY_OPERAND_PREC: u8 = 6;

/// Keywords that may also be metric names (Prometheus' `metric_identifier`).
fn is_metric_identifier(kind: Kind) -> bool {
    use Kind::*;
    matches!(
        kind,
        Identifier
            | MetricIdentifier
            | Aggregator(_)
            | By
            | Without
            | Fill
            | FillLeft
            | FillRight
            | And
            | Or
            | Unless
            | Offset
            | Start
            | End
            | Step
            | Range
            | Anchored
            | Smoothed
            | MaxOf
            | MinOf
    )
}

/// Keywords that may also be label names in grouping clauses (Prometheus' `maybe_label`).
fn is_maybe_label(kind: Kind) -> bool {
    use Kind::*;
    is_metric_identifier(kind)
        || matches!(kind, Bool | GroupLeft | GroupRight | Ignoring | On | Atan2)
}

impl Parser<'_> {
    fn peek(&self) -> R<Token> {
        match self.tokens.get(self.next) {
            Some(t) => Ok(*t),
            None => Err(self
                .lex_err
                .clone()
                .map(ParseError::from)
                .unwrap_or_else(|| ParseError::new(self.input.len(), "unexpected end of input"))),
        }
    }

    /// The token after the next one, if the lexer got that far.
    fn peek2(&self) -> Option<Token> {
        self.tokens.get(self.next + 1).copied()
    }

    fn bump(&mut self) -> R<Token> {
        let t = self.peek()?;
        if t.kind != Kind::Eof {
            self.next += 1;
        }
        Ok(t)
    }

    fn text(&self, t: Token) -> &str {
        &self.input[t.start..t.end]
    }

    /// Prometheus' `Item.desc()`: how a token is named in "unexpected ..." messages.
    fn describe(&self, t: Token) -> String {
        let text = self.text(t);
        match t.kind {
            Kind::Eof => "end of input".to_string(),
            Kind::Aggregator(_) => format!("<aggr:{text}>"),
            k if k.is_operator() => format!("<op:{text}>"),
            k if k.is_keyword() => format!("<{text}>"),
            Kind::Identifier => format!("identifier {}", go_quote(text)),
            Kind::MetricIdentifier => format!("metric identifier {}", go_quote(text)),
            Kind::Number => format!("number {}", short_quote(text)),
            Kind::Duration => format!("duration {}", short_quote(text)),
            Kind::String => format!("string {}", short_quote(text)),
            _ => go_quote(text),
        }
    }

    /// Prometheus' `unexpected(context, expected)`.
    fn unexpected(&self, t: Token, context: &str, expected: &str) -> ParseError {
        let mut msg = format!("unexpected {}", self.describe(t));
        if !context.is_empty() {
            msg.push_str(" in ");
            msg.push_str(context);
        }
        if !expected.is_empty() {
            msg.push_str(", expected ");
            msg.push_str(expected);
        }
        ParseError::new(t.start, msg)
    }

    fn expect(&mut self, kind: Kind, context: &str, expected: &str) -> R<Token> {
        let t = self.peek()?;
        if t.kind != kind {
            return Err(self.unexpected(t, context, expected));
        }
        self.bump()
    }

    fn check(&mut self, pos: usize, msg: impl Into<String>) {
        self.checks.push(ParseError::new(pos, msg));
    }

    /// Precedence climbing over binary operators.
    fn expr(&mut self, min_prec: u8) -> R<P> {
        self.depth += 1;
        if self.depth > self.max_depth {
            let pos = self.peek().map_or(self.input.len(), |t| t.start);
            return Err(ParseError::new(pos, "expression nested too deeply"));
        }
        let mut lhs = self.unary()?;
        loop {
            let t = self.peek()?;
            if matches!(t.kind, Kind::TrimUpper | Kind::TrimLower) {
                return Err(ParseError::new(
                    t.start,
                    "native histogram trim operators are not supported",
                ));
            }
            let Some((op, prec)) = binary_op(t.kind) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            self.bump()?;
            let modifiers = self.bin_modifiers()?;
            // `^` is right-associative, everything else left-associative.
            let next_min = if op == BinaryOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next_min)?;
            lhs = self.binary(lhs, op, t, modifiers, rhs);
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> R<P> {
        let t = self.peek()?;
        if !matches!(t.kind, Kind::Add | Kind::Sub) {
            return self.postfix();
        }
        self.bump()?;
        let operand = self.expr(UNARY_OPERAND_PREC)?;
        let span = Span {
            start: t.start,
            end: operand.span.end,
        };
        // Like Prometheus, a sign directly on a number literal folds into the literal.
        if let Expr::Number(v) = operand.e {
            let v = if t.kind == Kind::Sub { -v } else { v };
            return Ok(P {
                e: Expr::Number(v),
                span,
            });
        }
        let ty = operand.ty();
        if ty != ValueType::Scalar && ty != ValueType::Vector {
            self.check(
                t.start,
                format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    go_quote(ty.name())
                ),
            );
        }
        let e = if t.kind == Kind::Sub {
            Expr::Neg(Box::new(operand.e))
        } else {
            operand.e
        };
        Ok(P { e, span })
    }

    /// A primary expression followed by any `[range]`, `[range:step]`, `offset` and `@`.
    fn postfix(&mut self) -> R<P> {
        let mut p = self.primary()?;
        loop {
            let t = self.peek()?;
            match t.kind {
                Kind::LeftBracket => p = self.range_or_subquery(p)?,
                Kind::Offset => p = self.offset(p)?,
                Kind::At => p = self.at(p)?,
                Kind::Anchored | Kind::Smoothed => {
                    self.bump()?;
                    let what = self.text(t).to_ascii_lowercase();
                    let vs = match &mut p.e {
                        Expr::VectorSelector(vs) => vs,
                        Expr::MatrixSelector(ms) => &mut ms.selector,
                        _ => {
                            return Err(ParseError::new(
                                p.span.start,
                                format!(
                                    "{what} modifier must be preceded by an instant vector selector or range vector selector"
                                ),
                            ));
                        }
                    };
                    if t.kind == Kind::Anchored {
                        vs.anchored = true;
                    } else {
                        vs.smoothed = true;
                    }
                    if vs.anchored && vs.smoothed {
                        return Err(ParseError::new(
                            p.span.start,
                            "anchored and smoothed modifiers cannot be used together",
                        ));
                    }
                    p.span.end = t.end;
                }
                _ => return Ok(p),
            }
        }
    }

    fn primary(&mut self) -> R<P> {
        let t = self.peek()?;
        match t.kind {
            Kind::Number | Kind::Duration => {
                self.bump()?;
                let v = self.literal_value(t)?;
                Ok(P {
                    e: Expr::Number(v),
                    span: span_of(t),
                })
            }
            Kind::String => {
                self.bump()?;
                let s = self.unquote(t)?;
                Ok(P {
                    e: Expr::String(s),
                    span: span_of(t),
                })
            }
            Kind::LeftParen => {
                self.bump()?;
                let inner = self.expr(0)?;
                let close = self.peek()?;
                if close.kind != Kind::RightParen {
                    return Err(self.unexpected(close, "", ""));
                }
                self.bump()?;
                Ok(P {
                    e: Expr::Paren(Box::new(inner.e)),
                    span: Span {
                        start: t.start,
                        end: close.end,
                    },
                })
            }
            Kind::LeftBrace => self.vector_selector(None),
            Kind::Aggregator(op) if self.starts_aggregation() => self.aggregation(op),
            Kind::Identifier
            | Kind::Start
            | Kind::End
            | Kind::Step
            | Kind::Range
            | Kind::MaxOf
            | Kind::MinOf
                if self.peek2().is_some_and(|n| n.kind == Kind::LeftParen) =>
            {
                self.call()
            }
            k if is_metric_identifier(k) => {
                self.bump()?;
                self.vector_selector(Some(t))
            }
            _ => Err(self.unexpected(t, "", "")),
        }
    }

    /// Whether an aggregation keyword starts an aggregation rather than naming a metric.
    fn starts_aggregation(&self) -> bool {
        self.peek2()
            .is_some_and(|n| matches!(n.kind, Kind::LeftParen | Kind::By | Kind::Without))
    }

    fn literal_value(&self, t: Token) -> R<f64> {
        let text = self.text(t);
        if t.kind == Kind::Duration {
            let ms = lexer::parse_duration(text).map_err(|m| ParseError::new(t.start, m))?;
            return Ok(ms as f64 / 1000.0);
        }
        lexer::parse_number(text)
            .map_err(|m| ParseError::new(t.start, format!("error parsing number: {m}")))
    }

    fn unquote(&self, t: Token) -> R<String> {
        let text = self.text(t);
        lexer::unquote(text).map_err(|e| {
            ParseError::new(
                t.start,
                format!("error unquoting string {}: {e}", go_quote(text)),
            )
        })
    }

    fn vector_selector(&mut self, name: Option<Token>) -> R<P> {
        let start = name.map_or_else(|| self.peek().map_or(0, |t| t.start), |t| t.start);
        let mut end = name.map_or(start, |t| t.end);
        let mut matchers = Vec::new();
        if self.peek()?.kind == Kind::LeftBrace {
            let (m, close) = self.label_matchers()?;
            matchers = m;
            end = close;
        }
        let span = Span { start, end };
        let name = name.map(|t| self.text(t).to_string());
        if let Some(n) = &name {
            // Prometheus appends the outside name last, and checks it against any inside.
            for m in &matchers {
                if m.name == METRIC_NAME {
                    self.check(
                        start,
                        format!(
                            "metric name must not be set twice: {} or {}",
                            go_quote(n),
                            go_quote(&m.value)
                        ),
                    );
                }
            }
            matchers.push(Matcher::equal(METRIC_NAME, n.clone()));
        } else if matchers.iter().all(|m| m.matches_empty()) {
            self.check(start, EMPTY_MATCHER_MSG);
        }
        Ok(P {
            e: Expr::VectorSelector(VectorSelector {
                name,
                matchers,
                offset_ms: 0,
                offset_expr: None,
                at: None,
                anchored: false,
                smoothed: false,
                span,
            }),
            span,
        })
    }

    /// `{` matcher, ... `}`; returns the matchers and the end of the closing brace.
    fn label_matchers(&mut self) -> R<(Vec<Matcher>, usize)> {
        self.expect(Kind::LeftBrace, "", "")?;
        let mut out = Vec::new();
        loop {
            let t = self.peek()?;
            if t.kind == Kind::RightBrace {
                self.bump()?;
                return Ok((out, t.end));
            }
            if !matches!(t.kind, Kind::Identifier | Kind::String) {
                return Err(self.unexpected(t, "label matching", "identifier or \"}\""));
            }
            self.bump()?;
            let name = if t.kind == Kind::String {
                self.unquote(t)?
            } else {
                self.text(t).to_string()
            };
            let op_tok = self.peek()?;
            let op = match op_tok.kind {
                Kind::Eql => Some(MatchOp::Equal),
                Kind::Neq => Some(MatchOp::NotEqual),
                Kind::EqlRegex => Some(MatchOp::Regex),
                Kind::NeqRegex => Some(MatchOp::NotRegex),
                _ => None,
            };
            match op {
                Some(op) => {
                    self.bump()?;
                    let v = self.peek()?;
                    if v.kind != Kind::String {
                        return Err(self.unexpected(v, "label matching", "string"));
                    }
                    self.bump()?;
                    let value = self.unquote(v)?;
                    let m = Matcher::new(op, name, value)
                        .map_err(|e| ParseError::new(t.start, e.to_string()))?;
                    out.push(m);
                }
                // A lone quoted string is the metric name (`{"my.metric", job="x"}`).
                None if t.kind == Kind::String => out.push(Matcher::equal(METRIC_NAME, name)),
                None => {
                    return Err(self.unexpected(
                        op_tok,
                        "label matching",
                        "label matching operator",
                    ));
                }
            }
            let sep = self.peek()?;
            match sep.kind {
                Kind::Comma => {
                    self.bump()?;
                }
                Kind::RightBrace => {}
                _ => return Err(self.unexpected(sep, "label matching", "\",\" or \"}\"")),
            }
        }
    }

    fn call(&mut self) -> R<P> {
        let name_tok = self.bump()?;
        let name = self.text(name_tok).to_string();
        // Prometheus checks the name once the whole call is parsed, so syntax errors in
        // the arguments come first.
        let body = self.call_body()?;
        let Some(func) = functions::lookup(&name) else {
            return Err(ParseError::new(
                name_tok.start,
                format!("unknown function with name {}", go_quote(&name)),
            ));
        };
        let span = Span {
            start: name_tok.start,
            end: body.end,
        };
        let mut segments = self.take_arg_checks(&body);
        let args = body.args;
        // Rebuilt in Prometheus' checkAST order: the call's own errors, then each
        // argument's inner errors followed by its type error.
        let mut ordered = Vec::new();
        let n = args.len();
        let count_error = if func.variadic == 0 {
            (n != func.arg_types.len()).then(|| {
                format!(
                    "expected {} argument(s) in call to {}, got {n}",
                    func.arg_types.len(),
                    go_quote(func.name)
                )
            })
        } else if n < func.min_args() {
            Some(format!(
                "expected at least {} argument(s) in call to {}, got {n}",
                func.min_args(),
                go_quote(func.name)
            ))
        } else {
            func.max_args().filter(|&m| n > m).map(|max| {
                format!(
                    "expected at most {max} argument(s) in call to {}, got {n}",
                    go_quote(func.name)
                )
            })
        };
        if let Some(msg) = count_error {
            ordered.push(ParseError::new(span.start, msg));
        }
        if func.name == "info" && n > 1 {
            info_selector_checks(&args[1], &mut segments[1], &mut ordered);
        }
        for (i, (arg, seg)) in args.iter().zip(segments).enumerate() {
            ordered.extend(seg);
            let Some(want) = func.arg_type(i) else {
                continue;
            };
            let got = arg.ty();
            if got != want {
                ordered.push(ParseError::new(
                    arg.span.start,
                    format!(
                        "expected type {} in call to function {}, got {}",
                        want.name(),
                        go_quote(func.name),
                        got.name()
                    ),
                ));
            }
        }
        self.checks.extend(ordered);
        Ok(P {
            e: Expr::Call(Call {
                func: func.name,
                args: args.into_iter().map(|a| a.e).collect(),
                span,
            }),
            span,
        })
    }

    /// Removes the type errors found inside each argument of a call body, one list per
    /// argument, so the caller can put them back in Prometheus' order.
    fn take_arg_checks(&mut self, body: &Body) -> Vec<Vec<ParseError>> {
        let mut all = self
            .checks
            .split_off(body.start_mark.min(self.checks.len()));
        let mut segments = Vec::with_capacity(body.marks.len());
        let mut taken = body.start_mark;
        for &mark in &body.marks {
            let rest = all.split_off(mark.saturating_sub(taken).min(all.len()));
            segments.push(all);
            all = rest;
            taken = mark;
        }
        segments
    }

    /// `(` args `)`.
    fn call_body(&mut self) -> R<Body> {
        self.expect(Kind::LeftParen, "", "")?;
        let mut body = Body {
            args: Vec::new(),
            end: 0,
            start_mark: self.checks.len(),
            marks: Vec::new(),
        };
        let t = self.peek()?;
        if t.kind == Kind::RightParen {
            self.bump()?;
            body.end = t.end;
            return Ok(body);
        }
        loop {
            body.args.push(self.expr(0)?);
            body.marks.push(self.checks.len());
            let t = self.peek()?;
            match t.kind {
                Kind::RightParen => {
                    self.bump()?;
                    body.end = t.end;
                    return Ok(body);
                }
                Kind::Comma => {
                    self.bump()?;
                    if self.peek()?.kind == Kind::RightParen {
                        return Err(ParseError::new(
                            t.start,
                            "trailing commas not allowed in function call args",
                        ));
                    }
                }
                _ => return Err(self.unexpected(t, "", "")),
            }
        }
    }

    fn aggregation(&mut self, op: AggregateOp) -> R<P> {
        let op_tok = self.bump()?;
        let mut grouping = None;
        if matches!(self.peek()?.kind, Kind::By | Kind::Without) {
            grouping = Some(self.grouping()?);
        }
        let t = self.peek()?;
        if t.kind != Kind::LeftParen {
            return Err(self.unexpected(t, "aggregation", ""));
        }
        let body = self.call_body()?;
        let mut end = body.end;
        if grouping.is_none() && matches!(self.peek()?.kind, Kind::By | Kind::Without) {
            grouping = Some(self.grouping()?);
            end = self.tokens[self.next - 1].end;
        }
        let span = Span {
            start: op_tok.start,
            end,
        };
        let mut segments = self.take_arg_checks(&body);
        let mut args = body.args;
        if args.is_empty() {
            return Err(ParseError::new(
                span.start,
                "no arguments for aggregate expression provided",
            ));
        }
        let want = if op.takes_param() { 2 } else { 1 };
        if args.len() != want {
            return Err(ParseError::new(
                span.start,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            ));
        }
        let expr = args.pop().expect("checked length");
        let param = args.pop();
        // Prometheus' checkAST order: the aggregated expression, then the parameter.
        let expr_checks = segments.pop().unwrap_or_default();
        let param_checks = segments.pop().unwrap_or_default();
        self.checks.extend(expr_checks);
        if expr.ty() != ValueType::Vector {
            self.check(
                expr.span.start,
                format!(
                    "expected type instant vector in aggregation expression, got {}",
                    expr.ty().name()
                ),
            );
        }
        self.checks.extend(param_checks);
        if let Some(p) = &param {
            let want = if op == AggregateOp::CountValues {
                ValueType::String
            } else {
                ValueType::Scalar
            };
            if p.ty() != want {
                self.check(
                    p.span.start,
                    format!(
                        "expected type {} in aggregation parameter, got {}",
                        want.name(),
                        p.ty().name()
                    ),
                );
            }
        }
        Ok(P {
            e: Expr::Aggregate(Aggregate {
                op,
                expr: Box::new(expr.e),
                param: param.map(|p| Box::new(p.e)),
                grouping: grouping.unwrap_or(Grouping::By(Vec::new())),
                span,
            }),
            span,
        })
    }

    fn grouping(&mut self) -> R<Grouping> {
        let kw = self.bump()?;
        let labels = self.grouping_labels()?;
        Ok(if kw.kind == Kind::By {
            Grouping::By(labels)
        } else {
            Grouping::Without(labels)
        })
    }

    /// `(` label, ... `)` as in `by`, `without`, `on`, `ignoring`, `group_left`.
    fn grouping_labels(&mut self) -> R<Vec<String>> {
        let open = self.peek()?;
        if open.kind != Kind::LeftParen {
            return Err(self.unexpected(open, "grouping opts", "\"(\""));
        }
        self.bump()?;
        let mut labels = Vec::new();
        loop {
            let t = self.peek()?;
            if t.kind == Kind::RightParen {
                self.bump()?;
                return Ok(labels);
            }
            let label = if t.kind == Kind::String {
                self.unquote(t)?
            } else if is_maybe_label(t.kind) {
                self.text(t).to_string()
            } else {
                return Err(self.unexpected(t, "grouping opts", "label"));
            };
            if label.is_empty() {
                return Err(ParseError::new(
                    t.start,
                    format!("invalid label name for grouping: {}", go_quote(&label)),
                ));
            }
            self.bump()?;
            labels.push(label);
            let sep = self.peek()?;
            match sep.kind {
                Kind::Comma => {
                    self.bump()?;
                }
                Kind::RightParen => {}
                _ => return Err(self.unexpected(sep, "grouping opts", "\",\" or \")\"")),
            }
        }
    }

    /// `bool`, `on(...)`/`ignoring(...)`, `group_left(...)`/`group_right(...)`.
    fn bin_modifiers(&mut self) -> R<Modifiers> {
        let mut m = Modifiers {
            bool_pos: None,
            matching: None,
            fill_left: None,
            fill_right: None,
            fill_pos: None,
        };
        let t = self.peek()?;
        if t.kind == Kind::Bool {
            self.bump()?;
            m.bool_pos = Some(t.start);
        }
        let t = self.peek()?;
        if matches!(t.kind, Kind::On | Kind::Ignoring) {
            self.bump()?;
            let labels = self.grouping_labels()?;
            let mut vm = VectorMatching {
                card: Cardinality::OneToOne,
                on: t.kind == Kind::On,
                labels,
                include: Vec::new(),
            };
            let g = self.peek()?;
            if matches!(g.kind, Kind::GroupLeft | Kind::GroupRight) {
                self.bump()?;
                vm.card = if g.kind == Kind::GroupLeft {
                    Cardinality::ManyToOne
                } else {
                    Cardinality::OneToMany
                };
                if self.peek()?.kind == Kind::LeftParen {
                    vm.include = self.grouping_labels()?;
                }
            }
            m.matching = Some(vm);
        }
        // `fill(v)`, or `fill_left(v)` and/or `fill_right(v)` in either order. A `fill`
        // keyword not followed by `(` is the right operand: a metric named `fill`.
        for _ in 0..2 {
            let t = self.peek()?;
            let is_fill = matches!(t.kind, Kind::Fill | Kind::FillLeft | Kind::FillRight)
                && self.peek2().is_some_and(|n| n.kind == Kind::LeftParen);
            if !is_fill
                || (t.kind == Kind::FillLeft && m.fill_left.is_some())
                || (t.kind == Kind::FillRight && m.fill_right.is_some())
                || (t.kind == Kind::Fill && m.fill_pos.is_some())
            {
                break;
            }
            self.bump()?;
            m.fill_pos.get_or_insert(t.start);
            let v = self.fill_value()?;
            match t.kind {
                Kind::Fill => {
                    m.fill_left = Some(v);
                    m.fill_right = Some(v);
                    break;
                }
                Kind::FillLeft => m.fill_left = Some(v),
                _ => m.fill_right = Some(v),
            }
        }
        Ok(m)
    }

    /// `( [+-] number_or_duration )`, Prometheus' `fill_value`.
    fn fill_value(&mut self) -> R<f64> {
        self.expect(Kind::LeftParen, "fill modifier", "\"(\"")?;
        let mut negative = false;
        let t = self.peek()?;
        if matches!(t.kind, Kind::Add | Kind::Sub) {
            self.bump()?;
            negative = t.kind == Kind::Sub;
        }
        let lit = self.peek()?;
        if !matches!(lit.kind, Kind::Number | Kind::Duration) {
            return Err(self.unexpected(lit, "fill modifier", "number or duration"));
        }
        self.bump()?;
        let v = self.literal_value(lit)?;
        self.expect(Kind::RightParen, "fill modifier", "\")\"")?;
        Ok(if negative { -v } else { v })
    }

    /// Builds a binary expression and applies Prometheus' type rules to it.
    fn binary(&mut self, lhs: P, op: BinaryOp, op_tok: Token, m: Modifiers, rhs: P) -> P {
        let span = Span {
            start: lhs.span.start,
            end: rhs.span.end,
        };
        let (lt, rt) = (lhs.ty(), rhs.ty());
        let return_bool = m.bool_pos.is_some();
        let op_pos = op_tok.start;
        if return_bool && !op.is_comparison() {
            self.check(
                op_pos,
                "bool modifier can only be used on comparison operators",
            );
        }
        if op.is_comparison() && !return_bool && lt == ValueType::Scalar && rt == ValueType::Scalar
        {
            self.check(op_pos, "comparisons between scalars must use BOOL modifier");
        }
        let mut vm = m.matching.unwrap_or(VectorMatching {
            card: Cardinality::OneToOne,
            on: false,
            labels: Vec::new(),
            include: Vec::new(),
        });
        if op.is_set() && vm.card == Cardinality::OneToOne {
            vm.card = Cardinality::ManyToMany;
        }
        if vm.on {
            for l in &vm.labels {
                if vm.include.contains(l) {
                    self.check(
                        op_pos,
                        format!(
                            "label {} must not occur in ON and GROUP clause at once",
                            go_quote(l)
                        ),
                    );
                }
            }
        }
        for (t, pos) in [(lt, lhs.span.start), (rt, rhs.span.start)] {
            if t != ValueType::Scalar && t != ValueType::Vector {
                self.check(
                    pos,
                    "binary expression must contain only scalar and instant vector types",
                );
            }
        }
        let both_vectors = lt == ValueType::Vector && rt == ValueType::Vector;
        let matching = if !both_vectors {
            if !vm.labels.is_empty() {
                self.check(
                    span.start,
                    "vector matching only allowed between instant vectors",
                );
            }
            None
        } else {
            if op.is_set() {
                if matches!(vm.card, Cardinality::OneToMany | Cardinality::ManyToOne) {
                    self.check(
                        span.start,
                        format!(
                            "no grouping allowed for {} operation",
                            go_quote(op.symbol())
                        ),
                    );
                }
                if vm.card != Cardinality::ManyToMany {
                    self.check(span.start, "set operations must always be many-to-many");
                }
            }
            Some(vm)
        };
        if let Some(pos) = m.fill_pos
            && (!both_vectors || op.is_set())
        {
            self.check(
                pos,
                "fill modifiers are only allowed in arithmetic and comparison operations between instant vectors",
            );
        }
        if (lt == ValueType::Scalar || rt == ValueType::Scalar) && op.is_set() {
            self.check(
                span.start,
                format!(
                    "set operator {} not allowed in binary scalar expression",
                    go_quote(op.symbol())
                ),
            );
        }
        P {
            e: Expr::Binary(Binary {
                op,
                lhs: Box::new(lhs.e),
                rhs: Box::new(rhs.e),
                return_bool,
                matching,
                fill_left: m.fill_left,
                fill_right: m.fill_right,
                span,
            }),
            span,
        }
    }

    /// `[range]` after a vector selector, or `[range:step]` / `[range:]` after anything.
    fn range_or_subquery(&mut self, p: P) -> R<P> {
        let open = self.bump()?;
        let range = self.positive_duration(
            "subquery or range selector",
            "number, duration, step(), or range()",
        )?;
        let t = self.peek()?;
        match t.kind {
            Kind::RightBracket => {
                self.bump()?;
                let span = Span {
                    start: p.span.start,
                    end: t.end,
                };
                let mut e = p.e;
                let vs = match &mut e {
                    Expr::VectorSelector(vs) if vs.offset_ms != 0 || vs.offset_expr.is_some() => {
                        return Err(ParseError::new(
                            open.start,
                            "no offset modifiers allowed before range",
                        ));
                    }
                    Expr::VectorSelector(vs) if vs.at.is_some() => {
                        return Err(ParseError::new(
                            open.start,
                            "no @ modifiers allowed before range",
                        ));
                    }
                    // `Expr` has a `Drop`, so the selector is taken, not moved, out.
                    Expr::VectorSelector(vs) => std::mem::replace(vs, VectorSelector::empty()),
                    _ => {
                        return Err(ParseError::new(
                            open.start,
                            "ranges only allowed for vector selectors",
                        ));
                    }
                };
                Ok(P {
                    e: Expr::MatrixSelector(MatrixSelector {
                        selector: vs,
                        range_ms: range.ms(),
                        range_expr: range.expr(),
                        span,
                    }),
                    span,
                })
            }
            Kind::Colon => {
                self.bump()?;
                let t = self.peek()?;
                let step = if t.kind == Kind::RightBracket {
                    None
                } else {
                    Some(self.positive_duration(
                        "subquery selector",
                        "number, duration, step(), range(), or \"]\"",
                    )?)
                };
                let close = self.peek()?;
                if close.kind != Kind::RightBracket {
                    return Err(self.unexpected(close, "subquery selector", "\"]\""));
                }
                self.bump()?;
                let span = Span {
                    start: p.span.start,
                    end: close.end,
                };
                if p.ty() != ValueType::Vector {
                    let ty = match p.ty() {
                        ValueType::Scalar => "scalar",
                        ValueType::Vector => "vector",
                        ValueType::Matrix => "matrix",
                        ValueType::String => "string",
                    };
                    self.check(
                        span.start,
                        format!("subquery is only allowed on instant vector, got {ty} instead"),
                    );
                }
                Ok(P {
                    e: Expr::Subquery(Subquery {
                        expr: Box::new(p.e),
                        range_ms: range.ms(),
                        step_ms: step.as_ref().map(Dur::ms),
                        offset_ms: 0,
                        range_expr: range.expr(),
                        step_expr: step.and_then(|s| s.expr()),
                        offset_expr: None,
                        at: None,
                        span,
                    }),
                    span,
                })
            }
            _ => Err(self.unexpected(t, "subquery or range", "\":\" or \"]\"")),
        }
    }

    /// A range or subquery step: a duration expression (Prometheus 3.x) that must be
    /// positive. Folded to milliseconds unless it uses `step()`/`range()`.
    fn positive_duration(&mut self, context: &str, expected: &str) -> R<Dur> {
        let first = self.peek()?;
        let e = self.dur_sum(context, expected)?;
        fold_duration(e, first.start, false)
    }

    /// `a + b`, `a - b` over duration products.
    fn dur_sum(&mut self, context: &str, expected: &str) -> R<DurationExpr> {
        let mut e = self.dur_product(context, expected)?;
        loop {
            let op = match self.peek()?.kind {
                Kind::Add => BinaryOp::Add,
                Kind::Sub => BinaryOp::Sub,
                _ => return Ok(e),
            };
            self.bump()?;
            let rhs = self.dur_product(context, expected)?;
            e = DurationExpr::Binary(op, Box::new(e), Box::new(rhs));
        }
    }

    fn dur_product(&mut self, context: &str, expected: &str) -> R<DurationExpr> {
        let mut e = self.dur_unary(context, expected)?;
        loop {
            let op = match self.peek()?.kind {
                Kind::Mul => BinaryOp::Mul,
                Kind::Div => BinaryOp::Div,
                Kind::Mod => BinaryOp::Mod,
                _ => return Ok(e),
            };
            self.bump()?;
            let rhs = self.dur_unary(context, expected)?;
            e = DurationExpr::Binary(op, Box::new(e), Box::new(rhs));
        }
    }

    /// Signs bind looser than `^`, as in PromQL: `-2 ^ 2` is −4.
    fn dur_unary(&mut self, context: &str, expected: &str) -> R<DurationExpr> {
        match self.peek()?.kind {
            Kind::Add => {
                self.bump()?;
                self.dur_unary(context, expected)
            }
            Kind::Sub => {
                self.bump()?;
                Ok(DurationExpr::Neg(Box::new(
                    self.dur_unary(context, expected)?,
                )))
            }
            _ => {
                let base = self.dur_primary(context, expected)?;
                if self.peek()?.kind != Kind::Pow {
                    return Ok(base);
                }
                self.bump()?;
                // Right-associative: `2 ^ 3 ^ 2` is 2 ^ 9.
                let exp = self.dur_unary(context, expected)?;
                Ok(DurationExpr::Binary(
                    BinaryOp::Pow,
                    Box::new(base),
                    Box::new(exp),
                ))
            }
        }
    }

    /// A literal, a parenthesised duration expression, `step()`, `range()`,
    /// `min_of(a, b)` or `max_of(a, b)`.
    fn dur_primary(&mut self, context: &str, expected: &str) -> R<DurationExpr> {
        let t = self.peek()?;
        match t.kind {
            Kind::Number | Kind::Duration => {
                self.bump()?;
                Ok(DurationExpr::Literal(self.literal_value(t)?))
            }
            Kind::LeftParen => {
                self.bump()?;
                let e = self.dur_sum(context, expected)?;
                self.expect(Kind::RightParen, context, "\")\"")?;
                Ok(e)
            }
            Kind::Step | Kind::Range => {
                self.bump()?;
                self.expect(Kind::LeftParen, context, "\"(\"")?;
                self.expect(Kind::RightParen, context, "\")\"")?;
                Ok(if t.kind == Kind::Step {
                    DurationExpr::Step
                } else {
                    DurationExpr::Range
                })
            }
            Kind::MinOf | Kind::MaxOf => {
                self.bump()?;
                self.expect(Kind::LeftParen, context, "\"(\"")?;
                let a = self.dur_sum(context, expected)?;
                self.expect(Kind::Comma, context, "\",\"")?;
                let b = self.dur_sum(context, expected)?;
                self.expect(Kind::RightParen, context, "\")\"")?;
                let (a, b) = (Box::new(a), Box::new(b));
                Ok(if t.kind == Kind::MinOf {
                    DurationExpr::MinOf(a, b)
                } else {
                    DurationExpr::MaxOf(a, b)
                })
            }
            _ => Err(self.unexpected(t, context, expected)),
        }
    }

    /// End of the token just consumed.
    fn prev_end(&self) -> usize {
        self.next
            .checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map_or(0, |t| t.end)
    }

    fn offset(&mut self, mut p: P) -> R<P> {
        self.bump()?;
        let first = self.peek()?;
        // Only signs and one primary belong to the offset: `offset 100 + 2` adds 2 to the
        // selected values, `offset (100 + 2)` is an offset of 102 s (duration_expression.test).
        let context = "offset";
        let expected = "number, duration, step(), or range()";
        let mut negative = false;
        while matches!(self.peek()?.kind, Kind::Add | Kind::Sub) {
            if self.bump()?.kind == Kind::Sub {
                negative = !negative;
            }
        }
        let mut e = self.dur_primary(context, expected)?;
        if negative {
            e = DurationExpr::Neg(Box::new(e));
        }
        let end = self.prev_end();
        let dur = fold_duration(e, first.start, true)?;
        let (target, target_expr) = match &mut p.e {
            Expr::VectorSelector(vs) => {
                vs.span.end = end;
                (&mut vs.offset_ms, &mut vs.offset_expr)
            }
            Expr::MatrixSelector(ms) => {
                ms.span.end = end;
                (&mut ms.selector.offset_ms, &mut ms.selector.offset_expr)
            }
            Expr::Subquery(sq) => {
                sq.span.end = end;
                (&mut sq.offset_ms, &mut sq.offset_expr)
            }
            _ => {
                return Err(ParseError::new(
                    p.span.start,
                    "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                ));
            }
        };
        if *target != 0 || target_expr.is_some() {
            return Err(ParseError::new(
                p.span.start,
                "offset may not be set multiple times",
            ));
        }
        match dur {
            Dur::Ms(ms) => *target = ms,
            Dur::Expr(e) => *target_expr = Some(e),
        }
        p.span.end = end;
        Ok(p)
    }

    fn at(&mut self, mut p: P) -> R<P> {
        self.bump()?;
        let t = self.peek()?;
        let (at, end) = match t.kind {
            Kind::Start | Kind::End => {
                self.bump()?;
                let open = self.peek()?;
                if open.kind != Kind::LeftParen {
                    return Err(self.unexpected(open, "@", "timestamp"));
                }
                self.bump()?;
                let close = self.peek()?;
                if close.kind != Kind::RightParen {
                    return Err(self.unexpected(close, "@", "timestamp"));
                }
                self.bump()?;
                let at = if t.kind == Kind::Start {
                    AtModifier::Start
                } else {
                    AtModifier::End
                };
                (at, close.end)
            }
            Kind::Add | Kind::Sub | Kind::Number | Kind::Duration => {
                let mut negative = false;
                if matches!(t.kind, Kind::Add | Kind::Sub) {
                    self.bump()?;
                    negative = t.kind == Kind::Sub;
                }
                let lit = self.peek()?;
                if !matches!(lit.kind, Kind::Number | Kind::Duration) {
                    return Err(self.unexpected(lit, "@", "timestamp"));
                }
                self.bump()?;
                let mut v = self.literal_value(lit)?;
                if negative {
                    v = -v;
                }
                if !v.is_finite() || v >= i64::MAX as f64 || v <= i64::MIN as f64 {
                    return Err(ParseError::new(
                        p.span.start,
                        format!("timestamp out of bounds for @ modifier: {}", go_float_f(v)),
                    ));
                }
                // Prometheus' timestamp.FromFloatSeconds rounds to the millisecond.
                (AtModifier::Timestamp((v * 1000.0).round() as i64), lit.end)
            }
            _ => return Err(self.unexpected(t, "@", "timestamp")),
        };
        let slot = match &mut p.e {
            Expr::VectorSelector(vs) => {
                vs.span.end = end;
                &mut vs.at
            }
            Expr::MatrixSelector(ms) => {
                ms.span.end = end;
                &mut ms.selector.at
            }
            Expr::Subquery(sq) => {
                sq.span.end = end;
                &mut sq.at
            }
            _ => {
                return Err(ParseError::new(
                    p.span.start,
                    "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                ));
            }
        };
        if slot.is_some() {
            return Err(ParseError::new(
                p.span.start,
                "@ <timestamp> may not be set multiple times",
            ));
        }
        *slot = Some(at);
        p.span.end = end;
        Ok(p)
    }
}

/// A parsed `(args)` list with the bookkeeping needed to reorder type errors.
struct Body {
    args: Vec<P>,
    /// End of the closing parenthesis.
    end: usize,
    /// `checks.len()` before the first argument, and after each argument.
    start_mark: usize,
    marks: Vec<usize>,
}

/// `info`'s second argument must be a bare label selector, which is exempt from the
/// non-empty-matcher rule (so that error is dropped from the argument's own checks).
fn info_selector_checks(arg: &P, arg_checks: &mut Vec<ParseError>, out: &mut Vec<ParseError>) {
    if arg.ty() != ValueType::Vector {
        out.push(ParseError::new(
            arg.span.start,
            format!(
                "expected type instant vector in call to function \"info\", got {}",
                arg.ty().name()
            ),
        ));
    }
    match &arg.e {
        Expr::VectorSelector(vs) if vs.name.is_some() => out.push(ParseError::new(
            arg.span.start,
            "expected label selectors only, got vector selector instead",
        )),
        Expr::VectorSelector(vs) => {
            let pos = vs.span.start;
            arg_checks.retain(|e| !(e.pos == pos && e.message == EMPTY_MATCHER_MSG));
        }
        _ => out.push(ParseError::new(
            arg.span.start,
            "expected label selectors only",
        )),
    }
}

struct Modifiers {
    bool_pos: Option<usize>,
    matching: Option<VectorMatching>,
    fill_left: Option<f64>,
    fill_right: Option<f64>,
    /// Where the first fill modifier was written, for type errors.
    fill_pos: Option<usize>,
}

fn span_of(t: Token) -> Span {
    Span {
        start: t.start,
        end: t.end,
    }
}

/// A parsed range, step or offset: milliseconds, or an expression over `step()` and
/// `range()` that the evaluator resolves per query.
enum Dur {
    Ms(i64),
    Expr(DurationExpr),
}

impl Dur {
    /// The folded value; 0 until a deferred expression is resolved.
    fn ms(&self) -> i64 {
        match self {
            Dur::Ms(ms) => *ms,
            Dur::Expr(_) => 0,
        }
    }

    fn expr(self) -> Option<DurationExpr> {
        match self {
            Dur::Ms(_) => None,
            Dur::Expr(e) => Some(e),
        }
    }
}

/// Folds a duration expression without `step()`/`range()` into milliseconds, with the
/// checks of Prometheus' `calculateDuration` (durations.go) at position `pos`.
fn fold_duration(e: DurationExpr, pos: usize, allow_negative: bool) -> R<Dur> {
    if !e.is_constant() {
        return Ok(Dur::Expr(e));
    }
    let v = e.seconds(0.0, 0.0).map_err(|m| ParseError::new(pos, m))?;
    if !(-MAX_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&v) && !v.is_nan() {
        return Err(ParseError::new(pos, "duration out of range"));
    }
    if !allow_negative && (v.is_nan() || v <= 0.0) {
        return Err(ParseError::new(pos, "duration must be greater than 0"));
    }
    // A plain (signed) literal is a NumberLiteral in Prometheus, rounded to nanoseconds;
    // computed durations are truncated to the millisecond by calculateDuration.
    let mut plain = &e;
    while let DurationExpr::Neg(inner) = plain {
        plain = inner;
    }
    Ok(Dur::Ms(if matches!(plain, DurationExpr::Literal(_)) {
        seconds_to_ms(v)
    } else {
        (v * 1000.0).trunc() as i64
    }))
}

/// Seconds to milliseconds the way Prometheus gets there: rounded to whole nanoseconds
/// (`time.Duration(math.Round(v * 1e9))`), then truncated to milliseconds.
fn seconds_to_ms(v: f64) -> i64 {
    let ns = (v * 1e9).round();
    (ns / 1e6).trunc() as i64
}

/// Go's `%q` of a token text, shortened to 10 characters as Prometheus' `%.10q...`.
fn short_quote(text: &str) -> String {
    if text.chars().count() > 10 {
        let head: String = text.chars().take(10).collect();
        format!("{}...", go_quote(&head))
    } else {
        go_quote(text)
    }
}

/// Go's `%f` for the values the @ bounds check can print.
fn go_float_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v:.6}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchOp;

    // ---- AST builders; spans are compared separately, so builders leave them empty. ----

    fn num(v: f64) -> Expr {
        Expr::Number(v)
    }

    fn sel(name: &str) -> VectorSelector {
        VectorSelector {
            name: Some(name.to_string()),
            matchers: vec![Matcher::equal(METRIC_NAME, name)],
            offset_ms: 0,
            offset_expr: None,
            at: None,
            anchored: false,
            smoothed: false,
            span: Span::default(),
        }
    }

    fn vs(name: &str) -> Expr {
        Expr::VectorSelector(sel(name))
    }

    fn bin(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
        let both = lhs.value_type() == ValueType::Vector && rhs.value_type() == ValueType::Vector;
        Expr::Binary(Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            return_bool: false,
            matching: both.then(|| VectorMatching {
                card: if op.is_set() {
                    Cardinality::ManyToMany
                } else {
                    Cardinality::OneToOne
                },
                on: false,
                labels: vec![],
                include: vec![],
            }),
            fill_left: None,
            fill_right: None,
            span: Span::default(),
        })
    }

    fn with_matching(
        e: Expr,
        card: Cardinality,
        on: bool,
        labels: &[&str],
        include: &[&str],
    ) -> Expr {
        let mut e = e;
        let Expr::Binary(b) = &mut e else {
            panic!("not binary")
        };
        b.matching = Some(VectorMatching {
            card,
            on,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            include: include.iter().map(|s| s.to_string()).collect(),
        });
        e
    }

    fn with_bool(e: Expr) -> Expr {
        let mut e = e;
        let Expr::Binary(b) = &mut e else {
            panic!("not binary")
        };
        b.return_bool = true;
        e
    }

    fn neg(e: Expr) -> Expr {
        Expr::Neg(Box::new(e))
    }

    fn paren(e: Expr) -> Expr {
        Expr::Paren(Box::new(e))
    }

    fn matrix(s: VectorSelector, range_ms: i64) -> Expr {
        Expr::MatrixSelector(MatrixSelector {
            selector: s,
            range_ms,
            range_expr: None,
            span: Span::default(),
        })
    }

    fn subquery(e: Expr, range_ms: i64, step_ms: Option<i64>) -> Subquery {
        Subquery {
            expr: Box::new(e),
            range_ms,
            step_ms,
            offset_ms: 0,
            range_expr: None,
            step_expr: None,
            offset_expr: None,
            at: None,
            span: Span::default(),
        }
    }

    fn call(func: &'static str, args: Vec<Expr>) -> Expr {
        Expr::Call(Call {
            func,
            args,
            span: Span::default(),
        })
    }

    fn agg(op: AggregateOp, expr: Expr, param: Option<Expr>, grouping: Grouping) -> Expr {
        Expr::Aggregate(Aggregate {
            op,
            expr: Box::new(expr),
            param: param.map(Box::new),
            grouping,
            span: Span::default(),
        })
    }

    fn by(labels: &[&str]) -> Grouping {
        Grouping::By(labels.iter().map(|s| s.to_string()).collect())
    }

    fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
        Matcher::new(op, name, value).unwrap()
    }

    /// Clears every span so trees can be compared structurally.
    fn strip(mut e: Expr) -> Expr {
        fn clear(e: &mut Expr) {
            match e {
                Expr::VectorSelector(v) => v.span = Span::default(),
                Expr::MatrixSelector(ms) => {
                    ms.selector.span = Span::default();
                    ms.span = Span::default();
                }
                Expr::Subquery(s) => {
                    clear(&mut s.expr);
                    s.span = Span::default();
                }
                Expr::Call(c) => {
                    c.args.iter_mut().for_each(clear);
                    c.span = Span::default();
                }
                Expr::Aggregate(a) => {
                    clear(&mut a.expr);
                    if let Some(p) = &mut a.param {
                        clear(p);
                    }
                    a.span = Span::default();
                }
                Expr::Binary(b) => {
                    clear(&mut b.lhs);
                    clear(&mut b.rhs);
                    b.span = Span::default();
                }
                Expr::Neg(e) | Expr::Paren(e) => clear(e),
                Expr::Number(_) | Expr::String(_) => {}
            }
        }
        clear(&mut e);
        e
    }

    struct Case {
        input: &'static str,
        want: Expr,
    }

    fn run(cases: Vec<Case>) {
        for c in cases {
            match parse(c.input) {
                Ok(got) => assert_eq!(strip(got), c.want, "input: {}", c.input),
                Err(e) => panic!(
                    "input {:?} failed: {}",
                    c.input,
                    e.display_with_position(c.input)
                ),
            }
        }
    }

    struct ErrCase {
        input: &'static str,
        pos: usize,
        msg: &'static str,
    }

    fn run_errors(cases: &[ErrCase]) {
        for c in cases {
            match parse(c.input) {
                Ok(e) => panic!("input {:?} parsed to {e:?}", c.input),
                Err(e) => {
                    assert!(
                        e.message.contains(c.msg),
                        "input {:?}: message {:?} lacks {:?}",
                        c.input,
                        e.message,
                        c.msg
                    );
                    assert_eq!(e.pos, c.pos, "input {:?}: {}", c.input, e.message);
                }
            }
        }
    }

    use BinaryOp::*;

    #[test]
    fn every_binary_operator_parses_with_its_precedence_and_associativity() {
        run(vec![
            Case {
                input: "a + b",
                want: bin(Add, vs("a"), vs("b")),
            },
            Case {
                input: "a - b",
                want: bin(Sub, vs("a"), vs("b")),
            },
            Case {
                input: "a * b",
                want: bin(Mul, vs("a"), vs("b")),
            },
            Case {
                input: "a / b",
                want: bin(Div, vs("a"), vs("b")),
            },
            Case {
                input: "a % b",
                want: bin(Mod, vs("a"), vs("b")),
            },
            Case {
                input: "a ^ b",
                want: bin(Pow, vs("a"), vs("b")),
            },
            Case {
                input: "a atan2 b",
                want: bin(Atan2, vs("a"), vs("b")),
            },
            Case {
                input: "a == b",
                want: bin(Eq, vs("a"), vs("b")),
            },
            Case {
                input: "a != b",
                want: bin(Ne, vs("a"), vs("b")),
            },
            Case {
                input: "a > b",
                want: bin(Gt, vs("a"), vs("b")),
            },
            Case {
                input: "a < b",
                want: bin(Lt, vs("a"), vs("b")),
            },
            Case {
                input: "a >= b",
                want: bin(Ge, vs("a"), vs("b")),
            },
            Case {
                input: "a <= b",
                want: bin(Le, vs("a"), vs("b")),
            },
            Case {
                input: "a and b",
                want: bin(And, vs("a"), vs("b")),
            },
            Case {
                input: "a or b",
                want: bin(Or, vs("a"), vs("b")),
            },
            Case {
                input: "a unless b",
                want: bin(Unless, vs("a"), vs("b")),
            },
            Case {
                input: "a AND b",
                want: bin(And, vs("a"), vs("b")),
            },
            // Precedence: ^ > * / % atan2 > + - > comparisons > and unless > or.
            Case {
                input: "a + b * c",
                want: bin(Add, vs("a"), bin(Mul, vs("b"), vs("c"))),
            },
            Case {
                input: "a * b ^ c",
                want: bin(Mul, vs("a"), bin(Pow, vs("b"), vs("c"))),
            },
            Case {
                input: "a atan2 b + c",
                want: bin(Add, bin(Atan2, vs("a"), vs("b")), vs("c")),
            },
            Case {
                input: "a + b > c - d",
                want: bin(Gt, bin(Add, vs("a"), vs("b")), bin(Sub, vs("c"), vs("d"))),
            },
            Case {
                input: "a > b and c < d",
                want: bin(And, bin(Gt, vs("a"), vs("b")), bin(Lt, vs("c"), vs("d"))),
            },
            Case {
                input: "a or b and c",
                want: bin(Or, vs("a"), bin(And, vs("b"), vs("c"))),
            },
            Case {
                input: "a or b unless c",
                want: bin(Or, vs("a"), bin(Unless, vs("b"), vs("c"))),
            },
            // Left associativity.
            Case {
                input: "a - b - c",
                want: bin(Sub, bin(Sub, vs("a"), vs("b")), vs("c")),
            },
            Case {
                input: "a / b * c % d",
                want: bin(Mod, bin(Mul, bin(Div, vs("a"), vs("b")), vs("c")), vs("d")),
            },
            Case {
                input: "a and b unless c",
                want: bin(Unless, bin(And, vs("a"), vs("b")), vs("c")),
            },
            // `^` is right-associative.
            Case {
                input: "a ^ b ^ c",
                want: bin(Pow, vs("a"), bin(Pow, vs("b"), vs("c"))),
            },
            Case {
                input: "(a + b) * c",
                want: bin(Mul, paren(bin(Add, vs("a"), vs("b"))), vs("c")),
            },
            Case {
                input: "1 + 2/(3*1)",
                want: bin(
                    Add,
                    num(1.0),
                    bin(Div, num(2.0), paren(bin(Mul, num(3.0), num(1.0)))),
                ),
            },
        ]);
    }

    #[test]
    fn unary_operators_bind_below_power_and_fold_into_literals() {
        run(vec![
            Case {
                input: "-1",
                want: num(-1.0),
            },
            Case {
                input: "+1",
                want: num(1.0),
            },
            Case {
                input: "- -1",
                want: num(1.0),
            },
            Case {
                input: "-Inf",
                want: num(f64::NEG_INFINITY),
            },
            Case {
                input: "-2^2",
                want: neg(bin(Pow, num(2.0), num(2.0))),
            },
            Case {
                input: "-1^-2",
                want: neg(bin(Pow, num(1.0), num(-2.0))),
            },
            Case {
                input: "2^-1",
                want: bin(Pow, num(2.0), num(-1.0)),
            },
            Case {
                input: "-1*2",
                want: bin(Mul, num(-1.0), num(2.0)),
            },
            Case {
                input: "-a * b",
                want: bin(Mul, neg(vs("a")), vs("b")),
            },
            Case {
                input: "-a ^ b",
                want: neg(bin(Pow, vs("a"), vs("b"))),
            },
            Case {
                input: "+a",
                want: vs("a"),
            },
            Case {
                input: "-(1)",
                want: neg(paren(num(1.0))),
            },
            Case {
                input: "+1 + -2 * 1",
                want: bin(Add, num(1.0), bin(Mul, num(-2.0), num(1.0))),
            },
        ]);
    }

    #[test]
    fn numbers_strings_and_durations_become_literals() {
        run(vec![
            Case {
                input: "0x1F",
                want: num(31.0),
            },
            Case {
                input: "0755",
                want: num(493.0),
            },
            Case {
                input: "1e3",
                want: num(1000.0),
            },
            Case {
                input: "5e-3",
                want: num(0.005),
            },
            Case {
                input: ".5",
                want: num(0.5),
            },
            Case {
                input: "5.",
                want: num(5.0),
            },
            Case {
                input: "inF",
                want: num(f64::INFINITY),
            },
            Case {
                input: "5m",
                want: num(300.0),
            },
            Case {
                input: "1h30m",
                want: num(5400.0),
            },
            Case {
                input: "100ms",
                want: num(0.1),
            },
            Case {
                input: r#""a\"b\x41\101\u00e9\U0001F600""#,
                want: Expr::String("a\"bAAé😀".into()),
            },
            Case {
                input: r#"'it\'s'"#,
                want: Expr::String("it's".into()),
            },
            Case {
                input: r"`raw\n`",
                want: Expr::String(r"raw\n".into()),
            },
        ]);
        assert!(matches!(parse("NaN"), Ok(Expr::Number(v)) if v.is_nan()));
    }

    #[test]
    fn selectors_accept_quoted_names_keywords_and_trailing_commas() {
        let mut x = sel("foo");
        x.matchers = vec![
            m(MatchOp::Equal, "a", "b"),
            m(MatchOp::NotEqual, "c", "d"),
            m(MatchOp::Regex, "e", "f.*"),
            m(MatchOp::NotRegex, "g", "h"),
            Matcher::equal(METRIC_NAME, "foo"),
        ];
        let utf8 = VectorSelector {
            name: None,
            matchers: vec![
                Matcher::equal(METRIC_NAME, "my.metric"),
                m(MatchOp::Equal, "service.name", "x"),
            ],
            offset_ms: 0,
            offset_expr: None,
            at: None,
            anchored: false,
            smoothed: false,
            span: Span::default(),
        };
        run(vec![
            Case {
                input: r#"foo{a="b", c!="d", e=~"f.*", g!~'h',}"#,
                want: Expr::VectorSelector(x),
            },
            Case {
                input: r#"{"my.metric", "service.name"="x"}"#,
                want: Expr::VectorSelector(utf8),
            },
            Case {
                input: "foo:bar",
                want: vs("foo:bar"),
            },
            Case {
                input: "sum",
                want: vs("sum"),
            },
            Case {
                input: "offset",
                want: vs("offset"),
            },
            Case {
                input: "start",
                want: vs("start"),
            },
            Case {
                input: "a + sum",
                want: bin(Add, vs("a"), vs("sum")),
            },
            Case {
                input: "foo # a comment\n",
                want: vs("foo"),
            },
        ]);
    }

    #[test]
    fn vector_matching_modifiers_are_recorded() {
        run(vec![
            Case {
                input: "a * on(x, y) b",
                want: with_matching(
                    bin(Mul, vs("a"), vs("b")),
                    Cardinality::OneToOne,
                    true,
                    &["x", "y"],
                    &[],
                ),
            },
            Case {
                input: "a * ignoring(x,) group_left b",
                want: with_matching(
                    bin(Mul, vs("a"), vs("b")),
                    Cardinality::ManyToOne,
                    false,
                    &["x"],
                    &[],
                ),
            },
            Case {
                input: "a / on(x) group_right(z) b",
                want: with_matching(
                    bin(Div, vs("a"), vs("b")),
                    Cardinality::OneToMany,
                    true,
                    &["x"],
                    &["z"],
                ),
            },
            Case {
                input: "a and on() b",
                want: with_matching(
                    bin(And, vs("a"), vs("b")),
                    Cardinality::ManyToMany,
                    true,
                    &[],
                    &[],
                ),
            },
            Case {
                input: "a == bool b",
                want: with_bool(bin(Eq, vs("a"), vs("b"))),
            },
            Case {
                input: "1 > bool 2",
                want: with_bool(bin(Gt, num(1.0), num(2.0))),
            },
            // Matching is dropped when a side is a scalar.
            Case {
                input: "a + 1",
                want: bin(Add, vs("a"), num(1.0)),
            },
        ]);
    }

    #[test]
    fn offsets_at_modifiers_ranges_and_subqueries_attach_to_selectors() {
        let off = |ms| {
            let mut s = sel("foo");
            s.offset_ms = ms;
            s
        };
        let mut at_start = sel("foo");
        at_start.at = Some(AtModifier::Start);
        let mut at_ts = sel("foo");
        at_ts.at = Some(AtModifier::Timestamp(-3300));
        let mut sq = subquery(
            call("rate", vec![matrix(sel("foo"), 60_000)]),
            300_000,
            Some(30_000),
        );
        sq.offset_ms = 60_000;
        sq.at = Some(AtModifier::End);
        let mut full = sel("foo");
        full.offset_ms = 60_000;
        full.at = Some(AtModifier::Timestamp(123_000));
        run(vec![
            Case {
                input: "foo offset 5m",
                want: Expr::VectorSelector(off(300_000)),
            },
            Case {
                input: "foo offset -7m",
                want: Expr::VectorSelector(off(-420_000)),
            },
            Case {
                input: "foo offset -(5)",
                want: Expr::VectorSelector(off(-5_000)),
            },
            Case {
                input: "foo OFFSET 1h30m",
                want: Expr::VectorSelector(off(5_400_000)),
            },
            Case {
                input: "foo @ start()",
                want: Expr::VectorSelector(at_start),
            },
            Case {
                input: "foo @ -3.3",
                want: Expr::VectorSelector(at_ts),
            },
            Case {
                input: "foo[5m]",
                want: matrix(sel("foo"), 300_000),
            },
            Case {
                input: "foo[5]",
                want: matrix(sel("foo"), 5_000),
            },
            Case {
                input: "foo[4.018]",
                want: matrix(sel("foo"), 4_018),
            },
            Case {
                input: "foo[5m] offset 1m",
                want: matrix(off(60_000), 300_000),
            },
            Case {
                input: "foo @ 123 offset 1m",
                want: Expr::VectorSelector(full),
            },
            Case {
                input: "foo[10m:]",
                want: Expr::Subquery(subquery(vs("foo"), 600_000, None)),
            },
            Case {
                input: "rate(foo[1m])[5m:30s] offset 1m @ end()",
                want: Expr::Subquery(sq),
            },
            // Modifiers bind tighter than any binary operator; `offset -2^2` is `(offset -2)^2`.
            Case {
                input: "a + foo offset 5m",
                want: bin(Add, vs("a"), Expr::VectorSelector(off(300_000))),
            },
            Case {
                input: "foo offset -2^2",
                want: bin(Pow, Expr::VectorSelector(off(-2_000)), num(2.0)),
            },
            Case {
                input: "foo offset 5s-8",
                want: bin(Sub, Expr::VectorSelector(off(5_000)), num(8.0)),
            },
        ]);
    }

    #[test]
    fn aggregations_take_grouping_before_or_after_the_body() {
        run(vec![
            Case {
                input: "sum by (job) (x)",
                want: agg(AggregateOp::Sum, vs("x"), None, by(&["job"])),
            },
            Case {
                input: "sum(x) by (job,)",
                want: agg(AggregateOp::Sum, vs("x"), None, by(&["job"])),
            },
            Case {
                input: "avg without (a, \"b.c\", by) (x)",
                want: agg(
                    AggregateOp::Avg,
                    vs("x"),
                    None,
                    Grouping::Without(vec!["a".into(), "b.c".into(), "by".into()]),
                ),
            },
            Case {
                input: "topk(5, x)",
                want: agg(AggregateOp::Topk, vs("x"), Some(num(5.0)), by(&[])),
            },
            Case {
                input: "count_values(\"v\", x)",
                want: agg(
                    AggregateOp::CountValues,
                    vs("x"),
                    Some(Expr::String("v".into())),
                    by(&[]),
                ),
            },
            Case {
                input: "limitk(2, x)",
                want: agg(AggregateOp::Limitk, vs("x"), Some(num(2.0)), by(&[])),
            },
            Case {
                input: "quantile(0.9, x)",
                want: agg(AggregateOp::Quantile, vs("x"), Some(num(0.9)), by(&[])),
            },
            Case {
                input: "label_join(x, \"d\", \",\", \"a\", \"b\", \"c\")",
                want: call(
                    "label_join",
                    vec![
                        vs("x"),
                        Expr::String("d".into()),
                        Expr::String(",".into()),
                        Expr::String("a".into()),
                        Expr::String("b".into()),
                        Expr::String("c".into()),
                    ],
                ),
            },
            Case {
                input: "round(x)",
                want: call("round", vec![vs("x")]),
            },
            Case {
                input: "time()",
                want: call("time", vec![]),
            },
        ]);
    }

    #[test]
    fn syntax_errors_have_prometheus_messages_and_positions() {
        run_errors(&[
            ErrCase {
                input: "",
                pos: 0,
                msg: "no expression found in input",
            },
            ErrCase {
                input: "# only a comment\n",
                pos: 0,
                msg: "no expression found in input",
            },
            ErrCase {
                input: "1+",
                pos: 2,
                msg: "unexpected end of input",
            },
            ErrCase {
                input: "*1",
                pos: 0,
                msg: "unexpected <op:*>",
            },
            ErrCase {
                input: "(1))",
                pos: 4,
                msg: "unexpected right parenthesis ')'",
            },
            ErrCase {
                input: "sum(rate(",
                pos: 9,
                msg: "unclosed left parenthesis",
            },
            ErrCase {
                input: "foo bar",
                pos: 4,
                msg: "unexpected identifier \"bar\"",
            },
            ErrCase {
                input: "@@",
                pos: 0,
                msg: "unexpected <op:@>",
            },
            ErrCase {
                input: "a - on(b) ignoring(c) d",
                pos: 10,
                msg: "unexpected <ignoring>",
            },
            ErrCase {
                input: "foo + group_left(baz) bar",
                pos: 6,
                msg: "unexpected <group_left>",
            },
            ErrCase {
                input: "some_metric{a=b}",
                pos: 14,
                msg: "unexpected identifier \"b\" in label matching, expected string",
            },
            ErrCase {
                input: "foo{gibberish}",
                pos: 13,
                msg: "unexpected \"}\" in label matching, expected label matching operator",
            },
            ErrCase {
                input: "foo{,}",
                pos: 4,
                msg: "unexpected \",\" in label matching, expected identifier or \"}\"",
            },
            ErrCase {
                input: "foo{a=\"b\" c}",
                pos: 10,
                msg: "expected \",\" or \"}\"",
            },
            ErrCase {
                input: "sum without(==)(x)",
                pos: 12,
                msg: "unexpected <op:==> in grouping opts, expected label",
            },
            ErrCase {
                input: "sum (x) by test",
                pos: 11,
                msg: "unexpected identifier \"test\" in grouping opts, expected \"(\"",
            },
            ErrCase {
                input: "sum (x) without (a) by (a)",
                pos: 20,
                msg: "unexpected <by>",
            },
            ErrCase {
                input: "sum () by (a)",
                pos: 0,
                msg: "no arguments for aggregate expression provided",
            },
            ErrCase {
                input: "topk(x)",
                pos: 0,
                msg: "wrong number of arguments for aggregate expression provided, expected 2, got 1",
            },
            ErrCase {
                input: "topk(x,)",
                pos: 6,
                msg: "trailing commas not allowed in function call args",
            },
            ErrCase {
                input: "nope(x)",
                pos: 0,
                msg: "unknown function with name \"nope\"",
            },
            ErrCase {
                input: "foo[]",
                pos: 4,
                msg: "unexpected \"]\" in subquery or range selector, expected number, duration, step(), or range()",
            },
            ErrCase {
                input: "foo[0m]",
                pos: 4,
                msg: "duration must be greater than 0",
            },
            ErrCase {
                input: "foo[-1]",
                pos: 4,
                msg: "duration must be greater than 0",
            },
            ErrCase {
                input: "foo[5m:0s]",
                pos: 7,
                msg: "duration must be greater than 0",
            },
            ErrCase {
                input: "foo[5m1h]",
                pos: 4,
                msg: "not a valid duration string: \"5m1h\"",
            },
            ErrCase {
                input: "foo[9.5e10]",
                pos: 4,
                msg: "duration out of range",
            },
            ErrCase {
                input: "foo[5m 1m]",
                pos: 7,
                msg: "unexpected duration \"1m\" in subquery or range, expected \":\" or \"]\"",
            },
            ErrCase {
                input: "foo[5m:1m 2]",
                pos: 10,
                msg: "in subquery selector, expected \"]\"",
            },
            ErrCase {
                input: "(foo + bar)[5m]",
                pos: 11,
                msg: "ranges only allowed for vector selectors",
            },
            ErrCase {
                input: "foo offset 1m[5m]",
                pos: 13,
                msg: "no offset modifiers allowed before range",
            },
            ErrCase {
                input: "foo @ 1[5m]",
                pos: 7,
                msg: "no @ modifiers allowed before range",
            },
            ErrCase {
                input: "1 offset 1d",
                pos: 0,
                msg: "offset modifier must be preceded by an instant vector selector",
            },
            ErrCase {
                input: "foo offset 1s offset 2s",
                pos: 0,
                msg: "offset may not be set multiple times",
            },
            ErrCase {
                input: "foo[5m] OFFSET",
                pos: 14,
                msg: "unexpected end of input in offset, expected number, duration, step(), or range()",
            },
            ErrCase {
                input: "rate(x[5m]) @ 1",
                pos: 0,
                msg: "@ modifier must be preceded by an instant vector selector",
            },
            ErrCase {
                input: "foo @ 1 @ 2",
                pos: 0,
                msg: "@ <timestamp> may not be set multiple times",
            },
            ErrCase {
                input: "foo @ +Inf",
                pos: 0,
                msg: "timestamp out of bounds for @ modifier: +Inf",
            },
            ErrCase {
                input: "foo @",
                pos: 5,
                msg: "unexpected end of input in @, expected timestamp",
            },
            ErrCase {
                input: "foo @ start",
                pos: 11,
                msg: "in @, expected timestamp",
            },
            ErrCase {
                input: "2.5.",
                pos: 0,
                msg: "bad number or duration syntax: \"2.5.\"",
            },
            ErrCase {
                input: "\"\\c\"",
                pos: 0,
                msg: "unknown escape sequence U+0063 'c'",
            },
            ErrCase {
                input: "\"\\xff\"",
                pos: 0,
                msg: "invalid UTF-8",
            },
        ]);
    }

    /// duration_expression.test (Prometheus 3.x): arithmetic folds at parse time; an
    /// offset takes signs and one primary, the rest is a binary operation on the vector.
    #[test]
    fn duration_expressions_fold_and_offsets_take_one_primary() {
        let shown = |q: &str| parse(q).map(|e| e.to_string()).map_err(|e| e.message);
        assert_eq!(shown("x[2m*(10+5)]").unwrap(), "x[30m]");
        assert_eq!(shown("x[1h30m % 1h]").unwrap(), "x[30m]");
        assert_eq!(shown("x[-5m+35m]").unwrap(), "x[30m]");
        assert_eq!(shown("x[29s+1s:5s+5s]").unwrap(), "x[30s:10s]");
        assert_eq!(shown("x offset (100 + 2)").unwrap(), "x offset 1m42s");
        assert_eq!(shown("x offset 100 + 2").unwrap(), "x offset 1m40s + 2");
        assert_eq!(shown("x offset (-2 ^ 2)").unwrap(), "x offset -4s");
        assert_eq!(shown("x offset -2 ^ 2").unwrap(), "x offset -2s ^ 2");
        assert_eq!(
            shown("x offset min_of(step(), 1s)+8000").unwrap(),
            "x offset (min_of(step(), 1.0)) + 8000"
        );
        assert_eq!(shown("x[STep()]").unwrap(), "x[step()]");
        assert_eq!(
            shown("x[5m-5m]").unwrap_err(),
            "duration must be greater than 0"
        );
        assert_eq!(shown("x[1h/0]").unwrap_err(), "division by zero");
        assert_eq!(shown("x[1h%0]").unwrap_err(), "modulo by zero");
        assert!(shown("x[min_of(1m)]").is_err());
    }

    /// fill-modifier.test: `fill`, `fill_left`, `fill_right` after the matching clause; a
    /// `fill` not followed by `(` is a metric name.
    #[test]
    fn fill_modifiers_parse_and_fill_named_metrics_stay_metrics() {
        let shown = |q: &str| parse(q).map(|e| e.to_string()).map_err(|e| e.message);
        assert_eq!(shown("a + fill(0) b").unwrap(), "a + fill(0.0) b");
        assert_eq!(
            shown("a + fill_right(7) fill_left(-Inf) b").unwrap(),
            "a + fill_left(-Inf) fill_right(7.0) b"
        );
        assert_eq!(
            shown("a == bool on (x) group_left fill(NaN) b").unwrap(),
            "a == bool on(x) group_left() fill(NaN) b"
        );
        assert_eq!(shown("other + fill").unwrap(), "other + fill");
        assert_eq!(
            shown("fill + fill(0) fill_left").unwrap(),
            "fill + fill(0.0) fill_left"
        );
    }

    #[test]
    fn experimental_syntax_is_rejected_clearly() {
        run_errors(&[
            ErrCase {
                input: "sum(foo) anchored",
                pos: 0,
                msg: "anchored modifier must be preceded by an instant vector selector or range vector selector",
            },
            ErrCase {
                input: "foo[1m] anchored smoothed",
                pos: 0,
                msg: "anchored and smoothed modifiers cannot be used together",
            },
            ErrCase {
                input: "a and fill(0) b",
                pos: 6,
                msg: "fill modifiers are only allowed in arithmetic and comparison operations between instant vectors",
            },
            ErrCase {
                input: "a + fill(x) b",
                pos: 9,
                msg: "unexpected identifier \"x\" in fill modifier, expected number or duration",
            },
            ErrCase {
                input: "a </ 1",
                pos: 2,
                msg: "trim operators are not supported",
            },
        ]);
    }

    #[test]
    fn type_errors_match_prometheus_and_wait_for_syntax_errors() {
        run_errors(&[
            ErrCase {
                input: "rate(x)",
                pos: 5,
                msg: "expected type range vector in call to function \"rate\", got instant vector",
            },
            ErrCase {
                input: "floor(1)",
                pos: 6,
                msg: "expected type instant vector in call to function \"floor\", got scalar",
            },
            ErrCase {
                input: "floor()",
                pos: 0,
                msg: "expected 1 argument(s) in call to \"floor\", got 0",
            },
            ErrCase {
                input: "hour(a, a, a)",
                pos: 0,
                msg: "expected at most 1 argument(s) in call to \"hour\", got 3",
            },
            ErrCase {
                input: "label_join(a, \"b\")",
                pos: 0,
                msg: "expected at least 3 argument(s) in call to \"label_join\", got 2",
            },
            ErrCase {
                input: "{}",
                pos: 0,
                msg: "vector selector must contain at least one non-empty matcher",
            },
            ErrCase {
                input: "{x=~\".*\"}",
                pos: 0,
                msg: "vector selector must contain at least one non-empty matcher",
            },
            ErrCase {
                input: "foo{__name__=\"bar\"}",
                pos: 0,
                msg: "metric name must not be set twice: \"foo\" or \"bar\"",
            },
            ErrCase {
                input: "foo + bool bar",
                pos: 4,
                msg: "bool modifier can only be used on comparison operators",
            },
            ErrCase {
                input: "1 == 1",
                pos: 2,
                msg: "comparisons between scalars must use BOOL modifier",
            },
            ErrCase {
                input: "1 and foo",
                pos: 0,
                msg: "set operator \"and\" not allowed in binary scalar expression",
            },
            ErrCase {
                input: "foo or 1",
                pos: 0,
                msg: "set operator \"or\" not allowed in binary scalar expression",
            },
            ErrCase {
                input: "foo and on(a) group_left(b) bar",
                pos: 0,
                msg: "no grouping allowed for \"and\" operation",
            },
            ErrCase {
                input: "a + on(x) group_left(x) b",
                pos: 2,
                msg: "label \"x\" must not occur in ON and GROUP clause at once",
            },
            ErrCase {
                input: "foo == on(bar) 10",
                pos: 0,
                msg: "vector matching only allowed between instant vectors",
            },
            ErrCase {
                input: "x[5m] + 1",
                pos: 0,
                msg: "binary expression must contain only scalar and instant vector types",
            },
            ErrCase {
                input: "-\"s\"",
                pos: 0,
                msg: "unary expression only allowed on expressions of type scalar or instant vector, got \"string\"",
            },
            ErrCase {
                input: "-x[5m]",
                pos: 0,
                msg: "got \"range vector\"",
            },
            ErrCase {
                input: "topk(x, y)",
                pos: 5,
                msg: "expected type scalar in aggregation parameter, got instant vector",
            },
            ErrCase {
                input: "count_values(5, x)",
                pos: 13,
                msg: "expected type string in aggregation parameter, got scalar",
            },
            ErrCase {
                input: "sum(1)",
                pos: 4,
                msg: "expected type instant vector in aggregation expression, got scalar",
            },
            ErrCase {
                input: "x[5m][10m:]",
                pos: 0,
                msg: "subquery is only allowed on instant vector, got matrix instead",
            },
            ErrCase {
                input: "info(x, y)",
                pos: 8,
                msg: "expected label selectors only, got vector selector instead",
            },
            // Several type errors: the first in Prometheus' checkAST order is reported.
            ErrCase {
                input: "topk(x, rate(y))",
                pos: 13,
                msg: "expected type range vector in call to function \"rate\"",
            },
            ErrCase {
                input: "floor(rate(x), 1)",
                pos: 0,
                msg: "expected 1 argument(s) in call to \"floor\", got 2",
            },
            ErrCase {
                input: "abs({}) + abs(rate(x))",
                pos: 4,
                msg: "vector selector must contain at least one non-empty matcher",
            },
            // A syntax error anywhere wins over type errors found before it.
            ErrCase {
                input: "rate(x) +",
                pos: 9,
                msg: "unexpected end of input",
            },
        ]);
        assert!(parse("info(x, {a=~\".*\"})").is_ok());
    }

    #[test]
    fn error_display_gives_line_and_column_like_prometheus() {
        let e = parse("sum(x) *").unwrap_err();
        assert_eq!(
            e.display_with_position("sum(x) *"),
            "1:9: parse error: unexpected end of input"
        );
        let q = "foo +\n  bar bar";
        let e = parse(q).unwrap_err();
        assert_eq!(
            e.display_with_position(q),
            "2:7: parse error: unexpected identifier \"bar\""
        );
        let e = parse("").unwrap_err();
        assert_eq!(
            e.display_with_position(""),
            "unknown position: parse error: no expression found in input"
        );
    }

    const VALID: &[&str] = &[
        r#"sum by (job) (rate(http_requests_total{job=~"api|web", code!="500"}[5m] offset 1m))"#,
        r#"histogram_quantile(0.9, sum without (instance) (rate(x_bucket[5m:30s] @ end())))"#,
        r#"-a ^ 2 / on(x) group_left(y) b > bool 3 or label_replace(c, "d", "$1", "e", "(.*)")"#,
        r#"topk(3, {"my.metric", a='b\n'}) unless count_values("v", x) # trailing"#,
        "0x1F + 1e-3 - .5 * Inf atan2 NaN % 5m",
    ];

    #[test]
    fn parse_never_panics_on_prefixes_and_random_bytes() {
        for q in VALID {
            assert!(parse(q).is_ok(), "{q}");
            for (i, _) in q.char_indices() {
                let _ = parse(&q[..i]);
                let _ = parse(&q[i..]);
            }
        }
        // xorshift: deterministic, no dependency.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let alphabet: &[u8] = b"ab:_09.xeE+-*/%^=!~<>(){}[],@#\"'`\\ \n5mhsoy";
        for _ in 0..20_000 {
            let len = (rnd() % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rnd();
                    if r % 8 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
        // Splicing tokens of valid queries together.
        let words: Vec<&str> = VALID.iter().flat_map(|q| q.split(' ')).collect();
        for _ in 0..5_000 {
            let n = 1 + (rnd() % 6) as usize;
            let q: Vec<&str> = (0..n)
                .map(|_| words[rnd() as usize % words.len()])
                .collect();
            let _ = parse(&q.join(" "));
        }
    }

    #[test]
    fn display_prints_promql_that_parses_back_to_the_same_tree() {
        let queries = [
            "a + b * c ^ d ^ e - f / g % h atan2 i",
            "(a + b) * -c ^ 2 > bool 1 and d or e unless f",
            "a * on(x, \"y.z\") group_left(w) b + ignoring(q) c and on() d",
            "a / on(x) group_right() (b + c)",
            "-2 ^ 2 + -1 * - -a",
            r#"foo{a="b\n", c!~"d|e", "my.label"=~'x'}[1h30m] @ 100.5 offset -5m"#,
            r#"{"my.metric", job="x"} offset 1w"#,
            "rate(x[5m])[1d:10s] @ start() offset 1y",
            "(x + y)[5m:]",
            "sum by (a, \"b c\") (x) + topk without () (3, y) + count_values(\"v\", z)",
            "quantile(0.99, rate(x[90d])) + limit_ratio(0.5, x)",
            "label_join(x, \"d\", \",\", \"a\", \"b\") + round(x, 0.1)",
            "time() - 1e300 + 0.1 - Inf",
            "sum + offset + start",
        ];
        for q in queries.iter().chain(VALID) {
            let first = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            let printed = first.to_string();
            let second =
                parse(&printed).unwrap_or_else(|e| panic!("{q} printed as {printed}: {e}"));
            // Compared through Debug so that NaN literals compare equal.
            assert_eq!(
                format!("{:?}", strip(first)),
                format!("{:?}", strip(second)),
                "{q} printed as {printed}"
            );
        }
        assert_eq!(
            parse("sum(rate(x{a=\"b\"}[5m] offset 1m)) by (job)")
                .unwrap()
                .to_string(),
            "sum by (job) (rate(x{a=\"b\"}[5m] offset 1m))"
        );
        assert_eq!(
            parse("1 + 2.5 * 1e300 - 1e-7").unwrap().to_string(),
            "1 + 2.5 * 1e300 - 1e-7"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(
            parse(&deep)
                .unwrap_err()
                .message
                .contains("nested too deeply")
        );
        let unary = format!("{}1", "-".repeat(100_000));
        assert!(parse(&unary).is_err());
        let ok = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&ok).is_ok());
        // Long flat chains are not nesting.
        let chain = vec!["x"; 10_000].join(" + ");
        assert!(parse(&chain).is_ok());
    }
}
