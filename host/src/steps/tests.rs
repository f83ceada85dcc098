//! Tests of `steps`.

use super::*;
use crate::checkpoint::CheckpointError;
use crate::data::{LABEL_NAMES, label_names};
use crate::prune::ModelPruner;
use rand::{RngExt, SeedableRng};

/// A Dense MLP, a Conv1d model with global average pooling, and one that flattens a sequence into a Dense
/// layer (whose weight columns the blob stores in another order); every layer's inputs a multiple of 4, so
/// that 2:4 pruning applies.
const ARCHS: [&str; 3] = [
    "name = \"mlp\"\nclasses = 3\n[input]\ntime_steps = 1\nfeatures = 8\n\
     [[layers]]\ntype = \"dense\"\nout = 8\n[[layers]]\ntype = \"relu\"\n\
     [[layers]]\ntype = \"dense\"\nout = 3\n",
    "name = \"gap\"\nclasses = 3\n[input]\ntime_steps = 8\nfeatures = 4\n\
     [[layers]]\ntype = \"conv1d\"\nout = 8\nkernel = 3\npadding = \"causal\"\n\
     [[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"global_avg_pool\"\n\
     [[layers]]\ntype = \"dense\"\nout = 3\n",
    "name = \"flat\"\nclasses = 3\n[input]\ntime_steps = 4\nfeatures = 4\n\
     [[layers]]\ntype = \"conv1d\"\nout = 4\nkernel = 2\nstride = 2\n\
     [[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"flatten\"\n\
     [[layers]]\ntype = \"dense\"\nout = 3\n",
];

/// What the blob and the checkpoint record about `model`'s data.
fn records(model: &Sequential) -> (ExportInfo, Preprocess) {
    let f = model.arch.input.features;
    let names: Vec<String> = (0..f).map(|i| format!("f{i}")).collect();
    let info = ExportInfo {
        name: model.arch.name.clone(),
        feature_names: names.clone(),
        label_names: label_names(),
        mean: vec![0.0; f],
        std: vec![1.0; f],
        data_hash: [7; 32],
        feature_spec: None,
    };
    let pre = Preprocess {
        feature_names: names,
        label_names: LABEL_NAMES.iter().map(|s| (*s).to_string()).collect(),
        normalizer: Normalizer {
            mean: vec![0.0; f],
            std: vec![1.0; f],
        },
        data_sha256: hex(&[7; 32]),
        dataset: DatasetConfig::default(),
        split: SplitConfig::default(),
    };
    (info, pre)
}

/// `model`'s blob, calibrated on seeded random inputs; `None` when the format does not fit a layer.
fn blob(model: &Sequential, config: &QuantConfig, format: WeightFormat) -> Option<Vec<u8>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let calibration =
        Array2::from_shape_fn((64, model.input_len()), |_| rng.random::<f32>() * 4.0 - 2.0);
    let (info, _) = records(model);
    let options = EncodeOptions {
        weight_format: format,
        target: Target::native(),
    };
    quant::static_quantize_with(model, calibration.view(), &info, config, &options)
        .ok()
        .map(|q| q.blob)
}

#[test]
fn a_blob_matches_its_own_checkpoint_in_every_format_and_no_other() {
    let configs = [
        QuantConfig::default(),
        QuantConfig {
            backend: quant::config::Backend::Fpga,
            ..QuantConfig::default()
        },
    ];
    let formats = [
        WeightFormat::Auto,
        WeightFormat::Smallest,
        WeightFormat::Blocked,
        WeightFormat::DenseDot,
        WeightFormat::Sparse,
        WeightFormat::Columns,
        WeightFormat::Packed,
        WeightFormat::NM,
    ];
    let mut checked = 0;
    for arch in ARCHS {
        let arch = Architecture::from_toml_str(arch).unwrap();
        let plain = Sequential::new(arch.clone(), 1).unwrap();
        // Pruned 2:4 (so the N:M format applies) with masks kept.
        let mut pruned = plain.clone();
        ModelPruner::new(&mut pruned).nm_pruning(2, 4).unwrap();
        let other_seed = Sequential::new(arch, 2).unwrap();
        for model in [&plain, &pruned] {
            let (_, pre) = records(model);
            for config in &configs {
                for format in formats {
                    let Some(bytes) = blob(model, config, format) else {
                        continue;
                    };
                    let loaded = tickq_core::Model::load(&bytes).unwrap();
                    let what = format!("{} {format:?} {:?}", model.arch.name, config.backend);
                    assert_eq!(check_blob_of(&loaded, model, &pre), Ok(()), "{what}");
                    checked += 1;
                    // Another training run of the same architecture, on the same data.
                    assert!(
                        matches!(
                            check_blob_of(&loaded, &other_seed, &pre),
                            Err(BlobMismatch::Weights { .. })
                        ),
                        "{what}"
                    );
                }
            }
        }
        // One weight moved by a few quantization steps is caught, naming the layer and channel.
        let mut edited = plain.clone();
        let Some(crate::model::Layer::Dense(d)) = edited.layers.last_mut() else {
            panic!("the last layer is dense")
        };
        let max = d.weight.row(2).iter().fold(0.0f32, |m, v| m.max(v.abs()));
        d.weight[[2, 0]] += 0.05 * max;
        let name = d.name.clone();
        let bytes = blob(&edited, &configs[0], WeightFormat::Auto).unwrap();
        let loaded = tickq_core::Model::load(&bytes).unwrap();
        let (_, pre) = records(&plain);
        assert_eq!(
            check_blob_of(&loaded, &plain, &pre),
            Err(BlobMismatch::Weights {
                layer: name,
                channel: 2
            })
        );
    }
    assert!(checked >= 40, "{checked} blobs checked");
}

