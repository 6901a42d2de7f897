//! The PromQL syntax tree, shaped like Prometheus' `promql/parser/ast.go` (v3.x): the
//! parser produces it already type-checked, the evaluator walks it.

use crate::model::Matcher;

/// The four PromQL value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl ValueType {
    /// The names Prometheus uses in its messages ("instant vector", "range vector", ...).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
        }
    }
}

/// A half-open byte range `[start, end)` of the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// `@` modifier: a fixed time or the query's `start()`/`end()`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AtModifier {
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Start,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorSelector {
    /// The metric name when written before the braces (it is also in `matchers`).
    pub name: Option<String>,
    /// All matchers, including `__name__="<name>"` when a name was written.
    pub matchers: Vec<Matcher>,
    /// `offset` in milliseconds; negative offsets look into the future.
    pub offset_ms: i64,
    /// An offset that depends on the query (`offset step()`): resolved into `offset_ms`
    /// before evaluation (see [`DurationExpr`]).
    pub offset_expr: Option<DurationExpr>,
    pub at: Option<AtModifier>,
    /// `anchored` (range selectors; Prometheus 3.x extended range selectors): the window
    /// starts at the last sample at or before its left edge, and nothing is extrapolated.
    pub anchored: bool,
    /// `smoothed`: values at the window edges (or at the instant) are interpolated between
    /// the neighbouring samples.
    pub smoothed: bool,
    pub span: Span,
}

