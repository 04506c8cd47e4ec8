//! Model weights on disk: safetensors files whose metadata carries `format = "nircolor"`, the
//! architecture and a JSON model card. Loading checks all three and every tensor's shape, so a
//! wrong, truncated or foreign file is an error naming the file, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

const FORMAT_KEY: &str = "format";
const FORMAT: &str = "nircolor";

/// What is wrong with a weights file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights file {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("cannot write weights file {file}: {source}")]
    Write {
        file: String,
        source: std::io::Error,
    },
    #[error("{file} is not a safetensors file or is truncated ({why}); re-create it with `nircolor train`")]
    NotSafetensors { file: String, why: String },
    #[error("{file} is a safetensors file but not a nircolor model (no `format = nircolor` in its metadata); train one with `nircolor train`")]
    Foreign { file: String },
    #[error("{file} holds a '{found}' model but a '{expected}' model was expected")]
    WrongArch {
        file: String,
        expected: String,
        found: String,
    },
    #[error("{file} holds arch '{arch}', which this nircolor does not know (known: {known})")]
    UnknownArch {
        file: String,
        arch: String,
        known: String,
    },
    #[error("{file} lacks tensor '{name}'; the file is incomplete or from another version")]
    MissingTensor { file: String, name: String },
    #[error("{file}: tensor '{name}' has shape {found:?} and type {dtype}, expected {expected:?} and F32 or F16")]
    BadShape {
        file: String,
        name: String,
        found: Vec<usize>,
        dtype: String,
        expected: Vec<usize>,
    },
    #[error("{file}: tensor '{name}' holds NaN or infinite values; the training run that wrote it diverged")]
    NotFinite { file: String, name: String },
    #[error("{file}: model card is not valid JSON ({why})")]
    BadCard { file: String, why: String },
    #[error("{file}: {why}")]
    Invalid { file: String, why: String },
}

/// A loaded weights file: its architecture, model card and f32 tensors.
#[derive(Clone, Debug)]
pub struct Weights {
    /// Where it came from, for error messages.
    pub origin: String,
    pub arch: String,
    pub card: serde_json::Value,
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Weights {
    pub fn new(arch: &str, card: serde_json::Value) -> Self {
        Weights {
            origin: String::from("(in memory)"),
            arch: arch.to_string(),
            card,
            tensors: BTreeMap::new(),
        }
    }

    pub fn insert(&mut self, name: &str, shape: Vec<usize>, data: Vec<f32>) {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "tensor '{name}': data does not match shape"
        );
        self.tensors.insert(name.to_string(), (shape, data));
    }

    /// The tensor `name`, which must have exactly `shape` (use `None` for a dimension read from
    /// the file) and only finite values.
    pub fn tensor(
        &self,
        name: &str,
        shape: &[Option<usize>],
    ) -> Result<(&[usize], &[f32]), WeightsError> {
        let (found, data) = self
            .tensors
            .get(name)
            .ok_or_else(|| WeightsError::MissingTensor {
                file: self.origin.clone(),
                name: name.to_string(),
            })?;
        let fits = found.len() == shape.len()
            && found
                .iter()
                .zip(shape)
                .all(|(f, s)| s.is_none_or(|s| s == *f));
        if !fits {
            return Err(WeightsError::BadShape {
                file: self.origin.clone(),
                name: name.to_string(),
                found: found.clone(),
                dtype: "F32".into(),
                expected: shape.iter().map(|s| s.unwrap_or(0)).collect(),
            });
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(WeightsError::NotFinite {
                file: self.origin.clone(),
                name: name.to_string(),
            });
        }
        Ok((found, data))
    }

    /// A copy without the tensors whose names start with `prefix`.
    pub fn without_prefix(&self, prefix: &str) -> Weights {
        let mut w = self.clone();
        w.tensors.retain(|k, _| !k.starts_with(prefix));
        w
    }

