//! The PromQL function table: names, argument types and return types, as in Prometheus'
//! `promql/parser/functions.go`. The parser type-checks calls against it; the evaluator
//! dispatches on the name.

use super::ast::ValueType;

/// One function's signature.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    pub name: &'static str,
    pub arg_types: &'static [ValueType],
    /// Number of trailing arguments that may be left out (`-1` as in Prometheus means the
    /// last argument repeats without bound, e.g. `label_join`).
    pub variadic: i32,
    pub return_type: ValueType,
    /// Experimental in Prometheus 3.x (behind `--enable-feature=promql-experimental-functions`).
    pub experimental: bool,
}

/// Every function Prometheus 3.x knows, sorted by name.
pub static FUNCTIONS: &[Function] = &[];

/// Looks a function up by name.
pub fn lookup(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}
