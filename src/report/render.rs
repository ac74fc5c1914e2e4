//! The report as a self-contained HTML page (inline CSS and SVG, no
//! JavaScript: it can be mailed, archived or printed) and as Markdown.

use std::fmt::Write as _;

use super::model::{Report, Row, SloReport};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{:.3}%", v * 100.0))
}

fn spent(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn count(v: f64) -> String {
    format!("{:.0}", v)
}

/// `met`, `missed` or `no events`.
fn verdict(s: &SloReport) -> &'static str {
    match s.met {
        Some(true) => "met",
        Some(false) => "missed",
        None => "no events",
    }
}

fn incidents_count(s: &SloReport) -> String {
    s.incidents
        .as_ref()
        .map_or_else(|| "–".to_string(), |i| i.len().to_string())
}

/// The chart's days (or hours): the chart step's date part.
fn step_label(r: &Row) -> &str {
    let s = r.start.as_str();
    if s.ends_with("T00:00:00Z") {
        &s[..10]
    } else {
        s.trim_end_matches('Z')
    }
}

/// The attainment per chart step as bars, the objective as a line: green
/// at or above it, red below, grey without events.
fn chart(s: &SloReport) -> String {
    let (w, h, top) = (720.0, 160.0, 8.0);
    let n = s.chart.len().max(1) as f64;
    // The floor: below the worst step by a quarter of its shortfall (its
    // bar stays visible), and at least two budgets below the objective.
    let worst = s
        .chart
        .iter()
        .filter_map(|r| r.attainment)
        .fold(1.0, f64::min);
    let low = (worst - 0.25 * (1.0 - worst))
        .min(s.objective - 2.0 * (1.0 - s.objective))
        .clamp(0.0, s.objective);
    let y = |a: f64| top + (1.0 - (a - low) / (1.0 - low).max(1e-12)) * (h - top);
    let bar = w / n;
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" aria-label=\"attainment per step\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" xmlns=\"http://www.w3.org/2000/svg\">",
        h + 18.0,
        h + 18.0
    );
    for (i, r) in s.chart.iter().enumerate() {
        let x = i as f64 * bar;
        let title = format!(
            "{}: {} ({} events, {} bad)",
            step_label(r),
            pct(r.attainment),
            count(r.events),
            count(r.bad)
        );
        match r.attainment {
            Some(a) => {
                let color = if a >= s.objective {
                    "#1a7f37"
                } else {
                    "#cf222e"
                };
                let yy = y(a.max(low));
                let _ = write!(
                    svg,
                    "<rect x=\"{:.1}\" y=\"{yy:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}</title></rect>",
                    x + 0.5,
                    (bar - 1.0).max(0.5),
                    (h - yy).max(1.0),
                    esc(&title)
                );
            }
            None => {
                let _ = write!(
                    svg,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"2\" fill=\"#d0d7de\"><title>{}</title></rect>",
                    x + 0.5,
                    h - 2.0,
                    (bar - 1.0).max(0.5),
                    esc(&title)
                );
            }
        }
    }
    let oy = y(s.objective);
    let _ = write!(
        svg,
        "<line x1=\"0\" x2=\"{w}\" y1=\"{oy:.1}\" y2=\"{oy:.1}\" stroke=\"#57606a\" stroke-dasharray=\"4 3\"/>\
         <text x=\"2\" y=\"{:.1}\" font-size=\"11\" fill=\"#57606a\">objective {}</text>",
        (oy - 3.0).max(10.0),
        pct(Some(s.objective))
    );
    if let (Some(first), Some(last)) = (s.chart.first(), s.chart.last()) {
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"11\" fill=\"#57606a\">{}</text>\
             <text x=\"{w}\" y=\"{:.1}\" font-size=\"11\" fill=\"#57606a\" text-anchor=\"end\">{}</text>\
             <text x=\"{w}\" y=\"{:.1}\" font-size=\"11\" fill=\"#57606a\" text-anchor=\"end\">floor {}</text>",
            h + 14.0,
            esc(step_label(first)),
            h + 14.0,
            esc(step_label(last)),
            h - 4.0,
            pct(Some(low))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The report as one HTML page.
pub fn html(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>SLA report, {} to {}</title>\n<style>\n\
         body {{ font: 14px/1.4 system-ui, -apple-system, \"Segoe UI\", sans-serif; margin: 1.5em; color: #1f2328; max-width: 60em; }}\n\
         h1 {{ font-size: 1.4em; margin: 0 0 .2em; }} h2 {{ font-size: 1.15em; margin: 1.8em 0 .3em; }} h3 {{ font-size: 1em; margin: 1em 0 .3em; }}\n\
         .muted {{ color: #57606a; }} .met {{ color: #1a7f37; }} .missed {{ color: #cf222e; font-weight: 600; }}\n\
         table {{ border-collapse: collapse; margin-bottom: .8em; }} th, td {{ border-bottom: 1px solid #d0d7de; padding: .3em .7em; text-align: right; }}\n\
         th:first-child, td:first-child {{ text-align: left; }} th {{ font-weight: 600; background: #f6f8fa; }}\n\
         svg.chart {{ display: block; margin: .4em 0 1em; max-width: 100%; height: auto; }}\n\
         </style>\n</head>\n<body>\n<h1>SLA report</h1>\n\
         <div class=\"muted\">{} from {} to {} · source: {} · generated {}</div>\n",
        esc(&r.from),
        esc(&r.to),
        esc(&r.period),
        esc(&r.from),
        esc(&r.to),
        esc(&r.source),
        esc(&r.generated_at)
    );
    o.push_str(
        "<h2>Summary</h2>\n<table class=\"summary\"><tr><th>SLO</th><th>objective</th><th>attainment</th><th></th><th>error budget spent</th><th>events</th><th>bad</th><th>incidents</th></tr>\n",
    );
    for s in &r.slos {
        let _ = writeln!(
            o,
            "<tr><td><a href=\"#{id}\">{name}</a></td><td>{}</td><td>{}</td><td class=\"{v}\">{v}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            pct(Some(s.objective)),
            pct(s.attainment),
            spent(s.budget_spent),
            count(s.events),
            count(s.bad),
            incidents_count(s),
            id = esc(&s.slo.replace(':', "-")),
            name = esc(&s.slo),
            v = verdict(s).replace(' ', "-"),
        );
    }
    o.push_str("</table>\n");
    if r.slos.is_empty() {
        o.push_str("<p class=\"muted\">no SLOs configured</p>\n");
    }
    for s in &r.slos {
        let _ = write!(
            o,
            "<h2 id=\"{}\">{}</h2>\n<div class=\"muted\">probe {} · output {} · SLI {} · objective {} · attainment {} ({}) · error budget spent {}</div>\n{}\n",
            esc(&s.slo.replace(':', "-")),
            esc(&s.slo),
            esc(&s.probe),
            esc(&s.output),
            esc(&s.sli),
            pct(Some(s.objective)),
            pct(s.attainment),
            verdict(s),
            spent(s.budget_spent),
            chart(s)
        );
        let _ = writeln!(o, "<h3>Worst {}s</h3>", s.worst_unit);
        if s.worst.is_empty() {
            let _ = writeln!(o, "<div class=\"muted\">no bad events</div>");
        } else {
            let _ = writeln!(
                o,
                "<table><tr><th>{} starting</th><th>attainment</th><th>events</th><th>bad</th></tr>",
                s.worst_unit
            );
            for w in &s.worst {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&w.start),
                    pct(w.attainment),
                    count(w.events),
                    count(w.bad)
                );
            }
            o.push_str("</table>\n");
        }
        o.push_str("<h3>Incidents</h3>\n");
        match &s.incidents {
            None => o.push_str("<div class=\"muted\">not known from this source</div>\n"),
            Some(i) if i.is_empty() => o.push_str("<div class=\"muted\">none</div>\n"),
            Some(i) => {
                o.push_str("<table><tr><th>tier</th><th>started</th><th>ended</th><th>duration</th></tr>\n");
                for x in i {
                    let _ = writeln!(
                        o,
                        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&x.tier),
                        esc(&x.start),
                        x.end
                            .as_deref()
                            .map_or_else(|| "still firing".to_string(), esc),
                        esc(&x.duration)
                    );
                }
                o.push_str("</table>\n");
            }
        }
    }
    o.push_str("</body>\n</html>\n");
    o
}

