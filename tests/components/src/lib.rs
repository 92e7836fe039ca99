//! Nothing: the components are the examples (`src/p3_command.rs`, `src/p3_service.rs`,
//! `src/p2_proxy.rs`).
