//! The option checks the command line relies on, called as library code: each refuses what the
//! trainer or the weights loaders cannot take, naming the option and what is allowed.

use nircolor::models::net::{pick_device, DeviceError, NetArch, NetConfig};
use nircolor::offline::train::ClassicalOptions;
use nircolor::offline::train_net::TrainOptions;

#[test]
fn default_training_options_are_valid() {
    assert_eq!(TrainOptions::default().validate(), Ok(()));
    assert_eq!(ClassicalOptions::default().validate(), Ok(()));
    for arch in NetArch::ALL {
        assert_eq!(arch.default_config().validate(), Ok(()), "{arch:?}");
    }
}

#[test]
fn each_out_of_range_training_option_is_named() {
    let cases: Vec<(TrainOptions, &str, &str)> = vec![
        (
            TrainOptions {
                batch: 0,
                ..Default::default()
            },
            "--batch",
            "at least 1",
        ),
        (
            TrainOptions {
                crop: 8,
                ..Default::default()
            },
            "--crop",
            "at least 16",
        ),
        (
            TrainOptions {
                min_zoom: 0.0,
                ..Default::default()
            },
            "--min-zoom",
            "(0, 1]",
        ),
        (
            TrainOptions {
                lr: f64::NAN,
                ..Default::default()
            },
            "--lr",
            "positive",
        ),
        (
            TrainOptions {
                epochs: 0,
                ..Default::default()
            },
            "--epochs",
            "at least 1",
        ),
        (
            TrainOptions {
                ema: 1.0,
                ..Default::default()
            },
            "--ema",
            "[0, 1)",
        ),
        (
            TrainOptions {
                w_chroma: -1.0,
                ..Default::default()
            },
            "loss weights (--w-*)",
            "0 or positive",
        ),
        (
            TrainOptions {
                w_sat: f64::INFINITY,
                ..Default::default()
            },
            "loss weights (--w-*)",
            "0 or positive",
        ),
        (
            TrainOptions {
                jitter_gain: 1.0,
                ..Default::default()
            },
            "--jitter-gain",
            "[0, 1)",
        ),
        (
            TrainOptions {
                jitter_gamma: 5.0,
                ..Default::default()
            },
            "--jitter-gamma",
            "[0, 4]",
        ),
        (
            TrainOptions {
                jitter_noise: 0.6,
                ..Default::default()
            },
            "--jitter-noise",
            "[0, 0.5]",
        ),
        (
            TrainOptions {
                minutes: Some(0.0),
                ..Default::default()
            },
            "--minutes",
            "positive",
        ),
    ];
    for (o, option, allowed) in cases {
        let e = o.validate().expect_err(option);
        assert_eq!(e.option, option);
        let text = e.to_string();
        assert!(text.starts_with(option) && text.contains(allowed), "{text}");
    }
}

#[test]
fn classical_options_stay_within_what_the_loaders_read() {
    let o = ClassicalOptions {
        stride: 0,
        ..Default::default()
    };
    assert_eq!(o.validate().unwrap_err().option, "--stride");
    let o = ClassicalOptions {
        degree: nircolor::models::linear::MAX_DEGREE + 1,
        ..Default::default()
    };
    let e = o.validate().unwrap_err();
    assert_eq!(e.option, "--degree");
    assert!(e
        .to_string()
        .contains(&nircolor::models::linear::MAX_DEGREE.to_string()));
    let mut o = ClassicalOptions::default();
    o.l3.levels = 0;
    assert_eq!(o.validate().unwrap_err().option, "--levels");
    let mut o = ClassicalOptions::default();
    o.l3.contexts = nircolor::models::l3::MAX_BINS + 1;
    assert_eq!(o.validate().unwrap_err().option, "--contexts");
    let mut o = ClassicalOptions::default();
    o.l3.patch_radius = nircolor::models::l3::MAX_PATCH_RADIUS + 1;
    assert_eq!(o.validate().unwrap_err().option, "--patch-radius");
    let mut o = ClassicalOptions::default();
    o.l3.context_radius = nircolor::models::l3::MAX_CONTEXT_RADIUS + 1;
    assert_eq!(o.validate().unwrap_err().option, "--context-radius");
}

#[test]
fn network_configurations_out_of_range_say_what_is_wrong() {
    let base = NetArch::Fast.default_config();
    let bad = [
        (
            NetConfig {
                width: 0,
                ..base.clone()
            },
            "width",
        ),
        (
            NetConfig {
                in_channels: 17,
                ..base.clone()
            },
            "in_channels",
        ),
        (
            NetConfig {
                scale: 1.5,
                ..base.clone()
            },
            "scale",
        ),
        (
            NetConfig {
                max_pixels: 10,
                ..base.clone()
            },
            "max_pixels",
        ),
        (
            NetConfig {
                detail_eps: 0.0,
                ..base.clone()
            },
            "eps",
        ),
        (
            NetConfig {
                chroma_bins: 2,
                ..base.clone()
            },
            "chroma_bins 2 is outside",
        ),
        (
            NetConfig {
                chroma_bins: 16,
                decoupled: false,
                ..base.clone()
            },
            "chroma_bins needs the decoupled output",
        ),
        (
            NetConfig {
                chroma_temperature: 0.0,
                ..base.clone()
            },
            "chroma_temperature",
        ),
    ];
    for (cfg, what) in bad {
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(what), "{what}: {e}");
    }
}

#[test]
fn device_choices_are_checked() {
    assert_eq!(pick_device("cpu"), Ok(tch::Device::Cpu));
    assert!(pick_device("auto").is_ok());
    let e = pick_device("tpu").unwrap_err();
    assert_eq!(e, DeviceError::Unknown("tpu".into()));
    assert!(e.to_string().contains("auto, cpu, cuda"));
    if !nircolor::runtime::cuda::available() {
        let e = pick_device("cuda").unwrap_err().to_string();
        assert!(e.contains("no CUDA device is usable"), "{e}");
    }
}

#[test]
fn post_processing_options_are_checked_before_a_model_loads() {
    use nircolor::models::colorizer::{validate_post, PostError};
    assert_eq!(validate_post(1e-5, 0.5), Ok(()));
    assert_eq!(validate_post(0.0, 0.5), Err(PostError::Eps(0.0)));
    assert!(matches!(
        validate_post(f32::NAN, 0.5),
        Err(PostError::Eps(_))
    ));
    assert_eq!(validate_post(1e-3, 1.5), Err(PostError::Scale(1.5)));
    assert!(validate_post(1e-3, 0.0)
        .unwrap_err()
        .to_string()
        .contains("(0, 1]"));
}