impl VectorSelector {
    /// A selector with no matchers, a placeholder for one taken out of an [`Expr`].
    pub fn empty() -> VectorSelector {
        VectorSelector {
            name: None,
            matchers: Vec::new(),
            offset_ms: 0,
            offset_expr: None,
            at: None,
            anchored: false,
            smoothed: false,
            span: Span::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSelector {
    pub selector: VectorSelector,
    /// The range `[5m]` in milliseconds.
    pub range_ms: i64,
    /// A range that depends on the query (`[step()]`), resolved into `range_ms` first.
    pub range_expr: Option<DurationExpr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subquery {
    pub expr: Box<Expr>,
    pub range_ms: i64,
    /// `None` means the global evaluation interval (1 m by default), never the query step.
    pub step_ms: Option<i64>,
    pub offset_ms: i64,
    /// Range, step and offset that depend on the query, resolved into the `_ms` fields.
    pub range_expr: Option<DurationExpr>,
    pub step_expr: Option<DurationExpr>,
    pub offset_expr: Option<DurationExpr>,
    pub at: Option<AtModifier>,
    pub span: Span,
}

/// A duration expression (Prometheus 3.x, `promql/durations.go`): arithmetic over
/// duration and number literals (seconds), `step()` (the query step), `range()` (end −
/// start of the query) and `min_of`/`max_of`. Expressions without `step()`/`range()` are
/// folded by the parser; the others are kept here and resolved when the query runs.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationExpr {
    /// Seconds.
    Literal(f64),
    Step,
    Range,
    Neg(Box<DurationExpr>),
    /// One of `+ - * / % ^`.
    Binary(BinaryOp, Box<DurationExpr>, Box<DurationExpr>),
    MinOf(Box<DurationExpr>, Box<DurationExpr>),
    MaxOf(Box<DurationExpr>, Box<DurationExpr>),
}

impl DurationExpr {
    /// Whether the value is known without a query (no `step()`/`range()`).
    pub fn is_constant(&self) -> bool {
        match self {
            DurationExpr::Literal(_) => true,
            DurationExpr::Step | DurationExpr::Range => false,
            DurationExpr::Neg(e) => e.is_constant(),
            DurationExpr::Binary(_, a, b)
            | DurationExpr::MinOf(a, b)
            | DurationExpr::MaxOf(a, b) => a.is_constant() && b.is_constant(),
        }
    }

    /// The value in seconds, as `durationVisitor.evaluateDurationExpr` computes it.
    pub fn seconds(&self, step_s: f64, range_s: f64) -> Result<f64, String> {
        Ok(match self {
            DurationExpr::Literal(v) => *v,
            DurationExpr::Step => step_s,
            DurationExpr::Range => range_s,
            DurationExpr::Neg(e) => -e.seconds(step_s, range_s)?,
            DurationExpr::MinOf(a, b) => {
                a.seconds(step_s, range_s)?.min(b.seconds(step_s, range_s)?)
            }
            DurationExpr::MaxOf(a, b) => {
                a.seconds(step_s, range_s)?.max(b.seconds(step_s, range_s)?)
            }
            DurationExpr::Binary(op, a, b) => {
                let (a, b) = (a.seconds(step_s, range_s)?, b.seconds(step_s, range_s)?);
                match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Sub => a - b,
                    BinaryOp::Mul => a * b,
                    BinaryOp::Div if b == 0.0 => return Err("division by zero".into()),
                    BinaryOp::Div => a / b,
                    BinaryOp::Mod if b == 0.0 => return Err("modulo by zero".into()),
                    BinaryOp::Mod => a % b,
                    BinaryOp::Pow => a.powf(b),
                    other => {
                        return Err(format!(
                            "unexpected operator {} in a duration",
                            other.symbol()
                        ));
                    }
                }
            }
        })
    }

    /// Milliseconds, checked as `durationVisitor.calculateDuration` does: positive unless
    /// `allow_negative` (offsets), within `time.Duration`, truncated to the millisecond.
    pub fn to_ms(&self, step_s: f64, range_s: f64, allow_negative: bool) -> Result<i64, String> {
        let v = self.seconds(step_s, range_s)?;
        if v.is_nan() || (v <= 0.0 && !allow_negative) {
            return Err("duration must be greater than 0".into());
        }
        // time.Duration is int64 nanoseconds.
        if v.abs() > 9_223_372_036.854_776 {
            return Err("duration out of range".into());
        }
        Ok((v * 1000.0).trunc() as i64)
    }
}

impl fmt::Display for DurationExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationExpr::Literal(v) => write!(f, "{v:?}"),
            DurationExpr::Step => f.write_str("step()"),
            DurationExpr::Range => f.write_str("range()"),
            DurationExpr::Neg(e) => write!(f, "-({e})"),
            DurationExpr::Binary(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            DurationExpr::MinOf(a, b) => write!(f, "min_of({a}, {b})"),
            DurationExpr::MaxOf(a, b) => write!(f, "max_of({a}, {b})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The function's name as in `functions::FUNCTIONS`.
    pub func: &'static str,
    pub args: Vec<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
    CountValues,
    Limitk,
    LimitRatio,
}

impl AggregateOp {
    pub fn name(self) -> &'static str {
        match self {
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Count => "count",
            AggregateOp::Group => "group",
            AggregateOp::Stddev => "stddev",
            AggregateOp::Stdvar => "stdvar",
            AggregateOp::Topk => "topk",
            AggregateOp::Bottomk => "bottomk",
            AggregateOp::Quantile => "quantile",
            AggregateOp::CountValues => "count_values",
            AggregateOp::Limitk => "limitk",
            AggregateOp::LimitRatio => "limit_ratio",
        }
    }

    /// Whether the aggregation takes a parameter before the vector (`topk(3, x)`).
    pub fn takes_param(self) -> bool {
        matches!(
            self,
            AggregateOp::Topk
                | AggregateOp::Bottomk
                | AggregateOp::Quantile
                | AggregateOp::CountValues
                | AggregateOp::Limitk
                | AggregateOp::LimitRatio
        )
    }
}

/// `by (...)` or `without (...)`; `By(vec![])` when no clause was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub op: AggregateOp,
    pub expr: Box<Expr>,
    pub param: Option<Box<Expr>>,
    pub grouping: Grouping,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Gt => ">",
            BinaryOp::Lt => "<",
            BinaryOp::Ge => ">=",
            BinaryOp::Le => "<=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Unless => "unless",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Gt | BinaryOp::Lt | BinaryOp::Ge | BinaryOp::Le
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }
}

