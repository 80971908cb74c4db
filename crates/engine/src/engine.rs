//! Per-integration state and the detectors. (Being implemented.)
use crate::alert::Outputs;
use crate::config::EngineConfig;
use crate::event::Event;
use crate::registry::Registry;

/// Counters about the engine itself, for metrics and the replay summary.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    pub events: u64,
    pub tracked_integrations: usize,
    /// Events older than their bucket's lateness allowance: counted, not baselined.
    pub late_events: u64,
    pub evicted_integrations: u64,
    /// Estimated heap bytes of all engine state.
    pub approx_memory_bytes: usize,
    /// Highest event time seen.
    pub max_event_time_ms: i64,
}

pub struct Engine {
    config: EngineConfig,
    registry: Option<Registry>,
    stats: EngineStats,
}

impl Engine {
    pub fn new(config: EngineConfig, registry: Option<Registry>) -> Self {
        Engine {
            config,
            registry,
            stats: EngineStats::default(),
        }
    }
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }
    pub fn set_registry(&mut self, registry: Option<Registry>) {
        self.registry = registry;
    }
    /// Feeds one event; alerts and resolutions it causes are appended to `out`.
    pub fn process(&mut self, ev: &Event<'_>, out: &mut Outputs) {
        let _ = (ev, out);
        self.stats.events += 1;
    }
    /// Moves event time forward without an event (idle partitions): closes
    /// episodes whose quiet gap has passed, appending their resolutions.
    pub fn advance_to(&mut self, now_ms: i64, out: &mut Outputs) {
        let _ = (now_ms, out);
    }
    pub fn stats(&self) -> EngineStats {
        self.stats.clone()
    }
}
