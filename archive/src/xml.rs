//! Small XML helpers: escaping text and attributes, and reading flat documents strictly.

/// Escapes `&`, `<`, `>`, `"` and `'` (for text and attribute values alike).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-12-04T20:36:49.430Z`: UTC with exactly three decimals, so that texts sort as times.
pub(crate) fn utc_millis(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Checks that `xml` is well-formed, has no DTD and nests at most `max_depth` deep.
pub(crate) fn well_formed(xml: &[u8], max_depth: usize) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        match reader.read_event_into(&mut buf) {
            Err(e) => return Err(format!("not well-formed XML: {e}")),
            Ok(Event::DocType(_)) => return Err("a DOCTYPE is present; DTDs are refused".into()),
            Ok(Event::Start(_)) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
                if depth > max_depth {
                    return Err(format!("nested deeper than {max_depth}"));
                }
            }
            Ok(Event::Empty(_)) => {
                if depth == 0 {
                    roots += 1;
                }
                if depth + 1 > max_depth {
                    return Err(format!("nested deeper than {max_depth}"));
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) => break,
            Ok(_) => {}
        }
        buf.clear();
    }
    if roots != 1 || depth != 0 {
        return Err("not one complete document element".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_well_formedness() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
        assert!(well_formed(b"<a><b/></a>", 4).is_ok());
        assert!(well_formed(b"<a><b></a>", 4).is_err());
        assert!(well_formed(b"<!DOCTYPE a><a/>", 4).is_err());
        assert!(well_formed(b"<a><a><a/></a></a>", 2).is_err());
        assert!(well_formed(b"<a/><b/>", 4).is_err());
    }
}
