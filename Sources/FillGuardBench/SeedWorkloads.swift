import FillGuard
import FillGuardCore
import Histogram

/// The same workloads run against the `seed` baseline, for ratios measured in the same run.
public enum SeedWorkloads {
    /// A seed manager on a `BenchBroker` whose reads take the broker's latency.
    static func make(latency: Duration, observer: (any BrokerObserver)? = nil) -> (SeedManager, BenchBroker) {
        let broker = BenchBroker(latency: latency, observer: observer)
        let seed = SeedManager(connection: .init(broker: broker, read: { _, _ in
            if latency > .zero { try? await Task.sleep(for: latency) }
        }))
        return (seed, broker)
    }

    /// Opens the benchmark bracket on every symbol, fills each entry and waits until the first
    /// protective orders are placed. Returns each symbol's scale-in order id.
    static func setUp(_ seed: SeedManager, symbols: Int, scaleInShares: Int) async -> [OrderID] {
        var scaleIns: [OrderID] = []
        scaleIns.reserveCapacity(symbols)
        for index in 0..<symbols {
            let ids = await seed.open(BenchUniverse.spec(index, scaleInShares: scaleInShares))
            scaleIns.append(ids.scaleIn ?? ids.entry)
            seed.receive(.execution(ExecutionReport(executionID: ExecutionID("setup-\(index)"), orderID: ids.entry,
                                                    symbol: BenchUniverse.symbol(index), side: .buy,
                                                    lastQuantity: Quantity(BenchUniverse.baseShares), lastPrice: BenchUniverse.fillPrice)))
        }
        await waitFor { seed.fillsHandled >= symbols && seed.operationsPending == 0 }
        return scaleIns
    }

    /// Polls `condition` every 200 µs until it holds or `timeout` passes; true if it held.
    @discardableResult
    static func waitFor(timeout: Duration = .seconds(600), _ condition: () -> Bool) async -> Bool {
        let deadline = BenchClock.now() + BenchClock.nanos(timeout)
        while !condition() {
            if BenchClock.now() > deadline { return false }
            try? await Task.sleep(for: .microseconds(200))
        }
        return true
    }

    /// Fills/s the seed's fill handlers sustain (state updated, reads made, replacements
    /// queued). Its replacement queues never keep up (100 ms per replacement), so they are not
    /// waited for; their calls are counted as queued.
    public static func throughput(symbols: Int, fills: Int, latency: Duration, mix: Mix, window: Int = FillGuardWorkloads.defaultWindow,
                                  timed: TimedRegion = TimedRegion()) async -> Measurement {
        let (seed, _) = make(latency: latency)
        let perSymbol = (fills + symbols - 1) / symbols
        let scaleIns = await setUp(seed, symbols: symbols, scaleInShares: perSymbol + 1)
        let startCalls = seed.callsMade + seed.callsQueued
        let startHandled = seed.fillsHandled
        timed.begin()
        let cpuStart = BenchClock.processCPU()
        let start = BenchClock.now()
        let checkEvery = max(1, min(1_024, window / 8))
        _ = await FeedThread.run(name: "seed-feed") { () -> Int in
            var net = [Int](repeating: BenchUniverse.baseShares, count: symbols)
            var random = BenchRandom(seed: 42)
            for sent in 0..<fills {
                let index = sent % symbols
                let symbol = BenchUniverse.symbol(index)
                var order = scaleIns[index]
                var side = Side.buy
                if mix == .standard, net[index] > 500 {
                    let roll = random.percent()
                    if roll >= 60, let protective = seed.protectiveOrder(of: symbol, stop: roll < 80) {
                        order = protective
                        side = .sell
                    }
                }
                net[index] += side == .buy ? 1 : -1
                seed.receive(BenchUniverse.fill(sent, order: order, symbol: symbol, side: side, shares: 1))
                if (sent + 1) % checkEvery == 0 {
                    while sent + 1 - (seed.fillsHandled - startHandled) > window { BenchClock.backOff() }
                }
            }
            return fills
        }
        await waitFor { seed.fillsHandled - startHandled >= fills }
        let elapsed = BenchClock.now() - start
        let cpu = BenchClock.processCPU() - cpuStart
        timed.end()
        let calls = seed.callsMade + seed.callsQueued - startCalls
        let backlog = seed.operationsPending
        seed.shutdown()
        return Measurement(
            workload: "throughput", implementation: "seed",
            parameters: FillGuardWorkloads.throughputParameters(symbols: symbols, fills: fills, latency: latency, mix: mix, window: window),
            metrics: [
                "fills": Double(fills),
                "fillsPerSecond": Double(fills) / FillGuardWorkloads.seconds(elapsed),
                "cpuMicrosPerFill": Double(cpu) / 1_000 / Double(max(1, fills)),
                "brokerCallsPerFill": Double(calls) / Double(max(1, fills)),
            ],
            notes: ["\(backlog) protective replacements still queued when the fills were handled (100 ms each; not waited for)"])
    }

