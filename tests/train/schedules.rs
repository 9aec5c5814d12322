//! Schedules equal transformers' `get_{constant,linear,cosine}_schedule_with_warmup` (and
//! `TrainingArguments.get_warmup_steps` for fractional warmup) at every step.
//! Reference: `schedule_cases()` in tests/parity/make_train_fixtures.py.

use super::fixtures;
use peftc::runtime::train::schedule::Schedule;
use peftc::runtime::train::{ScheduleConfig, ScheduleKind, Warmup};

#[test]
fn schedules_match_transformers_at_every_step() {
    let cases = fixtures::load("schedules");
    let cases = cases.as_array().expect("cases");
    assert_eq!(cases.len(), 9);
    for case in cases {
        let kind = match case["kind"].as_str() {
            Some("constant") => ScheduleKind::Constant,
            Some("linear") => ScheduleKind::Linear,
            Some("cosine") => ScheduleKind::Cosine,
            other => panic!("kind {other:?}"),
        };
        let warmup = match case["warmup"].get("steps") {
            Some(s) => Warmup::Steps(s.as_u64().expect("steps")),
            None => Warmup::Fraction(case["warmup"]["fraction"].as_f64().expect("fraction")),
        };
        let total = case["total"].as_u64().expect("total");
        let base = case["base_lr"].as_f64().expect("base");
        let s = Schedule::new(&ScheduleConfig { kind, warmup }, total);
        assert_eq!(
            s.warmup_steps(),
            case["warmup_steps"].as_u64().expect("w"),
            "{case}"
        );
        let lrs = case["lrs"].as_array().expect("lrs");
        assert_eq!(lrs.len() as u64, total);
        for (step, want) in lrs.iter().enumerate() {
            let want = want.as_f64().expect("lr");
            let got = base * s.factor(step as u64);
            assert!(
                (got - want).abs() <= 1e-15 * want.abs().max(1e-300),
                "{kind:?} {warmup:?} total {total} step {step}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn fractional_warmup_rounds_up() {
    let s = Schedule::new(
        &ScheduleConfig {
            kind: ScheduleKind::Linear,
            warmup: Warmup::Fraction(0.06),
        },
        47,
    );
    // ceil(47 * 0.06) = ceil(2.82) = 3
    assert_eq!(s.warmup_steps(), 3);
    assert_eq!(s.factor(0), 0.0);
    assert_eq!(s.factor(3), 1.0);
    assert_eq!(s.factor(47), 0.0);
}
