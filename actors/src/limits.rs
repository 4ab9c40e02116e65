//! A token bucket with the clock passed in, used for per-connection message rates and
//! per-viewer comment rates. Pure: `now_ms` is always an argument.

/// Allows `burst` events at once and `rate_per_sec` sustained.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_ms: f64,
    burst: f64,
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket. A non-positive rate means "never refills beyond the burst".
    pub fn new(rate_per_sec: f64, burst: u32, now_ms: u64) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate_per_ms: (rate_per_sec.max(0.0)) / 1000.0,
            burst,
            tokens: burst,
            last_ms: now_ms,
        }
    }

    /// Takes one token if available. On refusal returns the ms until one will be.
    pub fn try_take(&mut self, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if self.rate_per_ms > 0.0 {
            Err(((1.0 - self.tokens) / self.rate_per_ms).ceil() as u64)
        } else {
            Err(u64::MAX)
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.rate_per_ms).min(self.burst);
        self.last_ms = self.last_ms.max(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::new(2.0, 3, 0);
        assert!(b.try_take(0).is_ok());
        assert!(b.try_take(0).is_ok());
        assert!(b.try_take(0).is_ok());
        assert_eq!(b.try_take(0), Err(500));
        assert!(b.try_take(500).is_ok());
    }

    proptest! {
        /// Over any window, accepted events never exceed burst + rate × elapsed.
        #[test]
        fn never_exceeds_rate(rate in 0.5f64..100.0, burst in 1u32..20,
                              gaps in proptest::collection::vec(0u64..200, 1..300)) {
            let mut b = TokenBucket::new(rate, burst, 0);
            let mut now = 0u64;
            let mut accepted = 0u64;
            for gap in gaps {
                now += gap;
                if b.try_take(now).is_ok() { accepted += 1; }
            }
            let bound = f64::from(burst) + rate * now as f64 / 1000.0;
            prop_assert!(accepted as f64 <= bound + 1e-6);
        }
    }
}
