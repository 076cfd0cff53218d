//! `--set key=value` overrides, applied to the TOML tree before deserialisation (so they go
//! through exactly the same validation as the file).

use crate::error::InputError;
use crate::model::PARAM_NAMES;

/// Apply one `key=value` override to the TOML tree. A bare key is a model parameter (by its
/// PHYSICS.md name) or a variable of `[variables]`; a dotted key (`task.t_end`) addresses any
/// scalar, and `name[k]` in it element k of an existing list (`task.axes[0].num`). The value is
/// read as a TOML number or boolean when it parses as one, otherwise as a string (an
/// expression, or a name such as `coherent`).
pub fn apply_override(tree: &mut toml::Value, text: &str) -> Result<(), InputError> {
    let oerr = |message: String| override_error(text, message);
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| oerr("expected key=value".to_string()))?;
    let key = key.trim();
    let value = value.trim();
    if key.is_empty() || value.is_empty() {
        return Err(oerr(
            "expected key=value with a non-empty key and value".to_string(),
        ));
    }
    let path = key_path(tree, key).map_err(oerr)?;
    set_scalar(tree, &path, key, parse_value(value)).map_err(oerr)
}

/// Names pinned by `--set` (a scan over one of them runs that single point): the keys, less a
/// `variables.` or `model.` prefix.
pub(super) fn pinned_names(overrides: &[String]) -> Vec<String> {
    overrides
        .iter()
        .filter_map(|o| o.split_once('=').map(|(k, _)| k.trim()))
        .map(|k| {
            k.trim_start_matches("variables.")
                .trim_start_matches("model.")
                .to_string()
        })
        .collect()
}

fn override_error(text: &str, message: String) -> InputError {
    InputError::Override {
        text: text.to_string(),
        message,
    }
}

/// The value as a TOML integer, float or boolean when it parses as one, else a string (outer
/// quotes removed).
fn parse_value(value: &str) -> toml::Value {
    if let Ok(i) = value.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = value.parse::<f64>() {
        toml::Value::Float(f)
    } else if value == "true" || value == "false" {
        toml::Value::Boolean(value == "true")
    } else {
        toml::Value::String(value.trim_matches('"').to_string())
    }
}

/// The table path of `key`: a dotted key as written, a bare key under `model` (a parameter)
/// or `variables` (a variable of this scenario). Errors are the override's message.
fn key_path<'k>(tree: &toml::Value, key: &'k str) -> Result<Vec<&'k str>, String> {
    if key.contains('.') {
        let parts: Vec<&str> = key.split('.').collect();
        if let Some(i) = parts.iter().position(|p| p.trim().is_empty()) {
            return Err(format!(
                "key `{key}` has an empty segment (part {} of {}): expected dot-separated names \
                 such as task.t_end",
                i + 1,
                parts.len()
            ));
        }
        return Ok(parts);
    }
    let in_vars = tree.get("variables").and_then(|v| v.get(key)).is_some();
    if PARAM_NAMES.contains(&key) {
        Ok(vec!["model", key])
    } else if in_vars {
        Ok(vec!["variables", key])
    } else {
        let vars: Vec<String> = tree
            .get("variables")
            .and_then(|v| v.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        Err(format!(
            "`{key}` is neither a model parameter ({}) nor a variable of this scenario ({}); \
             use a dotted key such as task.t_end for other fields",
            PARAM_NAMES.join(", "),
            if vars.is_empty() {
                "none".to_string()
            } else {
                vars.join(", ")
            }
        ))
    }
}

/// Set the scalar at `path` (of `key`, as written) to `parsed`, creating missing tables; a part
/// `name[k]` steps into element k of an existing list. Errors are the override's message.
fn set_scalar(tree: &mut toml::Value, path: &[&str], key: &str, parsed: toml::Value) -> Result<(), String> {
    let mut node = tree;
    for (i, part) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        let table = node
            .as_table_mut()
            .ok_or_else(|| format!("`{}` is not a table", path[..i].join(".")))?;
        // `name[k]`: element k of an existing list (e.g. task.axes[0].num, task.values[2]).
        if let Some((name, index)) = part.strip_suffix(']').and_then(|p| p.split_once('[')) {
            let elem = list_element(table, part, name, index, key)?;
            if last {
                if elem.is_table() || elem.is_array() {
                    return Err(format!("`{key}` is a table or list, not a scalar"));
                }
                *elem = parsed;
                return Ok(());
            }
            node = elem;
            continue;
        }
        if last {
            if let Some(old) = table.get(*part)
                && (old.is_table() || old.is_array())
            {
                return Err(format!("`{key}` is a table or list, not a scalar"));
            }
            table.insert(part.to_string(), parsed);
            return Ok(());
        }
        node = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    Ok(())
}

/// Element `index` of the existing list `name` of `table` (`part` = `name[index]` as written).
fn list_element<'t>(
    table: &'t mut toml::Table,
    part: &str,
    name: &str,
    index: &str,
    key: &str,
) -> Result<&'t mut toml::Value, String> {
    let k: usize = index
        .parse()
        .map_err(|_| format!("`{part}`: the index must be a whole number >= 0"))?;
    let list = table
        .get_mut(name)
        .and_then(|v| v.as_array_mut())
        .ok_or_else(|| format!("`{name}` in `{key}` is not a list of this scenario"))?;
    let len = list.len();
    list.get_mut(k)
        .ok_or_else(|| format!("`{part}`: the list has {len} entries (indices 0..{len})"))
}
