//! Relabelling with Prometheus semantics (`model/relabel/relabel.go`, `relabel` and
//! `Process`): steps run in order on a mutable label set; `keep`/`drop`/`keepequal`/
//! `dropequal` can drop the whole set. Used for target labels (`relabel_configs`) and
//! scraped samples (`metric_relabel_configs`); any later stage (remote_write relabelling,
//! forwarding) can use it too.

use crate::config::scrape::{RelabelAction, RelabelConfig};
use crate::model::LabelsBuilder;

/// Applies `steps` to `lb`. Returns false when a step drops the label set (the builder is
/// then left in an unspecified state).
pub fn process(lb: &mut LabelsBuilder, steps: &[RelabelConfig]) -> bool {
    let mut scratch = String::new();
    steps.iter().all(|step| apply(lb, step, &mut scratch))
}

/// One step. `val` is built in `scratch`, reused across steps.
fn apply(lb: &mut LabelsBuilder, cfg: &RelabelConfig, scratch: &mut String) -> bool {
    scratch.clear();
    for (i, name) in cfg.source_labels.iter().enumerate() {
        if i > 0 {
            scratch.push_str(&cfg.separator);
        }
        scratch.push_str(lb.get(name).unwrap_or(""));
    }
    let val = scratch.as_str();
    let regex = &cfg.regex.regex;
    match cfg.action {
        RelabelAction::Drop => {
            if regex.is_match(val) {
                return false;
            }
        }
        RelabelAction::Keep => {
            if !regex.is_match(val) {
                return false;
            }
        }
        RelabelAction::DropEqual => {
            if lb.get(&cfg.target_label).unwrap_or("") == val {
                return false;
            }
        }
        RelabelAction::KeepEqual => {
            if lb.get(&cfg.target_label).unwrap_or("") != val {
                return false;
            }
        }
        RelabelAction::Replace => {
            // No match: no replacement (Prometheus `relabel`, case Replace).
            let Some(caps) = regex.captures(val) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&cfg.target_label, &mut target);
            // Prometheus 3 validates names with the UTF-8 scheme: any non-empty name.
            if target.is_empty() {
                return true;
            }
            let mut res = String::new();
            caps.expand(&cfg.replacement, &mut res);
            // An empty result deletes the label; LabelsBuilder::set does that.
            lb.set(&target, &res);
        }
        RelabelAction::Lowercase => {
            let v = val.to_lowercase();
            lb.set(&cfg.target_label, &v);
        }
        RelabelAction::Uppercase => {
            let v = val.to_uppercase();
            lb.set(&cfg.target_label, &v);
        }
        RelabelAction::HashMod => {
            let v = hashmod(val, cfg.modulus);
            lb.set(&cfg.target_label, &v.to_string());
        }
        RelabelAction::LabelMap => {
            // Prometheus ranges over the labels as they were before the step, so names
            // produced by the step are not mapped again.
            let before = lb.clone().build();
            for l in before.iter() {
                if let Some(caps) = regex.captures(&l.name) {
                    let mut res = String::new();
                    caps.expand(&cfg.replacement, &mut res);
                    lb.set(&res, &l.value);
                }
            }
        }
        RelabelAction::LabelDrop | RelabelAction::LabelKeep => {
            let keep_matching = cfg.action == RelabelAction::LabelKeep;
            let before = lb.clone().build();
            for l in before.iter() {
                if regex.is_match(&l.name) != keep_matching {
                    lb.remove(&l.name);
                }
            }
        }
    }
    true
}

/// `hashmod`: the last 8 bytes of the MD5 of `val`, read big-endian, modulo `modulus`
/// (Prometheus reads them with `binary.BigEndian.Uint64(hash[8:])`, so sharding matches
/// Prometheus exactly).
pub fn hashmod(val: &str, modulus: u64) -> u64 {
    let digest = md5(val.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest[8..]);
    #[allow(clippy::big_endian_bytes)] // Wire-compatible with Prometheus' hashmod.
    let h = u64::from_be_bytes(tail);
    if modulus == 0 { 0 } else { h % modulus }
}

