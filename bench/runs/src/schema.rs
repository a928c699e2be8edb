//! The committed JSON Schema of a run (`bench/runs/schema.json`), and a small
//! validator for it: the keywords that schema uses (`type`, `enum`, `const`,
//! `properties`, `required`, `additionalProperties`, `items`, `minItems`,
//! `minimum`, `maximum`, `anyOf`, local `$ref`), each with its draft 2020-12
//! meaning. Any other keyword is an error rather than silently ignored, so the
//! schema cannot use a keyword that is not checked. (Written by hand because
//! the `jsonschema` crate brings a regex engine, an HTTP client and a few
//! dozen crates for what is a hundred lines here.) The tests check every
//! report loadgen writes, and every committed run, against it.

use serde_json::Value;

/// `schema.json`, as committed.
pub const SCHEMA_JSON: &str = include_str!("../schema.json");

/// The committed schema, parsed.
pub fn schema() -> Value {
    serde_json::from_str(SCHEMA_JSON).expect("bench/runs/schema.json is JSON (checked by a test)")
}

/// Keywords that only document.
const ANNOTATIONS: [&str; 5] = ["$schema", "$id", "title", "description", "$defs"];

/// Checks `instance` against `schema`; the error names the JSON path and the rule.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    check(schema, schema, instance, "$")
}

