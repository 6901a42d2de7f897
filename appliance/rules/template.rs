//! The subset of Go's `text/template` that Prometheus alert labels and annotations use,
//! interpreted by hand: text and `{{ ... }}` actions (with `{{-`/`-}}` trimming),
//! variables (`$labels.x`, `$value`, `$externalLabels.x`, `$externalURL`, `.Labels.x`,
//! `.Value`, `$x := ...`), pipelines (`$value | humanize`), calls
//! (`humanizePercentage $value`, `printf "%.2f" $value`), parentheses,
//! `if`/`else if`/`else`/`end`, `with` and `range`.
//!
//! Functions are those of Prometheus' `template/template.go` (`humanize`, `humanize1024`,
//! `humanizeDuration`, `humanizePercentage`, `humanizeTimestamp`, `printf`, `toUpper`,
//! `toLower`, `title`, `stripPort`, `stripDomain`, `match`, `reReplaceAll`, `toTime`,
//! `parseDuration`, `urlQueryEscape`, `safeHtml`, and `query`, `first`, `value`, `label`,
//! `sortByLabel` over instant queries) plus Go's built-ins
//! `eq ne lt le gt ge and or not len print`. `define`/`template`/`block` are not
//! supported: a template using them fails to parse, with a message saying so.
//!
//! As in Prometheus (`Expander.Expand` sets `missingkey=zero`), a missing label prints as
//! an empty string; numbers print like Go's `%v` (`1e+06`, `0.5`).

use std::collections::BTreeMap;
use std::fmt::Write;

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

/// What a template is expanded with (Prometheus' `AlertTemplateData`).
#[derive(Clone)]
pub struct TemplateData<'a> {
    pub labels: BTreeMap<String, String>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
    /// Runs the template function `query` (an instant query at the evaluation time);
    /// None where no query engine is at hand.
    pub query: Option<&'a QueryFn<'a>>,
}

/// One element of a `query` result: labels (with `__name__`) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// What the `query` template function calls.
pub type QueryFn<'a> = dyn Fn(&str) -> Result<Vec<QuerySample>, String> + 'a;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    /// `{{ with P }}body{{ else }}otherwise{{ end }}`: body with `.` set to P if P is true.
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    /// `{{ range [$i, $e :=] P }}body{{ else }}otherwise{{ end }}`.
    Range {
        vars: Vec<String>,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    /// `$x := ...` declares (or `$x = ...` assigns) a variable and prints nothing.
    decl: Option<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Func(String),
    /// `$name.field.field` (`$` alone is the data).
    Var(String, Vec<String>),
    /// `.Field.field` (`.` alone is the data).
    Dot(Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Paren(Box<Pipeline>),
}

/// A value while executing.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Map(BTreeMap<String, String>),
    /// The template's data (`.`): Labels, ExternalLabels, ExternalURL, Value.
    Data,
    /// A `query` result and one of its elements.
    Vector(Vec<QuerySample>),
    Sample(QuerySample),
    /// A part of the JSON document a notification template is expanded over.
    Json(serde_json::Value),
    Nil,
}

/// A JSON value as a template value: scalars become strings, numbers and booleans.
fn from_json(v: serde_json::Value) -> Val {
    use serde_json::Value as J;
    match v {
        J::Null => Val::Nil,
        J::Bool(b) => Val::Bool(b),
        J::Number(n) => n
            .as_i64()
            .map_or_else(|| Val::Float(n.as_f64().unwrap_or(f64::NAN)), Val::Int),
        J::String(s) => Val::Str(s),
        other => Val::Json(other),
    }
}

const FUNCS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "printf",
    "print",
    "toUpper",
    "toLower",
    "title",
    "stripPort",
    "stripDomain",
    "match",
    "reReplaceAll",
    "toTime",
    "parseDuration",
    "urlQueryEscape",
    "safeHtml",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
    "len",
    "query",
    "first",
    "value",
    "label",
    "sortByLabel",
];

/// Parse and execution errors, worded like Go's (`template: NAME:LINE: ...`) by the caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(msg.into()))
}

impl Template {
    /// Parses `text`. Errors name the 1-based line of the template where they occurred.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let items = split(text)?;
        let mut pos = 0;
        let (nodes, end) = parse_list(&items, &mut pos, 0)?;
        match end {
            None => Ok(Template { nodes }),
            Some((kw, line)) => err(format!("{line}: unexpected {{{{{kw}}}}}")),
        }
    }

    /// Expands the template. Prometheus writes `<error expanding template: ...>` in place
    /// of the result when this fails; the caller does the same.
    pub fn expand(&self, data: &TemplateData<'_>) -> Result<String, TemplateError> {
        let mut vars: Vec<(String, Val)> = vec![
            (".".into(), Val::Data),
            ("$".into(), Val::Data),
            ("$labels".into(), Val::Map(data.labels.clone())),
            (
                "$externalLabels".into(),
                Val::Map(data.external_labels.clone()),
            ),
            ("$externalURL".into(), Val::Str(data.external_url.into())),
            ("$value".into(), Val::Float(data.value)),
        ];
        let mut out = String::new();
        exec_list(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }

    /// Expands the template with a JSON document as `.` (notification body templates:
    /// `{{ .CommonAnnotations.summary }}`, `{{ range .Alerts }}{{ .Labels.x }}{{ end }}`).
    pub fn expand_json(&self, root: &serde_json::Value) -> Result<String, TemplateError> {
        let no_labels = BTreeMap::new();
        let data = TemplateData {
            labels: BTreeMap::new(),
            external_labels: &no_labels,
            external_url: "",
            value: 0.0,
            query: None,
        };
        let mut vars: Vec<(String, Val)> = vec![
            (".".into(), Val::Json(root.clone())),
            ("$".into(), Val::Json(root.clone())),
        ];
        let mut out = String::new();
        exec_list(&self.nodes, &data, &mut vars, &mut out)?;
        Ok(out)
    }
}

