//! Scenarios: a TOML file describes hardware, model, training and a sweep; `mortal run`
//! expands it into independent runs, runs them (in parallel, resumably, optionally as one
//! shard of a cluster job array) and draws the figures; `mortal merge` combines shards;
//! `mortal plot` redraws figures from the result files.
//!
//! * [`schema`]: the file format (an annotated example is there);
//! * [`paths`]: dotted key paths into JSON values (lookup, set, merge, checks);
//! * [`resolve`]: scenario + overrides → validated [`crate::train::TrainConfig`];
//! * [`sweep`]: the sweep → runs with stable ids, shards;
//! * [`smoke`]: `--smoke`, a tiny version of any scenario;
//! * [`store`]: the output directory (`scenario.json`, `results.csv`, `runs/`), resume
//!   and merge;
//! * [`runner`]: `mortal run`;
//! * [`distill`]: `mortal run` of a distillation scenario (`[distill]`).
//!
//! The figures (`mortal plot`) and the subcommands' arguments are the CLI's
//! (`mortal-cli`): a run hands its output directory to [`runner::Figures`].

/// `println!` that ignores a closed stdout (e.g. `mortal run … --dry-run | head`): the
/// messages are informative, a vanished reader is no reason to fail a sweep.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

pub mod distill;
pub mod paths;
pub mod resolve;
pub mod runner;
pub mod schema;
pub mod smoke;
pub mod store;
pub mod sweep;

pub use resolve::Scenario;
pub use runner::{Figures, Prepared, RunRequest};
pub use sweep::{Plan, RunSpec, Shard};