/// The library's `load_checkpoint` refuses what `tickq` refuses: a `preprocess.json` that does not fit the
/// architecture, naming the file, the field and the index.
#[test]
fn load_checkpoint_checks_the_preprocess_record() {
    let dir = std::env::temp_dir().join(format!("tickq-pipeline-pre-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model = Sequential::new(Architecture::from_toml_str(ARCHS[0]).unwrap(), 1).unwrap();
    let (_, mut pre) = records(&model);
    // `records` names the features `f0`, `f1`, ...; a real record has the dataset's names.
    pre.feature_names = pre.dataset.features.feature_names();
    let features = pre.feature_names.len();
    let model = {
        let mut arch = model.arch.clone();
        arch.input.features = features;
        Sequential::new(arch, 1).unwrap()
    };
    pre.normalizer = Normalizer {
        mean: vec![0.0; features],
        std: vec![1.0; features],
    };
    save_checkpoint(&dir, &model, &pre).unwrap();
    let (back, pre_back) = load_checkpoint(&dir).unwrap();
    assert_eq!((back, &pre_back), (model.clone(), &pre));
    pre.normalizer.std[1] = -1.0;
    save_checkpoint(&dir, &model, &pre).unwrap();
    let e = load_checkpoint(&dir).unwrap_err();
    assert!(
        matches!(
            &e,
            PipelineError::Checkpoint(CheckpointError::InvalidPreprocess {
                field: "normalizer.std",
                index: Some(1),
                ..
            })
        ),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "{}: normalizer.std[1]: -1 is below 1e-6",
            dir.join("preprocess.json").display()
        )),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dynamic_blobs_match_their_checkpoint() {
    let model = Sequential::new(Architecture::from_toml_str(ARCHS[0]).unwrap(), 4).unwrap();
    let (info, pre) = records(&model);
    let q = quant::ModelQuantizer::new(&model, &info)
        .dynamic_quantize()
        .unwrap();
    let loaded = tickq_core::Model::load(&q.blob).unwrap();
    assert_eq!(check_blob_of(&loaded, &model, &pre), Ok(()));
}

#[test]
fn a_blob_of_another_model_names_the_first_difference() {
    let archs: Vec<Architecture> = ARCHS
        .iter()
        .map(|a| Architecture::from_toml_str(a).unwrap())
        .collect();
    let model = Sequential::new(archs[0].clone(), 1).unwrap();
    let (_, pre) = records(&model);
    let bytes = blob(&model, &QuantConfig::default(), WeightFormat::Auto).unwrap();
    let loaded = tickq_core::Model::load(&bytes).unwrap();
    let field = |m: &Sequential, p: &Preprocess| match check_blob_of(&loaded, m, p) {
        Err(BlobMismatch::Field { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let mut renamed = model.clone();
    renamed.arch.name = "other".into();
    assert_eq!(field(&renamed, &pre), "model name");
    let e = check_blob_of(&loaded, &renamed, &pre).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the model name is `mlp` in the blob and `other` in the checkpoint"
    );
    let mut wider = archs[0].clone();
    wider.input.features = 12;
    let wider = Sequential::new(wider, 1).unwrap();
    assert_eq!(field(&wider, &pre), "input shape");
    let mut p = pre.clone();
    p.feature_names[5] = "g".into();
    assert_eq!(field(&model, &p), "feature 5");
    let mut p = pre.clone();
    p.label_names.pop();
    assert_eq!(field(&model, &p), "number of labels");
    let mut p = pre.clone();
    p.data_sha256 = hex(&[8; 32]);
    assert_eq!(field(&model, &p), "training data (SHA-256)");
    let mut deeper = archs[0].to_toml_string().unwrap();
    deeper = deeper.replace("out = 8", "out = 9");
    let deeper = Sequential::new(Architecture::from_toml_str(&deeper).unwrap(), 1).unwrap();
    assert_eq!(field(&deeper, &pre), "weighted layer 1");
}