/// Which side may have many series per match group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    /// `group_left`: many on the left.
    ManyToOne,
    /// `group_right`: many on the right.
    OneToMany,
    /// Set operators.
    ManyToMany,
}

/// Vector matching of a binary operation between two instant vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMatching {
    pub card: Cardinality,
    /// `on(...)` when true, `ignoring(...)` when false.
    pub on: bool,
    pub labels: Vec<String>,
    /// Extra labels copied from the "one" side (`group_left(a, b)`).
    pub include: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Binary {
    pub op: BinaryOp,
    pub lhs: Box<Expr>,
    pub rhs: Box<Expr>,
    /// The `bool` modifier on a comparison.
    pub return_bool: bool,
    /// Present when both sides are instant vectors.
    pub matching: Option<VectorMatching>,
    /// `fill_left(v)` / `fill_right(v)` (`fill(v)` sets both; Prometheus 3.x,
    /// `--enable-feature=promql-binop-fill-modifiers`): the value a missing match on that
    /// side stands in for.
    pub fill_left: Option<f64>,
    pub fill_right: Option<f64>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    String(String),
    VectorSelector(VectorSelector),
    MatrixSelector(MatrixSelector),
    Subquery(Subquery),
    Call(Call),
    Aggregate(Aggregate),
    Binary(Binary),
    /// Unary minus (unary plus is dropped by the parser).
    Neg(Box<Expr>),
    Paren(Box<Expr>),
}

impl Expr {
    /// The type the expression evaluates to.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(_) => ValueType::Scalar,
            Expr::String(_) => ValueType::String,
            Expr::VectorSelector(_) => ValueType::Vector,
            Expr::MatrixSelector(_) | Expr::Subquery(_) => ValueType::Matrix,
            Expr::Call(c) => {
                super::functions::lookup(c.func).map_or(ValueType::Vector, |f| f.return_type)
            }
            Expr::Aggregate(_) => ValueType::Vector,
            Expr::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Neg(e) | Expr::Paren(e) => e.value_type(),
        }
    }
}

impl Drop for Expr {
    /// Iterative: the default drop recurses once per level, and the parser accepts chains
    /// (`a + a + ... + a`) thousands of levels deep, whose drop would overflow the stack
    /// of the thread that happens to free them and abort the process.
    fn drop(&mut self) {
        let mut pending: Vec<Expr> = Vec::new();
        take_children(self, &mut pending);
        while let Some(mut e) = pending.pop() {
            take_children(&mut e, &mut pending);
        }
    }
}

/// Moves the sub-expressions of `e` that have children of their own into `out`, leaving
/// leaves in their place, so that dropping `e` no longer recurses.
fn take_children(e: &mut Expr, out: &mut Vec<Expr>) {
    fn take(slot: &mut Expr, out: &mut Vec<Expr>) {
        if !matches!(
            slot,
            Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_)
        ) {
            out.push(std::mem::replace(slot, Expr::Number(0.0)));
        }
    }
    match e {
        Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {}
        Expr::Subquery(sq) => take(&mut sq.expr, out),
        Expr::Call(c) => c.args.iter_mut().for_each(|a| take(a, out)),
        Expr::Aggregate(a) => {
            take(&mut a.expr, out);
            if let Some(p) = &mut a.param {
                take(p, out);
            }
        }
        Expr::Binary(b) => {
            take(&mut b.lhs, out);
            take(&mut b.rhs, out);
        }
        Expr::Neg(x) | Expr::Paren(x) => take(x, out),
    }
}

// ---- Printing (added by the parser author; not part of the original contract). ----

use super::lexer::go_quote;
use std::fmt;

/// Whether `s` can be written bare as a label name (otherwise it is quoted, as Prometheus
/// 3.x allows for UTF-8 names).
fn is_legacy_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn write_label_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if is_legacy_label_name(name) {
        f.write_str(name)
    } else {
        f.write_str(&go_quote(name))
    }
}

