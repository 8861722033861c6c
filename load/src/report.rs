//! A run's report: a table for people, JSON for machines, an SVG chart.

use std::fmt::Write as _;

use crate::run::{Report, Window};

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let label = if report.label.is_empty() { String::new() } else { format!(" [{}]", report.label) };
    let _ = writeln!(out, "subhub-load{label}: {:?} against {}", report.scenario, report.url);
    let _ = writeln!(
        out,
        "  connections {} ({} stalled), topics {}, connect errors {}, connected and live in {:.1}s",
        report.connections, report.stalled, report.topics, report.connect_errors, report.connect_seconds
    );
    if let Some(idle) = &report.idle {
        let _ = writeln!(
            out,
            "  idle: server CPU {:.2}% of a core, RSS {:.1} MiB, {:.0} bytes per connection",
            idle.cpu_percent,
            idle.rss_bytes as f64 / 1048576.0,
            idle.rss_bytes_per_connection.unwrap_or(0.0)
        );
    }
    if !report.windows.is_empty() {
        let _ = writeln!(
            out,
            "  {:>9} {:>9} {:>12} {:>8} {:>5} {:>5} {:>8} {:>8} {:>8} {:>9} {:>10}",
            "rate/s",
            "published",
            "deliveries/s",
            "lost",
            "dup",
            "reord",
            "p50 ms",
            "p99 ms",
            "max ms",
            "srv CPU%",
            "µs/deliv"
        );
    }
    for w in &report.windows {
        let (cpu, per) = w
            .server
            .as_ref()
            .map_or((f64::NAN, f64::NAN), |s| (s.cpu_percent, s.cpu_us_per_delivery.unwrap_or(f64::NAN)));
        let _ = writeln!(
            out,
            "  {:>9.0} {:>9} {:>12.0} {:>8} {:>5} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>9.1} {:>10.2}",
            w.rate,
            w.published,
            w.deliveries_per_second,
            w.tally.lost,
            w.tally.duplicates,
            w.tally.reordered,
            ms(w.latency.p50_us),
            ms(w.latency.p99_us),
            ms(w.latency.max_us),
            cpu,
            per
        );
        if let Some(burst) = &w.burst {
            let _ = writeln!(
                out,
                "  burst: {} of {} bursts reached everyone; median first {:.2} ms, median last {:.2} ms",
                burst.complete,
                burst.bursts,
                ms(burst.median_first_us),
                ms(burst.median_last_us)
            );
        }
        if let Some(plain) = &w.plain {
            let _ = writeln!(
                out,
                "  plain {} subscribers ({}): p50 {:.2} ms, p99 {:.2} ms, lost {}; the server adds {:.2} ms at p50",
                plain.broker,
                plain.subscribers,
                ms(plain.latency.p50_us),
                ms(plain.latency.p99_us),
                plain.tally.lost,
                plain.hub_added_p50_us as f64 / 1000.0
            );
        }
        if let Some(churn) = &w.churn {
            let _ = writeln!(
                out,
                "  churn: {} cycles, connect p50 {:.2} ms, p99 {:.2} ms",
                churn.cycles,
                ms(churn.connect.p50_us),
                ms(churn.connect.p99_us)
            );
        }
    }
    for w in &report.windows {
        if let Some(reconnect) = &w.reconnect {
            let t = &reconnect.tally;
            let replayed = reconnect.replayed.map_or_else(|| "?".to_owned(), |n| format!("{n:.0}"));
            let _ = writeln!(
                out,
                "  reconnect: {} cycles, {replayed} events replayed by the server, {} received after resuming, gap {}, duplicated {}, not recovered {}, errors {}",
                t.cycles, t.received_after, t.gap, t.duplicated, t.not_recovered, t.errors
            );
        }
    }
    if let Some((sources, executions)) = report.left_open {
        let _ = writeln!(out, "  after everyone left: {sources} sources, {executions} executions open");
    }
    out
}

