//! Checking command templates: placeholders, queries and the shape each template's name asks for.

use super::{is_query, Template, QUERY_TEMPLATES, VALUE_TEMPLATES};

/// Check every command of a template, and the shape its name asks for.
pub(super) fn check_template_set(name: &str, template: &Template) -> Result<(), String> {
    let takes_value = VALUE_TEMPLATES.contains(&name);
    let is_query_template = QUERY_TEMPLATES.contains(&name);
    let field = format!("commands.{name}");
    if !template.ranges.is_empty() && !takes_value {
        return Err(format!(
            "`{field}` takes no value, so it cannot have `ranges`"
        ));
    }
    let mut groups: Vec<&[String]> = Vec::new();
    if template.ranges.is_empty() {
        groups.push(&template.steps);
    } else {
        let mut last = f64::NEG_INFINITY;
        for range in &template.ranges {
            if range.up_to.is_nan() || range.up_to <= last {
                return Err(format!(
                    "`{field}.ranges`: `up_to` must rise from one range to the next"
                ));
            }
            last = range.up_to;
            groups.push(&range.steps);
        }
    }
    for steps in groups {
        if steps.is_empty() {
            return Err(format!("`{field}` has no commands"));
        }
        for (i, step) in steps.iter().enumerate() {
            check_template(
                &format!("{field}[{i}]"),
                step,
                takes_value && step.contains("{v}"),
            )?;
        }
        if takes_value && !steps.iter().any(|s| s.contains("{v}")) {
            return Err(format!(
                "`{field}`: one of its commands needs a {{v}} where the value goes"
            ));
        }
        let queries = steps.iter().filter(|s| is_query(s)).count();
        if is_query_template && queries == 0 {
            return Err(format!(
                "`{field}` is read as a query, but none of its commands ends in `?`"
            ));
        }
        if !is_query_template && queries > 0 {
            return Err(format!(
                "`{field}` sends settings, but `{}` is a query",
                steps
                    .iter()
                    .find(|s| is_query(s))
                    .map(String::as_str)
                    .unwrap_or("")
            ));
        }
        if name.starts_with("measure_") && queries > 1 {
            return Err(format!("`{field}` may hold only one query"));
        }
    }
    Ok(())
}

pub(super) fn check_template(name: &str, template: &str, takes_value: bool) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err(format!("`{name}` is empty"));
    }
    if template.contains(['\n', '\r']) {
        return Err(format!(
            "`{name}` contains a line break; one command per entry"
        ));
    }
    let rest = template.replace("{v}", "").replace("{ch}", "");
    if rest.contains(['{', '}']) {
        return Err(format!(
            "`{name}`: `{template}` has an unknown placeholder; only {{v}} and {{ch}} exist"
        ));
    }
    if takes_value && !template.contains("{v}") {
        return Err(format!(
            "`{name}`: `{template}` needs a {{v}} where the value goes"
        ));
    }
    if !takes_value && template.contains("{v}") {
        return Err(format!(
            "`{name}`: `{template}` takes no value; remove {{v}}"
        ));
    }
    Ok(())
}
