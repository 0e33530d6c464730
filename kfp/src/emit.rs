//! The KFP emitter: a walk of the [`Plan`]'s scope tree that writes the typed IR
//! ([`crate::ir`]).
//!
//! - A step is a container component and a task in the DAG of its innermost scope.
//! - A foreach loop is a `for-each-<step>` task (`parameterIterator` over the foreach
//!   step's `Output`, a LIST of indices) running the body's sub-DAG.
//! - A switch is a `<step>-switch` group task (no condition: it always completes) whose
//!   sub-DAG holds one `<step>-case-<i>` task per target that has steps of its own, each
//!   with `triggerPolicy.condition` on the switch's `Output` (the target's index, so case
//!   values never enter the CEL text). A step after the cases depends on the group.
//! - Each task's foreach indices reach it as one input per loop level (`--task-part`).
//! - A task whose parents are not known when compiling (the join of a foreach, a step
//!   after the merge of switch cases) finds them in the store (`--parents-from-store`):
//!   nothing proportional to a foreach's width passes through KFP.

use std::collections::{BTreeMap, BTreeSet};

use flowpack_core::flow::{Flow, ParamType, Transition};
use flowpack_core::invocation::{RunId, StepInvocation};
use flowpack_core::plan::{Frame, Plan, Scope};
use serde_json::{Value, json};

use crate::ir::*;
use crate::names::Names;
use crate::{CompileOptions, RESUME, RUN_ID};

/// An exit hook's input holding the final status of the flow's group (KFP fills it;
/// the step reads the run's status from the store instead).
const STATUS: &str = "flowpack--status";

/// A node of the DAG nesting: a step's task, a loop task, a switch group, or a case.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Step(String),
    Loop(String),
    Group(String),
    Case(String, usize),
}

fn path_of(plan: &Plan, step: &str) -> Vec<Node> {
    let mut p = Vec::new();
    for f in plan.steps[step].scopes() {
        match f {
            Frame::Loop { step } => p.push(Node::Loop(step.clone())),
            Frame::Case { step, target } => {
                p.push(Node::Group(step.clone()));
                p.push(Node::Case(step.clone(), *target));
            }
            Frame::Split { .. } => {}
        }
    }
    p.push(Node::Step(step.into()));
    p
}

/// Whether `step` sits directly in a loop body's DAG (its innermost scope is a loop), so
/// that a loop it opens is a [`Emitter::nested_loop_task`].
pub(crate) fn in_loop_body(plan: &Plan, step: &str) -> bool {
    matches!(plan.steps[step].scopes().last(), Some(Frame::Loop { .. }))
}

impl Names {
    /// The task name of a node in the DAG that holds it (a nested loop: its group).
    fn node(&self, n: &Node) -> &str {
        match n {
            Node::Step(s) => &self.steps[s],
            Node::Loop(s) => self.loop_groups.get(s).unwrap_or(&self.loops[s]),
            Node::Group(s) => &self.groups[s],
            Node::Case(s, i) => &self.cases[&(s.clone(), *i)],
        }
    }
}

/// The KFP type of a parameter. A json parameter takes the type of its default (list:
/// LIST, object: STRUCT, number: NUMBER_DOUBLE, string: STRING, bool: BOOLEAN); without a
/// default (or with `null`) it is a STRING holding JSON text, which the step parses.
pub fn param_type(t: ParamType, default: Option<&Value>) -> &'static str {
    match t {
        ParamType::String => "STRING",
        ParamType::Int => "NUMBER_INTEGER",
        ParamType::Float => "NUMBER_DOUBLE",
        ParamType::Bool => "BOOLEAN",
        ParamType::Json => match default {
            Some(Value::Array(_)) => "LIST",
            Some(Value::Object(_)) => "STRUCT",
            Some(Value::Number(_)) => "NUMBER_DOUBLE",
            Some(Value::Bool(_)) => "BOOLEAN",
            _ => "STRING",
        },
    }
}

/// A parameter's value as a KFP run request carries it (`trigger`, `schedule`, the
/// pipeline's defaults): as itself, except a json parameter of KFP type STRING, whose value
/// is its JSON text (`"abc"` quoted, an object as text), which the step parses back.
pub fn runtime_value(t: ParamType, default: Option<&Value>, value: &Value) -> Value {
    if t == ParamType::Json && param_type(t, default) == "STRING" {
        Value::String(value.to_string())
    } else {
        value.clone()
    }
}

