//! The families at one moment, as one list: what `/metrics` renders, what the dashboard
//! samples and what an exporter sends, so they can never tell different stories.

use std::collections::BTreeMap;

use prometheus::proto::{Metric, MetricFamily, MetricType};
use prometheus::Encoder as _;

use super::handle::Declared;

/// Every family with its series, sorted by name (see [`crate::Metrics::gather`]).
#[derive(Clone, Debug, Default)]
pub struct Reading {
    families: Vec<MetricFamily>,
}

impl Reading {
    pub(super) fn new(families: Vec<MetricFamily>) -> Self {
        Reading { families }
    }

    /// The families themselves, sorted by name; series sorted by their label values.
    pub fn families(&self) -> &[MetricFamily] {
        &self.families
    }

    fn series(&self, name: &str) -> impl Iterator<Item = (&Metric, MetricType)> {
        let family = self.families.binary_search_by(|family| family.name().cmp(name)).ok().map(|at| &self.families[at]);
        family.into_iter().flat_map(|family| family.get_metric().iter().map(move |m| (m, family.get_field_type())))
    }

    /// The sum of a family's series (a histogram's: its observations). 0 for a family without
    /// series.
    pub fn sum(&self, name: &str) -> f64 {
        self.series(name).map(|(metric, kind)| value(metric, kind)).sum()
    }

    /// The sum of a family's series whose label `label` is `equal_to`.
    pub fn sum_where(&self, name: &str, label: &str, equal_to: &str) -> f64 {
        self.series(name)
            .filter(|(metric, _)| label_value(metric, label) == Some(equal_to))
            .map(|(metric, kind)| value(metric, kind))
            .sum()
    }

    /// A family's series summed by the value of one label.
    pub fn by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut by = BTreeMap::new();
        for (metric, kind) in self.series(name) {
            if let Some(key) = label_value(metric, label) {
                *by.entry(key.to_owned()).or_default() += value(metric, kind);
            }
        }
        by
    }

    /// The value of label `label` of the first series whose `key` label is `equal_to`.
    pub fn label_where(&self, name: &str, key: &str, equal_to: &str, label: &str) -> Option<&str> {
        self.series(name)
            .find(|(metric, _)| label_value(metric, key) == Some(equal_to))
            .and_then(|(metric, _)| label_value(metric, label))
    }

    /// The Prometheus text exposition (format 0.0.4): label values and help escaped by the
    /// encoder; a `declared` family without series is listed by its help and type alone.
    pub(super) fn render(&self, declared: &[Declared]) -> String {
        let mut out = Vec::with_capacity(8192);
        if let Err(error) = prometheus::TextEncoder::new().encode(&self.families, &mut out) {
            // Only a family without series fails to encode, and gathering leaves none out.
            tracing::error!(%error, "metrics could not be rendered");
        }
        let mut text = String::from_utf8(out).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into());
        for family in declared {
            if self.families.binary_search_by(|f| f.name().cmp(family.name)).is_err() {
                text.push_str(&format!(
                    "# HELP {} {}\n# TYPE {} {}\n",
                    family.name,
                    family.help,
                    family.name,
                    family.kind.name()
                ));
            }
        }
        text
    }
}

fn label_value<'a>(metric: &'a Metric, label: &str) -> Option<&'a str> {
    metric.get_label().iter().find(|pair| pair.name() == label).map(|pair| pair.value())
}

fn value(metric: &Metric, kind: MetricType) -> f64 {
    match kind {
        MetricType::COUNTER => metric.get_counter().value(),
        MetricType::GAUGE => metric.get_gauge().value(),
        MetricType::HISTOGRAM => metric.get_histogram().sample_count() as f64,
        MetricType::SUMMARY => metric.get_summary().sample_count() as f64,
        MetricType::UNTYPED => metric.untyped.value(),
    }
}
