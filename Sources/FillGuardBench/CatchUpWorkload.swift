import FillGuard
import FillGuardCore

/// What one fill costs when a runner catches up after a stall in the sparse latency pattern:
/// every symbol has exactly one fill waiting, so nothing batches or coalesces (each fill is a
/// lane wake-up, a pass, two protective modifies and a second pass for their answers).
///
/// This is the cost that sets the latency tail: after a stall of `D`, the backlog drains at
/// `interval - cost` per fill, so about `D / (interval - cost)` fills wait longer than usual.
enum CatchUpWorkload {
    /// `waves` waves of one scale-in fill per symbol, sent back to back to lanes on one bound
    /// `RunnerThreads` thread; each wave ends at quiescence. Reports the median wall time per
    /// fill over the waves (the first tenth not counted: first touches).
    static func run(symbols: Int, waves: Int) async -> Measurement {
        let broker = BenchBroker()
        let threads = RunnerThreads(count: 1, processors: FeedThread.processorsBesidesPacer(), spin: .milliseconds(5), name: "bench-runner")
        defer { threads.shutdown() }
        var configuration = FillGuardConfiguration()
        configuration.runnerThreads = threads
        let manager = FillManager(broker: broker, configuration: configuration, logger: BenchUniverse.quietLogger)
        let universe = await BenchUniverse.setUp(manager, symbols: symbols, scaleInShares: waves + 1)
        let books = universe.books
        let setUpRequests = broker.requests
        var perFill: [Double] = []
        var sent = 0
        for wave in 0..<waves {
            let started = BenchClock.now()
            for book in books {
                manager.receive(BenchUniverse.fill(sent, order: book.scaleIn, symbol: book.symbol, side: .buy, shares: 1))
                sent += 1
            }
            await manager.waitUntilIdle()
            if wave >= waves / 10 { perFill.append(Double(BenchClock.now() - started) / Double(symbols)) }
        }
        perFill.sort()
        let median = perFill.isEmpty ? 0 : perFill[perFill.count / 2]
        let violations = await manager.invariantViolations().count
        return Measurement(
            workload: "catchup", implementation: "fillguard",
            parameters: ["symbols": "\(symbols)", "waves": "\(waves)", "latency": "0", "mix": "scalein"],
            metrics: ["microsPerFill": median / 1_000, "minMicrosPerFill": (perFill.first ?? 0) / 1_000, "fills": Double(sent),
                      "brokerCallsPerFill": Double(broker.requests - setUpRequests) / Double(max(1, sent)), "violations": Double(violations)],
            notes: ["one fill per symbol per wave, lanes on one bound runner thread: the per-fill cost of catching up after a stall"])
    }
}