fn placeholder(name: &str) -> String {
    format!("{{{{$.inputs.parameters['{name}']}}}}")
}

fn output_file(name: &str) -> String {
    format!("{{{{$.outputs.parameters['{name}'].output_file}}}}")
}

/// The input holding the index of loop level `d` in a step component.
fn task_part(d: usize) -> String {
    format!("flowpack--task-{d}")
}

/// The channel holding a foreach's list (or a switch's chosen target) inside sub-DAGs.
fn channel(producer: &str) -> String {
    format!("pipelinechannel--{producer}-Output")
}

fn item_channel(producer: &str) -> String {
    format!("{}-loop-item", channel(producer))
}

/// An enclosing loop's item, passed down into sub-DAGs nested in its body (kfp.local
/// resolves every `-loop-item` input to the innermost loop's item, so it has its own name).
fn part_channel(producer: &str) -> String {
    format!("pipelinechannel--{producer}-task-part")
}

/// Emits the pipeline of `flow` along `plan`.
pub(crate) struct Emitter<'a> {
    pub flow: &'a Flow,
    pub plan: &'a Plan,
    pub names: Names,
    pub opts: &'a CompileOptions,
    pub components: BTreeMap<String, Component>,
    pub executors: BTreeMap<String, Executor>,
    /// Dependencies by task name.
    deps: BTreeMap<String, BTreeSet<String>>,
}

impl<'a> Emitter<'a> {
    pub(crate) fn new(flow: &'a Flow, plan: &'a Plan, opts: &'a CompileOptions) -> Self {
        let names = Names::of(flow, plan);
        let deps = plan.node_dependencies(|s| path_of(plan, s), |n| names.node(n).to_string());
        Emitter {
            flow,
            plan,
            names,
            opts,
            components: BTreeMap::new(),
            executors: BTreeMap::new(),
            deps,
        }
    }

    /// The pipeline's root DAG. Without exit hooks, the DAG of the scope tree. With them,
    /// what KFP's compiler emits for `dsl.ExitHandler`: the flow's tasks in an
    /// `exit-handler-1` sub-DAG, and each hook a root task after it with
    /// `triggerPolicy.strategy: ALL_UPSTREAM_TASKS_COMPLETED` and a `TASK_FINAL_STATUS`
    /// input on the group (which also makes kfp.local run it as an exit task). Two hooks
    /// both follow the group, side by side: neither sees the other (the step reads the
    /// run's status from the store, hooks left out).
    pub(crate) fn root_dag(&mut self, tree: &Scope) -> Dag {
        let Some(group) = self.names.exit_handler.clone() else {
            return self.dag(tree, &[], true);
        };
        let body = self.dag(tree, &[], false);
        let given = self.common_inputs(&[], true, None);
        let defs = given
            .iter()
            .map(|(k, (d, _))| (k.clone(), d.clone()))
            .collect();
        self.sub_component(&group, body, defs);
        let mut task = Task::new(&format!("comp-{group}"), &group);
        task.caching_options = None;
        task.inputs.parameters = given.into_iter().map(|(k, (_, i))| (k, i)).collect();
        let mut dag = Dag::default();
        dag.tasks.insert(group.clone(), task);
        let hooks: Vec<String> = self
            .flow
            .hooks()
            .iter()
            .map(|(_, s)| s.to_string())
            .collect();
        for hook in hooks {
            let mut task = self.step(&hook, &[], true, None);
            task.dependent_tasks.insert(group.clone());
            task.trigger_policy = Some(TriggerPolicy {
                strategy: Some("ALL_UPSTREAM_TASKS_COMPLETED"),
                ..TriggerPolicy::default()
            });
            task.inputs.parameters.insert(
                STATUS.into(),
                Input::TaskFinalStatus {
                    producer_task: group.clone(),
                },
            );
            let k = self.names.step(&hook).to_string();
            let comp = self
                .components
                .get_mut(&format!("comp-{k}"))
                .expect("step() registered the hook's component");
            let mut def = ParamDef::of("TASK_FINAL_STATUS");
            def.is_optional = Some(true);
            comp.input_definitions
                .get_or_insert_with(Definitions::default)
                .parameters
                .insert(STATUS.into(), def);
            dag.tasks.insert(k, task);
        }
        dag
    }

