//! `/runbooks`: `docs/runbooks.md`, built into the binary, as a page
//! whose sections carry the anchors the alerts' `runbook_url` point at
//! (`#<alert name in lower case>`), so the runbook of the running version
//! is one click from every alert without another server.

use std::sync::OnceLock;

/// The runbooks as written.
pub const RUNBOOKS_MD: &str = include_str!("../../docs/runbooks.md");

/// The page: headings as headings (`## Name` gets `id="name"`), every
/// other block as preformatted-wrapping text, all escaped.
pub fn html() -> &'static str {
    static PAGE: OnceLock<String> = OnceLock::new();
    PAGE.get_or_init(|| render(RUNBOOKS_MD))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render(md: &str) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>slaprobe runbooks</title><style>body{font-family:sans-serif;max-width:60em;\
         margin:2em auto;padding:0 1em;line-height:1.4}p{white-space:pre-wrap}</style></head><body>\n",
    );
    for block in md.split("\n\n") {
        let block = block.trim_matches('\n');
        if block.is_empty() {
            continue;
        }
        if let Some(h) = block.strip_prefix("## ") {
            let id: String = h
                .trim()
                .to_ascii_lowercase()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            out.push_str(&format!("<h2 id=\"{id}\">{}</h2>\n", escape(h.trim())));
        } else if let Some(h) = block.strip_prefix("# ") {
            out.push_str(&format!("<h1>{}</h1>\n", escape(h.trim())));
        } else {
            out.push_str(&format!("<p>{}</p>\n", escape(block)));
        }
    }
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every alert the rules can hold has its section, at the anchor its
    /// `runbook_url` names.
    #[test]
    fn every_alert_has_a_section_at_its_anchor() {
        for alert in crate::generate::ALERTS {
            let anchor = format!("<h2 id=\"{}\">{alert}</h2>", alert.to_ascii_lowercase());
            assert!(html().contains(&anchor), "{alert}: no {anchor}");
        }
    }

    #[test]
    fn text_is_escaped() {
        let page = render("# T\n\n## A\n\nx <b> & \"y\"\n");
        assert!(
            page.contains("<p>x &lt;b&gt; &amp; &quot;y&quot;</p>"),
            "{page}"
        );
        assert!(page.contains("<h2 id=\"a\">A</h2>"), "{page}");
    }
}
