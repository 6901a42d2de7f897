//! `picket silence add|list|expire`: silences on a running Picket, through its
//! Alertmanager-style API (`/api/v2/silences`), like `amtool silence` does.

use crate::notify::alert::rfc3339;
use crate::notify::matcher::parse_matcher;
use crate::notify::silence::SilenceMatcher;
use clap::Subcommand;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence alerts matching every MATCHER (`name=value`, `name!=value`, `name=~regex`,
    /// `name!~regex`; a first argument without an operator is the alertname). Prints the id.
    Add {
        #[arg(value_name = "MATCHER", required = true)]
        matchers: Vec<String>,
        /// How long, from now (a duration such as 2h or 30m).
        #[arg(long, default_value = "1h")]
        duration: String,
        #[arg(long, default_value = "")]
        comment: String,
        /// Who silences (default: $USER).
        #[arg(long)]
        author: Option<String>,
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9464")]
        server: String,
    },
    /// List silences: id, state, matchers, end, author, comment.
    List {
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9464")]
        server: String,
    },
    /// End a silence now.
    Expire {
        #[arg(value_name = "ID", required = true)]
        ids: Vec<String>,
        #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9464")]
        server: String,
    },
}

fn client() -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The answer's JSON, or the server's error message.
fn answer(r: reqwest::Result<reqwest::blocking::Response>, url: &str) -> Result<Value, String> {
    let r = r.map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = r.status();
    let text = r.text().unwrap_or_default();
    let v: Value = serde_json::from_str(&text).map_err(|_| {
        format!(
            "{url} answered {status}: {}",
            text.chars().take(200).collect::<String>()
        )
    })?;
    if !status.is_success() {
        return Err(v["error"]
            .as_str()
            .map_or_else(|| v.to_string(), str::to_string));
    }
    Ok(v)
}

pub fn run(cmd: SilenceCommand) -> ExitCode {
    let result = match cmd {
        SilenceCommand::Add {
            matchers,
            duration,
            comment,
            author,
            server,
        } => add(&matchers, &duration, &comment, author, &server),
        SilenceCommand::List { server } => list(&server),
        SilenceCommand::Expire { ids, server } => expire(&ids, &server),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("picket silence: {e}");
            ExitCode::FAILURE
        }
    }
}

fn add(
    matchers: &[String],
    duration: &str,
    comment: &str,
    author: Option<String>,
    server: &str,
) -> Result<(), String> {
    let mut parsed = Vec::new();
    for (i, m) in matchers.iter().enumerate() {
        let m = if i == 0 && !m.contains(['=', '!', '~']) {
            format!("alertname={m:?}")
        } else {
            m.clone()
        };
        parsed.push(SilenceMatcher::from_matcher(&parse_matcher(&m)?));
    }
    let d =
        crate::model::duration::parse_duration(duration).map_err(|e| format!("--duration: {e}"))?;
    let now = crate::notify::now_ms();
    let body = json!({
        "matchers": parsed,
        "startsAt": rfc3339(now),
        "endsAt": rfc3339(now + d.as_millis() as i64),
        "createdBy": author.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "picket".into()),
        "comment": comment,
    });
    let url = format!("{}/api/v2/silences", server.trim_end_matches('/'));
    let v = answer(client()?.post(&url).json(&body).send(), &url)?;
    println!("{}", v["silenceID"].as_str().unwrap_or_default());
    Ok(())
}

fn list(server: &str) -> Result<(), String> {
    let url = format!("{}/api/v2/silences", server.trim_end_matches('/'));
    let v = answer(client()?.get(&url).send(), &url)?;
    println!(
        "ID                                    STATE    MATCHERS  ENDS AT  CREATED BY  COMMENT"
    );
    for s in v.as_array().into_iter().flatten() {
        let matchers: Vec<String> = s["matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let op = match (
                    m["isRegex"].as_bool() == Some(true),
                    m["isEqual"].as_bool() != Some(false),
                ) {
                    (false, true) => "=",
                    (false, false) => "!=",
                    (true, true) => "=~",
                    (true, false) => "!~",
                };
                format!(
                    "{}{op}{:?}",
                    m["name"].as_str().unwrap_or(""),
                    m["value"].as_str().unwrap_or("")
                )
            })
            .collect();
        let ends = s["endsAt"].as_str().unwrap_or("");
        println!(
            "{}  {:<7}  {}  {}  {}  {}",
            s["id"].as_str().unwrap_or(""),
            s["status"]["state"].as_str().unwrap_or(""),
            matchers.join(","),
            ends,
            s["createdBy"].as_str().unwrap_or(""),
            s["comment"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

fn expire(ids: &[String], server: &str) -> Result<(), String> {
    let c = client()?;
    for id in ids {
        let url = format!("{}/api/v2/silence/{id}", server.trim_end_matches('/'));
        answer(c.delete(&url).send(), &url)?;
    }
    Ok(())
}
