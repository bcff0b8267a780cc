//! Receiver-side filters: the workspaces, event groups and production steps a studio
//! keeps. An authentic event filtered out is answered 200 and not queued.

use crate::events::routing::Routing;
use crate::events::EventGroup;

/// Receiver-side filters; an empty list lets everything through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Workspaces (`ClientId`), compared case-insensitively. Events without a workspace
    /// (user events) pass.
    pub workspaces: Vec<String>,
    /// Event groups.
    pub groups: Vec<EventGroup>,
    /// Production steps of task events (`StepName`), compared ignoring case, spaces and
    /// punctuation. Other groups pass.
    pub steps: Vec<String>,
}

/// Why an authentic event was deliberately not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Its workspace is not in `CF_FILTER_WORKSPACES`.
    Workspace,
    /// Its group is not in `CF_FILTER_EVENT_GROUPS`.
    Group,
    /// Its production step is not in `CF_FILTER_STEPS`.
    Step,
}

impl IgnoreReason {
    /// A stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Workspace => "workspace-filtered",
            Self::Group => "group-filtered",
            Self::Step => "step-filtered",
        }
    }
}

impl Filters {
    /// Which filter, if any, drops an event routed so.
    pub fn check(&self, routing: &Routing<'_>) -> Option<IgnoreReason> {
        if !self.groups.is_empty() && !self.groups.contains(&routing.group) {
            return Some(IgnoreReason::Group);
        }
        if let (false, Some(workspace)) = (self.workspaces.is_empty(), &routing.client_id) {
            if !self.workspaces.iter().any(|w| w.eq_ignore_ascii_case(workspace)) {
                return Some(IgnoreReason::Workspace);
            }
        }
        if !self.steps.is_empty() && routing.group == EventGroup::Task {
            let step = routing.step_name.as_deref().map(step_key).unwrap_or_default();
            if !self.steps.contains(&step) {
                return Some(IgnoreReason::Step);
            }
        }
        None
    }
}

/// A production step name without case, spaces or punctuation (`Post Review` = `post-review`).
pub fn step_key(step: &str) -> String {
    step.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}
