//! What every bench prints about the machine it ran on: the CPU, and the load that skews
//! every figure on a shared machine. One file, included by the analyzer's `normalise` bench
//! and the proxy's `overhead` bench (`#[path]`), so both describe a run the same way. It
//! sits in a folder so that cargo does not take it for a bench of its own.

/// The CPU model, from `/proc/cpuinfo`.
pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// `/proc/loadavg`'s first three fields: other work on the machine skews every figure.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}
