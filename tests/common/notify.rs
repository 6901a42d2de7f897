//! What the notify tests share: real receivers started on loopback ports (Debian's
//! mosquitto, prometheus-alertmanager, a small HTTP receiver) killed by PID on drop, an
//! MQTT subscriber, a Picket config with rules and fast notification timers, and a push
//! of one sample. Bounded waits and the process guard are in [`super::process`].

use super::bins::{ALERTMANAGER, MOSQUITTO};
use super::process::{ChildGuard, now_ms, wait_for, wait_listening};
use super::{Picket, series, write_request};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Debian's mosquitto on `port`, anonymous, no persistence, with its own config file.
pub fn mosquitto(dir: &Path, port: u16) -> ChildGuard {
    let conf = dir.join(format!("mosquitto-{port}.conf"));
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let mut child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto (apt-get install mosquitto)");
    wait_listening(port, &mut child, "mosquitto");
    ChildGuard(child)
}

/// Debian's prometheus-alertmanager with a receiver that sends nowhere.
pub fn alertmanager(dir: &Path, port: u16) -> ChildGuard {
    let conf = dir.join("alertmanager.yml");
    std::fs::write(
        &conf,
        "route:\n  receiver: nowhere\n  group_wait: 0s\nreceivers:\n  - name: nowhere\n",
    )
    .unwrap();
    let storage = dir.join("am-data");
    std::fs::create_dir_all(&storage).unwrap();
    let mut child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus-alertmanager (apt-get install prometheus-alertmanager)");
    wait_listening(port, &mut child, "alertmanager");
    ChildGuard(child)
}

/// One MQTT message as a subscriber saw it.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
}

/// A rumqttc subscriber to `filter` that records every message.
pub struct Subscriber {
    pub messages: Arc<Mutex<Vec<Message>>>,
    client: rumqttc::Client,
}

impl Subscriber {
    pub fn connect(port: u16, id: &str, filter: &str) -> Subscriber {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut conn) = rumqttc::Client::new(o, 64);
        client
            .subscribe(filter, rumqttc::QoS::AtLeastOnce)
            .expect("subscribe");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = messages.clone();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        m.lock().unwrap().push(Message {
                            topic: p.topic.clone(),
                            payload: String::from_utf8_lossy(&p.payload).into_owned(),
                            retain: p.retain,
                        })
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Subscriber { messages, client }
    }

    pub fn on(&self, topic: &str) -> Vec<Message> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic == topic)
            .cloned()
            .collect()
    }

    /// Waits for a message on `topic` whose payload satisfies `f`.
    pub fn wait(&self, secs: u64, topic: &str, f: impl Fn(&str) -> bool) -> Message {
        wait_for(secs, &format!("an MQTT message on {topic}"), || {
            self.on(topic).into_iter().find(|m| f(&m.payload))
        })
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

/// A request the HTTP receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A minimal HTTP/1.1 receiver answering 200 (after `fail_first` 503s), recording the
/// requests.
pub struct HttpReceiver {
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub port: u16,
}

impl HttpReceiver {
    pub fn start(port: u16) -> HttpReceiver {
        HttpReceiver::start_failing(port, 0)
    }

    pub fn start_failing(port: u16, fail_first: usize) -> HttpReceiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let r = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = Vec::new();
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim().split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                r.lock().unwrap().push(Request {
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let failing = r.lock().unwrap().len() <= fail_first;
                let answer: &[u8] = if failing {
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let _ = stream.write_all(answer);
            }
        });
        HttpReceiver { requests, port }
    }

    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect()
    }
}

/// Pushes one sample of `name` (value 1, now) by remote_write.
pub fn push(p: &Picket, name: &str) {
    let (code, body) = p.remote_write(
        &write_request(vec![series(&[("__name__", name)], &[(now_ms(), 1.0)])]),
        None,
    );
    assert_eq!(code, 204, "{body}");
}

/// A config with every collector off, rules from `rules_file` every second, node `pi1`,
/// grouping timers of a second, and `extra` appended.
pub fn config(rules_file: &Path, extra: &str) -> String {
    format!(
        "[collect.host]\nenabled = false\n[collect.self]\nenabled = false\n\
         [rules]\nrule_files = [{:?}]\nevaluation_interval = \"1s\"\nexternal_url = \"http://pi1:9464\"\n\
         [rules.external_labels]\nnode = \"pi1\"\n\
         [notify]\ngroup_wait = \"0s\"\ngroup_interval = \"1s\"\n{extra}",
        rules_file.display().to_string()
    )
}

/// The value of a sample in Picket's `/metrics` text (first line that starts with `series`).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
