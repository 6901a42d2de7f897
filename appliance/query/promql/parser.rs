//! PromQL parser.

use super::ast::Expr;

/// A parse error with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

pub fn parse(input: &str) -> Result<Expr, ParseError> {
    Err(ParseError {
        pos: 0,
        message: format!("unimplemented: {input}"),
    })
}
