//! The FROM clause's topic filter, checked by MQTT's rules.

/// Why `filter` is not an MQTT topic filter, if it is not.
pub(crate) fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("The topic filter is empty".to_owned());
    }
    if filter.len() > 65_535 {
        return Err("The topic filter is longer than 65535 bytes".to_owned());
    }
    if filter.contains('\0') {
        return Err("The topic filter contains a NUL character".to_owned());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "Invalid topic filter '{filter}': '#' must be a whole level and the last one"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "Invalid topic filter '{filter}': '+' must be a whole level"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_rules() {
        for ok in [
            "a/b",
            "#",
            "+",
            "a/+/c",
            "a/#",
            "$aws/events/certificates/registered/+",
            "/",
            "a//b",
        ] {
            assert!(check_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "+a/b", "##", "a\0b"] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }
}