/// MD5 (RFC 1321). Only used for `hashmod`, where Prometheus compatibility requires this
/// exact hash; not for anything that needs a secure digest.
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: [u32; 64] =
        std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_le_bytes());
    for chunk in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([
                chunk[4 * i],
                chunk[4 * i + 1],
                chunk[4 * i + 2],
                chunk[4 * i + 3],
            ])
        });
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, w) in state.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::scrape::RelabelRegex;
    use crate::model::Labels;

    fn cfg(text: &str) -> RelabelConfig {
        let c: RelabelConfig = toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        crate::config::scrape::validate_relabel(&c).unwrap_or_else(|e| panic!("{text}: {e:?}"));
        c
    }

    fn run(input: &[(&str, &str)], steps: &[&str]) -> Option<Labels> {
        let steps: Vec<RelabelConfig> = steps.iter().map(|s| cfg(s)).collect();
        let mut lb = Labels::from_pairs(input.iter().copied()).into_builder();
        process(&mut lb, &steps).then(|| lb.build())
    }

    fn labels(pairs: &[(&str, &str)]) -> Option<Labels> {
        Some(Labels::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn md5_matches_the_rfc_test_vectors() {
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
    }

    // Cases follow the semantics exercised by Prometheus' model/relabel/relabel_test.go.
    #[test]
    fn every_action_behaves_as_in_prometheus() {
        struct Case {
            name: &'static str,
            input: &'static [(&'static str, &'static str)],
            steps: &'static [&'static str],
            want: Option<&'static [(&'static str, &'static str)]>,
        }
        let cases = [
            Case {
                name: "replace with a capture group writes the target label",
                input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                steps: &[
                    "source_labels = [\"a\"]\nregex = \"f(.*)\"\ntarget_label = \"d\"\nseparator = \";\"\nreplacement = \"ch${1}-ch${1}\"\naction = \"replace\"",
                ],
                want: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
            },
            Case {
                name: "replace joins source labels with the separator",
                input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                steps: &[
                    "source_labels = [\"a\", \"b\"]\nregex = \"f(.*);(.*)r\"\ntarget_label = \"a\"\nreplacement = \"b${1}${2}m\"",
                ],
                want: Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz")]),
            },
            Case {
                name: "replace without a match changes nothing",
                input: &[("a", "foo")],
                steps: &[
                    "source_labels = [\"a\"]\nregex = \"no-match\"\ntarget_label = \"b\"\nreplacement = \"x\"",
                ],
                want: Some(&[("a", "foo")]),
            },
            Case {
                name: "replace is anchored: a partial match is no match",
                input: &[("a", "foo")],
                steps: &[
                    "source_labels = [\"a\"]\nregex = \"o\"\ntarget_label = \"b\"\nreplacement = \"x\"",
                ],
                want: Some(&[("a", "foo")]),
            },
            Case {
                name: "replace with an empty result deletes the target label",
                input: &[("a", "foo"), ("b", "bar")],
                steps: &["source_labels = [\"c\"]\ntarget_label = \"b\""],
                want: Some(&[("a", "foo")]),
            },
            Case {
                name: "replace can name the target label from a capture",
                input: &[("a", "some-name-value")],
                steps: &[
                    "source_labels = [\"a\"]\nregex = \"some-([^-]+)-([^,]+)\"\ntarget_label = \"${1}\"\nreplacement = \"${2}\"",
                ],
                want: Some(&[("a", "some-name-value"), ("name", "value")]),
            },
            Case {
                name: "replace with a target label expanding to nothing does nothing",
                input: &[("a", "some-name-value")],
                steps: &[
                    "source_labels = [\"a\"]\nregex = \"some-([^-]+)-([^,]+)\"\ntarget_label = \"${3}\"\nreplacement = \"${1}\"",
                ],
                want: Some(&[("a", "some-name-value")]),
            },
            Case {
                name: "a missing source label reads as empty and matches the default regex",
                input: &[("a", "foo")],
                steps: &[
                    "source_labels = [\"missing\"]\ntarget_label = \"b\"\nreplacement = \"fixed\"",
                ],
                want: Some(&[("a", "foo"), ("b", "fixed")]),
            },
            Case {
                name: "drop removes a matching set",
                input: &[("a", "foo")],
                steps: &["source_labels = [\"a\"]\nregex = \"f.*\"\naction = \"drop\""],
                want: None,
            },
            Case {
                name: "drop keeps a set that does not match",
                input: &[("a", "foo")],
                steps: &["source_labels = [\"a\"]\nregex = \"bar\"\naction = \"drop\""],
                want: Some(&[("a", "foo")]),
            },
            Case {
                name: "keep removes a set that does not match",
                input: &[("a", "foo")],
                steps: &["source_labels = [\"a\"]\nregex = \"f\"\naction = \"keep\""],
                want: None,
            },
            Case {
                name: "keep keeps a matching set",
                input: &[("a", "foo")],
                steps: &["source_labels = [\"a\"]\nregex = \"f.*\"\naction = \"keep\""],
                want: Some(&[("a", "foo")]),
            },
            Case {
                name: "keep on a missing label matches the empty string",
                input: &[("a", "foo")],
                steps: &["source_labels = [\"b\"]\nregex = \"\"\naction = \"keep\""],
                want: Some(&[("a", "foo")]),
            },
            Case {
                name: "keepequal keeps a set whose source equals the target",
                input: &[("a", "foo"), ("b", "foo")],
                steps: &["source_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"keepequal\""],
                want: Some(&[("a", "foo"), ("b", "foo")]),
            },
            Case {
                name: "keepequal drops a set whose source differs from the target",
                input: &[("a", "foo"), ("b", "bar")],
                steps: &["source_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"keepequal\""],
                want: None,
            },
            Case {
                name: "dropequal drops a set whose source equals the target",
                input: &[("a", "foo"), ("b", "foo")],
                steps: &["source_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"dropequal\""],
                want: None,
            },
            Case {
                name: "dropequal keeps a set whose source differs from the target",
                input: &[("a", "foo"), ("b", "bar")],
                steps: &["source_labels = [\"a\"]\ntarget_label = \"b\"\naction = \"dropequal\""],
                want: Some(&[("a", "foo"), ("b", "bar")]),
            },
            Case {
                name: "hashmod writes the md5-based shard like Prometheus",
                input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                steps: &[
                    "source_labels = [\"c\"]\ntarget_label = \"d\"\nmodulus = 1000\naction = \"hashmod\"",
                ],
                want: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
            },
            Case {
                name: "hashmod with a huge modulus uses all 64 bits",
                input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                steps: &[
                    "source_labels = [\"c\"]\ntarget_label = \"d\"\nmodulus = 2000000000000\naction = \"hashmod\"",
                ],
                want: Some(&[
                    ("a", "foo"),
                    ("b", "bar"),
                    ("c", "baz"),
                    ("d", "1887570275976"),
                ]),
            },
            Case {
                name: "labelmap copies matching labels under the replacement name",
                input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                steps: &["regex = \"a\"\nreplacement = \"foo\"\naction = \"labelmap\""],
                want: Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("foo", "foo")]),
            },
            Case {
                name: "labelmap with captures renames meta labels",
                input: &[
                    ("__meta_my_bar", "aaa"),
                    ("__meta_my_baz", "bbb"),
                    ("__meta_other", "ccc"),
                ],
                steps: &[
                    "regex = \"__meta_(my.*)\"\nreplacement = \"${1}\"\naction = \"labelmap\"",
                ],
                want: Some(&[
                    ("__meta_my_bar", "aaa"),
                    ("__meta_my_baz", "bbb"),
                    ("__meta_other", "ccc"),
                    ("my_bar", "aaa"),
                    ("my_baz", "bbb"),
                ]),
            },
            Case {
                name: "labeldrop removes matching label names",
                input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                steps: &["regex = \"a|b\"\naction = \"labeldrop\""],
                want: Some(&[("c", "baz")]),
            },
            Case {
                name: "labelkeep keeps only matching label names",
                input: &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                steps: &["regex = \"(b|c)\"\naction = \"labelkeep\""],
                want: Some(&[("b", "bar"), ("c", "baz")]),
            },
            Case {
                name: "lowercase and uppercase write the folded source value",
                input: &[("foo", "bAr123Foo")],
                steps: &[
                    "source_labels = [\"foo\"]\ntarget_label = \"foo_lower\"\naction = \"lowercase\"",
                    "source_labels = [\"foo\"]\ntarget_label = \"foo_upper\"\naction = \"uppercase\"",
                ],
                want: Some(&[
                    ("foo", "bAr123Foo"),
                    ("foo_lower", "bar123foo"),
                    ("foo_upper", "BAR123FOO"),
                ]),
            },
            Case {
                name: "steps run in order and see earlier results",
                input: &[("a", "foo")],
                steps: &[
                    "source_labels = [\"a\"]\ntarget_label = \"b\"\nreplacement = \"x-$1\"",
                    "source_labels = [\"b\"]\nregex = \"x-foo\"\naction = \"keep\"",
                ],
                want: Some(&[("a", "foo"), ("b", "x-foo")]),
            },
            Case {
                name: "dollar-dollar is a literal dollar in the replacement",
                input: &[("a", "foo")],
                steps: &["source_labels = [\"a\"]\ntarget_label = \"b\"\nreplacement = \"$$1\""],
                want: Some(&[("a", "foo"), ("b", "$1")]),
            },
            Case {
                name: "regex dot matches newlines as in Prometheus",
                input: &[("a", "x\ny")],
                steps: &["source_labels = [\"a\"]\nregex = \"x.y\"\naction = \"keep\""],
                want: Some(&[("a", "x\ny")]),
            },
        ];
        for c in &cases {
            let got = run(c.input, c.steps);
            let want = c.want.and_then(labels);
            assert_eq!(got, want, "{}", c.name);
        }
    }

    #[test]
    fn default_regex_is_the_prometheus_default() {
        assert_eq!(RelabelRegex::default().source, "(.*)");
    }
}
