//! [`StackService`]: the operations, one method each.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autopatch_engine::Engine;
use autopatch_store::Store;

use crate::api::*;

/// Which local port a listener gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenerPorts {
    /// A free port on 127.0.0.1, kept for the stack's life (the default:
    /// templates say port 80, which needs privileges and may be taken).
    #[default]
    Free,
    /// The template's own port on 127.0.0.1.
    Template,
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where instance folders (metadata, signals, logs) live.
    pub state_dir: PathBuf,
    /// What `AWS::Region` gives.
    pub region: String,
    /// What `AWS::AccountId` gives.
    pub account_id: String,
    pub listener_ports: ListenerPorts,
    /// Data-plane threads per load balancer (0: the caller's runtime).
    pub load_balancer_threads: usize,
    /// How often fleet controllers look at their instances.
    pub fleet_interval: Duration,
}

/// The stack operations over one engine and one store.
pub struct StackService<E: Engine> {
    #[allow(dead_code)]
    engine: Arc<E>,
    #[allow(dead_code)]
    store: Arc<Store>,
    #[allow(dead_code)]
    config: ServiceConfig,
}

impl<E: Engine + 'static> StackService<E> {
    /// Opens the service and recovers: re-adopts running instances, reopens
    /// listeners, and resumes or rolls back operations left in progress.
    pub async fn open(
        config: ServiceConfig,
        engine: Arc<E>,
        store: Arc<Store>,
    ) -> Result<Arc<Self>, ApiError> {
        Ok(Arc::new(Self { engine, store, config }))
    }

    /// `CreateStack`: validates everything first, then creates in the background.
    pub async fn create_stack(
        &self,
        _input: CreateStackInput,
    ) -> Result<CreateStackOutput, ApiError> {
        Err(ApiError::not_implemented("cloudformation", "CreateStack"))
    }

    /// `UpdateStack`.
    pub async fn update_stack(
        &self,
        _input: UpdateStackInput,
    ) -> Result<UpdateStackOutput, ApiError> {
        Err(ApiError::not_implemented("cloudformation", "UpdateStack"))
    }

    /// `DeleteStack`: refused while another stack imports one of its exports.
    pub async fn delete_stack(&self, _input: DeleteStackInput) -> Result<(), ApiError> {
        Err(ApiError::not_implemented("cloudformation", "DeleteStack"))
    }

    pub fn describe_stacks(
        &self,
        _input: DescribeStacksInput,
    ) -> Result<DescribeStacksOutput, ApiError> {
        Err(ApiError::not_implemented("cloudformation", "DescribeStacks"))
    }

    pub fn describe_stack_events(
        &self,
        _input: DescribeStackEventsInput,
    ) -> Result<DescribeStackEventsOutput, ApiError> {
        Err(ApiError::not_implemented("cloudformation", "DescribeStackEvents"))
    }

    pub fn describe_stack_resources(
        &self,
        _input: DescribeStackResourcesInput,
    ) -> Result<DescribeStackResourcesOutput, ApiError> {
        Err(ApiError::not_implemented("cloudformation", "DescribeStackResources"))
    }

    pub fn list_stacks(&self, _input: ListStacksInput) -> Result<ListStacksOutput, ApiError> {
        Err(ApiError::not_implemented("cloudformation", "ListStacks"))
    }

    pub fn list_exports(&self, _input: ListExportsInput) -> Result<ListExportsOutput, ApiError> {
        Err(ApiError::not_implemented("cloudformation", "ListExports"))
    }

    pub fn describe_target_health(
        &self,
        _input: DescribeTargetHealthInput,
    ) -> Result<DescribeTargetHealthOutput, ApiError> {
        Err(ApiError::not_implemented("elasticloadbalancingv2", "DescribeTargetHealth"))
    }

    pub fn describe_auto_scaling_groups(
        &self,
        _input: DescribeAutoScalingGroupsInput,
    ) -> Result<DescribeAutoScalingGroupsOutput, ApiError> {
        Err(ApiError::not_implemented("autoscaling", "DescribeAutoScalingGroups"))
    }

    /// Stops listeners and fleet controllers; instances keep running, to be
    /// re-adopted by the next [`StackService::open`].
    pub async fn shutdown(&self) {}
}