    /// Reaction latency of the seed at a fixed offered load (same pacing and measurement as
    /// FillGuard's). Fills still unprotected `cutoff` after the last send are censored.
    public static func latency(symbols: Int, rate: Int, fills: Int, brokerLatency: Duration, cutoff: Duration) async -> Measurement {
        let tracker = ReactionTracker(symbols: symbols, baseShares: BenchUniverse.baseShares, rate: rate)
        let (seed, _) = make(latency: brokerLatency, observer: tracker)
        let perSymbol = (fills + symbols - 1) / symbols
        let scaleIns = await setUp(seed, symbols: symbols, scaleInShares: perSymbol + 1)
        let start = BenchClock.now() + 1_000_000
        tracker.arm(roles: nil, start: start, fills: fills)
        let interval = 1e9 / Double(rate)
        let (lastSent, lateness) = await FeedThread.run(name: "seed-pacer") { () -> (Int64, Histogram<UInt64>) in
            var last: Int64 = 0
            var lateness = Histogram<UInt64>(highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .two)
            for sent in 0..<fills {
                let due = start + Int64(Double(sent) * interval)
                let index = sent % symbols
                let report = BenchUniverse.fill(sent, order: scaleIns[index], symbol: BenchUniverse.symbol(index), side: .buy, shares: 1)
                while BenchClock.now() < due { BenchClock.yieldThread() }
                seed.receive(report)
                last = BenchClock.now()
                _ = lateness.record(UInt64(max(0, last - due)))
            }
            return (last, lateness)
        }
        let drained = await waitFor(timeout: cutoff) { seed.fillsHandled >= symbols + fills && seed.operationsPending == 0 }
        let result = tracker.finish(now: BenchClock.now())
        let backlog = seed.operationsPending
        seed.shutdown()
        var notes: [String] = []
        if !drained || result.censored > 0 {
            notes.append("\(result.censored) of \(fills) fills still unprotected \(FillGuardWorkloads.format(cutoff)) after the last send (\(backlog) replacements queued): counted at that time, so the percentiles are lower bounds")
        }
        return Measurement(
            workload: "latency", implementation: "seed",
            parameters: ["symbols": "\(symbols)", "rate": "\(rate)", "fills": "\(fills)", "latency": FillGuardWorkloads.format(brokerLatency), "mix": "scalein"],
            metrics: result.metrics.merging(["achievedFillsPerSecond": Double(fills) / FillGuardWorkloads.seconds(max(1, lastSent - start)),
                                             "senderLateP99Micros": Double(lateness.valueAtPercentile(99)) / 1_000,
                                             "senderLateMaxMicros": Double(lateness.max) / 1_000],
                                            uniquingKeysWith: { $1 }),
            notes: notes, distribution: result.distribution)
    }

    /// Broker calls per fill of the seed, with the same rounds and bursts as FillGuard's. Its
    /// queued replacements are counted (cancel and create each), not waited for.
    public static func calls(symbols: Int, rounds: Int, burst: Int, latency: Duration) async -> Measurement {
        let (seed, _) = make(latency: latency)
        let scaleIns = await setUp(seed, symbols: symbols, scaleInShares: rounds * burst + 1)
        let startCalls = seed.callsMade + seed.callsQueued
        let startHandled = seed.fillsHandled
        var sent = 0
        for _ in 0..<rounds {
            for index in 0..<symbols {
                for _ in 0..<burst {
                    seed.receive(BenchUniverse.fill(sent, order: scaleIns[index], symbol: BenchUniverse.symbol(index), side: .buy, shares: 1))
                    sent += 1
                }
            }
            let target = sent
            await waitFor { seed.fillsHandled - startHandled >= target }
        }
        let calls = seed.callsMade + seed.callsQueued - startCalls
        seed.shutdown()
        return Measurement(
            workload: "calls", implementation: "seed",
            parameters: ["symbols": "\(symbols)", "fills": "\(sent)", "burst": "\(burst)", "latency": FillGuardWorkloads.format(latency), "mix": "scalein"],
            metrics: ["fills": Double(sent), "brokerCallsPerFill": Double(calls) / Double(max(1, sent))])
    }

    /// Resident memory per idle symbol of the seed (its state and its never-ending queue task).
    public static func idleMemory(symbols: Int) async -> Measurement {
        let (seed, _) = make(latency: .zero)
        ProcessMemory.releaseFreeMemory()
        let before = ProcessMemory.residentKiB
        let scaleIns = await setUp(seed, symbols: symbols, scaleInShares: 10)
        ProcessMemory.releaseFreeMemory()
        let after = ProcessMemory.residentKiB
        withExtendedLifetime(scaleIns) {}
        seed.shutdown()
        return Measurement(
            workload: "memory-idle", implementation: "seed", parameters: ["symbols": "\(symbols)"],
            metrics: ["bytesPerIdleSymbol": Double(after - before) * 1024 / Double(max(1, symbols)),
                      "rssMiB": Double(after) / 1024, "rssStartMiB": Double(before) / 1024])
    }
}
