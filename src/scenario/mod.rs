//! Scenario. (being written)
