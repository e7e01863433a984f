/// One point of a latency distribution: the percentile and the latency at it, in microseconds.
public struct LatencyPoint: Codable, Sendable, Hashable {
    /// Percentile (0...100).
    public var percentile: Double
    /// Latency at that percentile, in microseconds.
    public var micros: Double
}

/// The outcome of one workload run by one implementation (FillGuard or the `seed` baseline).
public struct Measurement: Codable, Sendable {
    /// "throughput", "latency", "calls", "memory-idle", "memory-hot" or "safety".
    public var workload: String
    /// "fillguard" or "seed".
    public var implementation: String
    /// The workload's parameters (symbols, mix, latency, rate, burst, strategy, ...).
    public var parameters: [String: String]
    /// The numbers measured, by name (see `Metric`).
    public var metrics: [String: Double]
    /// Anything a reader must know to interpret the numbers (censored samples, rejections).
    public var notes: [String]
    /// The reaction-latency distribution, for latency workloads.
    public var distribution: [LatencyPoint]?

    /// A measurement.
    public init(workload: String, implementation: String, parameters: [String: String], metrics: [String: Double],
                notes: [String] = [], distribution: [LatencyPoint]? = nil) {
        self.workload = workload
        self.implementation = implementation
        self.parameters = parameters
        self.metrics = metrics
        self.notes = notes
        self.distribution = distribution
    }

    /// Workload and parameters that identify the comparison (FillGuard vs `seed`): everything but
    /// the strategy and the fill count (the seed runs fewer fills where it cannot keep up).
    public var comparisonKey: String {
        workload + "|" + parameters.filter { $0.key != "strategy" && $0.key != "fills" }
            .sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// Comparison key plus implementation and strategy: one row of the results table.
    public var rowKey: String {
        comparisonKey + "|" + implementation + "|" + (parameters["strategy"] ?? "")
    }
}

/// Metric names and which direction is better.
public enum Metric {
    /// Names of metrics where a higher value is better; every other metric is lower-is-better.
    public static let higherIsBetter: Set<String> = ["fillsPerSecond", "achievedFillsPerSecond"]
    /// Metrics that are context, not performance (no ratio is computed for them).
    public static let informational: Set<String> = ["fills", "symbols", "samples", "censored", "rejected", "violations",
                                                    "resizes", "achievedFillsPerSecond", "seconds", "rssStartMiB", "rssMiB", "senderLateP99Micros", "senderLateMaxMicros", "rssGrowthMiB", "roundTripShareSecondsPer1000"]

    /// How many times better FillGuard is than the seed on `name` (above 1: FillGuard is better);
    /// nil when it cannot be computed (informational, or both zero); infinity when FillGuard is zero.
    public static func ratio(_ name: String, fillGuard: Double, seed: Double) -> Double? {
        guard !informational.contains(name) else { return nil }
        if higherIsBetter.contains(name) {
            guard seed > 0 else { return nil }
            return fillGuard / seed
        }
        if fillGuard == 0 { return seed == 0 ? nil : .infinity }
        return seed / fillGuard
    }
}
