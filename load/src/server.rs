//! The server under test, seen from outside: its CPU time and memory from /proc, and subhub's
//! own numbers from /metrics.

use std::time::Duration;

/// CPU seconds (user + system) and resident memory of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// Reads /proc/PID; `None` when the process is gone or /proc is missing.
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(Sample { cpu_seconds: ticks / clock_ticks_per_second(), rss_bytes: rss_kib * 1024 })
}

fn clock_ticks_per_second() -> f64 {
    // USER_HZ is 100 on every Linux this runs on.
    100.0
}

/// One sample of a metric from subhub's /metrics (summed over labels); `None` for other servers.
pub async fn metric(client: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text =
        client.get(format!("{base}/metrics")).timeout(Duration::from_secs(2)).send().await.ok()?.text().await.ok()?;
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines().filter(|l| l.starts_with(name)) {
        let rest = &line[name.len()..];
        if rest.starts_with(' ') || rest.starts_with('{') {
            found = true;
            sum += line.rsplit(' ').next()?.parse::<f64>().ok()?;
        }
    }
    found.then_some(sum)
}