/// A lexical piece: text, or an action's inner source with its line.
enum Item {
    Text(String),
    Action(String, usize),
}

/// Splits text and actions, applying the `{{- ` / ` -}}` whitespace trimming.
fn split(text: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut rest = text;
    let mut line = 1;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut before = &rest[..open];
        if trim_next {
            before = before.trim_start();
        }
        let after = &rest[open + 2..];
        let trim_left = after.starts_with("- ")
            || after.starts_with("-\t")
            || after.starts_with("-\n")
            || after.starts_with("-\r");
        if trim_left {
            before = before.trim_end();
        }
        if !before.is_empty() {
            items.push(Item::Text(before.to_string()));
        }
        line += rest[..open].matches('\n').count();
        let inner_start = if trim_left { 1 } else { 0 };
        // The action ends at the first `}}` outside a string literal.
        let bytes = after.as_bytes();
        let mut i = inner_start;
        let mut close = None;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                b'`' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'`' {
                        i += 1;
                    }
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    close = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let Some(close) = close else {
            return err(format!("{line}: unclosed action"));
        };
        let mut inner = &after[inner_start..close];
        trim_next = false;
        if let Some(s) = inner.strip_suffix('-')
            && (s.ends_with(' ') || s.ends_with('\t') || s.ends_with('\n'))
        {
            inner = s;
            trim_next = true;
        }
        let inner = inner.trim();
        if !(inner.starts_with("/*") && inner.ends_with("*/")) {
            items.push(Item::Action(inner.to_string(), line));
        }
        line += after[..close].matches('\n').count();
        rest = &after[close + 2..];
    }
    let tail = if trim_next { rest.trim_start() } else { rest };
    if !tail.is_empty() {
        items.push(Item::Text(tail.to_string()));
    }
    Ok(items)
}

/// Parses nodes until `{{else ...}}`/`{{end}}` (returned) or the end of input.
type ListEnd = Option<(String, usize)>;

/// Deepest nesting of `if` blocks and parentheses accepted: far beyond real templates,
/// and well within the stack of the recursive parser and evaluator.
const MAX_DEPTH: usize = 64;

