//! `--mix PATH=WEIGHT` (repeatable) and `--seed N`: each request's path drawn
//! at random from weighted paths, so uneven work (`?work_us=`) can be offered
//! as a heavy-tailed mix: `--mix /=95 --mix '/?work_us=5000=5'` sends 5 % of
//! the requests 5 ms of work. Each connection draws from its own generator,
//! seeded with `--seed` and its index, so a run's sequence of paths per
//! connection is the same every time.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use runs::MixEntry;

/// The seed when `--seed` is not given: runs are reproducible by default.
pub const DEFAULT_SEED: u64 = 0;

/// Parses one `--mix PATH=WEIGHT`: the weight is after the last `=`, so the
/// path may hold a query (`/?work_us=5000=5`).
pub fn parse_entry(text: &str) -> Result<MixEntry, String> {
    let (path, weight) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{text:?} is not PATH=WEIGHT (e.g. /?work_us=5000=5)"))?;
    if !path.starts_with('/')
        || path.contains('#')
        || path
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_control())
    {
        return Err(format!(
            "{path:?} is not a path starting with / without spaces or fragment"
        ));
    }
    let weight: u32 = weight
        .parse()
        .ok()
        .filter(|&weight| weight > 0)
        .ok_or_else(|| format!("the weight {weight:?} of {path:?} is not a positive integer"))?;
    Ok(MixEntry {
        path: path.to_owned(),
        weight,
    })
}

/// The weighted paths of a run, ready to draw from.
#[derive(Debug, Clone)]
pub struct Mix {
    /// The running sums of the weights, in `--mix` order: path i is drawn for
    /// a number in `[cumulative[i-1], cumulative[i])`.
    cumulative: Vec<u64>,
    /// `--seed`.
    seed: u64,
}

impl Mix {
    /// The mix of `entries` (not empty), drawn with `seed`.
    pub fn new(entries: &[MixEntry], seed: u64) -> Mix {
        let cumulative = entries
            .iter()
            .scan(0u64, |sum, entry| {
                *sum += u64::from(entry.weight);
                Some(*sum)
            })
            .collect();
        Mix { cumulative, seed }
    }

    /// The generator of connection `id`: its own stream of the run's seed.
    pub fn generator(&self, id: usize) -> SmallRng {
        SmallRng::seed_from_u64(self.seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The index of the path of the next request.
    pub fn draw(&self, generator: &mut SmallRng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let point = generator.random_range(0..total);
        self.cumulative.partition_point(|&sum| sum <= point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight is after the last `=`; bad paths and weights are refused.
    #[test]
    fn parses_entries() {
        let entry = parse_entry("/?work_us=5000=5").expect("valid");
        assert_eq!(entry.path, "/?work_us=5000");
        assert_eq!(entry.weight, 5);
        assert_eq!(parse_entry("/=95").expect("valid").path, "/");
        for bad in ["/", "x=1", "/=0", "/=-1", "/=a", "/a b=1", "=1"] {
            assert!(parse_entry(bad).is_err(), "{bad} was accepted");
        }
    }

    /// Draws follow the weights, and the same seed gives the same draws.
    #[test]
    fn draws_by_weight_reproducibly() {
        let entries = [
            parse_entry("/=95").expect("valid"),
            parse_entry("/slow=5").expect("valid"),
        ];
        let mix = Mix::new(&entries, 7);
        let mut generator = mix.generator(3);
        let draws: Vec<usize> = (0..20_000).map(|_| mix.draw(&mut generator)).collect();
        let slow = draws.iter().filter(|&&index| index == 1).count();
        assert!(
            (800..1200).contains(&slow),
            "{slow} of 20,000 drawn at weight 5 %"
        );
        let mut again = mix.generator(3);
        let repeat: Vec<usize> = (0..20_000).map(|_| mix.draw(&mut again)).collect();
        assert_eq!(draws, repeat);
    }
}
