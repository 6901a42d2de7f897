//! `timex` collector: the kernel's NTP discipline state from `adjtimex(2)` (read only:
//! `modes = 0`). Mirrors node_exporter 1.5.0 `collector/timex.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/timex.go>),
//! including its unit conversions: offsets in ns or µs depending on STA_NANO, frequencies
//! in ppm with 16-bit fraction.

use super::{Batch, Failure, Outcome, Source};
use crate::model::MetricType;

pub(crate) struct Timex;

impl Timex {
    pub(crate) fn new() -> Timex {
        Timex
    }
}

const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;

impl Source for Timex {
    fn name(&self) -> &'static str {
        "timex"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        // SAFETY: an all-zero timex (modes = 0) asks the kernel only to report its state;
        // the struct is writable and correctly sized for this target.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        let status = unsafe { libc::adjtimex(&mut tx) };
        if status < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                return Err(Failure::NoData(e.to_string()));
            }
            return Err(e.into());
        }
        let sync = if status == libc::TIME_ERROR { 0.0 } else { 1.0 };
        let divisor = if tx.status & libc::STA_NANO != 0 {
            1e9
        } else {
            1e6
        };
        use MetricType::{Counter, Gauge};
        let rows: [(&str, &str, MetricType, f64); 17] = [
            (
                "node_timex_sync_status",
                "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
                Gauge,
                sync,
            ),
            (
                "node_timex_offset_seconds",
                "Time offset in between local system and reference clock.",
                Gauge,
                tx.offset as f64 / divisor,
            ),
            (
                "node_timex_frequency_adjustment_ratio",
                "Local clock frequency adjustment.",
                Gauge,
                1.0 + tx.freq as f64 / PPM16FRAC,
            ),
            (
                "node_timex_maxerror_seconds",
                "Maximum error in seconds.",
                Gauge,
                tx.maxerror as f64 / 1e6,
            ),
            (
                "node_timex_estimated_error_seconds",
                "Estimated error in seconds.",
                Gauge,
                tx.esterror as f64 / 1e6,
            ),
            (
                "node_timex_status",
                "Value of the status array bits.",
                Gauge,
                tx.status as f64,
            ),
            (
                "node_timex_loop_time_constant",
                "Phase-locked loop time constant.",
                Gauge,
                tx.constant as f64,
            ),
            (
                "node_timex_tick_seconds",
                "Seconds between clock ticks.",
                Gauge,
                tx.tick as f64 / 1e6,
            ),
            (
                "node_timex_pps_frequency_hertz",
                "Pulse per second frequency.",
                Gauge,
                tx.ppsfreq as f64 / PPM16FRAC,
            ),
            (
                "node_timex_pps_jitter_seconds",
                "Pulse per second jitter.",
                Gauge,
                tx.jitter as f64 / divisor,
            ),
            (
                "node_timex_pps_shift_seconds",
                "Pulse per second interval duration.",
                Gauge,
                tx.shift as f64,
            ),
            (
                "node_timex_pps_stability_hertz",
                "Pulse per second stability, average of recent frequency changes.",
                Gauge,
                tx.stabil as f64 / PPM16FRAC,
            ),
            (
                "node_timex_pps_jitter_total",
                "Pulse per second count of jitter limit exceeded events.",
                Counter,
                tx.jitcnt as f64,
            ),
            (
                "node_timex_pps_calibration_total",
                "Pulse per second count of calibration intervals.",
                Counter,
                tx.calcnt as f64,
            ),
            (
                "node_timex_pps_error_total",
                "Pulse per second count of calibration errors.",
                Counter,
                tx.errcnt as f64,
            ),
            (
                "node_timex_pps_stability_exceeded_total",
                "Pulse per second count of stability limit exceeded events.",
                Counter,
                tx.stbcnt as f64,
            ),
            (
                "node_timex_tai_offset_seconds",
                "International Atomic Time (TAI) offset.",
                Gauge,
                tx.tai as f64,
            ),
        ];
        for (name, help, kind, v) in rows {
            out.scalar(name, help, kind, v);
        }
        Ok(())
    }
}
