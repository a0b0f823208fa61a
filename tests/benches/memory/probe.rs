//! What the benchmark reads: the proxy's memory from `/proc`, and timed admin calls.

use std::time::{Duration, Instant};

use anyhow::Context;
use indextap_tests::metrics::{metric, Exposition};
use indextap_tests::IndextapProcess;

/// Resident memory after each phase, and the peak.
pub(crate) struct Memory {
    pid: u32,
    phases: Vec<(String, f64, f64)>,
}

fn status_kib(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

impl Memory {
    pub(crate) fn of(pid: u32) -> Self {
        Self {
            pid,
            phases: Vec::new(),
        }
    }

    /// Records RSS and the peak so far.
    pub(crate) fn phase(&mut self, name: &str) -> anyhow::Result<()> {
        let rss = status_kib(self.pid, "VmRSS:")? / 1024.0;
        let peak = status_kib(self.pid, "VmHWM:")? / 1024.0;
        println!("  {name:<28} RSS {rss:6.1} MiB  peak {peak:6.1} MiB");
        self.phases.push((name.to_string(), rss, peak));
        Ok(())
    }

    /// Starts the peak over from the current RSS (`/proc/PID/clear_refs`), so that the next
    /// phase's peak is its own. Returns the RSS it starts from, in MiB.
    pub(crate) fn restart_peak(&mut self) -> anyhow::Result<f64> {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5")
            .context("resetting the peak RSS (clear_refs)")?;
        Ok(status_kib(self.pid, "VmRSS:")? / 1024.0)
    }

    /// The peak recorded by the last phase, in MiB.
    pub(crate) fn last_peak(&self) -> f64 {
        self.phases.last().map_or(0.0, |(_, _, peak)| *peak)
    }

    pub(crate) fn report(&self, target_mib: f64) {
        println!("| phase                        | RSS MiB | peak RSS (VmHWM) MiB |");
        println!("|------------------------------|---------|----------------------|");
        for (name, rss, peak) in &self.phases {
            println!("| {name:<28} | {rss:7.1} | {peak:20.1} |");
        }
        let peak = self
            .phases
            .iter()
            .map(|(_, _, peak)| *peak)
            .fold(0.0, f64::max);
        let verdict = if peak <= target_mib { "met" } else { "NOT met" };
        println!("peak RSS {peak:.1} MiB against the {target_mib:.0} MiB target: {verdict}");
    }
}

/// Polls `/metrics` until the proxy tracks `expected` shapes (or the time is up).
pub(crate) fn wait_for_shapes(
    proxy: &IndextapProcess,
    expected: usize,
    limit: Duration,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + limit;
    loop {
        let tracked = metric(proxy, "indextap_shapes_tracked", &[]) as usize;
        let evicted = metric(proxy, "indextap_shapes_evicted", &[]) as usize;
        if tracked + evicted >= expected || Instant::now() >= deadline {
            return Ok(tracked);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Client connections the proxy holds open, both engines.
pub(crate) fn active_connections(proxy: &IndextapProcess) -> anyhow::Result<f64> {
    let metrics = Exposition::parse(proxy.get_text("/metrics")?);
    Ok(metrics
        .value("indextap_connections_active", &[])
        .unwrap_or(0.0))
}

/// Timed admin calls: median and worst of each.
pub(crate) struct Timings<'a> {
    proxy: &'a IndextapProcess,
    rows: Vec<(String, f64, f64, f64)>,
}

impl<'a> Timings<'a> {
    pub(crate) fn new(proxy: &'a IndextapProcess) -> Self {
        Self {
            proxy,
            rows: Vec::new(),
        }
    }

    /// `GET path`, `times` times (each must answer 2xx).
    pub(crate) fn time(
        &mut self,
        name: &str,
        path: &str,
        times: usize,
        target_ms: f64,
    ) -> anyhow::Result<()> {
        let mut took = Vec::with_capacity(times);
        for _ in 0..times {
            let started = Instant::now();
            let reply = self.proxy.get(path)?;
            took.push(started.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(reply.is_success(), "{path} answered {}", reply.status);
        }
        took.sort_by(f64::total_cmp);
        let median = took[took.len() / 2];
        let worst = took[took.len() - 1];
        self.rows.push((name.to_string(), median, worst, target_ms));
        Ok(())
    }

    pub(crate) fn report(&self) {
        println!(
            "| admin call                                   | median ms | worst ms | target ms |"
        );
        println!(
            "|----------------------------------------------|-----------|----------|-----------|"
        );
        for (name, median, worst, target) in &self.rows {
            let mark = if *worst <= *target { "" } else { " (over)" };
            println!("| {name:<44} | {median:9.1} | {worst:8.1} | {target:>9.0}{mark} |");
        }
    }
}

/// The proxy's log lines about advice runs (`--log-format=json`), their fields only: where
/// each run's time went.
pub(crate) fn advice_log(logs: &str) -> Vec<String> {
    logs.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|entry| {
            let fields = entry.get("fields")?.as_object()?;
            let message = fields.get("message")?.as_str()?;
            if !message.contains("advice computed") && !message.contains("verified") {
                return None;
            }
            let figures: Vec<String> = fields
                .iter()
                .filter(|(name, _)| *name != "message")
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            Some(format!("{message}: {}", figures.join(" ")))
        })
        .collect()
}
