import Synchronization

/// A per-broker request budget: `rate` requests per second on average, bursts up to `capacity`.
public final class TokenBucket: Sendable {
    private struct Inner {
        var nanoTokens: Int64
        var last: ContinuousClock.Instant
    }
    private static let nanosPerToken: Int64 = 1_000_000_000
    private let rate: Int64
    private let capacity: Int64
    private let inner: Mutex<Inner>

    /// A full bucket refilling at `rate` tokens per second, holding at most `capacity`.
    public init(rate: Int, capacity: Int, now: ContinuousClock.Instant = .now) {
        self.rate = Int64(max(1, rate))
        self.capacity = Int64(max(1, capacity))
        self.inner = Mutex(Inner(nanoTokens: Int64(max(1, capacity)) * Self.nanosPerToken, last: now))
    }

    /// Takes a token: nil when granted, else how long until one is available.
    public func take(now: ContinuousClock.Instant) -> Duration? {
        inner.withLock { inner in
            let elapsed = now - inner.last
            if elapsed > .zero {
                let (seconds, attoseconds) = elapsed.components
                let nanos = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
                inner.nanoTokens = min(capacity * Self.nanosPerToken, inner.nanoTokens + min(nanos, 60_000_000_000) * rate)
                inner.last = now
            }
            if inner.nanoTokens >= Self.nanosPerToken {
                inner.nanoTokens -= Self.nanosPerToken
                return nil
            }
            let missing = Self.nanosPerToken - inner.nanoTokens
            return .nanoseconds((missing + rate - 1) / rate)
        }
    }

    /// Returns a token taken for a request that was not sent.
    public func refund() {
        inner.withLock { inner in
            inner.nanoTokens = min(capacity * Self.nanosPerToken, inner.nanoTokens + Self.nanosPerToken)
        }
    }
}
