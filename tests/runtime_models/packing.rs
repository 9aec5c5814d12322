//! A packed sequence is computed as its examples alone: attention does not cross examples and
//! positions restart at each one. Logits of two examples packed into one row equal (within
//! 1e-5) the logits of each example run by itself, for llama (rotary positions) and GPT-2
//! (learned positions), also next to a padded row in the same batch.

use super::common::{max_abs_diff, parity_dir};
use candle_core::{Device, IndexOp, Tensor};
use peftc::runtime::batch::Example;
use peftc::runtime::data::pack;
use peftc::runtime::models::load::{load_folder, LoadConfig};
use peftc::runtime::train::{Collate, PadCollator};

fn ex(ids: &[u32]) -> Example {
    Example {
        input_ids: ids.to_vec(),
        labels: ids.iter().map(|&i| i64::from(i)).collect(),
        class_label: None,
        packed: Vec::new(),
    }
}

fn check(arch: &str) {
    let model = load_folder(
        &parity_dir().join(arch).join("model"),
        &LoadConfig::default(),
    )
    .unwrap();
    let a = ex(&[5, 17, 42, 9, 33]);
    let b = ex(&[8, 70, 12, 99, 4, 61, 27]);
    let packed = pack(&[a.clone(), b.clone()], 16);
    assert_eq!(packed.len(), 1);
    assert_eq!(packed[0].packed, vec![5, 7]);
    let collate = PadCollator { pad_id: 2 };
    let run = |examples: &[&Example]| -> Tensor {
        let batch = collate.collate(examples, &Device::Cpu).unwrap();
        model
            .forward(&batch.input_ids, &batch.attention_mask, false)
            .unwrap()
    };
    // The packed row next to a shorter, padded row.
    let both = run(&[&packed[0], &a]);
    let alone_a = run(&[&a]);
    let alone_b = run(&[&b]);
    let diff = |x: Tensor, y: Tensor| max_abs_diff(&x, &y);
    let first = diff(both.i((0, 0..5)).unwrap(), alone_a.i((0, 0..5)).unwrap());
    let second = diff(both.i((0, 5..12)).unwrap(), alone_b.i((0, 0..7)).unwrap());
    let padded_row = diff(both.i((1, 0..5)).unwrap(), alone_a.i((0, 0..5)).unwrap());
    assert!(
        first < 1e-5,
        "{arch}: first packed example differs by {first}"
    );
    assert!(
        second < 1e-5,
        "{arch}: second packed example differs by {second}"
    );
    assert!(
        padded_row < 1e-5,
        "{arch}: the padded row differs by {padded_row}"
    );
}

#[test]
fn packed_llama_examples_equal_their_separate_runs() {
    check("llama");
}

#[test]
fn packed_gpt2_examples_equal_their_separate_runs() {
    check("gpt2");
}
