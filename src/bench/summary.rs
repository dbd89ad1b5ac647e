//! The summary of a bench run: per profile, the median and 95th percentile of each measure.
//!
//! In: rows. Out: one [`Summary`] per profile, in the order profiles first appear. Pure
//! computation; rows with an error count as failures and add no values.

use serde::{Deserialize, Serialize};

use super::Row;

/// Median and 95th percentile (nearest rank) of one measure over a profile's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub median: f64,
    pub p95: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub profile: String,
    pub profile_id: String,
    /// Inputs measured without error.
    pub inputs: usize,
    pub failed: usize,
    pub ratio: Option<Stat>,
    pub bitrate_kbps: Option<Stat>,
    pub speed_x: Option<Stat>,
    pub ssim: Option<Stat>,
    pub psnr_db: Option<Stat>,
    pub snr_db: Option<Stat>,
    pub lsd_db: Option<Stat>,
}

/// `None` for no values.
pub fn stat(values: &[f64]) -> Option<Stat> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let rank = ((0.95 * n as f64).ceil() as usize).clamp(1, n);
    Some(Stat {
        median,
        p95: v[rank - 1],
    })
}

pub fn summarise(rows: &[Row]) -> Vec<Summary> {
    let mut order: Vec<(&str, &str)> = Vec::new();
    for r in rows {
        if !order
            .iter()
            .any(|(name, id)| *name == r.profile && *id == r.profile_id)
        {
            order.push((&r.profile, &r.profile_id));
        }
    }
    order
        .into_iter()
        .map(|(name, id)| {
            let mine: Vec<&Row> = rows
                .iter()
                .filter(|r| r.profile == name && r.profile_id == id)
                .collect();
            let ok: Vec<&Row> = mine.iter().copied().filter(|r| r.error.is_none()).collect();
            let of = |f: fn(&Row) -> Option<f64>| stat(&ok.iter().filter_map(|r| f(r)).collect::<Vec<_>>());
            Summary {
                profile: name.to_string(),
                profile_id: id.to_string(),
                inputs: ok.len(),
                failed: mine.len() - ok.len(),
                ratio: of(|r| r.ratio),
                bitrate_kbps: of(|r| r.bitrate_kbps),
                speed_x: of(|r| r.speed_x),
                ssim: of(|r| r.ssim),
                psnr_db: of(|r| r.psnr_db),
                snr_db: of(|r| r.snr_db),
                lsd_db: of(|r| r.lsd_db),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_nearest_rank_p95() {
        assert_eq!(stat(&[]), None);
        assert_eq!(
            stat(&[3.0]),
            Some(Stat {
                median: 3.0,
                p95: 3.0
            })
        );
        assert_eq!(stat(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
        let hundred: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(
            stat(&hundred),
            Some(Stat {
                median: 50.5,
                p95: 95.0
            })
        );
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(stat(&twenty).unwrap().p95, 19.0);
    }

    #[test]
    fn failures_are_counted_not_averaged() {
        let row = |profile: &str, ratio: f64, error: Option<&str>| Row {
            profile: profile.into(),
            profile_id: format!("id-{profile}"),
            ratio: Some(ratio),
            error: error.map(String::from),
            ..Row::default()
        };
        let rows = [
            row("a", 2.0, None),
            row("b", 5.0, None),
            row("a", 4.0, None),
            row("a", 100.0, Some("broken")),
        ];
        let s = summarise(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].profile.as_str(), s[0].inputs, s[0].failed), ("a", 2, 1));
        assert_eq!(s[0].ratio.unwrap().median, 3.0);
        assert_eq!(s[0].ssim, None);
        assert_eq!(s[1].ratio.unwrap().p95, 5.0);
    }
}