    /// The DAG of `scope`, whose enclosing loops are `loops` (foreach steps, outermost
    /// first); registers every component inside.
    pub(crate) fn dag(&mut self, scope: &Scope, loops: &[String], root: bool) -> Dag {
        let mut dag = Dag::default();
        let own = match &scope.frame {
            Some(Frame::Loop { step }) => Some(step.as_str()),
            _ => None,
        };
        for s in &scope.steps {
            let task = self.step(s, loops, root, own);
            dag.tasks.insert(self.names.step(s).to_string(), task);
        }
        let mut groups: BTreeMap<String, Vec<&Scope>> = BTreeMap::new();
        for child in &scope.children {
            match &child.frame {
                Some(Frame::Loop { step }) if own.is_some() => {
                    let task = self.nested_loop_task(step, child, loops);
                    dag.tasks.insert(self.names.loop_groups[step].clone(), task);
                }
                Some(Frame::Loop { step }) => {
                    let fk = self.names.step(step).to_string();
                    let items = Input::TaskOutputParameter {
                        producer_task: fk,
                        output_parameter_key: "Output".into(),
                    };
                    let task = self.loop_task(step, child, loops, root, own, items);
                    dag.tasks.insert(self.names.loops[step].clone(), task);
                }
                Some(Frame::Case { step, .. }) => {
                    groups.entry(step.clone()).or_default().push(child)
                }
                _ => {}
            }
        }
        for (sw, cases) in groups {
            let task = self.group_task(&sw, &cases, loops, root, own);
            dag.tasks.insert(self.names.groups[&sw].clone(), task);
        }
        for (name, task) in dag.tasks.iter_mut() {
            if let Some(d) = self.deps.get(name) {
                task.dependent_tasks.extend(d.iter().cloned());
            }
        }
        dag
    }

    /// The inputs every DAG passes down: parameters, the resume spec, the loop items.
    fn common_inputs(
        &self,
        loops: &[String],
        root: bool,
        own: Option<&str>,
    ) -> BTreeMap<String, (ParamDef, Input)> {
        let from = |name: &str| {
            Input::ComponentInputParameter(if root {
                name.to_string()
            } else {
                format!("pipelinechannel--{name}")
            })
        };
        let mut m = BTreeMap::new();
        for (p, spec) in &self.flow.parameters {
            m.insert(
                format!("pipelinechannel--{p}"),
                (
                    ParamDef::of(param_type(spec.ty, spec.default.as_ref())),
                    from(p),
                ),
            );
        }
        m.insert(
            format!("pipelinechannel--{RESUME}"),
            (ParamDef::of("STRING"), from(RESUME)),
        );
        for f in loops {
            let fk = &self.names.steps[f];
            let source = if own == Some(f.as_str()) {
                item_channel(fk)
            } else {
                part_channel(fk)
            };
            m.insert(
                part_channel(fk),
                (
                    ParamDef::of("STRING"),
                    Input::ComponentInputParameter(source),
                ),
            );
        }
        m
    }

    fn sub_component(&mut self, name: &str, dag: Dag, defs: BTreeMap<String, ParamDef>) {
        self.components.insert(
            format!("comp-{name}"),
            Component {
                dag: Some(dag),
                input_definitions: Some(Definitions { parameters: defs }),
                ..Component::default()
            },
        );
    }

    /// The loop over the foreach of `f`, whose list arrives as `items`.
    fn loop_task(
        &mut self,
        f: &str,
        body: &Scope,
        loops: &[String],
        root: bool,
        own: Option<&str>,
        items: Input,
    ) -> Task {
        let name = self.names.loops[f].clone();
        let fk = self.names.step(f).to_string();
        let mut inner = loops.to_vec();
        inner.push(f.to_string());
        let dag = self.dag(body, &inner, false);
        let mut given = self.common_inputs(loops, root, own);
        given.insert(channel(&fk), (ParamDef::of("LIST"), items));
        let mut defs: BTreeMap<String, ParamDef> = given
            .iter()
            .map(|(k, (d, _))| (k.clone(), d.clone()))
            .collect();
        defs.insert(item_channel(&fk), ParamDef::of("STRING"));
        self.sub_component(&name, dag, defs);
        let mut task = Task::new(&format!("comp-{name}"), &name);
        task.caching_options = None;
        task.inputs.parameters = given.into_iter().map(|(k, (_, i))| (k, i)).collect();
        task.iterator_policy = Some(IteratorPolicy {
            parallelism_limit: self.flow.max_workers,
        });
        task.parameter_iterator = Some(ParameterIterator {
            item_input: item_channel(&fk),
            items: IteratorItems {
                input_parameter: channel(&fk),
            },
        });
        task
    }

