//! The bench's charts: grouped bars per cell, one bar per contender (Mpps
//! received; the gateways' own ns per packet), drawn with plotters' SVG
//! backend (text is written as SVG text, no fonts needed).

use std::path::Path;

use plotters::prelude::*;

/// One bar per group and series; `None` leaves a gap (the contender did not run).
pub struct Data {
    pub groups: Vec<String>,
    pub series: Vec<Series>,
    /// The y axis' name, and how many decimals a bar's label shows.
    pub y_desc: &'static str,
    pub decimals: usize,
}

pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(0x77, 0x77, 0x77),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0xc7, 0xd9, 0xe8),
];

pub fn draw(path: &Path, data: &Data, title: &str) -> anyhow::Result<()> {
    let width = 160 + 110 * data.groups.len() as u32;
    let root = SVGBackend::new(path, (width.max(640), 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let max = data
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b))
        .max(0.1)
        * 1.4; // room for the legend above the bars
    let n = data.groups.len();
    let bars = data.series.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, 0.0..max)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let groups = data.groups.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < groups.len() {
                groups[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(data.y_desc)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (k, s) in data.series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let rects = s.values.iter().enumerate().filter_map(|(g, v)| {
            let v = (*v)?;
            let x0 = g as f64 + 0.1 + 0.8 * k as f64 / bars;
            let x1 = x0 + 0.8 / bars;
            Some(Rectangle::new([(x0, 0.0), (x1, v)], colour.filled()))
        });
        chart
            .draw_series(rects)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        let labels = s.values.iter().enumerate().filter_map(|(g, v)| {
            let v = (*v)?;
            let x = g as f64 + 0.1 + 0.8 * k as f64 / bars;
            Some(Text::new(
                format!("{v:.*}", data.decimals),
                (x, v + max * 0.01),
                ("sans-serif", 10).into_font(),
            ))
        });
        chart
            .draw_series(labels)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
