//! Progress reporting: plain lines, a sink (Python callbacks), bars drawn by an
//! application's [`BarDisplay`] (the CLI's terminal bars), or nothing when quiet.

use std::sync::Arc;

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
    /// Bars drawn by an application's display (the CLI's terminal bars).
    Bars(Arc<dyn BarDisplay>),
    /// Each line handed to a function (e.g. the Python package's callback, so progress
    /// shows in a notebook).
    Sink(Sink),
}

/// Where [`Reporter::sink`] sends its lines.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// A display that draws progress bars (the application's: the library draws nothing).
pub trait BarDisplay: Send + Sync {
    /// A new bar over `len` steps, its prefix `prefix`.
    fn bar(&self, len: u64, prefix: &str) -> Arc<dyn BarHandle>;
    /// A line printed above the bars.
    fn println(&self, msg: &str);
}

/// One bar of a [`BarDisplay`].
pub trait BarHandle: Send + Sync {
    /// Advances the bar by `n` steps.
    fn inc(&self, n: u64);
    /// The message after the bar.
    fn set_message(&self, msg: String);
    /// Removes the bar.
    fn finish_and_clear(&self);
}

/// A progress bar: drawn by the reporter's display, or hidden.
#[derive(Clone, Default)]
pub struct Bar(Option<Arc<dyn BarHandle>>);

impl Bar {
    /// A bar that shows nothing.
    pub fn hidden() -> Self {
        Self(None)
    }

    /// Advances the bar by `n` steps.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// The message after the bar.
    pub fn set_message(&self, msg: impl Into<String>) {
        if let Some(b) = &self.0 {
            b.set_message(msg.into());
        }
    }

    /// Removes the bar.
    pub fn finish_and_clear(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

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
    /// One plain line per epoch on stderr (logs of batch jobs stay readable); nothing at
    /// all if `quiet`.
    pub fn lines(quiet: bool) -> Self {
        Self {
            mode: if quiet { Mode::Quiet } else { Mode::Lines },
            label: String::new(),
        }
    }

    /// Bars and lines drawn by `display`.
    pub fn bars(display: Arc<dyn BarDisplay>) -> Self {
        Self {
            mode: Mode::Bars(display),
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
        Self::lines(true)
    }

    /// The same reporter with `label` in front of its bars and lines (e.g. the run of a
    /// sweep that reports).
    pub fn labelled(&self, label: impl Into<String>) -> Self {
        Self {
            mode: self.mode.clone(),
            label: label.into(),
        }
    }

    /// Whether progress is drawn as bars.
    pub fn draws_bars(&self) -> bool {
        matches!(self.mode, Mode::Bars(_))
    }

    /// A bar over `len` steps (hidden unless drawing bars).
    pub fn bar(&self, len: u64, prefix: &str) -> Bar {
        match &self.mode {
            Mode::Bars(display) => Bar(Some(if self.label.is_empty() {
                display.bar(len, prefix)
            } else {
                display.bar(len, &format!("{} {prefix}", self.label))
            })),
            _ => Bar::hidden(),
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
            Mode::Bars(display) => display.println(msg),
            Mode::Sink(f) => f(msg),
        }
    }
}
