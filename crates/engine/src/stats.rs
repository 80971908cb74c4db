//! Seasonal count baselines.