fn check(root: &Value, schema: &Value, instance: &Value, path: &str) -> Result<(), String> {
    let rules = schema
        .as_object()
        .ok_or_else(|| format!("{path}: the schema here is not an object"))?;
    for (keyword, rule) in rules {
        match keyword.as_str() {
            keyword if ANNOTATIONS.contains(&keyword) => {}
            "$ref" => {
                let target = resolve(root, rule)?;
                check(root, target, instance, path)?;
            }
            "type" => {
                let allowed: Vec<&str> = match rule {
                    Value::String(name) => vec![name.as_str()],
                    Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
                    _ => return Err(format!("{path}: bad type rule {rule}")),
                };
                if !allowed.iter().any(|name| has_type(instance, name)) {
                    return Err(format!("{path}: {instance} is not of type {rule}"));
                }
            }
            "enum" => {
                let values = rule.as_array().ok_or("enum is not an array")?;
                if !values.contains(instance) {
                    return Err(format!("{path}: {instance} is not one of {rule}"));
                }
            }
            "const" => {
                if instance != rule {
                    return Err(format!("{path}: {instance} is not {rule}"));
                }
            }
            "properties" => {
                let Some(object) = instance.as_object() else {
                    continue;
                };
                let properties = rule.as_object().ok_or("properties is not an object")?;
                for (name, property) in properties {
                    if let Some(value) = object.get(name) {
                        check(root, property, value, &format!("{path}.{name}"))?;
                    }
                }
            }
            "required" => {
                let Some(object) = instance.as_object() else {
                    continue;
                };
                for name in rule.as_array().ok_or("required is not an array")? {
                    let name = name.as_str().ok_or("required holds a non-string")?;
                    if !object.contains_key(name) {
                        return Err(format!("{path}: required field {name:?} is missing"));
                    }
                }
            }
            "additionalProperties" => {
                let Some(object) = instance.as_object() else {
                    continue;
                };
                let known = rules.get("properties").and_then(Value::as_object);
                for (name, value) in object {
                    if known.is_some_and(|known| known.contains_key(name)) {
                        continue;
                    }
                    match rule {
                        Value::Bool(false) => {
                            return Err(format!("{path}: field {name:?} is not in the schema"));
                        }
                        Value::Bool(true) => {}
                        schema => check(root, schema, value, &format!("{path}.{name}"))?,
                    }
                }
            }
            "items" => {
                let Some(array) = instance.as_array() else {
                    continue;
                };
                for (index, item) in array.iter().enumerate() {
                    check(root, rule, item, &format!("{path}[{index}]"))?;
                }
            }
            "minItems" => {
                let Some(array) = instance.as_array() else {
                    continue;
                };
                let min = rule.as_u64().ok_or("minItems is not a count")?;
                if (array.len() as u64) < min {
                    return Err(format!("{path}: fewer than {min} items"));
                }
            }
            "minimum" | "maximum" => {
                let Some(number) = instance.as_f64() else {
                    continue;
                };
                let bound = rule.as_f64().ok_or("a bound is not a number")?;
                let ok = if keyword == "minimum" {
                    number >= bound
                } else {
                    number <= bound
                };
                if !ok {
                    return Err(format!("{path}: {number} breaks {keyword} {bound}"));
                }
            }
            "anyOf" => {
                let options = rule.as_array().ok_or("anyOf is not an array")?;
                let errors: Vec<String> = options
                    .iter()
                    .filter_map(|option| check(root, option, instance, path).err())
                    .collect();
                if errors.len() == options.len() {
                    return Err(format!(
                        "{path}: matches no option of anyOf: {}",
                        errors.join("; ")
                    ));
                }
            }
            other => {
                return Err(format!(
                    "{path}: the validator does not know keyword {other:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Whether `instance` is of JSON Schema type `name` (an integer is also a number;
/// `1.0` is an integer, as the draft says).
fn has_type(instance: &Value, name: &str) -> bool {
    match name {
        "null" => instance.is_null(),
        "boolean" => instance.is_boolean(),
        "string" => instance.is_string(),
        "object" => instance.is_object(),
        "array" => instance.is_array(),
        "number" => instance.is_number(),
        "integer" => {
            instance.is_u64()
                || instance.is_i64()
                || instance.as_f64().is_some_and(|n| n.fract() == 0.0)
        }
        _ => false,
    }
}

/// Resolves a local reference `#/$defs/name`.
fn resolve<'a>(root: &'a Value, reference: &Value) -> Result<&'a Value, String> {
    let pointer = reference
        .as_str()
        .and_then(|reference| reference.strip_prefix('#'))
        .ok_or_else(|| format!("only local $refs are supported, not {reference}"))?;
    root.pointer(pointer)
        .ok_or_else(|| format!("$ref {reference} points nowhere"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed schema parses, names its format, and requires the
    /// fields of a run.
    #[test]
    fn the_committed_schema_parses() {
        let schema = schema();
        assert_eq!(schema["$id"], "loadgen-report/1");
        let err = validate(&schema, &serde_json::json!({})).expect_err("fields are required");
        assert!(err.contains("required field"), "{err}");
    }

    /// `machine_usage` (issue 22) is `null` or the six figures of
    /// `MachineUsage` as it serialises, none negative, at least one CPU.
    #[test]
    fn machine_usage_is_null_or_the_six_figures() {
        let schema = schema();
        let part = &schema["properties"]["machine_usage"];
        let usage = crate::MachineUsage {
            window_s: 2.0,
            cores: 2,
            busy_s: 2.5,
            idle_s: 1.4,
            iowait_s: 0.05,
            steal_s: 0.05,
        };
        let written = serde_json::to_value(usage).expect("serialise");
        validate(part, &written).expect("a written machine_usage validates");
        validate(part, &Value::Null).expect("null validates");
        for (field, bad) in [("cores", 0.0), ("steal_s", -1.0)] {
            let mut broken = written.clone();
            broken[field] = serde_json::json!(bad);
            assert!(validate(part, &broken).is_err(), "{field} {bad}");
        }
        let mut missing = written.clone();
        missing.as_object_mut().expect("object").remove("idle_s");
        assert!(validate(part, &missing).is_err());
    }

    /// `bytes` (issue 25) is `null` or the four figures of `BytesMoved` as
    /// it serialises; `parameters.body_bytes` is `null` or at most 64 MiB.
    #[test]
    fn bytes_moved_and_body_bytes_validate() {
        let schema = schema();
        let part = &schema["properties"]["bytes"];
        let moved = crate::BytesMoved {
            sent_bytes: 65_536_000,
            received_bytes: 180_000,
            sent_bytes_per_s: 32_768_000.0,
            received_bytes_per_s: 90_000.0,
        };
        let written = serde_json::to_value(moved).expect("serialise");
        validate(part, &written).expect("a written bytes validates");
        validate(part, &Value::Null).expect("null validates");
        let mut broken = written.clone();
        broken["sent_bytes"] = serde_json::json!(-1);
        assert!(validate(part, &broken).is_err());
        let body = &schema["properties"]["parameters"]["properties"]["body_bytes"];
        for good in [
            serde_json::json!(null),
            serde_json::json!(0),
            serde_json::json!(67_108_864),
        ] {
            validate(body, &good).expect("a body size validates");
        }
        assert!(validate(body, &serde_json::json!(67_108_865)).is_err());
    }
}