    /// The names of every tensor held.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn expect_arch(&self, arch: &str) -> Result<(), WeightsError> {
        if self.arch != arch {
            return Err(WeightsError::WrongArch {
                file: self.origin.clone(),
                expected: arch.into(),
                found: self.arch.clone(),
            });
        }
        Ok(())
    }

    pub fn invalid(&self, why: impl Into<String>) -> WeightsError {
        WeightsError::Invalid {
            file: self.origin.clone(),
            why: why.into(),
        }
    }

    /// The safetensors file: every tensor as F32.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.serialize(Storage::F32)
    }

    /// The safetensors file with large tensors stored as F16 where their values fit (see
    /// `fits_f16`), F32 otherwise: half the size for shipped models, read back as f32.
    /// Training checkpoints stay F32 so a resumed run continues exactly.
    pub fn to_bytes_half(&self) -> Vec<u8> {
        self.serialize(Storage::Half)
    }

    fn serialize(&self, storage: Storage) -> Vec<u8> {
        let encoded: Vec<(&String, &Vec<usize>, Dtype, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, (shape, data))| {
                let (dtype, bytes) = match storage {
                    Storage::Half if fits_f16(data) => (Dtype::F16, f16_le_bytes(data)),
                    _ => (Dtype::F32, f32_le_bytes(data)),
                };
                (name, shape, dtype, bytes)
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = encoded
            .iter()
            .map(|(name, shape, dtype, bytes)| {
                let view =
                    TensorView::new(*dtype, (*shape).clone(), bytes).expect("shape matches data");
                ((*name).clone(), view)
            })
            .collect();
        let meta = HashMap::from([
            (FORMAT_KEY.to_string(), FORMAT.to_string()),
            ("arch".to_string(), self.arch.clone()),
            (
                "card".to_string(),
                serde_json::to_string_pretty(&self.card).expect("JSON values serialise"),
            ),
        ]);
        safetensors::serialize(views, Some(meta)).expect("valid tensors serialise")
    }

    pub fn save(&self, path: &Path) -> Result<(), WeightsError> {
        self.write(path, self.to_bytes())
    }

    /// [`save`](Self::save) with [`to_bytes_half`](Self::to_bytes_half)'s storage.
    pub fn save_half(&self, path: &Path) -> Result<(), WeightsError> {
        self.write(path, self.to_bytes_half())
    }

    fn write(&self, path: &Path, bytes: Vec<u8>) -> Result<(), WeightsError> {
        let file = path.display().to_string();
        // Write beside and rename, so an interrupted save never leaves a truncated model behind.
        let tmp = path.with_extension("safetensors.partial");
        fs::write(&tmp, bytes).map_err(|source| WeightsError::Write {
            file: file.clone(),
            source,
        })?;
        fs::rename(&tmp, path).map_err(|source| WeightsError::Write { file, source })
    }

    pub fn load(path: &Path) -> Result<Weights, WeightsError> {
        let file = path.display().to_string();
        let bytes = fs::read(path).map_err(|source| WeightsError::Read {
            file: file.clone(),
            source,
        })?;
        Weights::from_bytes(&bytes, &file)
    }

    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Weights, WeightsError> {
        let file = origin.to_string();
        let (_, meta) =
            SafeTensors::read_metadata(bytes).map_err(|e| WeightsError::NotSafetensors {
                file: file.clone(),
                why: e.to_string(),
            })?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::NotSafetensors {
            file: file.clone(),
            why: e.to_string(),
        })?;
        let info = meta.metadata().clone().unwrap_or_default();
        if info.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
            return Err(WeightsError::Foreign { file });
        }
        let arch = info
            .get("arch")
            .cloned()
            .ok_or_else(|| WeightsError::Foreign { file: file.clone() })?;
        let card = match info.get("card") {
            Some(text) => serde_json::from_str(text).map_err(|e| WeightsError::BadCard {
                file: file.clone(),
                why: e.to_string(),
            })?,
            None => serde_json::Value::Null,
        };
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => view
                    .data()
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                other => {
                    return Err(WeightsError::BadShape {
                        file,
                        name,
                        found: view.shape().to_vec(),
                        dtype: format!("{other:?}"),
                        expected: view.shape().to_vec(),
                    })
                }
            };
            tensors.insert(name, (view.shape().to_vec(), data));
        }
        Ok(Weights {
            origin: file,
            arch,
            card,
            tensors,
        })
    }
}

/// How tensors are stored in a file.
#[derive(Clone, Copy)]
enum Storage {
    F32,
    Half,
}

/// Little-endian bytes, as safetensors stores them, whatever the host's byte order.
fn f32_le_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f16_le_bytes(data: &[f32]) -> Vec<u8> {
    data.iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect()
}

