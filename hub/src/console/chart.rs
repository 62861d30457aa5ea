//! The overview's throughput chart as inline SVG, drawn on the server (no script): one pair
//! of bars per hour, documents accepted and deliveries completed.
//!
//! Only numbers and hour labels go into the SVG; nothing from a packet.

use std::fmt::Write;

use crate::ledger::HourCount;
use web::display;

const W: f64 = 960.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 12.0;

/// A "nice" axis maximum at or above `n`.
fn nice_max(n: u64) -> u64 {
    let n = n.max(4);
    let mag = 10u64.pow((n as f64).log10().floor() as u32);
    for step in [1, 2, 5, 10] {
        if step * mag >= n {
            return step * mag;
        }
    }
    10 * mag
}

/// The chart of `hours` (oldest first).
pub(super) fn throughput(hours: &[HourCount]) -> String {
    let max = nice_max(
        hours
            .iter()
            .map(|h| h.documents.max(h.deliveries))
            .max()
            .unwrap_or(0),
    );
    let plot_h = H - BOTTOM - TOP;
    let slot = (W - LEFT) / hours.len().max(1) as f64;
    let bar = (slot - 4.0) / 2.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="Văn bản tiếp nhận và chuyển giao theo giờ, 24 giờ qua">"#
    );
    for i in 0..=4 {
        let v = max * i / 4;
        let y = TOP + plot_h - plot_h * i as f64 / 4.0;
        let _ = write!(
            s,
            r#"<line class="axis" x1="{LEFT}" x2="{W}" y1="{y:.1}" y2="{y:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 3.5,
            display::count(v)
        );
    }
    for (i, h) in hours.iter().enumerate() {
        let x = LEFT + slot * i as f64 + 2.0;
        for (j, (n, class, what)) in [
            (h.documents, "bar-doc", "văn bản tiếp nhận"),
            (h.deliveries, "bar-del", "lượt chuyển giao"),
        ]
        .into_iter()
        .enumerate()
        {
            let bh = plot_h * n as f64 / max as f64;
            let _ = write!(
                s,
                r#"<rect class="{class}" x="{:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}"><title>{} — {}: {}</title></rect>"#,
                x + bar * j as f64,
                TOP + plot_h - bh,
                display::hour_minute(h.start),
                what,
                display::count(n)
            );
        }
        if i % 3 == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x + bar,
                H - 6.0,
                display::hour_minute(h.start)
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use exchange::clock::Timestamp;

    #[test]
    fn one_pair_of_bars_per_hour_scaled_to_a_round_maximum() {
        assert_eq!(nice_max(0), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(120), 200);
        assert_eq!(nice_max(1000), 1000);
        let hours: Vec<HourCount> = (0..24)
            .map(|h| HourCount {
                start: Timestamp::from_unix_ms(h * 3_600_000),
                documents: h,
                deliveries: h / 2,
            })
            .collect();
        let svg = throughput(&hours);
        assert_eq!(svg.matches("<rect").count(), 48);
        assert!(svg.contains("07:00"), "hours are shown in Vietnam time");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
