//! Collation pads, masks and keeps labels aligned.

use candle_core::Device;
use peftc::runtime::batch::Example;
use peftc::runtime::data::{collate, CollateConfig, CollateError, PaddingSide};

fn lm(ids: &[u32], labels: &[i64]) -> Example {
    Example {
        input_ids: ids.to_vec(),
        labels: labels.to_vec(),
        class_label: None,
        packed: Vec::new(),
    }
}

#[test]
fn right_padding_with_multiple() {
    let ex = [lm(&[5, 6, 7], &[-100, 6, 7]), lm(&[8], &[8])];
    let cfg = CollateConfig {
        pad_id: 0,
        pad_to_multiple_of: Some(4),
        side: PaddingSide::Right,
    };
    let b = collate(&ex, &cfg, &Device::Cpu).unwrap();
    assert_eq!(
        b.input_ids.to_vec2::<u32>().unwrap(),
        vec![vec![5, 6, 7, 0], vec![8, 0, 0, 0]]
    );
    assert_eq!(
        b.attention_mask.to_vec2::<u8>().unwrap(),
        vec![vec![1, 1, 1, 0], vec![1, 0, 0, 0]]
    );
    assert_eq!(
        b.labels.unwrap().to_vec2::<i64>().unwrap(),
        vec![vec![-100, 6, 7, -100], vec![8, -100, -100, -100]]
    );
    assert!(b.class_labels.is_none());
    assert_eq!(b.tokens, 4);
}

#[test]
fn left_padding_and_classification() {
    let ex = [
        Example {
            input_ids: vec![1, 2],
            labels: vec![],
            class_label: Some(1),
            packed: Vec::new(),
        },
        Example {
            input_ids: vec![3, 4, 5],
            labels: vec![],
            class_label: Some(0),
            packed: Vec::new(),
        },
    ];
    let mut cfg = CollateConfig::new(9);
    cfg.side = PaddingSide::Left;
    let b = collate(&ex, &cfg, &Device::Cpu).unwrap();
    assert_eq!(
        b.input_ids.to_vec2::<u32>().unwrap(),
        vec![vec![9, 1, 2], vec![3, 4, 5]]
    );
    assert_eq!(
        b.attention_mask.to_vec2::<u8>().unwrap(),
        vec![vec![0, 1, 1], vec![1, 1, 1]]
    );
    assert_eq!(
        b.class_labels.unwrap().to_vec1::<u32>().unwrap(),
        vec![1, 0]
    );
    assert!(b.labels.is_none());
}

#[test]
fn refuses_empty_and_mixed() {
    let cfg = CollateConfig::new(0);
    assert!(matches!(
        collate(&[], &cfg, &Device::Cpu),
        Err(CollateError::Empty)
    ));
    let ex = [
        lm(&[1], &[1]),
        Example {
            input_ids: vec![2],
            labels: vec![],
            class_label: Some(0),
            packed: Vec::new(),
        },
    ];
    let e = collate(&ex, &cfg, &Device::Cpu).unwrap_err();
    assert_eq!(
        e.to_string(),
        "example 1 is a classification example but example 0 is a causal LM example"
    );
}
