import FillGuard
import FillGuardCore

/// What `measureAppendThroughput` found: records appended per second, per run and the median.
public struct PostgresAppendThroughput: Sendable, CustomStringConvertible {
    /// Records in each appended batch.
    public var batchSize: Int
    /// Batches appended in each run.
    public var batches: Int
    /// Bytes in each record's payload.
    public var payloadBytes: Int
    /// When a batch counted as written.
    public var durability: JournalDurability
    /// Records per second of each run, in run order.
    public var runs: [Double]

    /// The median of the runs' records per second.
    public var medianRecordsPerSecond: Double {
        let sorted = runs.sorted()
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// "PostgreSQL journal append (fsync): 123,456 records/s median of 5 runs ...".
    public var description: String {
        let perRun = runs.map { String(Int($0.rounded())) }.joined(separator: ", ")
        return "PostgreSQL journal append (\(durability.rawValue)): \(Int(medianRecordsPerSecond.rounded())) records/s, median of \(runs.count) runs (\(perRun)); batches of \(batchSize) records with \(payloadBytes)-byte payloads, \(batches) batches per run"
    }
}

/// Measures durable append throughput of a `PostgresJournalStore`: each run appends `batches`
/// batches of `batchSize` input records (`payloadBytes` each, spread over 8 symbols) one batch
/// after the other, as the journal's group-commit writer does, and counts records per second.
/// It writes under `configuration.namespace` and erases that namespace before each run and at
/// the end, so use a namespace of its own.
public func measureAppendThroughput(configuration: PostgresJournalStore.Configuration, batchSize: Int = 1_000,
                                    batches: Int = 20, runs: Int = 5, payloadBytes: Int = 60) async throws(JournalError) -> PostgresAppendThroughput {
    let store = try await PostgresJournalStore(configuration: configuration)
    let symbols: [Symbol] = (0..<8).map { Symbol("BENCH\($0)") }
    let payload = [UInt8(1)] + (1..<max(1, payloadBytes)).map { UInt8(truncatingIfNeeded: $0) }
    var sequence: UInt64 = 0
    let prepared: [[JournalRecord]] = (0..<batches).map { _ in
        (0..<batchSize).map { index in
            sequence += 1
            return JournalRecord(symbol: symbols[index % symbols.count], sequence: sequence << 20, kind: .input, payload: payload)
        }
    }
    var result = PostgresAppendThroughput(batchSize: batchSize, batches: batches, payloadBytes: payload.count,
                                          durability: configuration.durability, runs: [])
    let clock = ContinuousClock()
    do {
        for _ in 0..<max(1, runs) {
            try await store.erase()
            let started = clock.now
            for batch in prepared { try await store.append(batch) }
            let elapsed = started.duration(to: clock.now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            result.runs.append(Double(batchSize * batches) / max(seconds, 1e-9))
        }
        try await store.erase()
    } catch {
        await store.close()
        throw error
    }
    await store.close()
    return result
}
