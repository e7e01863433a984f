import Foundation
import FillGuard
import FillGuardCore
import Histogram
import Synchronization

/// Tells a harness where a workload's timed part begins and ends.
public struct TimedRegion {
    /// Called as the timed part begins.
    public var begin: () -> Void
    /// Called as it ends.
    public var end: () -> Void

    /// A region whose ends call `begin` and `end` (by default nothing).
    public init(begin: @escaping () -> Void = {}, end: @escaping () -> Void = {}) {
        self.begin = begin
        self.end = end
    }
}

/// The workloads run against the whole FillGuard runtime (`FillManager`, lanes, dispatch) with
/// an in-process broker. Setup (opening brackets, first fills) is never timed.
public enum FillGuardWorkloads {
    /// The reports the throughput rows keep queued at most unless told otherwise.
    public static let defaultWindow = 16_384

    /// A throughput row's parameters; the window only when it is not the default (so rows of
    /// earlier results still compare).
    static func throughputParameters(symbols: Int, fills: Int, latency: Duration, mix: Mix, window: Int) -> [String: String] {
        var parameters = ["symbols": "\(symbols)", "fills": "\(fills)", "latency": format(latency), "mix": mix.rawValue]
        if window != defaultWindow { parameters["window"] = "\(window)" }
        return parameters
    }

    /// Fills/s through the runtime: a feed thread hands `fills` reports round-robin across
    /// `symbols` to `FillManager.receive(_:)` as fast as the runtime takes them (at most `window`
    /// not yet applied), then waits for quiescence. The standard mix also closes every position.
    /// `timed` is told when the timed part begins and ends (setup before it, checks after it): a
    /// harness that counts on its own (package-benchmark's allocation counts) measures that part only.
    public static func throughput(symbols: Int, fills: Int, latency: Duration, mix: Mix, window: Int = defaultWindow,
                                  timed: TimedRegion = TimedRegion()) async -> Measurement {
        let broker = BenchBroker(latency: latency)
        let manager = FillManager(broker: broker, logger: BenchUniverse.quietLogger)
        let perSymbol = (fills + symbols - 1) / symbols
        let universe = await BenchUniverse.setUp(manager, symbols: symbols, scaleInShares: perSymbol + 1)
        let startStats = manager.statistics
        let startFills = startStats.fills
        let startRejected = startStats.rejected.values.reduce(0, +)
        let startRequests = broker.requests
        let rssStart = ProcessMemory.residentKiB
        timed.begin()
        let cpuStart = BenchClock.processCPU()
        let start = BenchClock.now()

        let books = universe.books
        // A small window is held to closely: with fewer reports queued than symbols, a lane
        // seldom has more than one fill to fold into a resize.
        let checkEvery = max(1, min(1_024, window / 8))
        let net = await FeedThread.run(name: "bench-feed") { () -> [Int] in
            var net = [Int](repeating: BenchUniverse.baseShares, count: symbols)
            var random = BenchRandom(seed: 42)
            for sent in 0..<fills {
                let index = sent % symbols
                let book = books[index]
                var order = book.scaleIn
                var side = Side.buy
                if mix == .standard, net[index] > 500 {
                    let roll = random.percent()
                    if roll >= 80 { order = book.target; side = .sell } else if roll >= 60 { order = book.stop; side = .sell }
                }
                net[index] += side == .buy ? 1 : -1
                manager.receive(BenchUniverse.fill(sent, order: order, symbol: book.symbol, side: side, shares: 1))
                if (sent + 1) % checkEvery == 0 {
                    // Backpressure for the benchmark only: keep at most `window` reports queued.
                    while true {
                        let stats = manager.statistics
                        let done = stats.fills - startFills + stats.rejected.values.reduce(0, +) - startRejected
                        if sent + 1 - done <= window { break }
                        BenchClock.backOff()
                    }
                }
            }
            return net
        }
        await manager.waitUntilIdle()
        var closes = 0
        if mix == .standard {
            for (index, book) in books.enumerated() where net[index] > 0 {
                manager.receive(BenchUniverse.fill(fills + index, order: book.stop, symbol: book.symbol, side: .sell, shares: net[index]))
                closes += 1
            }
            await manager.waitUntilIdle()
        }
        let elapsed = BenchClock.now() - start
        let cpu = BenchClock.processCPU() - cpuStart
        timed.end()
        let stats = manager.statistics
        let applied = stats.fills - startFills
        let rejected = stats.rejected.values.reduce(0, +) - startRejected
        let calls = broker.requests - startRequests
        let violations = symbols <= 10_000 ? await manager.invariantViolations().count : 0
        let total = fills + closes
        var notes: [String] = []
        if rejected > 0 { notes.append("\(rejected) fills were refused: the workload is wrong") }
        if symbols > 10_000 { notes.append("invariants not checked at this size (cost)") }
        return Measurement(
            workload: "throughput", implementation: "fillguard",
            parameters: throughputParameters(symbols: symbols, fills: fills, latency: latency, mix: mix, window: window),
            metrics: [
                "fills": Double(total),
                "fillsPerSecond": Double(applied) / seconds(elapsed),
                "cpuMicrosPerFill": Double(cpu) / 1_000 / Double(max(1, applied)),
                "brokerCallsPerFill": Double(calls) / Double(max(1, applied)),
                "rssGrowthMiB": Double(ProcessMemory.residentKiB - rssStart) / 1024,
                "rejected": Double(rejected),
                "violations": Double(violations),
            ],
            notes: notes)
    }