/// A Markdown table cell: no pipe breaks the table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The report as Markdown (the chart as a table of its steps).
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "# SLA report\n\n{} from {} to {} · source: {} · generated {}\n\n\
         | SLO | objective | attainment | | error budget spent | events | bad | incidents |\n\
         |---|---|---|---|---|---|---|---|\n",
        r.period,
        r.from,
        r.to,
        cell(&r.source),
        r.generated_at
    );
    for s in &r.slos {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&s.slo),
            pct(Some(s.objective)),
            pct(s.attainment),
            verdict(s),
            spent(s.budget_spent),
            count(s.events),
            count(s.bad),
            incidents_count(s)
        );
    }
    for s in &r.slos {
        let _ = write!(
            o,
            "\n## {}\n\nprobe {} · output {} · SLI {} · objective {} · attainment {} ({}) · error budget spent {}\n\n\
             | from | attainment | events | bad |\n|---|---|---|---|\n",
            cell(&s.slo),
            cell(&s.probe),
            cell(&s.output),
            s.sli,
            pct(Some(s.objective)),
            pct(s.attainment),
            verdict(s),
            spent(s.budget_spent)
        );
        for c in &s.chart {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                step_label(c),
                pct(c.attainment),
                count(c.events),
                count(c.bad)
            );
        }
        let _ = write!(o, "\nWorst {}s:", s.worst_unit);
        if s.worst.is_empty() {
            o.push_str(" none (no bad events).\n");
        } else {
            o.push_str("\n\n| starting | attainment | events | bad |\n|---|---|---|---|\n");
            for w in &s.worst {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    w.start,
                    pct(w.attainment),
                    count(w.events),
                    count(w.bad)
                );
            }
        }
        o.push_str("\nIncidents:");
        match &s.incidents {
            None => o.push_str(" not known from this source.\n"),
            Some(i) if i.is_empty() => o.push_str(" none.\n"),
            Some(i) => {
                o.push_str("\n\n| tier | started | ended | duration |\n|---|---|---|---|\n");
                for x in i {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {} |",
                        x.tier,
                        x.start,
                        x.end.as_deref().unwrap_or("still firing"),
                        x.duration
                    );
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::super::model::{build, Bucket, Incident, Period, SloInput};
    use super::*;
    use std::time::Duration;

    fn report() -> Report {
        let p = Period::new(Duration::from_secs(3 * 86_400), 3 * 86_400);
        let buckets = (0..72)
            .map(|h| Bucket {
                start: h * 3_600,
                good: 100.0,
                bad: if h == 30 { 50.0 } else { 0.0 },
            })
            .collect();
        build(
            &p,
            vec![SloInput {
                slo: "hb:heartbeat:delivery".into(),
                probe: "hb".into(),
                output: "heartbeat".into(),
                sli: "delivery".into(),
                objective: 0.999,
                buckets,
                incidents: Some(vec![Incident::new(
                    "page 1h/5m".into(),
                    30 * 3_600,
                    31 * 3_600,
                    false,
                )]),
            }],
            "prometheus <http://p:9090>",
            3 * 86_400,
        )
    }

    #[test]
    fn html_has_the_summary_the_chart_and_escapes_what_it_shows() {
        let h = html(&report());
        assert!(h.contains("<td><a href=\"#hb-heartbeat-delivery\">hb:heartbeat:delivery</a></td><td>99.900%</td><td>99.310%</td><td class=\"missed\">missed</td><td>689.7%</td><td>7250</td><td>50</td><td>1</td>"), "{h}");
        assert_eq!(h.matches("<rect").count(), 3, "a bar a day");
        assert!(
            h.contains("<title>1970-01-02: 97.959% (2450 events, 50 bad)</title>"),
            "{h}"
        );
        // The missed day's bar is red and tall enough to see.
        let bar = h.split("<rect").nth(2).unwrap_or_default();
        assert!(bar.contains("fill=\"#cf222e\""), "{bar}");
        let height: f64 = bar
            .split("height=\"")
            .nth(1)
            .and_then(|x| x.split('"').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or(0.0);
        assert!(height > 20.0, "{bar}");
        assert!(h.contains("prometheus &lt;http://p:9090&gt;"));
        assert!(!h.contains("<script"), "no JavaScript");
        assert!(h.contains("<td>page 1h/5m</td><td>1970-01-02T06:00:00Z</td><td>1970-01-02T07:00:00Z</td><td>1h</td>"), "{h}");
    }

    #[test]
    fn markdown_has_the_same_numbers() {
        let m = markdown(&report());
        assert!(
            m.contains(
                "| hb:heartbeat:delivery | 99.900% | 99.310% | missed | 689.7% | 7250 | 50 | 1 |"
            ),
            "{m}"
        );
        assert!(m.contains("| 1970-01-02 | 97.959% | 2450 | 50 |"), "{m}");
        assert!(
            m.contains("| 1970-01-02T06:00:00Z | 66.667% | 150 | 50 |"),
            "{m}"
        );
    }
}