/// Tensors smaller than this stay F32 under half storage: they are biases and normalisation
/// statistics, where each value matters alone (a running variance of 1e-6 would lose 6% as an
/// F16 subnormal) and which weigh nothing in the file.
const HALF_MIN_LEN: usize = 1024;

/// Whether a tensor is stored as F16: a large one (convolution and dense weights) whose values
/// are finite and within F16's range. Its values keep 11 significant bits; values below F16's
/// normal range keep an absolute precision of 6e-8, negligible beside the tensor's large ones.
fn fits_f16(data: &[f32]) -> bool {
    let hi = f32::from(half::f16::MAX);
    data.len() >= HALF_MIN_LEN && data.iter().all(|v| v.is_finite() && v.abs() <= hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Weights {
        let mut w = Weights::new("linear", serde_json::json!({"degree": 3}));
        w.insert(
            "coef",
            vec![4, 3],
            (0..12).map(|v| v as f32 * 0.5).collect(),
        );
        w
    }

    #[test]
    fn half_storage_is_half_the_size_and_keeps_what_f16_cannot_hold_in_f32() {
        let mut w = sample();
        let big: Vec<f32> = (0..2000).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        w.insert("big", vec![2000], big.clone());
        w.insert("tiny", vec![2], vec![1e-7, 0.5]);
        let mut huge = vec![0.5f32; 2000];
        huge[7] = 1e6;
        w.insert("huge", vec![2000], huge.clone());
        let full = w.to_bytes();
        let half = w.to_bytes_half();
        assert!(
            half.len() < full.len() - 1800,
            "{} vs {}",
            half.len(),
            full.len()
        );
        let back = Weights::from_bytes(&half, "h").unwrap();
        let (_, got) = back.tensor("big", &[Some(2000)]).unwrap();
        for (a, b) in got.iter().zip(&big) {
            assert!((a - b).abs() <= b.abs() / 1024.0 + 1e-7, "{a} vs {b}");
        }
        // Small tensors, and values beyond F16's range: stored as F32, exact.
        assert_eq!(back.tensor("tiny", &[Some(2)]).unwrap().1, &[1e-7, 0.5]);
        assert_eq!(back.tensor("huge", &[Some(2000)]).unwrap().1, &huge[..]);
        // Once in F16, saving again the same way changes nothing.
        let again = Weights::from_bytes(&back.to_bytes_half(), "h").unwrap();
        assert_eq!(again.tensors, back.tensors);
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let w = sample();
        let back = Weights::from_bytes(&w.to_bytes(), "mem").unwrap();
        assert_eq!(back.arch, "linear");
        assert_eq!(back.card["degree"], 3);
        assert_eq!(
            back.tensor("coef", &[Some(4), Some(3)]).unwrap().1,
            w.tensor("coef", &[None, None]).unwrap().1
        );
    }

    #[test]
    fn truncated_file_is_an_error_naming_it() {
        let bytes = sample().to_bytes();
        let err = Weights::from_bytes(&bytes[..bytes.len() - 7], "m.safetensors").unwrap_err();
        assert!(matches!(err, WeightsError::NotSafetensors { .. }), "{err}");
        assert!(err.to_string().contains("m.safetensors"));
        let err = Weights::from_bytes(b"not a model at all", "junk.bin").unwrap_err();
        assert!(err.to_string().contains("junk.bin"));
    }

    #[test]
    fn foreign_safetensors_is_rejected() {
        let data = [1.0f32, 2.0];
        let bytes = f32_le_bytes(&data);
        let view = TensorView::new(Dtype::F32, vec![2], &bytes).unwrap();
        let bytes = safetensors::serialize([("x", view)], None).unwrap();
        assert!(matches!(
            Weights::from_bytes(&bytes, "f").unwrap_err(),
            WeightsError::Foreign { .. }
        ));
    }

    #[test]
    fn shape_and_arch_are_checked() {
        let w = sample();
        assert!(matches!(
            w.tensor("coef", &[Some(3), Some(3)]).unwrap_err(),
            WeightsError::BadShape { .. }
        ));
        assert!(matches!(
            w.tensor("nope", &[None]).unwrap_err(),
            WeightsError::MissingTensor { .. }
        ));
        assert!(matches!(
            w.expect_arch("l3").unwrap_err(),
            WeightsError::WrongArch { .. }
        ));
    }
}