fn parse_list(
    items: &[Item],
    pos: &mut usize,
    depth: usize,
) -> Result<(Vec<Node>, ListEnd), TemplateError> {
    if depth > MAX_DEPTH {
        return err("template nested too deeply");
    }
    let mut nodes = Vec::new();
    while *pos < items.len() {
        let item = &items[*pos];
        *pos += 1;
        match item {
            Item::Text(t) => nodes.push(Node::Text(t.clone())),
            Item::Action(src, line) => {
                let (kw, rest) = match src.split_once(char::is_whitespace) {
                    Some((k, r)) => (k, r.trim()),
                    None => (src.as_str(), ""),
                };
                match kw {
                    "end" | "else" => {
                        if kw == "end" && !rest.is_empty() {
                            return err(format!("{line}: unexpected {rest:?} in end"));
                        }
                        return Ok((nodes, Some((src.clone(), *line))));
                    }
                    "if" => nodes.push(parse_if(rest, *line, items, pos, depth + 1)?),
                    "with" | "range" => {
                        nodes.push(parse_block(kw, rest, *line, items, pos, depth + 1)?)
                    }
                    "define" | "template" | "block" | "break" | "continue" => {
                        return err(format!(
                            "{line}: {{{{{kw}}}}} is not supported by Picket's template subset"
                        ));
                    }
                    _ => nodes.push(Node::Action(parse_pipeline(src, *line)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_if(
    cond: &str,
    line: usize,
    items: &[Item],
    pos: &mut usize,
    depth: usize,
) -> Result<Node, TemplateError> {
    let mut branches = vec![(parse_pipeline(cond, line)?, Vec::new())];
    loop {
        let (body, end) = parse_list(items, pos, depth)?;
        if let Some(last) = branches.last_mut() {
            last.1 = body;
        }
        let Some((end, end_line)) = end else {
            return err(format!(
                "{line}: unexpected EOF: {{{{if}}}} without {{{{end}}}}"
            ));
        };
        if end == "end" {
            return Ok(Node::If {
                branches,
                otherwise: Vec::new(),
            });
        }
        let rest = end["else".len()..].trim();
        if rest.is_empty() {
            let (otherwise, close) = parse_list(items, pos, depth)?;
            return match close {
                Some((e, _)) if e == "end" => Ok(Node::If {
                    branches,
                    otherwise,
                }),
                _ => err(format!(
                    "{end_line}: expected {{{{end}}}} after {{{{else}}}}"
                )),
            };
        }
        match rest.strip_prefix("if") {
            Some(c) if c.starts_with(char::is_whitespace) => {
                branches.push((parse_pipeline(c.trim(), end_line)?, Vec::new()));
            }
            _ => return err(format!("{end_line}: unexpected {rest:?} after else")),
        }
    }
}

/// `with` and `range` blocks: a body and an optional `else` part.
fn parse_block(
    kw: &str,
    header: &str,
    line: usize,
    items: &[Item],
    pos: &mut usize,
    depth: usize,
) -> Result<Node, TemplateError> {
    let mut vars = Vec::new();
    let mut pipe_src = header;
    if kw == "range"
        && let Some((decl, rest)) = header.split_once(":=")
    {
        let names: Vec<&str> = decl.split(',').map(str::trim).collect();
        if names.len() <= 2 && names.iter().all(|n| n.starts_with('$') && n.len() > 1) {
            vars = names.into_iter().map(str::to_string).collect();
            pipe_src = rest.trim();
        }
    }
    let pipe = parse_pipeline(pipe_src, line)?;
    let (body, end) = parse_list(items, pos, depth)?;
    let otherwise = match end {
        Some((e, _)) if e == "end" => Vec::new(),
        Some((e, end_line)) if e == "else" => match parse_list(items, pos, depth)? {
            (otherwise, Some((e, _))) if e == "end" => otherwise,
            _ => {
                return err(format!(
                    "{end_line}: expected {{{{end}}}} after {{{{else}}}}"
                ));
            }
        },
        Some((e, end_line)) => return err(format!("{end_line}: unexpected {{{{{e}}}}} in {kw}")),
        None => {
            return err(format!(
                "{line}: unexpected EOF: {{{{{kw}}}}} without {{{{end}}}}"
            ));
        }
    };
    Ok(if kw == "with" {
        Node::With {
            pipe,
            body,
            otherwise,
        }
    } else {
        Node::Range {
            vars,
            pipe,
            body,
            otherwise,
        }
    })
}

/// Tokens of an action.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Pipe,
    Open,
    Close,
    Declare,
    Assign,
}

fn tokenize(src: &str, line: usize) -> Result<Vec<Tok>, TemplateError> {
    let mut toks = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                toks.push(Tok::Close);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err(format!("{line}: unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('r') => s.push('\r'),
                                Some('\\') => s.push('\\'),
                                Some('"') => s.push('"'),
                                Some(c) => {
                                    return err(format!(
                                        "{line}: unknown escape sequence \\{c} in string"
                                    ));
                                }
                                None => {
                                    return err(format!("{line}: unterminated quoted string"));
                                }
                            }
                        }
                        Some(&c) => s.push(c),
                    }
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                let Some(len) = chars[start..].iter().position(|&c| c == '`') else {
                    return err(format!("{line}: unterminated raw quoted string"));
                };
                toks.push(Tok::Str(chars[start..start + len].iter().collect()));
                i = start + len + 1;
            }
            _ => {
                let start = i;
                let ends_word = |i: usize| {
                    chars[i].is_whitespace()
                        || matches!(chars[i], '|' | '(' | ')' | '"' | '`' | '=')
                        || (chars[i] == ':' && chars.get(i + 1) == Some(&'='))
                };
                while i < chars.len() && !ends_word(i) {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(toks)
}

fn parse_pipeline(src: &str, line: usize) -> Result<Pipeline, TemplateError> {
    let toks = tokenize(src, line)?;
    if toks.is_empty() {
        return err(format!("{line}: missing value for command"));
    }
    let mut pos = 0;
    let p = pipeline(&toks, &mut pos, line, 0)?;
    if pos < toks.len() {
        return err(format!("{line}: unexpected {:?} in operand", toks[pos]));
    }
    Ok(p)
}

fn pipeline(
    toks: &[Tok],
    pos: &mut usize,
    line: usize,
    depth: usize,
) -> Result<Pipeline, TemplateError> {
    if depth > MAX_DEPTH {
        return err(format!("{line}: parentheses nested too deeply"));
    }
    let mut decl = None;
    if let (Some(Tok::Word(w)), Some(Tok::Declare | Tok::Assign)) =
        (toks.get(*pos), toks.get(*pos + 1))
        && w.starts_with('$')
    {
        decl = Some(w.clone());
        *pos += 2;
    }
    let mut cmds = Vec::new();
    loop {
        let mut args = Vec::new();
        while let Some(t) = toks.get(*pos) {
            match t {
                Tok::Pipe | Tok::Close => break,
                Tok::Open => {
                    *pos += 1;
                    let inner = pipeline(toks, pos, line, depth + 1)?;
                    if toks.get(*pos) != Some(&Tok::Close) {
                        return err(format!("{line}: unclosed left paren"));
                    }
                    *pos += 1;
                    args.push(Arg::Paren(Box::new(inner)));
                }
                Tok::Str(s) => {
                    args.push(Arg::Str(s.clone()));
                    *pos += 1;
                }
                Tok::Word(w) => {
                    args.push(word(w, line)?);
                    *pos += 1;
                }
                Tok::Declare | Tok::Assign => {
                    return err(format!("{line}: unexpected assignment"));
                }
            }
        }
        if args.is_empty() {
            return err(format!("{line}: missing value for command"));
        }
        if args.len() > 1 && !matches!(args[0], Arg::Func(_)) {
            return err(format!("{line}: can't give argument to non-function"));
        }
        cmds.push(args);
        match toks.get(*pos) {
            Some(Tok::Pipe) => *pos += 1,
            _ => break,
        }
    }
    Ok(Pipeline { decl, cmds })
}

fn word(w: &str, line: usize) -> Result<Arg, TemplateError> {
    if let Some(rest) = w.strip_prefix('$') {
        let mut parts = rest.split('.');
        let name = format!("${}", parts.next().unwrap_or(""));
        return Ok(Arg::Var(name, parts.map(str::to_string).collect()));
    }
    if w == "." {
        return Ok(Arg::Dot(Vec::new()));
    }
    if let Some(rest) = w.strip_prefix('.') {
        return Ok(Arg::Dot(rest.split('.').map(str::to_string).collect()));
    }
    match w {
        "true" => return Ok(Arg::Bool(true)),
        "false" => return Ok(Arg::Bool(false)),
        "nil" => return err(format!("{line}: nil is not a command")),
        _ => {}
    }
    if w.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') {
        if let Ok(i) = w.parse::<i64>() {
            return Ok(Arg::Int(i));
        }
        if let Ok(f) = w.parse::<f64>() {
            return Ok(Arg::Float(f));
        }
        return err(format!("{line}: bad number syntax: {w:?}"));
    }
    if FUNCS.contains(&w) {
        return Ok(Arg::Func(w.to_string()));
    }
    err(format!("{line}: function {w:?} not defined"))
}

type Vars = Vec<(String, Val)>;

fn exec_list(
    nodes: &[Node],
    data: &TemplateData<'_>,
    vars: &mut Vars,
    out: &mut String,
) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = exec_pipeline(p, data, vars)?;
                if p.decl.is_none() {
                    print_val(out, &v);
                }
            }
            Node::If {
                branches,
                otherwise,
            } => {
                // Variables declared inside a branch go out of scope at its end, as in Go.
                let depth = vars.len();
                let mut done = false;
                for (cond, body) in branches {
                    if truth(&exec_pipeline(cond, data, vars)?) {
                        exec_list(body, data, vars, out)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    exec_list(otherwise, data, vars, out)?;
                }
                vars.truncate(depth);
            }
            Node::With {
                pipe,
                body,
                otherwise,
            } => {
                let depth = vars.len();
                let v = exec_pipeline(pipe, data, vars)?;
                if truth(&v) {
                    vars.push((".".into(), v));
                    exec_list(body, data, vars, out)?;
                } else {
                    exec_list(otherwise, data, vars, out)?;
                }
                vars.truncate(depth);
            }
            Node::Range {
                vars: names,
                pipe,
                body,
                otherwise,
            } => {
                let depth = vars.len();
                let elems: Vec<(Val, Val)> = match exec_pipeline(pipe, data, vars)? {
                    Val::Vector(v) => v
                        .into_iter()
                        .enumerate()
                        .map(|(i, s)| (Val::Int(i as i64), Val::Sample(s)))
                        .collect(),
                    Val::Map(m) => m
                        .into_iter()
                        .map(|(k, v)| (Val::Str(k), Val::Str(v)))
                        .collect(),
                    Val::Json(serde_json::Value::Array(a)) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, e)| (Val::Int(i as i64), from_json(e)))
                        .collect(),
                    Val::Json(serde_json::Value::Object(m)) => m
                        .into_iter()
                        .map(|(k, e)| (Val::Str(k), from_json(e)))
                        .collect(),
                    Val::Nil => Vec::new(),
                    other => {
                        return err(format!("range can't iterate over {}", type_name(&other)));
                    }
                };
                if elems.is_empty() {
                    exec_list(otherwise, data, vars, out)?;
                }
                for (key, elem) in elems {
                    vars.push((".".into(), elem.clone()));
                    match names.as_slice() {
                        [e] => vars.push((e.clone(), elem)),
                        [k, e] => {
                            vars.push((k.clone(), key));
                            vars.push((e.clone(), elem));
                        }
                        _ => {}
                    }
                    exec_list(body, data, vars, out)?;
                    vars.truncate(depth);
                }
            }
        }
    }
    Ok(())
}