    /// A loop opened directly inside another loop's body, wrapped in a group (a sub-DAG
    /// with no condition) that takes the enclosing items under their `-task-part` names.
    ///
    /// kfp.local (2.17) turns every input of a loop task that reads a `…-loop-item`
    /// component input, and every task-output input, into the loop task's own item
    /// (`create_parameter_loop_iteration_task_spec`): the inner loop of a nested foreach
    /// got the inner index for every level (tasks 0.0, 1.1, 2.2). A plain group task is
    /// not rewritten, so the loop task inside it reads only `-task-part` inputs of its
    /// parent DAG. The backend runs both shapes alike; the group costs one sub-DAG.
    fn nested_loop_task(&mut self, f: &str, body: &Scope, loops: &[String]) -> Task {
        let name = self.names.loop_groups[f].clone();
        let fk = self.names.step(f).to_string();
        let mut given = self.common_inputs(loops, false, loops.last().map(String::as_str));
        given.insert(
            channel(&fk),
            (
                ParamDef::of("LIST"),
                Input::TaskOutputParameter {
                    producer_task: fk.clone(),
                    output_parameter_key: "Output".into(),
                },
            ),
        );
        let defs: BTreeMap<String, ParamDef> = given
            .iter()
            .map(|(k, (d, _))| (k.clone(), d.clone()))
            .collect();
        let items = Input::ComponentInputParameter(channel(&fk));
        let inner = self.loop_task(f, body, loops, false, None, items);
        let mut dag = Dag::default();
        dag.tasks.insert(self.names.loops[f].clone(), inner);
        self.sub_component(&name, dag, defs);
        let mut task = Task::new(&format!("comp-{name}"), &name);
        task.caching_options = None;
        task.inputs.parameters = given.into_iter().map(|(k, (_, i))| (k, i)).collect();
        task
    }

    fn group_task(
        &mut self,
        sw: &str,
        cases: &[&Scope],
        loops: &[String],
        root: bool,
        own: Option<&str>,
    ) -> Task {
        let name = self.names.groups[sw].clone();
        let sk = self.names.step(sw).to_string();
        let mut given = self.common_inputs(loops, root, own);
        given.insert(
            channel(&sk),
            (
                ParamDef::of("STRING"),
                Input::TaskOutputParameter {
                    producer_task: sk.clone(),
                    output_parameter_key: "Output".into(),
                },
            ),
        );
        let defs: BTreeMap<String, ParamDef> = given
            .iter()
            .map(|(k, (d, _))| (k.clone(), d.clone()))
            .collect();
        let mut group = Dag::default();
        for case in cases {
            let Some(Frame::Case { target, .. }) = &case.frame else {
                continue;
            };
            let case_name = self.names.cases[&(sw.to_string(), *target)].clone();
            let dag = self.dag(case, loops, false);
            self.sub_component(&case_name, dag, defs.clone());
            let mut task = Task::new(&format!("comp-{case_name}"), &case_name);
            task.caching_options = None;
            task.inputs.parameters = defs
                .keys()
                .map(|k| (k.clone(), Input::ComponentInputParameter(k.clone())))
                .collect();
            task.trigger_policy = Some(TriggerPolicy {
                condition: Some(format!(
                    "inputs.parameter_values['{}'] == '{target}'",
                    channel(&sk)
                )),
                ..TriggerPolicy::default()
            });
            group.tasks.insert(case_name, task);
        }
        self.sub_component(&name, group, defs);
        let mut task = Task::new(&format!("comp-{name}"), &name);
        task.caching_options = None;
        task.inputs.parameters = given.into_iter().map(|(k, (_, i))| (k, i)).collect();
        task
    }

