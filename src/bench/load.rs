//! The machine's load around a measurement: how much CPU other processes used while it
//! ran (the build machines are shared), and a busy core on demand for the
//! shared-machine measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Clock ticks per second of `/proc/stat` and `/proc/self/stat` (Linux `USER_HZ`, 100 on
/// every mainstream kernel configuration).
const USER_HZ: f64 = 100.0;

/// CPU time (seconds) of the whole machine's busy states and of this process.
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    if fields.len() < 5 {
        return None;
    }
    let total: f64 = fields.iter().take(8).sum();
    let busy = total - fields[3] - fields[4];
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, so split after its ')').
    let rest = own.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields: 12th and 13th after the ')'.
    let (ut, st): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    Some((busy / USER_HZ, (ut + st) / USER_HZ))
}

/// Measures the CPU other processes used between [`LoadProbe::start`] and
/// [`LoadProbe::finish`].
pub struct LoadProbe {
    start: Option<(f64, f64)>,
    wall: Instant,
}

impl LoadProbe {
    /// Starts the probe.
    pub fn start() -> Self {
        Self {
            start: cpu_seconds(),
            wall: Instant::now(),
        }
    }

    /// Average number of cores other processes kept busy since `start` (None where
    /// `/proc` is not available). Counts at the kernel's 10 ms tick, so short
    /// measurements are coarse.
    pub fn finish(&self) -> Option<f64> {
        let (b0, s0) = self.start?;
        let (b1, s1) = cpu_seconds()?;
        let wall = self.wall.elapsed().as_secs_f64();
        (wall > 0.0).then(|| (((b1 - b0) - (s1 - s0)) / wall).max(0.0))
    }
}

/// A thread that keeps one core busy (plain integer work, outside rayon's pool) until
/// dropped: the "foreign work" of the shared-machine measurement.
pub struct BusyCore {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl BusyCore {
    /// Starts the busy thread.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut x = 0x9E37_79B9_7F4A_7C15_u64;
            while !flag.load(Ordering::Relaxed) {
                for _ in 0..10_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                }
                std::hint::black_box(x);
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_counts_this_process_busy_thread_as_its_own_not_foreign() {
        let Some((_, own0)) = cpu_seconds() else {
            eprintln!("no /proc: skipped");
            return;
        };
        let probe = LoadProbe::start();
        let busy = BusyCore::start();
        std::thread::sleep(std::time::Duration::from_millis(500));
        drop(busy);
        let (_, own1) = cpu_seconds().unwrap();
        // The busy thread ran ~0.5 s of this process's CPU time (ticks of 10 ms; the
        // machine may be shared, so allow it half).
        assert!(own1 - own0 >= 0.2, "own CPU {:.2} s", own1 - own0);
        assert!(probe.finish().unwrap() >= 0.0);
    }
}
