//! Sharding a fleet: N daemons share one configuration, and each serves the cameras that a
//! stable hash of the camera id assigns to it (rendezvous hashing). Adding a shard moves only
//! the cameras the new shard wins, about 1/(N+1) of them, and nothing else.

use std::str::FromStr;

/// The most shards a fleet may have: far beyond any camera count one configuration lists.
pub const MAX_SHARDS: u32 = 1024;

/// The environment variable `--shard auto` reads the shard count from (the StatefulSet's
/// replica count, set beside it in the manifest).
pub const SHARDS_ENV: &str = "NIRCOLOR_SHARDS";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShardError {
    #[error("shard '{0}' is not I/N (e.g. 0/3: the first of three) or auto")]
    Syntax(String),
    #[error("shard {index}/{count}: I must be below N, and N between 1 and {MAX_SHARDS}")]
    Range { index: u32, count: u32 },
    #[error("--shard auto takes its index from the host name's trailing ordinal (a StatefulSet pod is NAME-I), and '{0}' has none; give --shard I/N")]
    NoOrdinal(String),
    #[error("--shard auto needs the shard count in ${SHARDS_ENV} (the StatefulSet's replicas); it is {0}")]
    NoCount(String),
}

/// This instance's share: shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| ShardError::Syntax(s.into()))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| ShardError::Syntax(s.into()))
        };
        Shard::new(parse(i)?, parse(n)?)
    }
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(ShardError::Range { index, count });
        }
        Ok(Shard { index, count })
    }

    /// `--shard auto`: the index from a StatefulSet pod's host name (`nircolor-2` is shard 2),
    /// the count from [`SHARDS_ENV`].
    pub fn auto(hostname: &str, count: Option<&str>) -> Result<Shard, ShardError> {
        let ordinal = hostname
            .rsplit_once('-')
            .and_then(|(_, i)| i.parse::<u32>().ok())
            .ok_or_else(|| ShardError::NoOrdinal(hostname.into()))?;
        let count = match count {
            None => return Err(ShardError::NoCount("unset".into())),
            Some(c) => c
                .trim()
                .parse::<u32>()
                .map_err(|_| ShardError::NoCount(format!("'{c}'")))?,
        };
        Shard::new(ordinal, count)
    }

    /// Whether this shard serves `camera`.
    pub fn owns(&self, camera: &str) -> bool {
        owner(camera, self.count) == self.index
    }
}

/// The shard of `count` that serves `camera`: the one with the highest hash of (camera, shard).
/// Depends only on the id and the count, so every instance agrees without talking to the
/// others, and a camera keeps its shard when others are added or removed.
pub fn owner(camera: &str, count: u32) -> u32 {
    let id = fnv1a(camera.as_bytes());
    (0..count.max(1))
        .max_by_key(|&shard| mix(id ^ mix(u64::from(shard) + 1)))
        .unwrap_or(0)
}

/// FNV-1a, 64 bits: a fixed, documented hash, so assignments never change with the Rust version
/// (std's `DefaultHasher` may).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads FNV's weak low bits so each shard's score is independent.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cameras(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("cam-{i}")).collect()
    }

    #[test]
    fn every_camera_has_exactly_one_shard_and_the_load_is_even() {
        let ids = cameras(3000);
        let mut per_shard = [0usize; 3];
        for id in &ids {
            let owners: Vec<u32> = (0..3)
                .filter(|&i| Shard::new(i, 3).unwrap().owns(id))
                .collect();
            assert_eq!(owners.len(), 1, "{id}: {owners:?}");
            per_shard[owners[0] as usize] += 1;
        }
        for n in per_shard {
            assert!((900..1100).contains(&n), "{per_shard:?}");
        }
    }

    #[test]
    fn adding_a_shard_moves_only_the_cameras_the_new_shard_takes() {
        for n in [9, 1000] {
            let ids = cameras(n);
            let moved: Vec<&String> = ids
                .iter()
                .filter(|id| owner(id, 3) != owner(id, 4))
                .collect();
            assert!(
                moved.iter().all(|id| owner(id, 4) == 3),
                "moved between old shards"
            );
            // Rendezvous hashing moves 1/4 on average; the bar is half.
            assert!(moved.len() * 2 <= n, "{} of {n} moved", moved.len());
            if n == 1000 {
                assert!((180..320).contains(&moved.len()), "{}", moved.len());
            }
        }
    }

    #[test]
    fn shards_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!("1/3".parse(), Ok(Shard { index: 1, count: 3 }));
        assert!(matches!(
            "3/3".parse::<Shard>(),
            Err(ShardError::Range { .. })
        ));
        assert!(matches!(
            "0/0".parse::<Shard>(),
            Err(ShardError::Range { .. })
        ));
        assert!(matches!("x".parse::<Shard>(), Err(ShardError::Syntax(_))));
        assert_eq!(
            Shard::auto("nircolor-2", Some("3")),
            Ok(Shard { index: 2, count: 3 })
        );
        assert!(matches!(
            Shard::auto("laptop", Some("3")),
            Err(ShardError::NoOrdinal(_))
        ));
        assert!(matches!(
            Shard::auto("nircolor-2", None),
            Err(ShardError::NoCount(_))
        ));
        assert!(matches!(
            Shard::auto("nircolor-3", Some("3")),
            Err(ShardError::Range { .. })
        ));
    }

    #[test]
    fn the_assignment_is_fixed_across_builds() {
        // Pinned: a change of hash would move every camera of every fleet on upgrade.
        let got: Vec<u32> = cameras(9).iter().map(|id| owner(id, 3)).collect();
        assert_eq!(got, PINNED);
    }

    const PINNED: [u32; 9] = [1, 2, 2, 0, 0, 1, 2, 2, 2];
}