    /// Reaction latency at a fixed offered load, free of coordinated omission: a pacing thread
    /// sends fill `g` at `start + g / rate` (or at once when late); each fill's latency runs from
    /// that intended time until both protective resizes covering it were handed to the broker.
    /// `idleSpin` configures the runtime's idle polling (a row of its own when set).
    /// With `dedicated`, the lanes run on `RunnerThreads` bound to every processor but the pacer's,
    /// polling for `idleSpin` when idle (a row of its own). `warmup` fills go first, at the same
    /// pace, and are not recorded (first touches of memory, threads still asleep).
    public static func latency(symbols: Int, rate: Int, fills: Int, brokerLatency: Duration, idleSpin: Duration = .zero,
                               dedicated: Bool = false, warmup: Int = 0) async -> Measurement {
        let tracker = ReactionTracker(symbols: symbols, baseShares: BenchUniverse.baseShares, rate: rate)
        let broker = BenchBroker(latency: brokerLatency, observer: tracker)
        var configuration = FillGuardConfiguration()
        var runners: RunnerThreads?
        if dedicated {
            let processors = FeedThread.processorsBesidesPacer()
            let threads = RunnerThreads(count: max(1, processors.count), processors: processors, spin: idleSpin, name: "bench-runner")
            configuration.runnerThreads = threads
            runners = threads
        } else {
            configuration.idleSpin = idleSpin
        }
        defer { runners?.shutdown() }
        let manager = FillManager(broker: broker, configuration: configuration, logger: BenchUniverse.quietLogger)
        let sends = fills + max(0, warmup)
        let perSymbol = (sends + symbols - 1) / symbols
        let universe = await BenchUniverse.setUp(manager, symbols: symbols, scaleInShares: perSymbol + 1)
        var roles: [OrderID: ReactionTracker.Role] = [:]
        for (index, book) in universe.books.enumerated() {
            roles[book.stop] = ReactionTracker.Role(symbol: index, isStop: true)
            roles[book.target] = ReactionTracker.Role(symbol: index, isStop: false)
        }
        let start = BenchClock.now() + 1_000_000
        tracker.arm(roles: roles, start: start, fills: sends, warmup: warmup)
        let books = universe.books
        let interval = 1e9 / Double(rate)
        let (lastSent, lateness) = await FeedThread.run(name: "bench-pacer", pinned: true) { () -> (Int64, Histogram<UInt64>) in
            var last: Int64 = 0
            var lateness = Histogram<UInt64>(highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .two)
            for sent in 0..<sends {
                let due = start + Int64(Double(sent) * interval)
                // The report exists before its time, as one decoded off the wire would: building
                // it is the feed's work, not FillGuard's.
                let book = books[sent % symbols]
                let report = BenchUniverse.fill(sent, order: book.scaleIn, symbol: book.symbol, side: .buy, shares: 1)
                while BenchClock.now() < due { BenchClock.yieldThread() }
                manager.receive(report)
                last = BenchClock.now()
                if sent >= warmup { _ = lateness.record(UInt64(max(0, last - due))) }
            }
            return (last, lateness)
        }
        await manager.waitUntilIdle()
        let result = tracker.finish(now: BenchClock.now())
        let achieved = Double(sends) / seconds(max(1, lastSent - start))
        var notes: [String] = []
        if result.censored > 0 { notes.append("\(result.censored) fills were not covered by the end; counted at the end time") }
        var parameters = ["symbols": "\(symbols)", "rate": "\(rate)", "fills": "\(fills)", "latency": format(brokerLatency), "mix": "scalein"]
        if let runners {
            parameters["strategy"] = "runnerThreads=\(runners.count)@\(runners.processors.map(String.init).joined(separator: "+")),spin=\(format(idleSpin))"
        } else if idleSpin > .zero {
            parameters["strategy"] = "idleSpin=\(format(idleSpin))"
        }
        return Measurement(
            workload: "latency", implementation: "fillguard",
            parameters: parameters,
            metrics: result.metrics.merging(["achievedFillsPerSecond": achieved, "warmupFills": Double(max(0, warmup)),
                                             "senderLateP99Micros": Double(lateness.valueAtPercentile(99)) / 1_000,
                                             "senderLateMaxMicros": Double(lateness.max) / 1_000], uniquingKeysWith: { $1 }),
            notes: notes, distribution: result.distribution)
    }

