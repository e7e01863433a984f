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

    /// The most tokens per second and the largest capacity (a billion each: far beyond any broker);
    /// larger values are brought down to it, so the arithmetic cannot overflow.
    public static let largest = 1_000_000_000

    /// A full bucket refilling at `rate` tokens per second, holding at most `capacity` (each from 1
    /// to `largest`).
    public init(rate: Int, capacity: Int, now: ContinuousClock.Instant = .now) {
        self.rate = Int64(min(Self.largest, max(1, rate)))
        self.capacity = Int64(min(Self.largest, max(1, capacity)))
        self.inner = Mutex(Inner(nanoTokens: self.capacity * Self.nanosPerToken, last: now))
    }

    /// Takes a token: nil when granted, else how long until one is available.
    public func take(now: ContinuousClock.Instant) -> Duration? {
        inner.withLock { inner in
            let elapsed = now - inner.last
            if elapsed > .zero {
                // In 128 bits: a long idle gap times a high rate does not fit in 64.
                let (seconds, attoseconds) = elapsed.components
                let nanos = Int128(seconds) * 1_000_000_000 + Int128(attoseconds / 1_000_000_000)
                let full = Int128(capacity * Self.nanosPerToken)
                inner.nanoTokens = Int64(min(full, Int128(inner.nanoTokens) + nanos * Int128(rate)))
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
