//! Process resource measurements reported with results.

/// Peak resident set size of this process so far, MiB (Linux `VmHWM`; None elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Memory available to a new allocation, bytes (Linux `MemAvailable`; None elsewhere).
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a network a substrate cannot hold before anything is allocated: a layer of
/// 0 or more than [`crate::train::layers::MAX_UNITS`] units, or more weights than the
/// machine's available memory holds (about 12 bytes each digitally, 60 on a chip: value,
/// optimiser state, conductance pair, device properties). `key` names the input.
pub fn check_network(
    widths: &[usize],
    weights: f64,
    chip: bool,
    key: &str,
) -> crate::error::Result<()> {
    use crate::train::layers::MAX_UNITS;
    if let Some(w) = widths.iter().find(|w| **w == 0 || **w > MAX_UNITS) {
        return Err(crate::error::Error::param(
            key,
            format!("{widths:?}"),
            format!("a layer needs 1 to {MAX_UNITS} units (one has {w})"),
        ));
    }
    let need = weights * if chip { 60.0 } else { 12.0 };
    let have = available_bytes().unwrap_or(16 << 30) as f64;
    if need > have {
        return Err(crate::error::Error::param(
            key,
            format!("{widths:?}"),
            format!(
                "this network needs about {} of memory, {} is available",
                gib(need),
                gib(have)
            ),
        ));
    }
    Ok(())
}

/// Bytes as GiB with two decimals.
pub fn gib(bytes: f64) -> String {
    format!("{:.2} GiB", bytes / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_rss_is_positive_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(super::peak_rss_mib().unwrap() > 0.0);
        }
    }
}