fn exec_pipeline(
    p: &Pipeline,
    data: &TemplateData<'_>,
    vars: &mut Vars,
) -> Result<Val, TemplateError> {
    let mut prev: Option<Val> = None;
    for cmd in &p.cmds {
        prev = Some(exec_cmd(cmd, prev, data, vars)?);
    }
    let v = prev.unwrap_or(Val::Nil);
    if let Some(name) = &p.decl {
        match vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = v.clone(),
            None => vars.push((name.clone(), v.clone())),
        }
    }
    Ok(v)
}

fn exec_cmd(
    cmd: &[Arg],
    piped: Option<Val>,
    data: &TemplateData<'_>,
    vars: &mut Vars,
) -> Result<Val, TemplateError> {
    match &cmd[0] {
        Arg::Func(name) => {
            let mut args = Vec::with_capacity(cmd.len());
            for a in &cmd[1..] {
                args.push(operand(a, data, vars)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            call(name, args, data)
        }
        a => {
            if piped.is_some() {
                return err("can't give argument to non-function");
            }
            operand(a, data, vars)
        }
    }
}

fn operand(a: &Arg, data: &TemplateData<'_>, vars: &mut Vars) -> Result<Val, TemplateError> {
    Ok(match a {
        Arg::Str(s) => Val::Str(s.clone()),
        Arg::Int(i) => Val::Int(*i),
        Arg::Float(f) => Val::Float(*f),
        Arg::Bool(b) => Val::Bool(*b),
        Arg::Paren(p) => exec_pipeline(p, data, vars)?,
        Arg::Func(f) => call(f, Vec::new(), data)?,
        Arg::Var(name, fields) => {
            let Some((_, v)) = vars.iter().rev().find(|(n, _)| n == name) else {
                return err(format!("undefined variable: {name}"));
            };
            fields_of(v.clone(), fields, data)?
        }
        Arg::Dot(fields) => {
            let dot = vars
                .iter()
                .rev()
                .find(|(n, _)| n == ".")
                .map_or(Val::Data, |(_, v)| v.clone());
            fields_of(dot, fields, data)?
        }
    })
}

fn fields_of(mut v: Val, fields: &[String], data: &TemplateData<'_>) -> Result<Val, TemplateError> {
    for f in fields {
        v = match v {
            Val::Data => match f.as_str() {
                "Labels" => Val::Map(data.labels.clone()),
                "ExternalLabels" => Val::Map(data.external_labels.clone()),
                "ExternalURL" => Val::Str(data.external_url.to_string()),
                "Value" => Val::Float(data.value),
                _ => return err(format!("can't evaluate field {f} in type template.Data")),
            },
            Val::Sample(q) => match f.as_str() {
                "Labels" => Val::Map(q.labels),
                "Value" => Val::Float(q.value),
                _ => return err(format!("can't evaluate field {f} in type template.sample")),
            },
            // missingkey=zero: a label that is not there is the empty string.
            Val::Map(m) => Val::Str(m.get(f).cloned().unwrap_or_default()),
            // Alertmanager's template data has Go field names (`.CommonLabels`) where the
            // webhook JSON has camelCase keys (`commonLabels`): both are found.
            Val::Json(serde_json::Value::Object(mut m)) => {
                let v = m.remove(f.as_str()).or_else(|| {
                    let mut c = f.chars();
                    let lower: String = c
                        .next()
                        .map(|h| h.to_ascii_lowercase())
                        .into_iter()
                        .chain(c)
                        .collect();
                    m.remove(&lower)
                });
                v.map_or(Val::Nil, from_json)
            }
            Val::Nil => Val::Nil,
            other => {
                return err(format!(
                    "can't evaluate field {f} in type {}",
                    type_name(&other)
                ));
            }
        };
    }
    Ok(v)
}

fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Str(_) => "string",
        Val::Int(_) => "int",
        Val::Float(_) => "float64",
        Val::Bool(_) => "bool",
        Val::Map(_) => "map[string]string",
        Val::Data => "template.Data",
        Val::Vector(_) => "template.queryResult",
        Val::Sample(_) => "*template.sample",
        Val::Json(serde_json::Value::Array(_)) => "[]interface {}",
        Val::Json(_) => "map[string]interface {}",
        Val::Nil => "<nil>",
    }
}

