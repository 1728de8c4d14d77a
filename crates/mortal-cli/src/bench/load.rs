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

/// Foreign work that keeps one core busy until dropped: a separate process (`sh` looping
/// while this process lives) where there is one, so that [`LoadProbe`] counts it as other
/// processes' load, as on a shared machine; else a thread outside rayon's pool.
pub struct BusyCore {
    child: Option<std::process::Child>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BusyCore {
    /// Starts the foreign work.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        // The loop ends by itself once this process is gone (killed, say, by Ctrl-C
        // before `drop` could stop it): `kill -0 $PPID` then fails.
        let child = std::process::Command::new("sh")
            .args(["-c", "while kill -0 $PPID 2>/dev/null; do :; done"])
            .stdin(std::process::Stdio::null())
            .spawn()
            .ok();
        let thread = child.is_none().then(|| {
            let flag = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0x9E37_79B9_7F4A_7C15_u64;
                while !flag.load(Ordering::Relaxed) {
                    for _ in 0..10_000 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                    }
                    std::hint::black_box(x);
                }
            })
        });
        Self {
            child,
            stop,
            thread,
        }
    }

    /// Whether the work runs as a separate process.
    #[cfg(test)]
    pub fn is_process(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_core_is_counted_as_foreign_load_when_it_is_another_process() {
        if cpu_seconds().is_none() {
            eprintln!("no /proc: skipped");
            return;
        }
        let probe = LoadProbe::start();
        let busy = BusyCore::start();
        std::thread::sleep(std::time::Duration::from_millis(600));
        let process = busy.is_process();
        drop(busy);
        let foreign = probe.finish().unwrap();
        if process {
            // Nearly a whole core for 0.6 s (10 ms ticks, a shared machine: allow half).
            assert!(foreign >= 0.5, "foreign load {foreign:.2} cores");
        } else {
            eprintln!("no sh: the busy thread is this process's own time");
        }
    }
}
