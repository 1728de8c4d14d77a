//! Terminal progress bars (indicatif) behind the library's [`mortal::progress::BarDisplay`]:
//! bars when stderr is a terminal, one plain line per epoch otherwise.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mortal::progress::{BarDisplay, BarHandle, Reporter};

/// Bars when stderr is a terminal, plain lines otherwise; nothing at all if `quiet`.
pub fn auto(quiet: bool) -> Reporter {
    if !quiet && std::io::stderr().is_terminal() {
        Reporter::bars(Arc::new(Terminal(MultiProgress::with_draw_target(
            ProgressDrawTarget::stderr(),
        ))))
    } else {
        Reporter::lines(quiet)
    }
}

struct Terminal(MultiProgress);

struct Handle(ProgressBar);

impl BarDisplay for Terminal {
    fn bar(&self, len: u64, prefix: &str) -> Arc<dyn BarHandle> {
        let pb = self.0.add(ProgressBar::new(len));
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
        pb.set_prefix(prefix.to_string());
        Arc::new(Handle(pb))
    }

    fn println(&self, msg: &str) {
        let _ = self.0.println(msg);
    }
}

impl BarHandle for Handle {
    fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    fn set_message(&self, msg: String) {
        self.0.set_message(msg);
    }

    fn finish_and_clear(&self) {
        self.0.finish_and_clear();
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
