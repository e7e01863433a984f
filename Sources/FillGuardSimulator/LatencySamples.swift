import Histogram

/// Reaction latencies of a session, in an HDR histogram (microsecond resolution).
struct LatencySamples: Sendable {
    private var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)

    mutating func record(_ latency: Duration) {
        let (seconds, attoseconds) = latency.components
        let micros = max(0, seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
        _ = histogram.record(UInt64(min(micros, 60_000_000)))
    }

    func summary() -> LatencySummary {
        LatencySummary(
            count: Int(histogram.totalCount),
            p50: histogram.totalCount == 0 ? 0 : Int(histogram.valueAtPercentile(50)),
            p90: histogram.totalCount == 0 ? 0 : Int(histogram.valueAtPercentile(90)),
            p99: histogram.totalCount == 0 ? 0 : Int(histogram.valueAtPercentile(99)),
            p999: histogram.totalCount == 0 ? 0 : Int(histogram.valueAtPercentile(99.9)),
            max: histogram.totalCount == 0 ? 0 : Int(histogram.max))
    }
}

/// Percentiles of fill-to-protective-operation latency, in microseconds.
public struct LatencySummary: Sendable, Hashable, Codable {
    /// Samples recorded.
    public var count: Int
    /// Median.
    public var p50: Int
    /// 90th percentile.
    public var p90: Int
    /// 99th percentile.
    public var p99: Int
    /// 99.9th percentile.
    public var p999: Int
    /// Largest.
    public var max: Int
}

extension LatencySummary {
    /// The JSON members: the count, then each percentile, null when there is no sample.
    var jsonFields: [(String, String)] {
        let values = [("p50", p50), ("p90", p90), ("p99", p99), ("p999", p999), ("max", max)]
        return [("count", "\(count)")] + values.map { ($0.0, count == 0 ? "null" : "\($0.1)") }
    }

    /// One line for people: the percentiles, or that there was no sample.
    var text: String {
        count == 0 ? "no samples" : "p50 \(p50), p90 \(p90), p99 \(p99), p99.9 \(p999), max \(max) (\(count) samples)"
    }
}
