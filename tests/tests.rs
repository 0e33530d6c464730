//! flowpack's integration tests, compiled into one binary (one build, one place to look).
//! S3 tests run against a real moto server on 127.0.0.1 started by `util`.

mod util;

mod argo;
mod argo_client;
mod cache;
mod cli;
mod client;
mod containers;
mod crashes;
mod docs;
mod exit_codes;
mod faults;
mod hooks;
mod hostile_archives;
mod hostile_flows;
mod hostile_store;
mod inputs;
mod kfp;
mod kfp_names;
mod kfp_property;
mod kfp_shapes;
mod load;
mod push;
mod python;
mod python_flows;
mod recursion;
mod resume;
mod runs;
mod schedules;
mod secrets;
mod signals;
mod store;
mod transfer;
mod ui;
