//! Generational capability table (filled in by the capability-layer work).
