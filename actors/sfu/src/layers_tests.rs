use super::*;
use proptest::prelude::*;

fn three() -> Vec<(LayerId, u64)> {
    vec![
        ("high".into(), 1_500_000),
        ("low".into(), 150_000),
        ("mid".into(), 500_000),
    ]
}

#[test]
fn explicit_choices_follow_bitrate_order() {
    assert_eq!(choose_layer(Preference::Low, &three(), 0).unwrap(), "low");
    assert_eq!(choose_layer(Preference::Mid, &three(), 0).unwrap(), "mid");
    assert_eq!(choose_layer(Preference::High, &three(), 0).unwrap(), "high");
    assert_eq!(choose_layer(Preference::High, &[], 0), None);
    let one = vec![(String::new(), 900_000)];
    assert_eq!(choose_layer(Preference::Mid, &one, 0).unwrap(), "");
}

#[test]
fn auto_never_picks_more_than_the_estimate_allows() {
    assert_eq!(
        choose_layer(Preference::Auto, &three(), 5_000_000).unwrap(),
        "high"
    );
    assert_eq!(
        choose_layer(Preference::Auto, &three(), 1_000_000).unwrap(),
        "mid"
    );
    assert_eq!(
        choose_layer(Preference::Auto, &three(), 300_000).unwrap(),
        "low"
    );
    // Nothing fits: the lowest layer rather than nothing.
    assert_eq!(
        choose_layer(Preference::Auto, &three(), 50_000).unwrap(),
        "low"
    );
}

#[test]
fn auto_stays_on_a_layer_while_it_fits_the_whole_estimate() {
    let high: LayerId = "high".into();
    let low: LayerId = "low".into();
    let layers = three();
    let top = layers.iter().find(|(l, _)| *l == high).unwrap().1;
    // Just over the 90 % margin: a new choice would be lower, the current one stays.
    let estimate = top * 105 / 100;
    assert_ne!(
        choose_layer(Preference::Auto, &layers, estimate).unwrap(),
        high
    );
    assert_eq!(
        next_layer(Preference::Auto, &layers, estimate, Some(&high)).unwrap(),
        high
    );
    // Over the whole estimate: down.
    assert_ne!(
        next_layer(Preference::Auto, &layers, top - 1, Some(&high)).unwrap(),
        high
    );
    // Going up still needs the margin; an explicit choice is obeyed at once.
    assert_eq!(
        next_layer(Preference::Auto, &layers, estimate, Some(&low)),
        choose_layer(Preference::Auto, &layers, estimate)
    );
    assert_eq!(
        next_layer(Preference::Low, &layers, estimate, Some(&high)).unwrap(),
        low
    );
}

#[test]
fn estimator_backs_off_on_drops_and_recovers_slowly() {
    let mut e = Estimator::new(2_000_000);
    e.window(1_500_000, 3, Feedback::default());
    assert_eq!(e.bps(), 1_275_000);
    e.window(1_000_000, 0, Feedback::default());
    assert_eq!(e.bps(), 1_275_000, "one quiet window is not enough to grow");
    e.window(1_000_000, 0, Feedback::default());
    assert!(e.bps() > 1_275_000);
}

fn remb(bps: u64) -> Feedback {
    Feedback {
        remb_bps: Some(bps),
        loss: None,
    }
}

#[test]
fn a_receiver_that_cannot_keep_up_caps_the_estimate_then_the_next_layer_is_tried() {
    let mut e = Estimator::new(2_500_000);
    // Sent 1.7 Mbit/s; the player says it takes 300 kbit/s: once may be a dip, twice
    // in a row is a cap.
    e.window(1_700_000, 0, remb(300_000));
    assert_eq!(e.bps(), 2_500_000);
    e.window(1_700_000, 0, remb(300_000));
    assert_eq!(e.bps(), 300_000);
    // On the low layer its REMB is above what it gets: the cap holds, nothing grows.
    for _ in 1..Estimator::HOLD_WINDOWS {
        e.window(150_000, 0, remb(320_000));
        assert!(e.bps() <= 320_000, "held at the highest REMB since the cut");
    }
    assert_eq!(e.bps(), 320_000);
    // The hold ends; the estimate grows again from the cap, 10 % a window.
    e.window(150_000, 0, remb(320_000));
    let held = e.bps();
    assert_eq!(held, 320_000);
    e.window(150_000, 0, remb(320_000));
    e.window(150_000, 0, remb(320_000));
    assert!(e.bps() > held, "{} > {held}", e.bps());
}

#[test]
fn a_remb_near_what_is_sent_or_one_dip_changes_nothing() {
    let mut e = Estimator::new(2_500_000);
    for remb_bps in [1_600_000, 1_100_000, 1_600_000, 1_000_000, 1_600_000] {
        e.window(1_700_000, 0, remb(remb_bps));
    }
    assert!(e.bps() >= 2_500_000, "{}", e.bps());
}

