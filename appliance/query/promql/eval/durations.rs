//! Resolves the duration expressions that depend on the query (`[step()]`,
//! `offset range()`) before evaluation, as Prometheus 3.x's `PreprocessExpr` does with its
//! `durationVisitor` (promql/durations.go): `step()` is the range query's step (0 for an
//! instant query), `range()` is end − start (0 for an instant query).

use super::EvalError;
use crate::query::promql::ast::{DurationExpr, Expr};

/// A copy of `expr` with every deferred duration resolved, or `None` when it has none
/// (the common case: no copy is made).
pub(super) fn resolve(expr: &Expr, step_ms: i64, range_ms: i64) -> Result<Option<Expr>, EvalError> {
    if !has_deferred(expr) {
        return Ok(None);
    }
    let mut e = expr.clone();
    let (step_s, range_s) = (step_ms as f64 / 1000.0, range_ms as f64 / 1000.0);
    apply(&mut e, step_s, range_s).map_err(EvalError::BadData)?;
    Ok(Some(e))
}

fn has_deferred(e: &Expr) -> bool {
    match e {
        Expr::Number(_) | Expr::String(_) => false,
        Expr::VectorSelector(vs) => vs.offset_expr.is_some(),
        Expr::MatrixSelector(ms) => ms.range_expr.is_some() || ms.selector.offset_expr.is_some(),
        Expr::Subquery(sq) => {
            sq.range_expr.is_some()
                || sq.step_expr.is_some()
                || sq.offset_expr.is_some()
                || has_deferred(&sq.expr)
        }
        Expr::Call(c) => c.args.iter().any(has_deferred),
        Expr::Aggregate(a) => has_deferred(&a.expr) || a.param.as_deref().is_some_and(has_deferred),
        Expr::Binary(b) => has_deferred(&b.lhs) || has_deferred(&b.rhs),
        Expr::Neg(e) | Expr::Paren(e) => has_deferred(e),
    }
}

fn take(
    slot: &mut Option<DurationExpr>,
    step_s: f64,
    range_s: f64,
    offset: bool,
) -> Result<Option<i64>, String> {
    match slot.take() {
        Some(e) => e.to_ms(step_s, range_s, offset).map(Some),
        None => Ok(None),
    }
}

fn apply(e: &mut Expr, step_s: f64, range_s: f64) -> Result<(), String> {
    match e {
        Expr::Number(_) | Expr::String(_) => {}
        Expr::VectorSelector(vs) => {
            if let Some(ms) = take(&mut vs.offset_expr, step_s, range_s, true)? {
                vs.offset_ms = ms;
            }
        }
        Expr::MatrixSelector(m) => {
            if let Some(ms) = take(&mut m.range_expr, step_s, range_s, false)? {
                m.range_ms = ms;
            }
            if let Some(ms) = take(&mut m.selector.offset_expr, step_s, range_s, true)? {
                m.selector.offset_ms = ms;
            }
        }
        Expr::Subquery(sq) => {
            if let Some(ms) = take(&mut sq.range_expr, step_s, range_s, false)? {
                sq.range_ms = ms;
            }
            if let Some(ms) = take(&mut sq.step_expr, step_s, range_s, false)? {
                sq.step_ms = Some(ms);
            }
            if let Some(ms) = take(&mut sq.offset_expr, step_s, range_s, true)? {
                sq.offset_ms = ms;
            }
            apply(&mut sq.expr, step_s, range_s)?;
        }
        Expr::Call(c) => {
            for a in &mut c.args {
                apply(a, step_s, range_s)?;
            }
        }
        Expr::Aggregate(a) => {
            apply(&mut a.expr, step_s, range_s)?;
            if let Some(p) = &mut a.param {
                apply(p, step_s, range_s)?;
            }
        }
        Expr::Binary(b) => {
            apply(&mut b.lhs, step_s, range_s)?;
            apply(&mut b.rhs, step_s, range_s)?;
        }
        Expr::Neg(e) | Expr::Paren(e) => apply(e, step_s, range_s)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::promql::parser::parse;

    fn resolved(q: &str, step_ms: i64, range_ms: i64) -> Result<String, EvalError> {
        let e = parse(q).expect("parses");
        Ok(resolve(&e, step_ms, range_ms)?.unwrap_or(e).to_string())
    }

    #[test]
    fn step_and_range_resolve_per_query() {
        assert_eq!(
            resolved("rate(x[step()])", 10_000, 0).unwrap(),
            "rate(x[10s])"
        );
        assert_eq!(
            resolved("x offset min_of(range(), 8s)", 5_000, 10_000).unwrap(),
            "x offset 8s"
        );
        assert_eq!(
            resolved(
                "max_over_time(x[1m+range():step()*2] offset -step())",
                5_000,
                60_000
            )
            .unwrap(),
            "max_over_time(x[2m:10s] offset -5s)"
        );
        // An instant query: step() and range() are 0, so a range of step() is refused.
        assert_eq!(
            resolved("x[step()]", 0, 0).unwrap_err(),
            EvalError::BadData("duration must be greater than 0".into())
        );
        assert_eq!(resolved("x offset range()", 0, 0).unwrap(), "x");
    }

    #[test]
    fn expressions_without_step_or_range_are_not_copied() {
        let e = parse("rate(x[5m+1m] offset (1h*2))").expect("parses");
        assert!(resolve(&e, 1000, 0).unwrap().is_none());
        assert_eq!(e.to_string(), "rate(x[6m] offset 2h)");
    }
}
