//! PromQL lexer.
