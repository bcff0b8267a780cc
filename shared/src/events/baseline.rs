//! What Creative Force documents, as data: `schemas/baseline/*.json`, one file per group
//! and one for the envelope every group shares, written from its help page "Webhooks",
//! with the deviations its own examples show.
//!
//! The typed models stay lenient (they read `StepId` as a number or a string, keep unknown
//! fields in `extra`, unknown actions as sent); drift is measured against this baseline,
//! not against the models. `cfwh schemas` writes the JSON Schemas from it, and a test
//! keeps the models, the action enums and the baseline naming the same fields and actions.
//!
//! The files are embedded and read once per process with `serde_json::Value` (already
//! linked for `extra`), so the consumers carry no deserializer of their own for them.

use std::sync::OnceLock;

use serde_json::Value;

use super::group::EventGroup;

/// The baseline files, embedded: the envelope, then the seven groups in
/// [`EventGroup::ALL`]'s order.
const ENVELOPE: &str = include_str!("../../../schemas/baseline/envelope.json");
const GROUPS: [(EventGroup, &str); 7] = [
    (EventGroup::Product, include_str!("../../../schemas/baseline/product.json")),
    (EventGroup::Sample, include_str!("../../../schemas/baseline/sample.json")),
    (EventGroup::User, include_str!("../../../schemas/baseline/user.json")),
    (EventGroup::Task, include_str!("../../../schemas/baseline/task.json")),
    (EventGroup::WorkUnit, include_str!("../../../schemas/baseline/work-unit.json")),
    (EventGroup::Job, include_str!("../../../schemas/baseline/job.json")),
    (EventGroup::Session, include_str!("../../../schemas/baseline/session.json")),
];

/// A JSON type as sent: what a value of the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum JsonType {
    /// Not seen (the field was absent).
    #[default]
    Absent,
    /// `null`
    Null,
    /// `true` or `false`
    Boolean,
    /// A number without a fraction or exponent that fits 64 bits.
    Integer,
    /// Any other number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonType {
    /// The JSON Schema name of the type (`integer`, `string`, …; `absent` when not seen).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Null => "null",
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::String => "string",
            Self::Array => "array",
            Self::Object => "object",
        }
    }

    /// The type of a value.
    pub fn of(value: &Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(_) => Self::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => Self::Integer,
            Value::Number(_) => Self::Number,
            Value::String(_) => Self::String,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::Null,
            "boolean" => Self::Boolean,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "string" => Self::String,
            "array" => Self::Array,
            "object" => Self::Object,
            _ => return None,
        })
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A documented type, as the help page names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// "String"
    String,
    /// "Int" or "Long"
    Integer,
    /// "Object"
    Object,
    /// "Array"
    Array,
    /// "JSON Literal": JSON, or a string holding it.
    JsonLiteral,
}

impl FieldType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "integer" => Self::Integer,
            "object" => Self::Object,
            "array" => Self::Array,
            "json-literal" => Self::JsonLiteral,
            _ => return None,
        })
    }

    /// The baseline's name of the type.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Object => "object",
            Self::Array => "array",
            Self::JsonLiteral => "json-literal",
        }
    }
}

/// One documented field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name as the help page's examples send it.
    pub name: String,
    /// Other spellings the help page uses for it (`ClientID`).
    pub spellings: Vec<String>,
    /// Its documented type.
    pub kind: FieldType,
    /// Other JSON types the help page's own examples send (`StepId` as a string).
    pub sent_as: Vec<JsonType>,
    /// How an empty value is sent, where the help page says it can be (`null`, `{}`).
    pub empty: Vec<String>,
    /// Every event carries it (the envelope's fields and `Action`).
    pub required: bool,
    /// The help page's example carries it: its absence from an event is drift.
    pub in_example: bool,
    /// What it is, from the help page.
    pub description: String,
    /// The fields of an object (`Actor`, `PlanningStatus`).
    pub fields: Vec<Field>,
    /// The fields of each item of a list (`Products`, `PlannedTimeSlot`).
    pub items: Vec<Field>,
    /// [`Field::json_types`] as bits of [`JsonType`].
    accepted: u8,
}

impl Field {
    /// True when `name` is this field's name or one of its spellings.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.spellings.iter().any(|s| s == name)
    }

    /// True when a value of type `sent` is documented (or known to be sent) for it. An
    /// absent value is never a wrong type (missing fields are drift of their own).
    pub fn accepts(&self, sent: JsonType) -> bool {
        self.accepted & sent.bit() != 0 || sent == JsonType::Absent
    }

    /// Every JSON type the field may have, as sent: its documented type, the types the
    /// help page's examples send, and `null` where the page says it can be empty.
    pub fn json_types(&self) -> Vec<JsonType> {
        [
            JsonType::Null,
            JsonType::Boolean,
            JsonType::Integer,
            JsonType::Number,
            JsonType::String,
            JsonType::Array,
            JsonType::Object,
        ]
        .into_iter()
        .filter(|t| self.accepted & t.bit() != 0)
        .collect()
    }
}

