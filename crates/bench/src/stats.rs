//! Order statistics and the geometric mean.

/// The median of `values` (the mean of the two middle ones for an even count); `None` when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let v = sorted(values)?;
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The `p`-th percentile (0 to 100) of `values` by the nearest-rank method; `None` when empty.
pub(crate) fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let v = sorted(values)?;
    let p = p.clamp(0.0, 100.0);
    // Nearest rank: the smallest value with at least p% of the values at or below it.
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// The geometric mean of positive `values`; `None` when empty or when one is not positive.
pub(crate) fn geomean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan() || *v <= 0.0 || !v.is_finite()) {
        return None;
    }
    Some((values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64).exp())
}

fn sorted(values: &[f64]) -> Option<Vec<f64>> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn small_cases() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.0));
        assert_eq!(percentile(&(1..=100).map(f64::from).collect::<Vec<_>>(), 99.0), Some(99.0));
        assert_eq!(percentile(&[5.0], 99.0), Some(5.0));
        assert_eq!(geomean(&[1.0, 4.0]), Some(2.0));
        assert_eq!(geomean(&[1.0, 0.0]), None);
        assert_eq!(median(&[f64::NAN]), None);
    }

    proptest! {
        #[test]
        fn order_statistics_lie_within_the_values(values in prop::collection::vec(0.001f64..1e9, 1..50), p in 0.0f64..=100.0) {
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for x in [median(&values), percentile(&values, p), geomean(&values)] {
                let x = x.expect("non-empty positive values");
                prop_assert!(x >= lo * (1.0 - 1e-12) && x <= hi * (1.0 + 1e-12));
            }
        }
    }
}