    /// The component, executor and task of one step.
    fn step(&mut self, s: &str, loops: &[String], root: bool, own: Option<&str>) -> Task {
        let step = &self.flow.steps[s];
        let k = self.names.step(s).to_string();
        let depth = loops.len();
        let mut inputs: BTreeMap<String, ParamDef> = BTreeMap::new();
        inputs.insert(RUN_ID.into(), ParamDef::of("STRING"));
        inputs.insert(RESUME.into(), ParamDef::of("STRING"));
        for (p, spec) in &self.flow.parameters {
            inputs.insert(
                p.clone(),
                ParamDef::of(param_type(spec.ty, spec.default.as_ref())),
            );
        }
        for d in 0..depth {
            inputs.insert(task_part(d), ParamDef::of("STRING"));
        }
        let mut outputs: BTreeMap<String, ParamDef> = BTreeMap::new();
        outputs.insert("task".into(), ParamDef::of("STRING"));
        match step.next {
            Transition::Foreach { .. } => {
                // kfp.local loops only over an output named `Output`; the backend accepts any.
                outputs.insert("Output".into(), ParamDef::of("LIST"));
            }
            Transition::Switch { .. } => {
                outputs.insert("Output".into(), ParamDef::of("STRING"));
            }
            _ => {}
        }
        self.components.insert(
            format!("comp-{k}"),
            Component {
                executor_label: Some(format!("exec-{k}")),
                input_definitions: Some(Definitions { parameters: inputs }),
                output_definitions: Some(Definitions {
                    parameters: outputs,
                }),
                ..Component::default()
            },
        );
        let args = self.invocation(s, depth).to_args();
        self.executors.insert(
            format!("exec-{k}"),
            Executor {
                container: crate::container(step, self.opts, args),
            },
        );

        let mut task = Task::new(&format!("comp-{k}"), s);
        let given = |name: &str| {
            Input::ComponentInputParameter(if root {
                name.to_string()
            } else {
                format!("pipelinechannel--{name}")
            })
        };
        let p = &mut task.inputs.parameters;
        p.insert(
            RUN_ID.into(),
            Input::RuntimeValue {
                constant: json!("{{$.pipeline_job_uuid}}"),
            },
        );
        p.insert(RESUME.into(), given(RESUME));
        for name in self.flow.parameters.keys() {
            p.insert(name.clone(), given(name));
        }
        for (d, f) in loops.iter().enumerate() {
            let fk = self.names.step(f);
            let source = if own == Some(f.as_str()) {
                item_channel(fk)
            } else {
                part_channel(fk)
            };
            p.insert(task_part(d), Input::ComponentInputParameter(source));
        }
        if step.settings.retry.times > 0 {
            task.retry_policy = Some(RetryPolicy {
                max_retry_count: step.settings.retry.times,
                backoff_duration: format!("{}s", step.settings.retry.delay_seconds),
                backoff_factor: 2.0,
                backoff_max_duration: "3600s".into(),
            });
        }
        task
    }

    /// The `flowpack step` arguments of `s` at loop depth `depth`.
    fn invocation(&self, s: &str, depth: usize) -> StepInvocation {
        let step = &self.flow.steps[s];
        let mut inv = StepInvocation::new(
            &flowpack_core::store::redact_url(&self.opts.store_url),
            &self.opts.package.to_string(),
            RunId::KfpUuid(placeholder(RUN_ID)),
            s,
        );
        inv.image = Some(step.settings.image.clone());
        inv.task_parts = (0..depth).map(|d| placeholder(&task_part(d))).collect();
        inv.plan_parents(self.plan);
        for p in self.flow.parameters.keys() {
            inv.kfp_params.push((p.clone(), placeholder(p)));
        }
        inv.resume = Some(placeholder(RESUME));
        inv.kfp_outputs.push(("task".into(), output_file("task")));
        match step.next {
            Transition::Foreach { .. } => inv
                .kfp_outputs
                .push(("foreach".into(), output_file("Output"))),
            Transition::Switch { .. } => inv
                .kfp_outputs
                .push(("branch".into(), output_file("Output"))),
            _ => {}
        }
        inv
    }

    /// The pipeline's own inputs: the flow's parameters and `flowpack--resume`.
    pub(crate) fn root_inputs(&self) -> Definitions {
        let mut defs = Definitions::default();
        for (p, spec) in &self.flow.parameters {
            let mut def = ParamDef::of(param_type(spec.ty, spec.default.as_ref()));
            if let Some(d) = &spec.default {
                def.default_value = Some(runtime_value(spec.ty, Some(d), d));
                def.is_optional = Some(true);
            }
            def.description = spec.help.clone();
            defs.parameters.insert(p.clone(), def);
        }
        defs.parameters.insert(
            RESUME.into(),
            ParamDef {
                parameter_type: "STRING",
                default_value: Some(json!("")),
                is_optional: Some(true),
                description: Some("set by flowpack trigger --resume".into()),
            },
        );
        defs
    }
}