    /// Broker calls per fill: `rounds` rounds in which every symbol gets `burst` scale-in fills
    /// back to back (well inside one broker round trip), each round ending at quiescence.
    public static func calls(symbols: Int, rounds: Int, burst: Int, latency: Duration) async -> Measurement {
        let broker = BenchBroker(latency: latency)
        let manager = FillManager(broker: broker, logger: BenchUniverse.quietLogger)
        let universe = await BenchUniverse.setUp(manager, symbols: symbols, scaleInShares: rounds * burst + 1)
        let startRequests = broker.requestsByKind
        var sent = 0
        for _ in 0..<rounds {
            for book in universe.books {
                for _ in 0..<burst {
                    manager.receive(BenchUniverse.fill(sent, order: book.scaleIn, symbol: book.symbol, side: .buy, shares: 1))
                    sent += 1
                }
            }
            await manager.waitUntilIdle()
        }
        let requests = broker.requestsByKind
        let calls = requests.values.reduce(0, +) - startRequests.values.reduce(0, +)
        let modifies = (requests[.modify] ?? 0) - (startRequests[.modify] ?? 0)
        let violations = await manager.invariantViolations().count
        return Measurement(
            workload: "calls", implementation: "fillguard",
            parameters: ["symbols": "\(symbols)", "fills": "\(sent)", "burst": "\(burst)", "latency": format(latency), "mix": "scalein"],
            metrics: ["fills": Double(sent), "brokerCallsPerFill": Double(calls) / Double(max(1, sent)),
                      "modifiesPerFill": Double(modifies) / Double(max(1, sent)), "violations": Double(violations)])
    }

    /// Resident memory per idle symbol: `symbols` open positions, each with a live stop and
    /// target and nothing queued. Run it in a fresh process (`fillguard bench` does).
    public static func idleMemory(symbols: Int) async -> Measurement {
        let broker = BenchBroker()
        let manager = FillManager(broker: broker, logger: BenchUniverse.quietLogger)
        ProcessMemory.releaseFreeMemory()
        let before = ProcessMemory.residentKiB
        for index in 0..<symbols {
            let spec = BenchUniverse.spec(index, scaleInShares: 10)
            do { try await manager.open(spec) } catch { preconditionFailure("benchmark bracket refused: \(error)") }
            // One symbol at a time, so no large transient copy inflates the resident size.
            guard let entry = await manager.position(spec.positionID)?.orders.first(where: { $0.role == .entry }) else {
                preconditionFailure("benchmark setup: no entry order for \(spec.symbol)")
            }
            manager.receive(BenchUniverse.fill(index, order: entry.id, symbol: spec.symbol, side: .buy, shares: BenchUniverse.baseShares))
        }
        await manager.waitUntilIdle()
        ProcessMemory.releaseFreeMemory()
        let after = ProcessMemory.residentKiB
        let lanes = manager.symbolCount
        let violations = await manager.invariantViolations().count
        return Measurement(
            workload: "memory-idle", implementation: "fillguard", parameters: ["symbols": "\(symbols)"],
            metrics: ["bytesPerIdleSymbol": Double(after - before) * 1024 / Double(max(1, lanes)),
                      "rssMiB": Double(after) / 1024, "rssStartMiB": Double(before) / 1024, "violations": Double(violations)],
            notes: ["each symbol: an open position (entry filled), a live stop, a live target and a working scale-in; RSS after malloc_trim"])
    }

    /// Peak resident memory with one hot symbol taking `fills` fills (scale-in mix). Run it in a
    /// fresh process so the peak belongs to this workload alone.
    public static func hotMemory(fills: Int) async -> Measurement {
        let before = ProcessMemory.residentKiB
        var result = await throughput(symbols: 1, fills: fills, latency: .zero, mix: .scalein)
        result.workload = "memory-hot"
        result.parameters = ["symbols": "1", "fills": "\(fills)"]
        let peak = ProcessMemory.peakResidentKiB
        result.metrics["peakRSSMiB"] = Double(peak) / 1024
        result.metrics["peakGrowthMiB"] = Double(peak - before) / 1024
        result.metrics["rssStartMiB"] = Double(before) / 1024
        return result
    }

    static func seconds(_ nanos: Int64) -> Double { Double(max(1, nanos)) / 1e9 }

    /// "0", "100us", "1ms".
    public static func format(_ duration: Duration) -> String {
        let nanos = BenchClock.nanos(duration)
        if nanos == 0 { return "0" }
        if nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
        if nanos % 1_000 == 0 { return "\(nanos / 1_000)us" }
        return "\(nanos)ns"
    }
}
