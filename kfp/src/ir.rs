//! The parts of KFP's PipelineSpec (IR, `schemaVersion: 2.1.0`) the emitter writes, as
//! typed serde structs: field names are the protobuf JSON names, empty parts are left out.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

/// The whole pipeline document.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// Every component, by name.
    pub components: BTreeMap<String, Component>,
    /// The executors of the container components.
    pub deployment_spec: DeploymentSpec,
    /// Name, display name, description.
    pub pipeline_info: PipelineInfo,
    /// The root DAG and the pipeline's inputs.
    pub root: Component,
    /// Always `2.1.0`.
    pub schema_version: String,
    /// `flowpack-<version>`.
    pub sdk_version: String,
}

/// `pipelineInfo`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineInfo {
    /// The DNS-1123 name.
    pub name: String,
    /// The flow's own name, when it differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The flow's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A component: a container (executor) or a DAG.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// The sub-DAG, for DAG components.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dag: Option<Dag>,
    /// The executor, for container components.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor_label: Option<String>,
    /// Inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_definitions: Option<Definitions>,
    /// Outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_definitions: Option<Definitions>,
}

/// Parameter definitions by name.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Definitions {
    /// The parameters.
    pub parameters: BTreeMap<String, ParamDef>,
}

/// One parameter definition.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParamDef {
    /// STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT.
    pub parameter_type: &'static str,
    /// The default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_value: Option<Value>,
    /// Whether a value may be left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_optional: Option<bool>,
    /// Help text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ParamDef {
    /// A required parameter of `ty`.
    pub fn of(ty: &'static str) -> Self {
        ParamDef {
            parameter_type: ty,
            default_value: None,
            is_optional: None,
            description: None,
        }
    }
}

/// A DAG: its tasks by key.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dag {
    /// The tasks.
    pub tasks: BTreeMap<String, Task>,
}

/// A task of a DAG.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Always `{}`: KFP's cache can never hit (flowpack's own cache replaces it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caching_options: Option<BTreeMap<String, Value>>,
    /// The component run.
    pub component_ref: ComponentRef,
    /// The sibling tasks this one waits for.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub dependent_tasks: BTreeSet<String>,
    /// Inputs.
    pub inputs: TaskInputs,
    /// For a loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iterator_policy: Option<IteratorPolicy>,
    /// For a loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_iterator: Option<ParameterIterator>,
    /// Retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicy>,
    /// The display name.
    pub task_info: TaskInfo,
    /// For a switch case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_policy: Option<TriggerPolicy>,
}

impl Task {
    /// A task running `component`, shown as `display`.
    pub fn new(component: &str, display: &str) -> Self {
        Task {
            caching_options: Some(BTreeMap::new()),
            component_ref: ComponentRef {
                name: component.into(),
            },
            dependent_tasks: BTreeSet::new(),
            inputs: TaskInputs::default(),
            iterator_policy: None,
            parameter_iterator: None,
            retry_policy: None,
            task_info: TaskInfo {
                name: display.into(),
            },
            trigger_policy: None,
        }
    }
}

/// `componentRef`.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentRef {
    /// The component's name.
    pub name: String,
}

/// `taskInfo`.
#[derive(Clone, Debug, Serialize)]
pub struct TaskInfo {
    /// The display name.
    pub name: String,
}

/// A task's inputs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TaskInputs {
    /// Parameters by input name.
    pub parameters: BTreeMap<String, Input>,
}

/// Where one task input comes from.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Input {
    /// An input of the enclosing component.
    ComponentInputParameter(String),
    /// A constant (runtime placeholders are substituted only here).
    RuntimeValue {
        /// The value.
        constant: Value,
    },
    /// An output of a sibling task.
    #[serde(rename_all = "camelCase")]
    TaskOutputParameter {
        /// The sibling.
        producer_task: String,
        /// Its output.
        output_parameter_key: String,
    },
    /// The final status of a sibling task (an exit task's view of the group it follows).
    #[serde(rename_all = "camelCase")]
    TaskFinalStatus {
        /// The sibling.
        producer_task: String,
    },
}

/// `iteratorPolicy`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IteratorPolicy {
    /// Iterations at once.
    pub parallelism_limit: u32,
}

/// `parameterIterator`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterIterator {
    /// The sub-DAG input receiving each item.
    pub item_input: String,
    /// The list.
    pub items: IteratorItems,
}

/// `parameterIterator.items`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IteratorItems {
    /// The sub-DAG input holding the list.
    pub input_parameter: String,
}

/// `retryPolicy`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Retries.
    pub max_retry_count: u32,
    /// First delay, e.g. `5s`.
    pub backoff_duration: String,
    /// Growth of the delay.
    pub backoff_factor: f64,
    /// Longest delay.
    pub backoff_max_duration: String,
}

/// `triggerPolicy`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TriggerPolicy {
    /// A CEL condition (a switch case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// `ALL_UPSTREAM_TASKS_COMPLETED` for an exit task (it runs whatever its upstream did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<&'static str>,
}

/// `deploymentSpec`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DeploymentSpec {
    /// Executors by label.
    pub executors: BTreeMap<String, Executor>,
}

/// One executor.
#[derive(Clone, Debug, Serialize)]
pub struct Executor {
    /// The container.
    pub container: Container,
}

/// A container executor.
#[derive(Clone, Debug, Serialize)]
pub struct Container {
    /// The image.
    pub image: String,
    /// The command.
    pub command: Vec<String>,
    /// The arguments (placeholders fill whole arguments).
    pub args: Vec<String>,
    /// Environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Requests, limits, accelerator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<BTreeMap<String, Value>>,
}

/// One environment variable.
#[derive(Clone, Debug, Serialize)]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}
