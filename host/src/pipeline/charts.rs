//! The comparison charts, drawn as SVG with plotters: one labelled point per stage.

use plotters::prelude::*;

/// One labelled point.
#[derive(Debug, Clone)]
pub struct Point {
    /// The label drawn beside the point (the stage name).
    pub label: String,
    /// Horizontal value.
    pub x: f64,
    /// Vertical value.
    pub y: f64,
}

/// A range around `values` with some room on both sides, so labels and points stay inside the plot.
fn padded(
    values: impl Iterator<Item = f64>,
    floor: Option<f64>,
    ceiling: Option<f64>,
) -> (f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(hi.abs() * 0.05).max(1e-6);
    lo -= span * 0.15;
    hi += span * 0.35;
    if let Some(f) = floor {
        lo = lo.max(f);
    }
    if let Some(c) = ceiling {
        hi = hi.min(c.max(lo + span));
    }
    (lo, hi)
}

/// Renders a scatter chart of `points` as an SVG document; `x_max` caps the horizontal axis (105 for a
/// percentage, say).
///
/// # Errors
///
/// The plotters error, as text.
pub fn scatter_svg(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    points: &[Point],
    x_max: Option<f64>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (x0, x1) = padded(points.iter().map(|p| p.x), Some(0.0), x_max);
        let (y0, y1) = padded(points.iter().map(|p| p.y), Some(0.0), None);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(75)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        let blue = RGBColor(31, 119, 180);
        chart
            .draw_series(points.iter().map(|p| {
                EmptyElement::at((p.x, p.y))
                    + Circle::new((0, 0), 6, blue.filled())
                    + Text::new(p.label.clone(), (9, -18), ("sans-serif", 15))
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_its_title_axes_and_labels() {
        let points = [
            Point {
                label: "train".into(),
                x: 100.0,
                y: 52.0,
            },
            Point {
                label: "pruned".into(),
                x: 20.0,
                y: 50.5,
            },
        ];
        let svg = scatter_svg(
            "Accuracy",
            "non-zero weights (%)",
            "accuracy (%)",
            &points,
            None,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50.min(svg.len())]);
        for text in [
            "Accuracy",
            "non-zero weights (%)",
            "accuracy (%)",
            "train",
            "pruned",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
