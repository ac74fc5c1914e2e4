//! The two rewrites of a configuration document's tree that happen before
//! it is typed: `${VAR}` / `${VAR:-default}` expansion from the environment
//! and `<key>_file` secret reading. Both keep every node's position, so a
//! value that fails later still points at its line in the file.

use std::path::Path;

use super::ConfigError;
use slaprobe_yaml::{join_index, join_key, Node, Scalar, Value};

/// Expand `${VAR}`, `${VAR:-default}` and `$$` in every scalar value (keys
/// are left alone). Expansion happens before typing, so `${N:-2}` can be an
/// integer.
pub(super) fn expand_env(
    node: &mut Node,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    file: &Path,
    errors: &mut Vec<ConfigError>,
) {
    match &mut node.value {
        Value::Scalar(s) => {
            if s.from_file || !s.text.contains('$') {
                return;
            }
            // `'${N}'` is quoted only because `{` is special in flow
            // context; type it like the plain scalar it stands for.
            let whole_reference =
                !s.plain && s.text.starts_with("${") && s.text.find('}') == Some(s.text.len() - 1);
            match expand_str(&s.text, env) {
                Ok(t) => {
                    s.text = t;
                    s.plain |= whole_reference;
                }
                Err(msg) => errors.push(ConfigError::new(file, node.pos, path, msg)),
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &join_index(path, i), env, file, errors);
            }
        }
        Value::Map(entries) => {
            for e in entries {
                let p = join_key(path, &e.key);
                expand_env(&mut e.value, &p, env, file, errors);
            }
        }
    }
}

/// Shell-like semantics: `${VAR:-default}` uses the default when VAR is
/// unset *or empty*, as `sh` does, because an empty secret or address is
/// never what was meant.
pub(super) fn expand_str(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                return Err("unterminated `${` (write `$$` for a literal `$`)".to_string());
            };
            let inner = &body[..close];
            let (name, default) = match inner.find(":-") {
                Some(j) => (&inner[..j], Some(&inner[j + 2..])),
                None => (inner, None),
            };
            let valid_name = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                return Err(format!(
                    "invalid environment variable reference `${{{inner}}}`: use `${{NAME}}` or \
                     `${{NAME:-default}}` with NAME made of letters, digits and `_` \
                     (write `$$` for a literal `$`)"
                ));
            }
            match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (use ${{{name}:-default}} for a default)"
                    ))
                }
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Replace every `<key>_file: /path` entry by `<key>: <contents>` (one
/// trailing newline trimmed, as written by `echo` or most secret stores).
/// Relative paths resolve against `base_dir` (the config file's directory)
/// when given, like docker-compose does.
pub(super) fn read_secret_files(
    node: &mut Node,
    path: &str,
    base_dir: Option<&Path>,
    file: &Path,
    errors: &mut Vec<ConfigError>,
) {
    match &mut node.value {
        Value::Scalar(_) => {}
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                read_secret_files(item, &join_index(path, i), base_dir, file, errors);
            }
        }
        Value::Map(entries) => {
            let keys: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
            for e in entries.iter_mut() {
                let key_path = join_key(path, &e.key);
                // Only a scalar value makes `x_file` a file reference, so a
                // cluster or header that happens to be named `x_file` still works.
                let is_scalar = matches!(e.value.value, Value::Scalar(_));
                let base = match e.key.strip_suffix("_file") {
                    Some(b) if !b.is_empty() && is_scalar => b.to_string(),
                    _ => {
                        read_secret_files(&mut e.value, &key_path, base_dir, file, errors);
                        continue;
                    }
                };
                if keys.contains(&base) {
                    errors.push(ConfigError::new(
                        file,
                        e.key_pos,
                        key_path,
                        format!("both `{base}` and `{}` are given; use only one", e.key),
                    ));
                    continue;
                }
                let secret_path = match &e.value.value {
                    Value::Scalar(s) if !s.text.is_empty() && !e.value.is_null() => s.text.clone(),
                    _ => {
                        errors.push(ConfigError::new(
                            file,
                            e.value.pos,
                            key_path,
                            "must be the path of a file to read the value from",
                        ));
                        continue;
                    }
                };
                let full = match base_dir {
                    Some(dir) if Path::new(&secret_path).is_relative() => dir.join(&secret_path),
                    _ => Path::new(&secret_path).to_path_buf(),
                };
                match std::fs::read_to_string(&full) {
                    Ok(mut contents) => {
                        if contents.ends_with('\n') {
                            contents.pop();
                            if contents.ends_with('\r') {
                                contents.pop();
                            }
                        }
                        e.key = base;
                        e.value = Node {
                            pos: e.value.pos,
                            value: Value::Scalar(Scalar {
                                text: contents,
                                plain: false,
                                from_file: true,
                            }),
                        };
                    }
                    Err(err) => errors.push(ConfigError::new(
                        file,
                        e.value.pos,
                        key_path,
                        format!("cannot read {}: {err}", full.display()),
                    )),
                }
            }
        }
    }
}