fn write_label_list(f: &mut fmt::Formatter<'_>, labels: &[String]) -> fmt::Result {
    f.write_str("(")?;
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_label_name(f, l)?;
    }
    f.write_str(")")
}

/// A millisecond duration in Prometheus' `model.Duration` form (`1h30m`, `90d`, `0s`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = ms.unsigned_abs();
    if ms < 0 {
        out.push('-');
    }
    // Years and weeks only when exact, as Prometheus does (`90d` reads better than `12w6d`).
    const UNITS: [(&str, u64, bool); 7] = [
        ("y", 365 * 86_400_000, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in UNITS {
        if exact && !rest.is_multiple_of(mult) {
            continue;
        }
        let v = rest / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            rest -= v * mult;
        }
    }
    out
}

fn write_modifiers(
    f: &mut fmt::Formatter<'_>,
    at: Option<AtModifier>,
    offset_ms: i64,
    offset_expr: Option<&DurationExpr>,
) -> fmt::Result {
    match at {
        Some(AtModifier::Timestamp(ms)) => write!(f, " @ {:.3}", ms as f64 / 1000.0)?,
        Some(AtModifier::Start) => f.write_str(" @ start()")?,
        Some(AtModifier::End) => f.write_str(" @ end()")?,
        None => {}
    }
    if let Some(e) = offset_expr {
        write!(f, " offset ({e})")?;
    } else if offset_ms != 0 {
        write!(f, " offset {}", format_duration(offset_ms))?;
    }
    Ok(())
}

impl VectorSelector {
    fn fmt_extended(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.anchored {
            f.write_str(" anchored")?;
        }
        if self.smoothed {
            f.write_str(" smoothed")?;
        }
        Ok(())
    }

    /// The selector without its `@`/`offset` modifiers.
    fn fmt_bare(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut matchers: Vec<&Matcher> = self.matchers.iter().collect();
        if let Some(name) = &self.name {
            f.write_str(name)?;
            // The parser appends the outside name as the last matcher.
            if let Some(pos) = matchers.iter().rposition(|m| {
                m.name == crate::model::METRIC_NAME
                    && m.op == crate::model::MatchOp::Equal
                    && &m.value == name
            }) {
                matchers.remove(pos);
            }
            if matchers.is_empty() {
                return Ok(());
            }
        }
        f.write_str("{")?;
        for (i, m) in matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_label_name(f, &m.name)?;
            write!(f, "{}{}", m.op.as_str(), go_quote(&m.value))?;
        }
        f.write_str("}")
    }
}

