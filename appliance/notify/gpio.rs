//! GPIO receivers: a pin per severity (an LED, buzzer or relay), on — steady or
//! blinking — while an unmuted firing alert of that severity is routed to the receiver.
//!
//! Pins are reached through the small [`GpioChip`]/[`OutputPin`] traits: on the Pi
//! (Linux on arm/aarch64) through rppal, elsewhere there is no GPIO, and tests use
//! [`FakeChip`]. A pin that cannot be opened (no GPIO on this board, pin busy, no
//! permission) is reported once at start and left out; alerts still go everywhere else.

use crate::config::notify::{GpioConfig, GpioPattern, name_or};
use std::collections::BTreeSet;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One output line.
pub trait OutputPin: Send {
    fn set(&mut self, high: bool);
}

/// Where output pins come from.
pub trait GpioChip: Send {
    fn output(&mut self, pin: u8) -> Result<Box<dyn OutputPin>, String>;
}

/// Per GPIO receiver name, the severities that have firing alerts.
pub type GpioState = Vec<(String, BTreeSet<String>)>;

#[cfg(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm")))]
mod hw {
    use super::{GpioChip, OutputPin};

    pub struct RppalChip(Option<rppal::gpio::Gpio>);

    struct RppalPin(rppal::gpio::OutputPin);

    impl OutputPin for RppalPin {
        fn set(&mut self, high: bool) {
            if high {
                self.0.set_high();
            } else {
                self.0.set_low();
            }
        }
    }

    impl GpioChip for RppalChip {
        fn output(&mut self, pin: u8) -> Result<Box<dyn OutputPin>, String> {
            if self.0.is_none() {
                self.0 = Some(rppal::gpio::Gpio::new().map_err(|e| e.to_string())?);
            }
            let gpio = self.0.as_ref().expect("BUG: GPIO opened just above");
            let p = gpio.get(pin).map_err(|e| e.to_string())?.into_output_low();
            Ok(Box::new(RppalPin(p)))
        }
    }

    pub fn chip() -> Box<dyn GpioChip> {
        Box::new(RppalChip(None))
    }
}

#[cfg(not(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm"))))]
mod hw {
    use super::{GpioChip, OutputPin};

    struct NoGpio;

    impl GpioChip for NoGpio {
        fn output(&mut self, _pin: u8) -> Result<Box<dyn OutputPin>, String> {
            Err("this build has no GPIO support (only Linux on arm/aarch64 has)".into())
        }
    }

    pub fn chip() -> Box<dyn GpioChip> {
        Box::new(NoGpio)
    }
}

/// The board's GPIO (rppal on the Pi), or one that has no pins.
pub fn system_chip() -> Box<dyn GpioChip> {
    hw::chip()
}

/// Records every level written, for tests.
#[derive(Clone, Default)]
pub struct FakeChip {
    pub levels: Arc<Mutex<Vec<(u8, bool)>>>,
    /// Pins that fail to open.
    pub missing: Vec<u8>,
}

struct FakePin(u8, Arc<Mutex<Vec<(u8, bool)>>>);

impl OutputPin for FakePin {
    fn set(&mut self, high: bool) {
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.0, high));
    }
}

impl GpioChip for FakeChip {
    fn output(&mut self, pin: u8) -> Result<Box<dyn OutputPin>, String> {
        if self.missing.contains(&pin) {
            return Err(format!("pin {pin} does not exist"));
        }
        Ok(Box::new(FakePin(pin, self.levels.clone())))
    }
}

struct Pin {
    receiver: String,
    severity: String,
    pattern: GpioPattern,
    active_low: bool,
    out: Box<dyn OutputPin>,
    /// Whether the pin is active (lit) now, and whether it should be.
    lit: bool,
    wanted: bool,
}

impl Pin {
    fn show(&mut self, lit: bool) {
        if lit != self.lit {
            self.out.set(lit != self.active_low);
            self.lit = lit;
        }
    }
}

/// The thread that drives the pins.
pub struct GpioDriver {
    tx: mpsc::Sender<Option<GpioState>>,
    handle: JoinHandle<()>,
}

