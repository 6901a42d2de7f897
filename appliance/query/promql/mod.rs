//! PromQL: the AST (`ast`), a hand-written lexer and recursive-descent parser with
//! positioned errors (`lexer`, `parser`), the function signature table (`functions`), and
//! the evaluator (`eval`) that runs instant and range queries over a [`super::SeriesReader`]
//! with Prometheus 3.x semantics (lookback delta, staleness, left-open range windows).

pub mod ast;
pub mod eval;
pub mod functions;
pub mod lexer;
pub mod parser;

pub use ast::Expr;
pub use parser::{ParseError, parse};