impl fmt::Display for Expr {
    /// Valid PromQL that parses back to the same tree (spans aside).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(v) => {
                if v.is_nan() {
                    f.write_str("NaN")
                } else if v.is_infinite() {
                    f.write_str(if *v > 0.0 { "Inf" } else { "-Inf" })
                } else if *v == 0.0 || (1e-4..1e15).contains(&v.abs()) {
                    // Shortest round-tripping decimal, without a `.0` on integers.
                    write!(f, "{v}")
                } else {
                    // Exponent form for very large or small values (`1e300`).
                    write!(f, "{v:?}")
                }
            }
            Expr::String(s) => f.write_str(&go_quote(s)),
            Expr::VectorSelector(vs) => {
                vs.fmt_bare(f)?;
                write_modifiers(f, vs.at, vs.offset_ms, vs.offset_expr.as_ref())?;
                vs.fmt_extended(f)
            }
            Expr::MatrixSelector(ms) => {
                ms.selector.fmt_bare(f)?;
                match &ms.range_expr {
                    Some(e) => write!(f, "[{e}]")?,
                    None => write!(f, "[{}]", format_duration(ms.range_ms))?,
                }
                let sel = &ms.selector;
                write_modifiers(f, sel.at, sel.offset_ms, sel.offset_expr.as_ref())?;
                sel.fmt_extended(f)
            }
            Expr::Subquery(sq) => {
                match &sq.range_expr {
                    Some(e) => write!(f, "{}[{e}:", sq.expr)?,
                    None => write!(f, "{}[{}:", sq.expr, format_duration(sq.range_ms))?,
                }
                if let Some(e) = &sq.step_expr {
                    write!(f, "{e}")?;
                } else if let Some(step) = sq.step_ms {
                    f.write_str(&format_duration(step))?;
                }
                f.write_str("]")?;
                write_modifiers(f, sq.at, sq.offset_ms, sq.offset_expr.as_ref())
            }
            Expr::Call(c) => {
                write!(f, "{}(", c.func)?;
                for (i, a) in c.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Aggregate(a) => {
                f.write_str(a.op.name())?;
                match &a.grouping {
                    Grouping::By(l) if l.is_empty() => {}
                    Grouping::By(l) => {
                        f.write_str(" by ")?;
                        write_label_list(f, l)?;
                        f.write_str(" ")?;
                    }
                    Grouping::Without(l) => {
                        f.write_str(" without ")?;
                        write_label_list(f, l)?;
                        f.write_str(" ")?;
                    }
                }
                f.write_str("(")?;
                if let Some(p) = &a.param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{})", a.expr)
            }
            Expr::Binary(b) => {
                write!(f, "{} {}", b.lhs, b.op.symbol())?;
                if b.return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = &b.matching {
                    if m.on || !m.labels.is_empty() {
                        f.write_str(if m.on { " on" } else { " ignoring" })?;
                        write_label_list(f, &m.labels)?;
                    }
                    match m.card {
                        // Always with parentheses, so a parenthesised right-hand side is
                        // not taken for the label list.
                        Cardinality::ManyToOne => {
                            f.write_str(" group_left")?;
                            write_label_list(f, &m.include)?;
                        }
                        Cardinality::OneToMany => {
                            f.write_str(" group_right")?;
                            write_label_list(f, &m.include)?;
                        }
                        Cardinality::OneToOne | Cardinality::ManyToMany => {}
                    }
                }
                let fill = |v: f64| {
                    if v.is_nan() {
                        "NaN".to_string()
                    } else if v.is_infinite() {
                        (if v > 0.0 { "Inf" } else { "-Inf" }).to_string()
                    } else {
                        format!("{v:?}")
                    }
                };
                match (b.fill_left, b.fill_right) {
                    (Some(l), Some(r)) if l.to_bits() == r.to_bits() => {
                        write!(f, " fill({})", fill(l))?
                    }
                    (l, r) => {
                        if let Some(l) = l {
                            write!(f, " fill_left({})", fill(l))?;
                        }
                        if let Some(r) = r {
                            write!(f, " fill_right({})", fill(r))?;
                        }
                    }
                }
                write!(f, " {}", b.rhs)
            }
            Expr::Neg(e) => write!(f, "-{e}"),
            Expr::Paren(e) => write!(f, "({e})"),
        }
    }
}

#[cfg(test)]
mod drop_tests {
    use super::*;

    /// Found by fuzzing with deep inputs (a 40,000-term `up + up + ...` chain): the derived
    /// drop recursed once per level and overflowed the stack, aborting the process.
    #[test]
    fn deep_trees_drop_on_a_small_stack() {
        let mut e = Expr::Number(1.0);
        for i in 0..1_000_000 {
            e = if i % 2 == 0 {
                Expr::Neg(Box::new(e))
            } else {
                Expr::Binary(Binary {
                    op: BinaryOp::Add,
                    lhs: Box::new(e),
                    rhs: Box::new(Expr::Number(2.0)),
                    return_bool: false,
                    matching: None,
                    fill_left: None,
                    fill_right: None,
                    span: Span::default(),
                })
            };
        }
        let dropped = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || drop(e))
            .expect("thread starts")
            .join();
        assert!(dropped.is_ok());
    }
}