#[test]
fn a_window_keeps_the_latest_remb_and_the_worst_loss() {
    let mut fb = Feedback::default();
    fb.add(remb(900_000));
    fb.add(Feedback {
        remb_bps: None,
        loss: Some(0.2),
    });
    fb.add(Feedback {
        remb_bps: Some(700_000),
        loss: Some(0.05),
    });
    assert_eq!(
        fb,
        Feedback {
            remb_bps: Some(700_000),
            loss: Some(0.2)
        }
    );
}

#[test]
fn reported_loss_over_ten_percent_backs_off_in_proportion() {
    let mut e = Estimator::new(2_000_000);
    let lossy = |loss| Feedback {
        remb_bps: None,
        loss: Some(loss),
    };
    e.window(1_000_000, 0, lossy(0.05));
    assert_eq!(e.bps(), 2_000_000, "5 % loss is tolerated");
    e.window(1_000_000, 0, lossy(0.40));
    assert_eq!(e.bps(), 800_000, "the sent rate less half the loss");
}

#[test]
fn switches_wait_for_a_keyframe_and_keep_sequence_numbers_continuous() {
    let mut s = LayerSwitch::default();
    let low: LayerId = "low".into();
    let high: LayerId = "high".into();
    assert!(s.want(low.clone()));
    assert_eq!(s.packet(&low, 100, false), Forward::Skip, "no keyframe yet");
    assert_eq!(s.packet(&low, 101, true), Forward::Send { seq: 101 });
    assert_eq!(s.packet(&low, 102, false), Forward::Send { seq: 102 });
    assert_eq!(s.packet(&high, 5000, true), Forward::Skip, "not wanted");
    assert!(s.want(high.clone()));
    assert_eq!(
        s.packet(&low, 103, false),
        Forward::Send { seq: 103 },
        "until the switch"
    );
    assert_eq!(s.packet(&high, 5001, false), Forward::Skip);
    assert_eq!(s.packet(&high, 5002, true), Forward::Send { seq: 104 });
    assert_eq!(
        s.packet(&low, 104, false),
        Forward::Skip,
        "old layer dropped"
    );
    assert_eq!(s.packet(&high, 5003, false), Forward::Send { seq: 105 });
    assert_eq!(s.current(), Some(&high));
    assert_eq!(s.switches(), 2);
}

#[test]
fn after_a_restart_the_new_source_starts_on_a_keyframe_and_sequence_numbers_go_on() {
    let mut s = LayerSwitch::default();
    let high: LayerId = "high".into();
    s.want(high.clone());
    assert_eq!(s.packet(&high, 10, true), Forward::Send { seq: 10 });
    assert_eq!(s.packet(&high, 11, false), Forward::Send { seq: 11 });
    assert!(s.restart(), "a keyframe is needed");
    // The new source numbers its packets afresh.
    assert_eq!(
        s.packet(&high, 40_000, false),
        Forward::Skip,
        "no keyframe yet"
    );
    assert_eq!(s.packet(&high, 40_001, true), Forward::Send { seq: 12 });
    assert_eq!(s.packet(&high, 40_002, false), Forward::Send { seq: 13 });
    assert!(!LayerSwitch::default().restart(), "nothing to restart");
}

#[test]
fn layer_rates_measure_per_second() {
    let mut r = LayerRates::default();
    assert!(!r.add(&"a".into(), 1000, 1));
    assert!(!r.add(&"b".into(), 500, 500));
    assert!(r.add(&"a".into(), 1000, 1001));
    let mut rates = r.rates();
    rates.sort();
    assert_eq!(rates, vec![("a".into(), 16_000), ("b".into(), 4_000)]);
}

proptest! {
    /// Whatever the interleaving of layers, keyframes and switch requests, what a
    /// subscriber receives is one layer at a time, each switch lands on a keyframe, and
    /// its sequence numbers advance by exactly the source's steps (+1 across a switch).
    #[test]
    fn output_is_one_continuous_stream(
        events in proptest::collection::vec((0u8..3, any::<bool>(), 0u8..8), 1..400)
    ) {
        let names = ["low", "mid", "high"];
        let mut seqs = [10u16, 30_000, 65_500];
        let mut s = LayerSwitch::default();
        let mut last: Option<(u8, u16, u16)> = None; // (layer, in seq, out seq)
        for (layer, keyframe, action) in events {
            if action == 0 {
                s.want(names[layer as usize].into());
                continue;
            }
            let seq = seqs[layer as usize];
            seqs[layer as usize] = seq.wrapping_add(1);
            match s.packet(&names[layer as usize].into(), seq, keyframe) {
                Forward::Skip => {}
                Forward::Send { seq: out } => {
                    if let Some((prev_layer, prev_in, prev_out)) = last {
                        if prev_layer == layer {
                            prop_assert_eq!(out.wrapping_sub(prev_out), seq.wrapping_sub(prev_in));
                        } else {
                            prop_assert!(keyframe, "a switch must land on a keyframe");
                            prop_assert_eq!(out, prev_out.wrapping_add(1));
                        }
                    }
                    last = Some((layer, seq, out));
                }
            }
        }
    }
}
