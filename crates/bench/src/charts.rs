//! SVG charts for the report (plotters' SVG backend: text is left to the viewer's fonts).

use std::path::Path;

use anyhow::{Context as _, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One series of a bar chart: a label and a value per category (`None`: not measured).
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) values: Vec<Option<f64>>,
}

/// A horizontal grouped bar chart: one row per category, one bar per series in each row.
pub(crate) struct Bars<'a> {
    pub(crate) title: &'a str,
    /// The value axis' description.
    pub(crate) axis: &'a str,
    pub(crate) categories: &'a [String],
    pub(crate) series: &'a [Series],
    /// A vertical line drawn at this value (1.0 for ratios: "as fast as native").
    pub(crate) reference: Option<(f64, &'a str)>,
}

const PALETTE: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws the chart into an SVG file.
pub(crate) fn horizontal_bars(path: &Path, chart: &Bars<'_>) -> anyhow::Result<()> {
    let rows = chart.categories.len();
    let groups = chart.series.len().max(1);
    let max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .chain(chart.reference.map(|(r, _)| r))
        .fold(0.0f64, f64::max);
    let x_max = if max > 0.0 { max * 1.12 } else { 1.0 };
    let row_px = 8 + 10 * groups as u32;
    let height = 110 + row_px * rows as u32 + 20 * groups as u32;
    let label_px = 12 + 7 * chart.categories.iter().map(|c| c.chars().count()).max().unwrap_or(4) as u32;
    let root = SVGBackend::new(path, (860, height)).into_drawing_area();
    let plot = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| plot(&e))?;
    let mut c = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 18))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(36)
        .y_label_area_size(label_px)
        .build_cartesian_2d(0.0..x_max, 0.0..rows as f64)
        .map_err(|e| plot(&e))?;
    c.configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(chart.axis)
        .x_label_formatter(&|v| format_tick(*v))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| plot(&e))?;
    let bar = 0.8 / groups as f64;
    for (g, series) in chart.series.iter().enumerate() {
        let color = PALETTE[g % PALETTE.len()];
        let rects = series.values.iter().enumerate().filter_map(|(row, v)| {
            // Row 0 at the top.
            let top = (rows - row) as f64 - 0.1 - bar * g as f64;
            v.map(|v| Rectangle::new([(0.0, top - bar), (v, top)], color.filled()))
        });
        c.draw_series(rects)
            .map_err(|e| plot(&e))?
            .label(series.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    if let Some((at, label)) = chart.reference {
        c.draw_series(std::iter::once(PathElement::new(vec![(at, 0.0), (at, rows as f64)], BLACK.stroke_width(1))))
            .map_err(|e| plot(&e))?
            .label(label)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| plot(&e))?;
    // Category names beside their rows, in the label area.
    let style = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (row, name) in chart.categories.iter().enumerate() {
        let (x, y) = c.backend_coord(&(0.0, (rows - row) as f64 - 0.5));
        root.draw(&Text::new(name.as_str(), (x - 6, y), style.clone())).map_err(|e| plot(&e))?;
    }
    root.present().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn format_tick(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_written_with_its_labels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.svg");
        let categories = vec!["gemm".to_owned(), "floyd-warshall".to_owned()];
        let series = [
            Series { label: "lamina run".into(), values: vec![Some(1.1), Some(2.5)] },
            Series { label: "wasmtime run".into(), values: vec![Some(1.2), None] },
        ];
        horizontal_bars(
            &path,
            &Bars {
                title: "ratio to native",
                axis: "time / native time",
                categories: &categories,
                series: &series,
                reference: Some((1.0, "native")),
            },
        )
        .expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.starts_with("<svg"));
        for text in ["floyd-warshall", "lamina run", "wasmtime run", "ratio to native"] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