/// Two panels: p50/p99/max per second, and the latency distribution by percentile.
pub fn svg(report: &Report) -> String {
    let Some(window) = report.windows.last() else {
        return String::from(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="400" height="40"><text x="10" y="25">no measurement window</text></svg>"#,
        );
    };
    let (width, height, pad) = (900.0, 300.0, 50.0);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#,
        2.0 * height + 40.0
    );
    let title = format!(
        "{:?}{} — {} connections, {:.0} events/s",
        report.scenario,
        if report.label.is_empty() { String::new() } else { format!(" [{}]", report.label) },
        report.connections,
        window.rate
    );
    let _ = write!(out, r#"<text x="{pad}" y="20" font-size="14">{}</text>"#, escape(&title));
    panel_over_time(&mut out, window, 30.0, width, height, pad);
    panel_distribution(&mut out, window, height + 40.0, width, height, pad);
    out.push_str("</svg>");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn axes(out: &mut String, top: f64, width: f64, height: f64, pad: f64, x_label: &str, y_max_ms: f64) {
    let bottom = top + height - pad;
    let _ = write!(
        out,
        r##"<line x1="{pad}" y1="{top}" x2="{pad}" y2="{bottom}" stroke="#333"/><line x1="{pad}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#333"/>"##,
        width - 20.0
    );
    let _ = write!(out, r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text>"#, width / 2.0, bottom + 30.0);
    for i in 0..=4 {
        let y = bottom - (bottom - top - 10.0) * i as f64 / 4.0;
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" text-anchor="end">{:.1} ms</text><line x1="{pad}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/>"##,
            pad - 4.0,
            y + 4.0,
            y_max_ms * i as f64 / 4.0,
            width - 20.0
        );
    }
}

fn polyline(out: &mut String, points: &[(f64, f64)], color: &str, label: &str, legend_y: f64, width: f64) {
    let path: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(out, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#, path.join(" "));
    let _ = write!(out, r#"<text x="{}" y="{legend_y}" fill="{color}">{label}</text>"#, width - 120.0);
}

fn panel_over_time(out: &mut String, window: &Window, top: f64, width: f64, height: f64, pad: f64) {
    let seconds = window.timeline.len().max(2) as f64;
    let y_max = window.timeline.iter().map(|s| s.max_us).max().unwrap_or(1).max(1) as f64 / 1000.0;
    axes(out, top, width, height, pad, "seconds into the run", y_max);
    let bottom = top + height - pad;
    let x = |i: usize| pad + (width - pad - 20.0) * i as f64 / (seconds - 1.0);
    let y = |us: u64| bottom - (bottom - top - 10.0) * (us as f64 / 1000.0) / y_max;
    for (series, color, label, offset) in
        [(0, "#1f77b4", "p50", 0.0), (1, "#d62728", "p99", 15.0), (2, "#999", "max", 30.0)]
    {
        let points: Vec<(f64, f64)> = window
            .timeline
            .iter()
            .enumerate()
            .map(|(i, s)| (x(i), y([s.p50_us, s.p99_us, s.max_us][series])))
            .collect();
        polyline(out, &points, color, label, top + 15.0 + offset, width);
    }
}

fn panel_distribution(out: &mut String, window: &Window, top: f64, width: f64, height: f64, pad: f64) {
    let y_max = window.distribution.iter().map(|(_, us)| *us).max().unwrap_or(1).max(1) as f64 / 1000.0;
    axes(out, top, width, height, pad, "percentile (log scale of 1/(1-p))", y_max);
    let bottom = top + height - pad;
    // x = log10(1 / (1 - p)): 0 at p0, 1 at p90, 2 at p99, 4 at p99.99.
    let position = |q: f64| (1.0 / (1.0 - q.min(0.9999))).log10();
    let x = |q: f64| pad + (width - pad - 20.0) * position(q) / 4.0;
    let y = |us: u64| bottom - (bottom - top - 10.0) * (us as f64 / 1000.0) / y_max;
    let points: Vec<(f64, f64)> = window.distribution.iter().map(|(q, us)| (x(*q), y(*us))).collect();
    for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999), ("p99.99", 0.9999)] {
        let _ = write!(out, r#"<text x="{}" y="{}" text-anchor="middle">{label}</text>"#, x(q), bottom + 15.0);
    }
    polyline(out, &points, "#2ca02c", "latency", top + 15.0, width);
}
