//! Progress reporting: indicatif bars on a terminal, one plain line per epoch otherwise
//! (logs of batch jobs stay readable), nothing when quiet.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a run reports progress.
#[derive(Clone, Debug)]
pub struct Reporter {
    mode: Mode,
    /// Prefix of bars and lines (e.g. which run of a sweep), empty for none.
    label: String,
}

#[derive(Clone)]
enum Mode {
    Quiet,
    Lines,
    Bars(MultiProgress),
    /// Each line handed to a function (e.g. the Python package's callback, so progress
    /// shows in a notebook).
    Sink(Sink),
}

/// Where [`Reporter::sink`] sends its lines.
pub type Sink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Quiet => "Quiet",
            Mode::Lines => "Lines",
            Mode::Bars(_) => "Bars",
            Mode::Sink(_) => "Sink",
        })
    }
}

impl Reporter {
    /// Bars when stderr is a terminal, plain lines otherwise; nothing at all if `quiet`.
    pub fn auto(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Self {
            mode,
            label: String::new(),
        }
    }

    /// One line per epoch (and every other line) handed to `sink`; no bars.
    pub fn sink(sink: Sink) -> Self {
        Self {
            mode: Mode::Sink(sink),
            label: String::new(),
        }
    }

    /// Reports nothing.
    pub fn quiet() -> Self {
        Self {
            mode: Mode::Quiet,
            label: String::new(),
        }
    }

    /// The same reporter with `label` in front of its bars and lines (e.g. the run of a
    /// sweep that reports).
    pub fn labelled(&self, label: impl Into<String>) -> Self {
        Self {
            mode: self.mode.clone(),
            label: label.into(),
        }
    }

    /// Whether progress is drawn as bars (stderr is a terminal).
    pub fn draws_bars(&self) -> bool {
        matches!(self.mode, Mode::Bars(_))
    }

    /// A bar over `len` steps (hidden unless drawing bars).
    pub fn bar(&self, len: u64, prefix: &str) -> ProgressBar {
        match &self.mode {
            Mode::Bars(mp) => {
                let pb = mp.add(ProgressBar::new(len));
                pb.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>14} [{bar:30}] {pos}/{len} {rate:>10} eta {eta:>4} {msg}",
                    )
                    .expect("valid template")
                    .with_key(
                        "rate",
                        |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = w.write_str(&rate(s.per_sec()));
                        },
                    )
                    .progress_chars("=> "),
                );
                if self.label.is_empty() {
                    pb.set_prefix(prefix.to_string());
                } else {
                    pb.set_prefix(format!("{} {prefix}", self.label));
                }
                pb
            }
            _ => ProgressBar::hidden(),
        }
    }

    /// Prints a line above the bars (or to stderr), unless quiet.
    pub fn line(&self, msg: &str) {
        let labelled;
        let msg = if self.label.is_empty() {
            msg
        } else {
            labelled = format!("[{}] {msg}", self.label);
            &labelled
        };
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("{msg}"),
            Mode::Bars(mp) => {
                let _ = mp.println(msg);
            }
            Mode::Sink(f) => f(msg),
        }
    }
}

/// A throughput as a progress bar shows it: three significant digits, `/s`
/// (`30.2/s`, `1234/s`, `0.512/s`).
fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        return "-".into();
    }
    if per_sec >= 100.0 {
        format!("{per_sec:.0}/s")
    } else if per_sec >= 10.0 {
        format!("{per_sec:.1}/s")
    } else if per_sec >= 1.0 {
        format!("{per_sec:.2}/s")
    } else {
        format!("{per_sec:.3}/s")
    }
}

#[cfg(test)]
mod rate_tests {
    #[test]
    fn rates_have_three_significant_digits() {
        assert_eq!(super::rate(30.234044984466), "30.2/s");
        assert_eq!(super::rate(1234.56), "1235/s");
        assert_eq!(super::rate(0.51234), "0.512/s");
        assert_eq!(super::rate(f64::NAN), "-");
    }
}
