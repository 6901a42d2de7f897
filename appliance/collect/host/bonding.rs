//! `bonding` collector: configured and active slaves of each bonding master, from
//! /sys/class/net/bonding_masters and the masters' `bonding/slaves`. Mirrors
//! node_exporter 1.5.0 `collector/bonding_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/bonding_linux.go>):
//! a slave is active when its `mii_status` (under `lower_<slave>`, or `slave_<slave>` on
//! older kernels) is `up`. No bonding driver (no `bonding_masters`) means "no data".

use std::path::PathBuf;

use super::util::{is_missing, label1, read_into};
use super::{Batch, Failure, Outcome, Source};
use crate::model::MetricType;

pub(crate) struct Bonding {
    dir: PathBuf,
    buf: String,
}

impl Bonding {
    pub(crate) fn new(p: &super::HostPaths) -> Bonding {
        Bonding {
            dir: p.sys.join("class/net"),
            buf: String::new(),
        }
    }

    /// (configured, active) slaves of one master.
    fn master(&mut self, master: &str) -> std::io::Result<(u32, u32)> {
        read_into(&self.dir.join(master).join("bonding/slaves"), &mut self.buf)?;
        let slaves: Vec<String> = self
            .buf
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect();
        let (mut configured, mut active) = (0, 0);
        for slave in slaves {
            let base = self.dir.join(master);
            let lower = base.join(format!("lower_{slave}/bonding_slave/mii_status"));
            match read_into(&lower, &mut self.buf) {
                Err(e) if is_missing(&e) => {
                    let old = base.join(format!("slave_{slave}/bonding_slave/mii_status"));
                    read_into(&old, &mut self.buf)?;
                }
                r => r?,
            }
            configured += 1;
            if self.buf.trim() == "up" {
                active += 1;
            }
        }
        Ok((configured, active))
    }
}

impl Source for Bonding {
    fn name(&self) -> &'static str {
        "bonding"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.dir.join("bonding_masters"), &mut self.buf)
            .map_err(Failure::missing_is_no_data)?;
        let masters: Vec<String> = self
            .buf
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::with_capacity(masters.len());
        for m in masters {
            let counts = self.master(&m).map_err(Failure::missing_is_no_data)?;
            rows.push((label1("master", &m), counts));
        }
        let f = out.family(
            "node_bonding_slaves",
            "Number of configured slaves per bonding interface.",
            MetricType::Gauge,
        );
        for (l, (configured, _)) in &rows {
            f.push(l.clone(), *configured as f64);
        }
        let f = out.family(
            "node_bonding_active",
            "Number of active slaves per bonding interface.",
            MetricType::Gauge,
        );
        for (l, (_, active)) in &rows {
            f.push(l.clone(), *active as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaves_are_counted_and_up_ones_are_active() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("class/net");
        std::fs::create_dir_all(net.join("bond0/bonding")).unwrap();
        std::fs::write(net.join("bonding_masters"), "bond0\n").unwrap();
        std::fs::write(net.join("bond0/bonding/slaves"), "eth0 eth1\n").unwrap();
        for (slave, state, dirname) in
            [("eth0", "up", "lower_eth0"), ("eth1", "down", "slave_eth1")]
        {
            let d = net.join("bond0").join(dirname).join("bonding_slave");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("mii_status"), format!("{state}\n")).unwrap();
            let _ = slave;
        }
        let mut c = Bonding::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        assert_eq!(b.get("node_bonding_slaves").unwrap().samples[0].1, 2.0);
        assert_eq!(b.get("node_bonding_active").unwrap().samples[0].1, 1.0);
    }

    #[test]
    fn no_bonding_driver_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Bonding::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        assert!(matches!(
            c.update(&mut Batch::default()),
            Err(Failure::NoData(_))
        ));
    }
}