fn truth(v: &Val) -> bool {
    match v {
        Val::Str(s) => !s.is_empty(),
        Val::Int(i) => *i != 0,
        Val::Float(f) => *f != 0.0,
        Val::Bool(b) => *b,
        Val::Map(m) => !m.is_empty(),
        Val::Data | Val::Sample(_) => true,
        Val::Vector(v) => !v.is_empty(),
        Val::Json(serde_json::Value::Array(a)) => !a.is_empty(),
        Val::Json(serde_json::Value::Object(m)) => !m.is_empty(),
        Val::Json(_) => true,
        Val::Nil => false,
    }
}

/// Go's `%v`/`fmt.Fprint` of a value.
fn print_val(out: &mut String, v: &Val) {
    match v {
        Val::Str(s) => out.push_str(s),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float(f) => out.push_str(&go_g(*f, None)),
        Val::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Val::Map(m) => {
            out.push_str("map[");
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{k}:{v}");
            }
            out.push(']');
        }
        Val::Data => out.push_str("{...}"),
        Val::Sample(q) => {
            out.push('{');
            print_val(out, &Val::Map(q.labels.clone()));
            out.push(' ');
            out.push_str(&go_g(q.value, None));
            out.push('}');
        }
        Val::Vector(v) => {
            out.push('[');
            for (i, q) in v.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_val(out, &Val::Sample(q.clone()));
            }
            out.push(']');
        }
        Val::Json(j) => out.push_str(&j.to_string()),
        Val::Nil => out.push_str("<no value>"),
    }
}

/// Prometheus' `convertToFloat`: numbers, and strings that parse as floats.
fn to_float(v: &Val) -> Result<f64, TemplateError> {
    match v {
        Val::Float(f) => Ok(*f),
        Val::Int(i) => Ok(*i as f64),
        Val::Str(s) => s.trim().parse::<f64>().map_err(|_| {
            TemplateError(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))
        }),
        other => err(format!("can't convert {} to float", type_name(other))),
    }
}

fn to_str(v: &Val) -> String {
    let mut s = String::new();
    print_val(&mut s, v);
    s
}

