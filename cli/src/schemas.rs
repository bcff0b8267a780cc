//! `cfwh schemas`: JSON Schemas of Creative Force's payloads, generated from the baseline
//! (`schemas/baseline/`, what its help page documents and what its own examples send),
//! written to `schemas/` and checked by `make test` as `cfwh template --check` checks the
//! template. The same generator gives the EventBridge schema registry its schemas
//! ([`eventbridge`], JSON Schema draft 4: the registry's other format besides OpenAPI 3).
//!
//! What a schema accepts is what Creative Force sends, not only what it documents: a
//! field also sent as another type (`StepId` as `"3"`) accepts both, an empty actor may be
//! `null`, a "JSON literal" may be JSON or a string holding it, and every object accepts
//! fields it does not name (`additionalProperties`), as the consumers do. The consumers
//! report each of those differences as drift; the schemas describe, they do not police.

use std::path::{Path, PathBuf};

use cf_webhooks::events::baseline::{self, Baseline, Field, FieldType, JsonType};
use cf_webhooks::events::EventGroup;
use serde_json::{json, Map, Value};

/// Which JSON Schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// 2020-12, for `schemas/`: what current validators and generators read.
    Draft2020,
    /// Draft 4, for the EventBridge schema registry (`JSONSchemaDraft4`).
    Draft4,
}

impl Dialect {
    fn uri(self) -> &'static str {
        match self {
            Self::Draft2020 => "https://json-schema.org/draft/2020-12/schema",
            Self::Draft4 => "http://json-schema.org/draft-04/schema#",
        }
    }
}

/// The file of a group's schema under `schemas/`: `task.schema.json`.
pub fn file_name(group: Option<EventGroup>) -> String {
    format!("{}.schema.json", group.map_or("envelope", EventGroup::as_str))
}

/// `EventGroupName` as the consumers match it: the group's letters in any case, with any
/// spaces, `_` or `-` around them (`work unit`, `WorkUnit`, `Job`).
fn group_pattern(group: EventGroup) -> String {
    let sep = "[ _-]*";
    let letters: String = group
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| format!("[{}{}]{sep}", c.to_ascii_uppercase(), c.to_ascii_lowercase()))
        .collect();
    format!("^{sep}{letters}$")
}

fn type_value(types: &[&str]) -> Value {
    match types {
        [one] => json!(one),
        many => json!(many),
    }
}

/// One field's schema.
fn field_schema(field: &Field) -> Value {
    let mut schema = Map::new();
    let mut types: Vec<&str> = Vec::new();
    let mut description = field.description.clone();
    match field.kind {
        FieldType::JsonLiteral => {
            // JSON, or a string holding it.
            let structured = structured(field);
            let mut one_of = vec![json!({"type": "string", "description": "The value as JSON text."})];
            one_of.extend(structured);
            schema.insert("description".into(), json!(description));
            schema.insert("anyOf".into(), json!(one_of));
            return Value::Object(schema);
        }
        _ => {
            for t in field.json_types() {
                types.push(t.as_str());
            }
        }
    }
    if !field.sent_as.is_empty() {
        let sent: Vec<&str> = field.sent_as.iter().map(|t| t.as_str()).collect();
        description.push_str(&format!(
            " Documented as {}; also sent as {} by Creative Force.",
            field.kind.as_str(),
            sent.join(" and ")
        ));
    }
    schema.insert("type".into(), type_value(&types));
    schema.insert("description".into(), json!(description));
    if field.kind == FieldType::Integer && field.sent_as.contains(&JsonType::String) {
        // Applies to strings only: the digits of an integer.
        schema.insert("pattern".into(), json!("^ *-?[0-9]+ *$"));
    }
    if field.kind == FieldType::Object {
        schema.insert("properties".into(), properties(&field.fields));
        schema.insert("additionalProperties".into(), json!(true));
    }
    if field.kind == FieldType::Array {
        schema.insert("items".into(), object_of(&field.items));
    }
    Value::Object(schema)
}

/// The JSON forms of a "JSON literal" field.
fn structured(field: &Field) -> Vec<Value> {
    if !field.items.is_empty() {
        let item = object_of(&field.items);
        vec![json!({"type": "array", "items": item.clone()}), item]
    } else if !field.fields.is_empty() {
        vec![object_of(&field.fields)]
    } else {
        // Free-form: each key a role, each value its people (`PlannedTeam`).
        vec![json!({"type": "object", "additionalProperties": {"type": ["string", "array"]}})]
    }
}

fn object_of(fields: &[Field]) -> Value {
    json!({"type": "object", "properties": properties(fields), "additionalProperties": true})
}

/// The properties of `fields`, each spelling of a field a property of its own.
fn properties(fields: &[Field]) -> Value {
    let mut properties = Map::new();
    for field in fields {
        let schema = field_schema(field);
        for spelling in &field.spellings {
            let mut other = schema.clone();
            if let Some(Value::String(d)) = other.get_mut("description") {
                *d = format!("`{}`, spelled as the help page also spells it. {d}", field.name);
            }
            properties.insert(spelling.clone(), other);
        }
        properties.insert(field.name.clone(), schema);
    }
    Value::Object(properties)
}