/// The documented fields of one group, or of the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// The group (`None` for the envelope).
    pub group: Option<EventGroup>,
    /// `EventGroupName` as the help page sends it (`Job`, `work unit`).
    pub event_group_name: String,
    /// Where in the help page it comes from.
    pub source: String,
    /// The actions the help page lists, as it spells them.
    pub actions: Vec<String>,
    /// The documented fields, in the help page's order.
    pub fields: Vec<Field>,
    /// Where the help page's examples differ from its tables.
    pub deviations: Vec<String>,
}

impl Baseline {
    /// The documented field with this name or spelling.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.is_named(name))
    }
}

/// The envelope every group shares.
pub fn envelope() -> &'static Baseline {
    &all().0
}

/// A group's baseline (its own fields only; the envelope's are in [`envelope`]).
pub fn group(group: EventGroup) -> &'static Baseline {
    let index = EventGroup::ALL.iter().position(|&g| g == group).unwrap_or_default();
    &all().1[index]
}

fn all() -> &'static (Baseline, Vec<Baseline>) {
    static ALL: OnceLock<(Baseline, Vec<Baseline>)> = OnceLock::new();
    ALL.get_or_init(|| {
        // The files are part of the build and checked by tests: a broken one is a bug of
        // this repository, not an input.
        let read = |group, text: &str| parse(group, text).unwrap_or_else(|e| panic!("schemas/baseline: {e}"));
        (read(None, ENVELOPE), GROUPS.iter().map(|&(g, text)| read(Some(g), text)).collect())
    })
}

/// Reads one baseline file.
pub fn parse(group: Option<EventGroup>, text: &str) -> Result<Baseline, String> {
    // From bytes, as every body is read: one reader of `Value` in a bootstrap, not two.
    let doc: Value = serde_json::from_slice(text.as_bytes()).map_err(|e| format!("not JSON: {e}"))?;
    let name = group.map_or("envelope", EventGroup::as_str);
    let list = |key: &str, v: &Value| strings(name, key, v);
    fn fields(name: &str, entries: Option<&Value>) -> Result<Vec<Field>, String> {
        let list = |key: &str, v: &Value| strings(name, key, v);
        let Some(entries) = entries else { return Ok(Vec::new()) };
        let entries = entries.as_array().ok_or_else(|| format!("{name}: a field list is not a list"))?;
        entries
            .iter()
            .map(|f| {
                let text = |key: &str| f.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                let flag = |key: &str| f.get(key).and_then(Value::as_bool).unwrap_or(false);
                let field_name = text("name");
                if field_name.is_empty() {
                    return Err(format!("{name}: a field has no name"));
                }
                let kind = FieldType::parse(&text("type"))
                    .ok_or_else(|| format!("{name}: `{field_name}` has an unknown type {:?}", text("type")))?;
                let sent_as = list("sent_as", f)?
                    .iter()
                    .map(|t| {
                        JsonType::parse(t).ok_or_else(|| format!("{name}: `{field_name}`: unknown JSON type {t:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let empty = list("empty", f)?;
                let mut accepted = match kind {
                    FieldType::String => JsonType::String.bit(),
                    FieldType::Integer => JsonType::Integer.bit(),
                    FieldType::Object => JsonType::Object.bit(),
                    FieldType::Array => JsonType::Array.bit(),
                    FieldType::JsonLiteral => JsonType::Object.bit() | JsonType::Array.bit() | JsonType::String.bit(),
                };
                for t in &sent_as {
                    accepted |= t.bit();
                }
                if empty.iter().any(|e| e == "null") {
                    accepted |= JsonType::Null.bit();
                }
                Ok(Field {
                    spellings: list("spellings", f)?,
                    kind,
                    sent_as,
                    empty,
                    required: flag("required"),
                    in_example: flag("in_example"),
                    description: text("description"),
                    fields: fields(&field_name, f.get("fields"))?,
                    items: fields(&field_name, f.get("items"))?,
                    accepted,
                    name: field_name,
                })
            })
            .collect()
    }
    let event_group_name = doc.get("event_group_name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if let Some(group) = group {
        if EventGroup::parse(&event_group_name) != Ok(group) {
            return Err(format!("{name}: `event_group_name` {event_group_name:?} is not this group"));
        }
    }
    Ok(Baseline {
        group,
        event_group_name,
        source: doc.get("source").and_then(Value::as_str).unwrap_or_default().to_owned(),
        actions: list("actions", &doc)?,
        fields: fields(name, doc.get("fields"))?,
        deviations: list("deviations", &doc)?,
    })
}

/// The list of strings under `key` of `v` (none when absent).
fn strings(name: &str, key: &str, v: &Value) -> Result<Vec<String>, String> {
    match v.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| format!("{name}: `{key}` holds a non-string")))
            .collect(),
        Some(_) => Err(format!("{name}: `{key}` is not a list")),
    }
}