fn want_args(name: &str, args: &[Val], n: usize) -> Result<(), TemplateError> {
    if args.len() != n {
        return err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn call(name: &str, args: Vec<Val>, data: &TemplateData<'_>) -> Result<Val, TemplateError> {
    let f1 = |args: &[Val]| -> Result<f64, TemplateError> {
        want_args(name, args, 1)?;
        to_float(&args[0])
    };
    let s1 = |args: &[Val]| -> Result<String, TemplateError> {
        want_args(name, args, 1)?;
        Ok(to_str(&args[0]))
    };
    Ok(match name {
        "humanize" => Val::Str(humanize(f1(&args)?)),
        "humanize1024" => Val::Str(humanize1024(f1(&args)?)),
        "humanizeDuration" => Val::Str(humanize_duration(f1(&args)?)),
        "humanizePercentage" => Val::Str(format!("{}%", go_g(f1(&args)? * 100.0, Some(4)))),
        "humanizeTimestamp" | "toTime" => {
            let v = f1(&args)?;
            if !v.is_finite() {
                Val::Str(go_g(v, Some(4)))
            } else {
                let ms = (v * 1000.0).round() as i64;
                Val::Str(format_go_time(ms))
            }
        }
        "printf" => {
            if args.is_empty() {
                return err("wrong number of args for printf: want at least 1 got 0");
            }
            Val::Str(sprintf(&to_str(&args[0]), &args[1..]))
        }
        "print" => {
            // fmt.Sprint: spaces between operands when neither is a string.
            let mut s = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
                    s.push(' ');
                }
                print_val(&mut s, a);
            }
            Val::Str(s)
        }
        "toUpper" => Val::Str(s1(&args)?.to_uppercase()),
        "toLower" => Val::Str(s1(&args)?.to_lowercase()),
        "safeHtml" => Val::Str(s1(&args)?),
        "title" => {
            let s = s1(&args)?;
            let mut out = String::with_capacity(s.len());
            let mut start = true;
            for c in s.chars() {
                if start && c.is_alphabetic() {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = !c.is_alphanumeric() && c != '\'';
            }
            Val::Str(out)
        }
        "stripPort" => {
            let s = s1(&args)?;
            Val::Str(strip_port(&s))
        }
        "stripDomain" => {
            let s = s1(&args)?;
            let (host, port) = match s.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') && !p.is_empty() => (h, Some(p)),
                _ => (s.as_str(), None),
            };
            if host.parse::<std::net::Ipv4Addr>().is_ok() {
                Val::Str(s.clone())
            } else {
                let short = host.split('.').next().unwrap_or(host);
                Val::Str(match port {
                    Some(p) => format!("{short}:{p}"),
                    None => short.to_string(),
                })
            }
        }
        "urlQueryEscape" => {
            let s = s1(&args)?;
            Val::Str(form_urlencoded::byte_serialize(s.as_bytes()).collect())
        }
        "parseDuration" => {
            let s = s1(&args)?;
            let ms = crate::model::duration::parse_duration_ms(&s).map_err(TemplateError)?;
            Val::Float(ms as f64 / 1000.0)
        }
        "match" => {
            want_args(name, &args, 2)?;
            let re = regex::Regex::new(&to_str(&args[0]))
                .map_err(|e| TemplateError(format!("error parsing regexp: {e}")))?;
            Val::Bool(re.is_match(&to_str(&args[1])))
        }
        "reReplaceAll" => {
            want_args(name, &args, 3)?;
            let re = regex::Regex::new(&to_str(&args[0]))
                .map_err(|e| TemplateError(format!("error parsing regexp: {e}")))?;
            Val::Str(
                re.replace_all(&to_str(&args[2]), to_str(&args[1]).as_str())
                    .into_owned(),
            )
        }
        "len" => {
            want_args(name, &args, 1)?;
            match &args[0] {
                Val::Str(s) => Val::Int(s.len() as i64),
                Val::Map(m) => Val::Int(m.len() as i64),
                Val::Json(serde_json::Value::Array(a)) => Val::Int(a.len() as i64),
                Val::Json(serde_json::Value::Object(m)) => Val::Int(m.len() as i64),
                other => return err(format!("len of type {}", type_name(other))),
            }
        }
        "query" => {
            let q = s1(&args)?;
            let Some(run) = data.query else {
                return err("the query function is not available here");
            };
            Val::Vector(run(&q).map_err(TemplateError)?)
        }
        "first" => {
            want_args(name, &args, 1)?;
            match &args[0] {
                Val::Vector(v) => match v.first() {
                    Some(q) => Val::Sample(q.clone()),
                    None => return err("first() called on vector with no elements"),
                },
                other => return err(format!("first of {}", type_name(other))),
            }
        }
        "value" => {
            want_args(name, &args, 1)?;
            match &args[0] {
                Val::Sample(q) => Val::Float(q.value),
                other => return err(format!("value of {}", type_name(other))),
            }
        }
        "label" => {
            want_args(name, &args, 2)?;
            match &args[1] {
                Val::Sample(q) => {
                    Val::Str(q.labels.get(&to_str(&args[0])).cloned().unwrap_or_default())
                }
                other => return err(format!("label of {}", type_name(other))),
            }
        }
        "sortByLabel" => {
            want_args(name, &args, 2)?;
            let key = to_str(&args[0]);
            match &args[1] {
                Val::Vector(v) => {
                    let mut v = v.clone();
                    v.sort_by(|a, b| a.labels.get(&key).cmp(&b.labels.get(&key)));
                    Val::Vector(v)
                }
                other => return err(format!("sortByLabel of {}", type_name(other))),
            }
        }
        "not" => {
            want_args(name, &args, 1)?;
            Val::Bool(!truth(&args[0]))
        }
        "and" => {
            if args.is_empty() {
                return err("wrong number of args for and: want at least 1 got 0");
            }
            let i = args
                .iter()
                .position(|a| !truth(a))
                .unwrap_or(args.len() - 1);
            args[i].clone()
        }
        "or" => {
            if args.is_empty() {
                return err("wrong number of args for or: want at least 1 got 0");
            }
            let i = args.iter().position(truth).unwrap_or(args.len() - 1);
            args[i].clone()
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            want_args(name, &args, 2)?;
            let ord = compare(&args[0], &args[1])?;
            use std::cmp::Ordering::*;
            Val::Bool(match name {
                "eq" => ord == Some(Equal),
                "ne" => ord != Some(Equal),
                "lt" => ord == Some(Less),
                "le" => matches!(ord, Some(Less | Equal)),
                "gt" => ord == Some(Greater),
                _ => matches!(ord, Some(Greater | Equal)),
            })
        }
        _ => return err(format!("function {name:?} not defined")),
    })
}

/// Go compares only values of the same basic kind; numbers of different kinds are
/// compared numerically here (Go would refuse `gt $value 80`, a common mistake).
fn compare(a: &Val, b: &Val) -> Result<Option<std::cmp::Ordering>, TemplateError> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Ok(Some(x.cmp(y))),
        (Val::Bool(x), Val::Bool(y)) => Ok(Some(x.cmp(y))),
        (Val::Int(x), Val::Int(y)) => Ok(Some(x.cmp(y))),
        (Val::Int(_) | Val::Float(_), Val::Int(_) | Val::Float(_)) => {
            Ok(to_float(a)?.partial_cmp(&to_float(b)?))
        }
        _ => err("incompatible types for comparison"),
    }
}

fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[')
        && let Some((host, _)) = rest.split_once(']')
    {
        return host.to_string();
    }
    match s.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h.to_string(),
        _ => s.to_string(),
    }
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g(v, Some(4)))
}

