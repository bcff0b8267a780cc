//! Drift: where an event differs from what Creative Force documents ([`baseline`]), seen
//! while its typed model reads it. Four kinds: a field the baseline does not name, an
//! action it does not list, a field its example carries that the event does not, and a
//! field of another JSON type than documented (that the lenient model accepted anyway).
//!
//! A finding names fields and JSON types, never a value; the one exception is an unknown
//! action's name, which is the drift itself (a word of Creative Force's vocabulary, not
//! data about anyone), cut to [`ACTION_CHARS`] printable characters.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{Map, Value};

use super::baseline::{self, Field, JsonType};
use super::group::EventGroup;

/// The decoder's slots of the envelope's fields and `Action`, before the model's own.
pub(crate) const PAYLOAD_ID: usize = 0;
pub(crate) const EVENT_GROUP_NAME: usize = 1;
pub(crate) const EVENT_DATETIME_UTC: usize = 2;
pub(crate) const ACTOR: usize = 3;
pub(crate) const ACTION: usize = 4;
const ENVELOPE: [&str; 5] = ["PayloadId", "EventGroupName", "EventDatetimeUtc", "Actor", "Action"];
/// The most fields a model documents, envelope included (a task has 24).
const SLOTS: usize = 32;

/// At most this many characters of an unknown action are reported.
pub const ACTION_CHARS: usize = 64;

/// The slot of a model's field `name` among its decoder's `fields`: after the envelope's.
/// A name that is not there fails the build (it is evaluated as a constant).
pub(crate) const fn slot(fields: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < fields.len() {
        if same(fields[i].as_bytes(), name.as_bytes()) {
            assert!(ENVELOPE.len() + i < SLOTS, "more documented fields than slots");
            return ENVELOPE.len() + i;
        }
        i += 1;
    }
    panic!("a decoder's field is not in its list")
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The JSON type of each documented field as a decoder met it ([`JsonType::Absent`] when
/// it did not): a few bytes on the stack, filled on the way, checked after.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    pub(crate) types: [JsonType; SLOTS],
}

/// One way an event differs from the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Finding {
    /// A field the baseline does not name (`Actor.Email`, `Products[].Size` when nested).
    UndocumentedField {
        /// Its name, as sent.
        field: String,
        /// Its JSON type.
        sent: JsonTypeName,
    },
    /// An action the baseline does not list.
    UnknownAction {
        /// The action, as sent (at most [`ACTION_CHARS`] printable characters).
        action: String,
    },
    /// A field the help page's example carries, absent.
    MissingField {
        /// Its documented name.
        field: String,
    },
    /// A documented field of another JSON type than documented.
    RetypedField {
        /// Its documented name.
        field: String,
        /// The documented type.
        documented: &'static str,
        /// The type sent.
        sent: JsonTypeName,
    },
}

/// A JSON type by its JSON Schema name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonTypeName(pub JsonType);

impl Serialize for JsonTypeName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl Finding {
    /// The kind of drift: `undocumented_field`, `unknown_action`, `missing_field` or
    /// `retyped_field`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UndocumentedField { .. } => "undocumented_field",
            Self::UnknownAction { .. } => "unknown_action",
            Self::MissingField { .. } => "missing_field",
            Self::RetypedField { .. } => "retyped_field",
        }
    }

    /// The field (or, for an unknown action, the action) it is about.
    pub fn subject(&self) -> &str {
        match self {
            Self::UndocumentedField { field, .. } | Self::MissingField { field } | Self::RetypedField { field, .. } => {
                field
            }
            Self::UnknownAction { action } => action,
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UndocumentedField { field, sent } => write!(f, "undocumented field `{field}` ({})", sent.0.as_str()),
            Self::UnknownAction { action } => write!(f, "unknown action {action:?}"),
            Self::MissingField { field } => write!(f, "documented field `{field}` missing"),
            Self::RetypedField { field, documented, sent } => {
                write!(f, "field `{field}` sent as {} (documented: {documented})", sent.0.as_str())
            }
        }
    }
}

/// An unknown action as reported: printable ASCII, at most [`ACTION_CHARS`] characters.
pub fn reported_action(action: &str) -> String {
    action.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).take(ACTION_CHARS).collect()
}

/// What a typed event tells the drift check beyond its decoder's [`Seen`].
pub trait Drifting {
    /// The group.
    const DRIFT_GROUP: EventGroup;
    /// The documented fields its decoder reads, in slot order after the envelope's.
    const FIELDS: &'static [&'static str];
    /// True when its action is one the baseline lists.
    fn action_known(&self) -> bool;
    /// The action as sent.
    fn action_text(&self) -> &str;
    /// Its undocumented top-level fields.
    fn top_extra(&self) -> &Map<String, Value>;
    /// Its nested objects' undocumented fields, each under its path (`Actor`,
    /// `Products[]`).
    fn nested_extra(&self, each: &mut dyn FnMut(&'static str, &Map<String, Value>));
}

/// The documented field of each slot of a group's decoder, from the baseline.
fn table(group: EventGroup, fields: &'static [&'static str]) -> &'static [Option<&'static Field>] {
    static TABLES: [OnceLock<Vec<Option<&'static Field>>>; 7] = [const { OnceLock::new() }; 7];
    let index = EventGroup::ALL.iter().position(|&g| g == group).unwrap_or_default();
    TABLES[index].get_or_init(|| {
        let envelope = baseline::envelope();
        let own = baseline::group(group);
        ENVELOPE.iter().map(|name| envelope.field(name)).chain(fields.iter().map(|name| own.field(name))).collect()
    })
}

/// The drift of one decoded event, in a stable order (undocumented fields, top level
/// first, each in name order; an unknown action; missing fields, then retyped ones, in the
/// order the baseline documents them); empty (and no allocation) when it is as
/// documented.
pub fn check<E: Drifting>(event: &E, seen: &Seen) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (name, value) in event.top_extra() {
        findings.push(Finding::UndocumentedField { field: name.clone(), sent: JsonTypeName(JsonType::of(value)) });
    }
    event.nested_extra(&mut |path, extra| {
        for (name, value) in extra {
            let finding =
                Finding::UndocumentedField { field: format!("{path}.{name}"), sent: JsonTypeName(JsonType::of(value)) };
            // Two products with the same undocumented field are one finding.
            if !findings.contains(&finding) {
                findings.push(finding);
            }
        }
    });
    if !event.action_known() {
        findings.push(Finding::UnknownAction { action: reported_action(event.action_text()) });
    }
    let table = table(E::DRIFT_GROUP, E::FIELDS);
    for (slot, field) in table.iter().enumerate() {
        let Some(field) = field else { continue };
        // A field the page says may be empty may also be left out.
        let expected = field.required || (field.in_example && field.empty.is_empty());
        if seen.types[slot] == JsonType::Absent && expected {
            findings.push(Finding::MissingField { field: field.name.clone() });
        }
    }
    for (slot, field) in table.iter().enumerate() {
        let Some(field) = field else { continue };
        let sent = seen.types[slot];
        if !field.accepts(sent) {
            findings.push(Finding::RetypedField {
                field: field.name.clone(),
                documented: field.kind.as_str(),
                sent: JsonTypeName(sent),
            });
        }
    }
    findings
}
