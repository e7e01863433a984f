/// How transient broker failures are retried: a bounded number of attempts with exponentially
/// growing, jittered, capped delays.
public struct RetryPolicy: Sendable, Hashable {
    /// Tries per operation, the first included (default 3; at least 1).
    public var maxAttempts: Int { didSet { if maxAttempts < 1 { maxAttempts = 1 } } }
    /// Delay before the first retry (default 0.5 s; a negative one is zero; at most `Duration.longestWait`).
    public var baseDelay: Duration { didSet { if !(.zero ... .longestWait).contains(baseDelay) { baseDelay = baseDelay.clampedToWait } } }
    /// Growth factor per retry (default 2; at least 1).
    public var multiplier: Int { didSet { if multiplier < 1 { multiplier = 1 } } }
    /// Longest delay (default 10 s; a negative one is zero; at most `Duration.longestWait`).
    public var maxDelay: Duration { didSet { if !(.zero ... .longestWait).contains(maxDelay) { maxDelay = maxDelay.clampedToWait } } }
    /// Fraction of each delay that is randomised, 0 (none) to 1 (full jitter); default 0.5.
    /// Values outside are brought to the nearer end (NaN: none).
    public var jitter: Double { didSet { if !(0...1).contains(jitter) { jitter = Self.clamped(jitter) } } }

    /// A retry policy; defaults: 3 attempts, 0.5 s base, doubling, 10 s cap, half jitter.
    public init(maxAttempts: Int = 3, baseDelay: Duration = .milliseconds(500), multiplier: Int = 2,
                maxDelay: Duration = .seconds(10), jitter: Double = 0.5) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay.clampedToWait
        self.multiplier = max(1, multiplier)
        self.maxDelay = maxDelay.clampedToWait
        self.jitter = Self.clamped(jitter)
    }

    /// A fraction brought into 0...1 (NaN: 0).
    private static func clamped(_ fraction: Double) -> Double {
        fraction.isNaN ? 0 : min(1, max(0, fraction))
    }

    /// Retries immediately: for deterministic replays and tests.
    public static let immediate = RetryPolicy(baseDelay: .zero, maxDelay: .zero, jitter: 0)

    /// The delay before retry number `attempt` (1 = first retry); `unit` in 0..<1 draws the jitter.
    public func delay(beforeRetry attempt: Int, unit: Double) -> Duration {
        var delay = min(baseDelay, maxDelay)
        for _ in 1..<max(1, attempt) {
            // Compared before multiplying, so that no policy can overflow `Duration`.
            if delay >= maxDelay / multiplier { delay = maxDelay; break }
            delay = delay * multiplier
        }
        let kept = 1 - jitter * Self.clamped(unit)
        return kept == 1 ? delay : delay * kept
    }
}

extension Duration {
    /// The longest wait FillGuard takes (10^9 s, about 31 years): a longer delay or limit (a
    /// caller's "for ever", `.seconds(Int64.max)`) is brought down to it, since the clock's
    /// arithmetic traps past 2^63 seconds from now.
    public static let longestWait: Duration = .seconds(1_000_000_000)

    /// This duration brought into `.zero ... longestWait`.
    public var clampedToWait: Duration { min(.longestWait, max(.zero, self)) }
}
