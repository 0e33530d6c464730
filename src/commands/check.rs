//! `flowpack check FLOW`: validate and print the graph, and report what would keep the
//! flow from compiling for KFP or Argo (a warning, or an error with `--target`).

use std::io::Write;

use anyhow::{Result, bail};
use flowpack_core::Flow;
use flowpack_core::flow::{Run, Transition};

use super::engine;
use crate::cli::{CheckArgs, Target};

pub fn run(args: CheckArgs) -> Result<()> {
    let flow = Flow::load(&args.flow)?;
    for target in [Target::Kfp, Target::Argo] {
        let Err(reason) = engine::check(target, &flow) else {
            continue;
        };
        let key = engine::key(target);
        let label = match target {
            Target::Kfp => "KFP",
            Target::Argo => "Argo",
        };
        let message = format!("for {label}: {reason}");
        if args.target == Some(target) {
            bail!("{message}");
        }
        // Never eprintln!: a closed terminal (SIGHUP) makes it panic.
        let _ = writeln!(
            std::io::stderr().lock(),
            "warning: {message} (`flowpack run` runs it; `check --target {key}` fails on this)"
        );
    }
    if args.json {
        return super::print_json(&flow);
    }
    outln!(
        "flow {}: {} steps, {} parameters — valid",
        flow.name,
        flow.steps.len(),
        flow.parameters.len()
    );
    if let Some(s) = &flow.schedule {
        outln!("schedule: {} ({})", s.cron, s.timezone);
    }
    if !flow.parameters.is_empty() {
        outln!("parameters:");
        for (name, p) in &flow.parameters {
            let default = p
                .default
                .as_ref()
                .map_or_else(|| "(required)".to_string(), |d| format!("= {d}"));
            let help = p
                .help
                .as_deref()
                .map(|h| format!("  {h}"))
                .unwrap_or_default();
            outln!("  {name}: {} {default}{help}", p.ty.name());
        }
    }
    outln!("steps:");
    let width = flow.steps.keys().map(String::len).max().unwrap_or(0);
    for name in flow.order() {
        let step = &flow.steps[name];
        let edge = match &step.next {
            Transition::End => match flow.hook_kind(name) {
                Some(kind) => format!("({} hook)", kind.key()),
                None => "(end)".to_string(),
            },
            Transition::Linear(t) => format!("-> {t}"),
            Transition::Split(ts) => format!("-> {} (split)", ts.join(", ")),
            Transition::Foreach { over, body } => format!("-> {body} for each item of '{over}'"),
            Transition::Switch { on, cases } => {
                let cases: Vec<String> = cases.iter().map(|(v, t)| format!("{v}: {t}")).collect();
                format!("-> switch on '{on}' {{{}}}", cases.join(", "))
            }
        };
        let join = if step.join { " [join]" } else { "" };
        let run = match &step.run {
            Run::Shell(s) => s.clone(),
            Run::Exec(a) => a.join(" "),
        };
        outln!("  {name:width$} {edge}{join}    $ {run}");
    }
    Ok(())
}
