/// How transient broker failures are retried: a bounded number of attempts with exponentially
/// growing, jittered, capped delays.
public struct RetryPolicy: Sendable, Hashable {
    /// Tries per operation, the first included (default 3).
    public var maxAttempts: Int
    /// Delay before the first retry (default 0.5 s).
    public var baseDelay: Duration
    /// Growth factor per retry (default 2).
    public var multiplier: Int
    /// Longest delay (default 10 s).
    public var maxDelay: Duration
    /// Fraction of each delay that is randomised, 0 (none) to 1 (full jitter); default 0.5.
    public var jitter: Double

    /// A retry policy; defaults: 3 attempts, 0.5 s base, doubling, 10 s cap, half jitter.
    public init(maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(500), multiplier: Int = 2,
                maxDelay: Duration = .seconds(10), jitter: Double = 0.5) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.multiplier = max(1, multiplier)
        self.maxDelay = maxDelay
        self.jitter = min(1, max(0, jitter))
    }

    /// Retries immediately: for deterministic replays and tests.
    public static let immediate = RetryPolicy(baseDelay: .zero, maxDelay: .zero, jitter: 0)

    /// The delay before retry number `attempt` (1 = first retry); `unit` in 0..<1 draws the jitter.
    public func delay(beforeRetry attempt: Int, unit: Double) -> Duration {
        var delay = baseDelay
        for _ in 1..<max(1, attempt) {
            delay = delay * multiplier
            if delay >= maxDelay { break }
        }
        if delay > maxDelay { delay = maxDelay }
        let kept = 1 - jitter * min(max(unit, 0), 1)
        return delay * kept
    }
}
