//! The `mortal` command line, as a library for the binary and the Python module: argument
//! parsing ([`cli`]), terminal progress bars ([`bars`]), figures drawn from result files
//! ([`plot`], [`figures`]), `mortal bench` ([`bench`]), the quickstart ([`quickstart`]) and
//! `mortal device` ([`device_tool`]). Everything it runs is the `mortal` library's.

/// `println!` that ignores a closed stdout (e.g. `mortal run … --dry-run | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

pub mod bars;
pub mod bench;
pub mod cli;
pub mod device_tool;
pub mod figures;
pub mod plot;
pub mod quickstart;
pub mod scenario_cmd;

#[cfg(test)]
mod fuzz;
