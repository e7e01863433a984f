import ArgumentParser
import FillGuard
import Foundation

/// `fillguard bench-journal`: durable fills per second with the SQLite journal, and recovery time.
struct JournalBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-journal",
        abstract: "Durable fills/s through the runtime with the SQLite journal (WAL, group commit), and the time to recover afterwards.")

    @Option(help: "Symbols.")
    var symbols = 100

    @Option(help: "Fills (each resizes both protective orders).")
    var fills = 200_000

    @Option(help: "Durability: fsync or off.")
    var durability = "fsync"

    @Option(help: "Records per symbol between snapshots.")
    var snapshotInterval = 1_000

    @Option(help: "Runs; the median is reported.")
    var runs = 3

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        guard let mode = JournalDurability(rawValue: durability) else { throw ValidationError("--durability must be fsync or off") }
        var results: [JournalBench.Result] = []
        for _ in 0..<max(1, runs) {
            let bench = JournalBench(symbols: symbols, fills: fills, durability: mode, snapshotInterval: snapshotInterval,
                                     directory: NSTemporaryDirectory())
            results.append(try await bench.run())
        }
        let sorted = results.sorted { $0.fillsPerSecond < $1.fillsPerSecond }
        let median = sorted[sorted.count / 2]
        let recoveries = results.map(\.recoverySeconds).sorted()
        let recoveryMedian = recoveries[recoveries.count / 2]
        if json {
            print("{\"symbols\":\(symbols),\"fills\":\(fills),\"durability\":\"\(durability)\",\"runs\":\(results.count),"
                + "\"durableFillsPerSecondMedian\":\(Int(median.fillsPerSecond)),\"recordsPerBatch\":\(median.batches == 0 ? 0 : median.records / median.batches),"
                + "\"recordsWritten\":\(median.records),\"recoverySecondsMedian\":\(recoveryMedian),\"recordsReplayed\":\(median.recordsReplayed),"
                + "\"snapshotsLoaded\":\(median.snapshotsLoaded),\"allRuns\":[" + results.map { "\(Int($0.fillsPerSecond))" }.joined(separator: ",") + "]}")
        } else {
            print("journal bench: \(symbols) symbols, \(fills) fills, durability \(durability), \(results.count) runs")
            print("  durable fills/s   median \(Int(median.fillsPerSecond))  (runs: \(results.map { String(Int($0.fillsPerSecond)) }.joined(separator: ", ")))")
            print("  journal           \(median.records) records in \(median.batches) batches (\(median.batches == 0 ? 0 : median.records / median.batches) records per commit)")
            print("  recovery          median \(String(format: "%.3f", recoveryMedian)) s (\(median.recordsReplayed) records replayed, \(median.snapshotsLoaded) snapshots)")
        }
    }
}