impl GpioDriver {
    pub fn start(
        configs: &[GpioConfig],
        mut chip: Box<dyn GpioChip>,
    ) -> std::io::Result<GpioDriver> {
        let mut pins = Vec::new();
        let mut blink = Duration::from_secs(3600);
        for (i, c) in configs.iter().enumerate() {
            let receiver = name_or(&c.name, "gpio", i);
            for p in &c.pins {
                match chip.output(p.pin) {
                    Ok(mut out) => {
                        out.set(p.active_low);
                        if p.pattern == GpioPattern::Blink {
                            blink = blink.min(c.blink_interval.0);
                        }
                        pins.push(Pin {
                            receiver: receiver.clone(),
                            severity: p.severity.clone(),
                            pattern: p.pattern,
                            active_low: p.active_low,
                            out,
                            lit: false,
                            wanted: false,
                        });
                    }
                    // Once, at start: evaluations never log about it.
                    Err(e) => {
                        tracing::warn!(receiver = %receiver, pin = p.pin, error = %e, "GPIO pin unavailable; it will not show alerts.")
                    }
                }
            }
        }
        let (tx, rx) = mpsc::channel::<Option<GpioState>>();
        let handle = std::thread::Builder::new()
            .name("notify-gpio".into())
            .spawn(move || {
                let mut phase = false;
                loop {
                    match rx.recv_timeout(blink) {
                        Ok(Some(state)) => {
                            for p in &mut pins {
                                p.wanted = state
                                    .iter()
                                    .any(|(r, sev)| *r == p.receiver && sev.contains(&p.severity));
                                if p.pattern == GpioPattern::Steady || !p.wanted {
                                    let w = p.wanted;
                                    p.show(w);
                                }
                            }
                            continue;
                        }
                        Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                            for p in &mut pins {
                                p.show(false);
                            }
                            return;
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    phase = !phase;
                    for p in &mut pins {
                        if p.pattern == GpioPattern::Blink && p.wanted {
                            p.show(phase);
                        }
                    }
                }
            })?;
        Ok(GpioDriver { tx, handle })
    }

    pub fn sender(&self) -> mpsc::Sender<Option<GpioState>> {
        self.tx.clone()
    }

    /// Turns every pin off and ends the thread.
    pub fn stop(self) {
        let _ = self.tx.send(None);
        let _ = self.handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigDuration;
    use crate::config::notify::GpioPinConfig;

    fn config() -> Vec<GpioConfig> {
        vec![GpioConfig {
            name: String::new(),
            pins: vec![
                GpioPinConfig {
                    pin: 17,
                    severity: "critical".into(),
                    pattern: GpioPattern::Steady,
                    active_low: false,
                },
                GpioPinConfig {
                    pin: 27,
                    severity: "warning".into(),
                    pattern: GpioPattern::Blink,
                    active_low: true,
                },
                GpioPinConfig {
                    pin: 99,
                    severity: "info".into(),
                    pattern: GpioPattern::Steady,
                    active_low: false,
                },
            ],
            blink_interval: ConfigDuration(Duration::from_millis(20)),
        }]
    }

    fn state(sev: &[&str]) -> Option<GpioState> {
        Some(vec![(
            "gpio-0".to_string(),
            sev.iter().map(|s| s.to_string()).collect(),
        )])
    }

    #[test]
    fn pins_follow_firing_severities_steady_or_blinking_and_missing_pins_are_skipped() {
        let chip = FakeChip {
            missing: vec![99],
            ..Default::default()
        };
        let levels = chip.levels.clone();
        let d = GpioDriver::start(&config(), Box::new(chip)).unwrap();
        let tx = d.sender();
        let seen = |pin: u8| -> Vec<bool> {
            levels
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| *p == pin)
                .map(|(_, l)| *l)
                .collect()
        };
        // Initial levels: inactive (active-low pin 27 starts high).
        assert_eq!(seen(17), [false]);
        assert_eq!(seen(27), [true]);
        tx.send(state(&["critical"])).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(seen(17), [false, true]);
        tx.send(state(&["critical", "warning"])).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        let blinks = seen(27);
        assert!(blinks.len() >= 3, "pin 27 blinks: {blinks:?}");
        tx.send(state(&[])).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        d.stop();
        assert_eq!(seen(17).last(), Some(&false));
        assert_eq!(
            seen(27).last(),
            Some(&true),
            "inactive = high for active_low"
        );
        assert!(seen(99).is_empty());
    }
}
