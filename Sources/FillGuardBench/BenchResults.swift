import Foundation

/// The runs of a plan, with medians and ratios against the seed.
public struct BenchResults: Sendable {
    /// One row: a workload, its parameters and an implementation, over every run.
    public struct Row: Codable, Sendable {
        /// The workload.
        public var workload: String
        /// "fillguard" or "seed".
        public var implementation: String
        /// Parameters of the row.
        public var parameters: [String: String]
        /// Median of each metric over the runs.
        public var median: [String: Double]
        /// Every run's value of each metric.
        public var samples: [String: [Double]]
        /// For FillGuard rows: the median over runs of (FillGuard vs the seed of the same run),
        /// as "times better" (above 1: FillGuard is better). Infinity when FillGuard measured 0.
        public var ratioVsSeed: [String: Double]
        /// Notes of the last run.
        public var notes: [String]
        /// The latency distribution of the last run.
        public var distribution: [LatencyPoint]?
    }

    /// The plan that ran.
    public var plan: BenchPlan
    /// Every run's measurements.
    public var runs: [[Measurement]]

    /// The rows, in the order first measured.
    public var rows: [Row] {
        var order: [String] = []
        var grouped: [String: [Measurement]] = [:]
        for run in runs {
            for measurement in run {
                if grouped[measurement.rowKey] == nil { order.append(measurement.rowKey) }
                grouped[measurement.rowKey, default: []].append(measurement)
            }
        }
        return order.compactMap { key -> Row? in
            guard let all = grouped[key], let last = all.last else { return nil }
            var samples: [String: [Double]] = [:]
            for measurement in all {
                for (name, value) in measurement.metrics { samples[name, default: []].append(value) }
            }
            var ratios: [String: [Double]] = [:]
            if last.implementation == "fillguard" {
                for run in runs {
                    guard let mine = run.first(where: { $0.rowKey == key }),
                          let seed = run.first(where: { $0.implementation == "seed" && $0.comparisonKey == last.comparisonKey }) else { continue }
                    for (name, value) in mine.metrics {
                        guard let theirs = seed.metrics[name], let ratio = Metric.ratio(name, fillGuard: value, seed: theirs) else { continue }
                        ratios[name, default: []].append(ratio)
                    }
                }
            }
            return Row(workload: last.workload, implementation: last.implementation, parameters: last.parameters,
                       median: samples.mapValues(Self.median), samples: samples, ratioVsSeed: ratios.mapValues(Self.median),
                       notes: last.notes, distribution: last.distribution)
        }
    }

    /// The median (the mean of the middle two for an even count).
    public static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The machine: cores and CPU model.
    public static var machine: [String: String] {
        var model = "unknown"
        if let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            model = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return ["cores": "\(ProcessInfo.processInfo.activeProcessorCount)", "cpu": model]
    }

    /// The results as JSON: machine, runs, rows (medians, samples, ratios, distributions).
    public var json: String {
        struct Document: Encodable {
            var machine: [String: String]
            var runs: Int
            var rows: [Row]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        guard let data = try? encoder.encode(Document(machine: Self.machine, runs: runs.count, rows: rows)) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Metrics shown per workload in the human report.
    static let columns: [String: [String]] = [
        "core": ["fillsPerSecond", "cpuMicrosPerFill", "brokerCallsPerFill"],
        "throughput": ["fillsPerSecond", "cpuMicrosPerFill", "brokerCallsPerFill"],
        "latency": ["p50Micros", "p99Micros", "p999Micros", "maxMicros", "achievedFillsPerSecond", "censored", "senderLateP99Micros"],
        "calls": ["brokerCallsPerFill"],
        "memory-idle": ["bytesPerIdleSymbol", "rssMiB"],
        "memory-hot": ["fillsPerSecond", "peakRSSMiB", "peakGrowthMiB"],
        "safety": ["unprotectedShareSecondsPer1000", "roundTripShareSecondsPer1000", "realisedRoundTripShareSecondsPer1000", "modifyTookMeanMicros",
                   "overCoveredShareSecondsPer1000", "nakedShareSecondsPer1000", "reactionP50Micros", "reactionP99Micros", "violations"],
        "durable": ["fillsPerSecond", "cpuMicrosPerFill", "recordsPerCommit", "recoverySeconds", "recordsReplayed", "violations"],
        "fix": ["fillsPerSecond", "reactionP50Micros", "reactionP99Micros", "protectionP50Micros", "protectionP99Micros", "brokerCallsPerFill", "retries", "violations"],
    ]

    /// The results for a person: one line per row, medians, and ratios against the seed.
    public var text: String {
        var lines: [String] = []
        let machine = Self.machine
        lines.append("FillGuard benchmarks: \(runs.count) run(s), medians; \(machine["cores"] ?? "?") cores, \(machine["cpu"] ?? "?")")
        lines.append("ratios: how many times better FillGuard is than the seed in the same run (∞: FillGuard measured 0)")
        var workload = ""
        for row in rows {
            if row.workload != workload {
                workload = row.workload
                lines.append("")
                lines.append("== \(workload)")
            }
            let parameters = row.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let values = (Self.columns[row.workload] ?? row.median.keys.sorted()).compactMap { name -> String? in
                guard let value = row.median[name] else { return nil }
                return "\(name) \(Self.format(value))"
            }
            lines.append("  \(row.implementation.padding(toLength: 9, withPad: " ", startingAt: 0)) \(parameters)")
            lines.append("      " + values.joined(separator: "  "))
            let ratios = (Self.columns[row.workload] ?? []).compactMap { name -> String? in
                guard let ratio = row.ratioVsSeed[name] else { return nil }
                return "\(name) ×\(ratio.isInfinite ? "∞" : Self.format(ratio))"
            }
            if !ratios.isEmpty { lines.append("      vs seed: " + ratios.joined(separator: "  ")) }
            for note in row.notes { lines.append("      note: \(note)") }
        }
        return lines.joined(separator: "\n")
    }

    /// Three significant digits, without exponent for ordinary magnitudes.
    static func format(_ value: Double) -> String {
        if value == 0 { return "0" }
        let magnitude = abs(value)
        if magnitude >= 1_000 { return String(Int(value.rounded())) }
        if magnitude >= 100 { return String(format: "%.1f", value) }
        if magnitude >= 1 { return String(format: "%.2f", value) }
        return String(format: "%.3g", value)
    }
}
