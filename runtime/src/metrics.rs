//! Per-step and per-route metrics: request counts, errors and latency histograms, kept in one
//! process-wide registry that the HTTP server turns on and renders at `/metrics`. Off (the
//! default, as in tests and the mock server), recording costs one atomic load per step.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// Latency buckets, in seconds.
pub const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static ENABLED: AtomicBool = AtomicBool::new(false);

/// A counter and a latency histogram.
#[derive(Default)]
pub struct Histogram {
    count: AtomicU64,
    errors: AtomicU64,
    sum_micros: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
}

impl Histogram {
    /// Records one observation; `failed` counts it as an error too.
    pub fn observe(&self, elapsed: Duration, failed: bool) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        // One counter per observation: the smallest bucket that holds it; rendering adds them up.
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound).and_then(|i| self.buckets.get(i)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes the histogram in Prometheus' text format under `name`, with `labels`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            out.push_str(&format!("{name}_seconds_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}\n"));
        }
        let count = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("{name}_seconds_bucket{{{labels}{separator}le=\"+Inf\"}} {count}\n"));
        let braced = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        out.push_str(&format!("{name}_seconds_sum{braced} {}\n", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6));
        out.push_str(&format!("{name}_seconds_count{braced} {count}\n"));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Failed observations so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Registry {
    steps: RwLock<BTreeMap<&'static str, Arc<Histogram>>>,
    routes: RwLock<BTreeMap<String, Arc<Histogram>>>,
    schedules: RwLock<BTreeMap<String, Arc<crate::trigger::ScheduleStats>>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// Turns recording on (the HTTP server does, at start-up).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether steps and routes record.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn registered<K: Ord>(map: &RwLock<BTreeMap<K, Arc<Histogram>>>, key: K) -> Arc<Histogram> {
    match map.write() {
        Ok(mut map) => Arc::clone(map.entry(key).or_default()),
        // A poisoned registry only loses this node's rendering, never its recording.
        Err(_) => Arc::default(),
    }
}

/// One step's or route's histogram, held by its node: looked up in the registry on the first
/// observation only, so that recording takes no lock and shares no reference count.
#[derive(Default)]
pub struct Meter(OnceLock<Arc<Histogram>>);

impl Meter {
    /// Records a run of the step `name`.
    pub fn step(&self, name: &'static str, elapsed: Duration, failed: bool) {
        self.0.get_or_init(|| registered(&registry().steps, name)).observe(elapsed, failed);
    }

    /// Records a run of the route `name`.
    pub fn route(&self, name: &str, elapsed: Duration, failed: bool) {
        self.0.get_or_init(|| registered(&registry().routes, name.to_string())).observe(elapsed, failed);
    }
}

/// Shows a schedule trigger's firings, run and skipped, at `/metrics`.
pub fn register_schedule(trigger: &str, stats: Arc<crate::trigger::ScheduleStats>) {
    if let Ok(mut schedules) = registry().schedules.write() {
        schedules.insert(trigger.to_string(), stats);
    }
}

/// A step's histogram, if it has run with recording on.
pub fn step(name: &str) -> Option<Arc<Histogram>> {
    registry().steps.read().ok()?.get(name).cloned()
}

/// Steps' and routes' metrics in Prometheus' text format.
pub fn render() -> String {
    let mut out = String::new();
    let escape = |text: &str| text.replace('\\', "\\\\").replace('"', "\\\"");
    if let Ok(steps) = registry().steps.read() {
        out.push_str("# HELP graphc_step_errors_total Failures per step.\n# TYPE graphc_step_errors_total counter\n");
        for (name, histogram) in steps.iter() {
            out.push_str(&format!("graphc_step_errors_total{{step=\"{}\"}} {}\n", escape(name), histogram.errors()));
        }
        out.push_str(
            "# HELP graphc_step_duration_seconds Time in each step.\n# TYPE graphc_step_duration_seconds histogram\n",
        );
        for (name, histogram) in steps.iter() {
            histogram.render(&mut out, "graphc_step_duration", &format!("step=\"{}\"", escape(name)));
        }
    }
    if let Ok(routes) = registry().routes.read() {
        out.push_str(
            "# HELP graphc_route_errors_total Failures per route.\n# TYPE graphc_route_errors_total counter\n",
        );
        for (name, histogram) in routes.iter() {
            out.push_str(&format!("graphc_route_errors_total{{route=\"{}\"}} {}\n", escape(name), histogram.errors()));
        }
        out.push_str("# HELP graphc_route_duration_seconds Time in each route.\n# TYPE graphc_route_duration_seconds histogram\n");
        for (name, histogram) in routes.iter() {
            histogram.render(&mut out, "graphc_route_duration", &format!("route=\"{}\"", escape(name)));
        }
    }
    if let Ok(schedules) = registry().schedules.read()
        && !schedules.is_empty()
    {
        out.push_str("# HELP graphc_schedule_firings_total A schedule trigger's firings: run, or skipped because the previous run was still going (overlap = false).\n# TYPE graphc_schedule_firings_total counter\n");
        for (name, stats) in schedules.iter() {
            let name = escape(name);
            out.push_str(&format!(
                "graphc_schedule_firings_total{{trigger=\"{name}\",outcome=\"run\"}} {}\n",
                stats.fired()
            ));
            out.push_str(&format!(
                "graphc_schedule_firings_total{{trigger=\"{name}\",outcome=\"skipped\"}} {}\n",
                stats.skipped()
            ));
        }
    }
    out
}