/// Prometheus' `humanize1024`: binary prefixes.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return go_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_g(v, Some(4)))
}

/// Prometheus' `humanizeDuration`: seconds as `1d 2h 3m 4s`, or `1.5s`, `250ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", go_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", go_g(v, Some(4)));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g(v, Some(4)))
}

/// Go's `time.Time.String()` for UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
fn format_go_time(ms: i64) -> String {
    let rfc = crate::api::params::format_rfc3339_ms(ms);
    // "YYYY-MM-DDTHH:MM:SS.mmmZ" → "YYYY-MM-DD HH:MM:SS[.mmm] +0000 UTC"
    let (date, rest) = rfc.split_once('T').unwrap_or((&rfc, ""));
    let rest = rest.trim_end_matches('Z');
    let (hms, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{date} {hms} +0000 UTC")
    } else {
        format!("{date} {hms}.{frac} +0000 UTC")
    }
}

/// Go's `strconv.FormatFloat(v, 'g', prec, 64)` as `fmt` uses it: `None` is the shortest
/// representation that round-trips (`%v`), `Some(p)` is `%.pg`.
pub fn go_g(v: f64, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let sci = match prec {
        None => format!("{v:e}"),
        Some(p) => format!("{:.*e}", p.max(1) - 1, v),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let nd = digits.len() as i32;
    // strconv's %g rule: exponent form when exp < -4 || exp >= eprec, where eprec is the
    // precision (6 for the shortest form), lowered to the digit count when the number
    // has no fractional digits to show.
    let eprec = match prec {
        None => 6,
        Some(p) => {
            let dp = exp + 1;
            let p = p.max(1) as i32;
            if p > nd && nd >= dp { nd } else { p }
        }
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// A small `fmt.Sprintf`: flags `-+ 0`, width, precision and the verbs `v s d f e g x q %`,
/// with Go's `%!verb(type=value)` for a mismatched operand.
fn sprintf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = Some(width.unwrap_or(0) * 10 + d as usize);
            chars.next();
        }
        let mut prec = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                chars.next();
            }
            prec = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let bad = || format!("%!{verb}({}={})", type_name(arg), to_str(arg));
        let num_sign = |s: String, nonneg: bool| {
            if nonneg && plus {
                format!("+{s}")
            } else if nonneg && space {
                format!(" {s}")
            } else {
                s
            }
        };
        let body = match (verb, arg) {
            ('v', _) | ('s', Val::Str(_)) => {
                let s = to_str(arg);
                match (verb, prec) {
                    ('s', Some(p)) => s.chars().take(p).collect(),
                    _ => s,
                }
            }
            ('q', Val::Str(s)) => format!("{s:?}"),
            ('d', Val::Int(i)) => num_sign(i.to_string(), *i >= 0),
            ('x', Val::Int(i)) => format!("{i:x}"),
            ('x', Val::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('f' | 'F', Val::Float(_) | Val::Int(_)) if matches!(arg, Val::Float(_)) => {
                let v = to_float(arg).unwrap_or(f64::NAN);
                let s = if v.is_finite() {
                    format!("{:.*}", prec.unwrap_or(6), v)
                } else {
                    go_g(v, None)
                };
                num_sign(s, !v.is_sign_negative())
            }
            ('e', Val::Float(v)) => {
                let s = if v.is_finite() {
                    let s = format!("{:.*e}", prec.unwrap_or(6), v);
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    format!(
                        "{m}e{}{:02}",
                        if e < 0 { '-' } else { '+' },
                        e.unsigned_abs()
                    )
                } else {
                    go_g(*v, None)
                };
                num_sign(s, !v.is_sign_negative())
            }
            ('g', Val::Float(v)) => num_sign(go_g(*v, prec), !v.is_sign_negative()),
            _ => bad(),
        };
        let len = body.chars().count();
        match width {
            Some(w) if w > len => {
                let pad = w - len;
                if minus {
                    out.push_str(&body);
                    out.extend(std::iter::repeat_n(' ', pad));
                } else if zero && matches!(verb, 'd' | 'f' | 'e' | 'g') {
                    let (sign, digits) = match body.strip_prefix(['-', '+']) {
                        Some(d) => (&body[..1], d),
                        None => ("", body.as_str()),
                    };
                    out.push_str(sign);
                    out.extend(std::iter::repeat_n('0', pad));
                    out.push_str(digits);
                } else {
                    out.extend(std::iter::repeat_n(' ', pad));
                    out.push_str(&body);
                }
            }
            _ => out.push_str(&body),
        }
    }
    let extra: Vec<&Val> = args.collect();
    if !extra.is_empty() {
        out.push_str("%!(EXTRA ");
        for (i, a) in extra.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{}={}", type_name(a), to_str(a));
        }
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `up` answers two targets; anything else is empty.
    fn fake_query(q: &str) -> Result<Vec<QuerySample>, String> {
        if q != "up" {
            return Ok(Vec::new());
        }
        Ok(["b", "a"]
            .iter()
            .map(|i| QuerySample {
                labels: [
                    ("__name__".to_string(), "up".to_string()),
                    ("instance".to_string(), i.to_string()),
                ]
                .into(),
                value: 1.0,
            })
            .collect())
    }

    fn expand(text: &str, labels: &[(&str, &str)], value: f64) -> String {
        let ext: BTreeMap<String, String> = [("cluster".to_string(), "home".to_string())].into();
        let data = TemplateData {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            external_labels: &ext,
            external_url: "http://pi:9464",
            value,
            query: Some(&fake_query),
        };
        Template::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .expand(&data)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn templates_expand_like_prometheus_alert_templates() {
        let labels = [("instance", "pi1:9100"), ("mountpoint", "/")];
        for (text, value, want) in [
            ("plain text", 0.0, "plain text"),
            ("{{ $labels.instance }} is down", 0.0, "pi1:9100 is down"),
            ("{{ .Labels.mountpoint }}", 0.0, "/"),
            ("{{ $labels.missing }}|", 0.0, "|"),
            ("{{ $value }}", 0.5, "0.5"),
            ("{{ $value }}", 1e6, "1e+06"),
            ("{{ $value }}", 123456.0, "123456"),
            ("{{ .Value }}", 3.0, "3"),
            ("{{ $value | humanize }}", 1234567.0, "1.235M"),
            ("{{ humanize $value }}", 0.00123, "1.23m"),
            ("{{ humanize1024 $value }}", 2048.0, "2ki"),
            ("{{ humanizePercentage $value }}", 0.8765, "87.65%"),
            ("{{ $value | humanizePercentage }}", 0.05, "5%"),
            ("{{ humanizeDuration $value }}", 90061.0, "1d 1h 1m 1s"),
            ("{{ humanizeDuration $value }}", 1.5, "1.5s"),
            ("{{ humanizeDuration $value }}", 0.25, "250ms"),
            ("{{ printf \"%.2f\" $value }}", 1.23456, "1.23"),
            ("{{ printf \"%d%%\" 5 }}", 0.0, "5%"),
            ("{{ printf \"%s=%v\" \"a\" $value }}", 2.0, "a=2"),
            ("{{ printf \"%d\" $value }}", 2.0, "%!d(float64=2)"),
            ("{{ $externalLabels.cluster }}", 0.0, "home"),
            ("{{ $externalURL }}", 0.0, "http://pi:9464"),
            ("{{ $labels.instance | stripPort }}", 0.0, "pi1"),
            ("{{ toUpper \"abc\" }}", 0.0, "ABC"),
            ("a {{- \" b \" -}} c", 0.0, "a b c"),
            (
                "{{ if gt $value 80.0 }}hot{{ else }}ok{{ end }}",
                90.0,
                "hot",
            ),
            (
                "{{ if gt $value 80.0 }}hot{{ else }}ok{{ end }}",
                10.0,
                "ok",
            ),
            (
                "{{ if gt $value 2.0 }}a{{ else if gt $value 1.0 }}b{{ else }}c{{ end }}",
                1.5,
                "b",
            ),
            ("{{ if $labels.mountpoint }}m{{ end }}", 0.0, "m"),
            ("{{ $x := humanize $value }}[{{ $x }}]", 2000.0, "[2k]"),
            ("{{ (printf \"%.1f\" $value) }}", 2.25, "2.2"),
            ("{{/* comment */}}x", 0.0, "x"),
            (
                "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
                0.0,
                "1",
            ),
            (
                "{{ with query \"down\" }}yes{{ else }}none{{ end }}",
                0.0,
                "none",
            ),
            (
                "{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }},{{ end }}",
                0.0,
                "a,b,",
            ),
            (
                "{{ range $i, $s := query \"up\" }}{{ $i }}={{ label \"instance\" $s }} {{ end }}",
                0.0,
                "0=b 1=a ",
            ),
            (
                "{{ range $k, $v := $labels }}{{ $k }}:{{ $v }};{{ end }}",
                0.0,
                "instance:pi1:9100;mountpoint:/;",
            ),
            (
                "{{ with $labels.instance }}[{{ . }}]{{ end }}",
                0.0,
                "[pi1:9100]",
            ),
        ] {
            assert_eq!(expand(text, &labels, value), want, "{text}");
        }
    }

    #[test]
    fn template_errors_name_the_problem() {
        for (text, want) in [
            ("{{ nosuch $value }}", "function \"nosuch\" not defined"),
            ("{{ $value ", "unclosed action"),
            ("{{ if $value }}x", "without {{end}}"),
            ("{{ end }}", "unexpected {{end}}"),
            ("{{ define \"x\" }}{{ end }}", "not supported"),
            ("{{ with $value }}x", "without {{end}}"),
            ("x\n{{ \"a\\q\" }}", "2: unknown escape sequence"),
            (&"{{ if 1 }}".repeat(100), "nested too deeply"),
            (
                &format!("{{{{ {}1{} }}}}", "(".repeat(100), ")".repeat(100)),
                "nested too deeply",
            ),
        ] {
            let e = Template::parse(text).expect_err(text).0;
            assert!(e.contains(want), "{text}: {e}");
        }
        let t = Template::parse("{{ $nosuch }}").unwrap();
        let ext = BTreeMap::new();
        let e = t
            .expand(&TemplateData {
                labels: BTreeMap::new(),
                external_labels: &ext,
                external_url: "",
                value: 0.0,
                query: None,
            })
            .unwrap_err();
        assert!(e.0.contains("undefined variable"), "{e}");
    }

    #[test]
    fn numbers_format_like_go_g() {
        for (v, prec, want) in [
            (0.0, Some(4), "0"),
            (1234.0, Some(4), "1234"),
            (12345.0, Some(4), "1.234e+04"),
            (100.0, Some(4), "100"),
            (1e-5, Some(4), "1e-05"),
            (0.5, None, "0.5"),
            (1234567.0, None, "1.234567e+06"),
            (100000.0, None, "100000"),
            (-2.5, None, "-2.5"),
            (f64::NAN, None, "NaN"),
            (f64::NEG_INFINITY, Some(4), "-Inf"),
        ] {
            assert_eq!(go_g(v, prec), want, "{v} {prec:?}");
        }
    }
}
