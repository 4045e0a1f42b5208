//! What the fault tests expect of predictions while a dependency is down or flapping (the
//! faults themselves are [`super::chaos::ChaosProxy`]'s).

use std::time::Duration;

use super::chaos::Fault;
use super::predict::Predicted;
use super::wait::poll;
use super::TestApp;

/// A key validated before the fault is served from the cache: 200, fast. `context` starts
/// the failure message.
pub fn assert_warm_key_served(predicted: &Predicted, context: &str) {
    let (status, took) = (predicted.status, predicted.took);
    assert_eq!(status, 200, "{context}warm key");
    assert!(
        took < Duration::from_millis(100),
        "{context}warm key took {took:?}"
    );
}

/// [`assert_warm_key_served`], 20 times in a row, while `fault` holds.
pub async fn assert_warm_key_keeps_working(app: &TestApp, key: &str, fault: Fault) {
    let context = format!("{fault:?}: ");
    for _ in 0..20 {
        assert_warm_key_served(&app.predict(key).await, &context);
    }
}

/// A key nobody has seen may be refused for a moment (503) but never rejected or kept waiting.
pub fn assert_unseen_key_answered(predicted: &Predicted) {
    let (status, took) = (predicted.status, predicted.took);
    assert!(status == 200 || status == 503, "unseen key got {status}");
    assert!(
        took < Duration::from_millis(300),
        "unseen key took {took:?}"
    );
}

/// Once the flapping stops, `key` is served within 5 s.
pub async fn assert_recovers(app: &TestApp, key: &str) {
    poll(
        Duration::from_secs(5),
        Duration::from_millis(100),
        "no recovery after flapping",
        async || (app.predict(key).await.status == 200).then_some(()),
    )
    .await;
}