/// The schema of a group's body (the envelope's fields included), or of the envelope
/// alone (`None`).
pub fn body_schema(group: Option<EventGroup>, dialect: Dialect) -> Value {
    let envelope = baseline::envelope();
    let own: Option<&Baseline> = group.map(baseline::group);
    let mut fields: Vec<Field> = envelope.fields.clone();
    if let Some(own) = own {
        fields.extend(own.fields.iter().cloned());
    }
    let mut props = properties(&fields);
    let required: Vec<&str> = envelope.fields.iter().filter(|f| f.required).map(|f| f.name.as_str()).collect();
    let (title, description) = match (group, own) {
        (Some(group), Some(own)) => {
            if let Some(Value::Object(name)) = props.get_mut("EventGroupName") {
                name.insert("pattern".into(), json!(group_pattern(group)));
                name.insert(
                    "description".into(),
                    json!(format!("`{}` as documented; any case, spaces or dashes.", own.event_group_name)),
                );
            }
            if let Some(Value::Object(action)) = props.get_mut("Action") {
                action.insert(
                    "description".into(),
                    json!(format!(
                        "The action that was performed. Documented: {}. Any other is kept as sent (and reported \
                         as drift).",
                        own.actions.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                    )),
                );
            }
            (
                format!("Creative Force {} event", group.title().to_lowercase()),
                format!(
                    "The body Creative Force POSTs for a {} event. From {}. Known deviations of its examples: {}",
                    group.title().to_lowercase(),
                    own.source,
                    own.deviations.join(" ")
                ),
            )
        }
        _ => (
            "Creative Force event envelope".to_owned(),
            format!("The fields every Creative Force event carries. From {}.", envelope.source),
        ),
    };
    let mut schema = Map::new();
    schema.insert("$schema".into(), json!(dialect.uri()));
    if dialect == Dialect::Draft2020 {
        schema.insert(
            "$id".into(),
            json!(format!("https://github.com/cf-webhooks/cf-webhooks/schemas/{}", file_name(group))),
        );
    }
    schema.insert("title".into(), json!(title));
    schema.insert("description".into(), json!(description));
    schema.insert("type".into(), json!("object"));
    schema.insert("required".into(), json!(required));
    schema.insert("properties".into(), props);
    schema.insert("additionalProperties".into(), json!(true));
    Value::Object(schema)
}

/// The EventBridge event the destination puts for a group, for the schema registry
/// (JSON Schema draft 4): EventBridge's own fields, `source` the stack's `EventSource`
/// (`source_value`, a `${…}` reference of the template's), `detail-type` the event in
/// words, `detail` the body as Creative Force sent it.
pub fn eventbridge(group: EventGroup, source_value: &str) -> Value {
    let mut detail = body_schema(Some(group), Dialect::Draft4);
    if let Some(detail) = detail.as_object_mut() {
        detail.remove("$schema");
    }
    let title = format!("CfWebhooks{}Event", group.title().replace(' ', ""));
    let example = cf_webhooks::events::detail_types(group).into_iter().next().unwrap_or_default();
    json!({
        "$schema": Dialect::Draft4.uri(),
        "title": title,
        "description": format!(
            "A Creative Force {} event as the cf-webhooks EventBridge destination puts it on the bus.",
            group.title().to_lowercase()
        ),
        "type": "object",
        "required": ["detail-type", "source", "detail"],
        "properties": {
            "version": {"type": "string"},
            "id": {"type": "string"},
            "detail-type": {
                "type": "string",
                "description": format!("The group and the action in words (`{example}`); an action this version \
                    does not know is kept as sent.")
            },
            "source": {"type": "string", "enum": [source_value]},
            "account": {"type": "string"},
            "time": {"type": "string", "format": "date-time", "description": "`EventDatetimeUtc`."},
            "region": {"type": "string"},
            "resources": {
                "type": "array",
                "items": {"type": "string"},
                "description": "`cf-webhooks:replay/<run>` when a replay run sent the event again; empty otherwise."
            },
            "detail": detail
        },
        "additionalProperties": true
    })
}

/// Every file `cfwh schemas` writes: its name under the directory, and its text.
pub fn files() -> Vec<(String, String)> {
    std::iter::once(None)
        .chain(EventGroup::ALL.into_iter().map(Some))
        .map(|group| {
            let text = serde_json::to_string_pretty(&body_schema(group, Dialect::Draft2020))
                .expect("a schema of plain values always serializes");
            (file_name(group), format!("{text}\n"))
        })
        .collect()
}

/// `cfwh schemas`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fail unless the directory holds exactly what would be written (make test).
    #[arg(long)]
    check: bool,
    /// The directory of the schemas.
    #[arg(default_value = "schemas")]
    dir: PathBuf,
}

/// Writes (or checks) the schemas.
pub fn run(args: Args) -> Result<std::process::ExitCode, String> {
    let wanted = files();
    if args.check {
        let stale: Vec<String> = wanted
            .iter()
            .filter(|(name, text)| std::fs::read_to_string(args.dir.join(name)).ok().as_deref() != Some(text))
            .map(|(name, _)| name.clone())
            .collect();
        let extra = extra_files(&args.dir, &wanted);
        if !stale.is_empty() || !extra.is_empty() {
            return Err(format!(
                "{} is not what `cfwh schemas` writes (stale or missing: {stale:?}; not written by it: {extra:?}): \
                 run `make schemas`",
                args.dir.display()
            ));
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    for (name, text) in &wanted {
        let path = args.dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for name in extra_files(&args.dir, &wanted) {
        let path = args.dir.join(&name);
        std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `*.schema.json` files of `dir` that `cfwh schemas` does not write (a group renamed).
fn extra_files(dir: &Path, wanted: &[(String, String)]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut extra: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".schema.json") && !wanted.iter().any(|(w, _)| w == name))
        .collect();
    extra.sort();
    extra
}
