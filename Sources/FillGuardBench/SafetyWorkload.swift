import FillGuard
import FillGuardCore
import FillGuardSimulator
import Histogram
import Synchronization

/// Protection safety against the simulated exchange: every symbol holds a long position with
/// a stop and a target; every `interval` each symbol's next scale-in limit order fills (the price
/// is set to its limit), so each fill is one resize of both protective orders. The exchange
/// integrates exposure exactly, over wall-clock time, at every change of a book: unprotected
/// (position above its stops), over-covered (protective orders above the position) and naked (an
/// open position with no live stop at all) share-seconds.
public enum SafetyWorkload {
    /// Native modify, a fallback strategy, or the seed.
    public enum Strategy: String, Sendable, CaseIterable {
        /// FillGuard with the broker's native modify.
        case nativeModify
        /// FillGuard without native modify, cancel-then-create.
        case cancelThenCreate
        /// FillGuard without native modify, create-then-cancel.
        case createThenCancel
        /// The seed baseline (cancel, sleep 100 ms, create).
        case seed
    }

    /// When, within each step, the symbols' fills happen at the exchange.
    public enum Arrival: String, Sendable, CaseIterable {
        /// All at once: the exchange fills every symbol in one pass, as fast as it can (a burst
        /// across symbols; the simulated exchange takes them one after another under its one lock,
        /// which the protective requests also need: 2 to 10 ms for 100 symbols).
        case together
        /// One at a time: symbol `i` fills `i × interval / symbols` into the step.
        case spread
    }

    static let entryShares = 100
    static let scaleInShares = 10

    /// Runs one strategy: `symbols` × `resizes` scale-in fills at `latency` per broker request,
    /// arriving `together` or `spread` over each interval.
    public static func run(_ strategy: Strategy, symbols: Int, resizes: Int, interval: Duration, latency: Duration,
                           arrival: Arrival = .together) async -> Measurement {
        let names = (0..<symbols).map(BenchUniverse.symbol)
        var configuration = SimulatorConfiguration(seed: 7)
        configuration.nativeModify = strategy == .nativeModify || strategy == .seed
        configuration.latency = latency ... latency
        configuration.volatilityBasisPoints = 0
        configuration.partialFillAbove = nil
        configuration.exposureInRealTime = true
        let exchange = SimulatedExchange(configuration: configuration, symbols: Dictionary(uniqueKeysWithValues: names.map { ($0, price(10_000)) }))

        let clock = RequestClock(exchange)
        var manager: FillManager?
        var seed: SeedManager?
        let feed: Task<Void, Never>
        if strategy == .seed {
            let made = SeedManager(connection: .init(broker: exchange, read: { id, symbol in
                try? await Task.sleep(for: latency)
                if let id { _ = exchange.order(id, of: symbol) } else { _ = exchange.netPosition(of: symbol) }
            }))
            seed = made
            feed = Task { await made.run() }
        } else {
            let made = FillManager(broker: clock, configuration: FillGuardConfiguration(
                replaceStrategy: strategy == .createThenCancel ? .createThenCancel : .cancelThenCreate), logger: BenchUniverse.quietLogger)
            manager = made
            feed = Task { await made.run() }
        }

        // Brackets: buy 100 at market, stop 50.00, target 150.00, `resizes` scale-ins of 10 at
        // 99.90, 99.80, ... (they rest until the price is set to their limit).
        for (index, symbol) in names.enumerated() {
            let spec = BracketSpec(positionID: PositionID("P\(index)"), symbol: symbol, side: .buy, quantity: Quantity(entryShares),
                                   entryType: .market, stopLoss: price(5_000), takeProfit: price(15_000),
                                   scaleIns: (0..<resizes).map { .init(quantity: Quantity(scaleInShares), type: .limit(price(9_990 - 10 * Int64($0)))) })
            if let manager {
                do { try await manager.open(spec) } catch { preconditionFailure("safety bracket refused: \(error)") }
            } else if let seed {
                _ = await seed.open(spec)
            }
        }
        await settle(exchange, manager, seed)

        let before = exchange.exposure
        let modifiesBefore = exchange.statistics.applied["modify"] ?? AppliedDelay()
        var span: Int64 = 0
        let gap = arrival == .spread ? BenchClock.nanos(interval) / Int64(max(1, symbols)) : 0
        for step in 0..<resizes {
            // On a thread of its own, as a real exchange would be: not one of the few threads
            // Swift's cooperative pool runs FillManager on.
            let limit = price(9_990 - 10 * Int64(step))
            let stepSpan = await FeedThread.run(name: "bench-exchange") { () -> Int64 in
                let begin = BenchClock.now()
                for (index, symbol) in names.enumerated() {
                    if gap > 0 { BenchClock.sleep(until: begin + Int64(index) * gap) }
                    clock.mark(symbol)
                    exchange.setPrice(limit, of: symbol)
                }
                return BenchClock.now() - begin
            }
            span = max(span, stepSpan)
            try? await Task.sleep(for: interval)
        }
        await settle(exchange, manager, seed)
        let after = exchange.exposure
        let modifiesAfter = exchange.statistics.applied["modify"] ?? AppliedDelay()
        let violations = await manager?.invariantViolations().count ?? 0
        seed?.shutdown()
        manager?.finishSubscriptions()
        feed.cancel()

        let total = symbols * resizes
        let per1000 = 1_000 / Double(max(1, total))
        let unprotected = (shareSeconds(after.unprotected) - shareSeconds(before.unprotected)) * per1000
        let overCovered = (shareSeconds(after.overCovered) - shareSeconds(before.overCovered)) * per1000
        let naked = (shareSeconds(after.naked) - shareSeconds(before.naked)) * per1000
        // What no client can avoid: each fill enlarges the position at the exchange before the
        // client hears of it; the stop grows one modify round trip (the broker latency) later.
        let roundTrip = Double(scaleInShares) * Double(BenchClock.nanos(latency)) / 1e9 * 1_000
        var measurement = Measurement(
            workload: "safety", implementation: strategy == .seed ? "seed" : "fillguard",
            parameters: ["symbols": "\(symbols)", "fills": "\(total)", "latency": FillGuardWorkloads.format(latency),
                         "interval": FillGuardWorkloads.format(interval), "strategy": strategy.rawValue, "arrival": arrival.rawValue],
            metrics: ["resizes": Double(total),
                      "unprotectedShareSecondsPer1000": unprotected,
                      "overCoveredShareSecondsPer1000": overCovered,
                      "nakedShareSecondsPer1000": naked,
                      "roundTripShareSecondsPer1000": roundTrip,
                      "stepSpanMicros": Double(span) / 1_000,
                      "violations": Double(violations)],
            notes: ["unprotected = position not covered by stops (includes the round trip before an enlarged stop is live; roundTrip = \(scaleInShares) shares × one broker latency per resize, the least any client can have); naked = no live stop at all; reaction = FillGuard's own part: the fill at the exchange to its first protective request arriving there"])
        if strategy != .seed {
            measurement.metrics["reactionP50Micros"] = clock.micros(50)
            measurement.metrics["reactionP99Micros"] = clock.micros(99)
            measurement.metrics["reactionMeanMicros"] = clock.meanMicros
        }
        if strategy == .nativeModify {
            // The round trip as the exchange actually took it: each modify's own time from its
            // arrival to its effect (the sleep of `latency` runs late by the clock's slack).
            let modifies = AppliedDelay(count: modifiesAfter.count - modifiesBefore.count,
                                        totalNanoseconds: modifiesAfter.totalNanoseconds - modifiesBefore.totalNanoseconds)
            measurement.metrics["modifyTookMeanMicros"] = modifies.meanNanoseconds / 1_000
            measurement.metrics["realisedRoundTripShareSecondsPer1000"] = Double(scaleInShares) * modifies.meanNanoseconds / 1e9 * 1_000
            measurement.notes.append("realisedRoundTrip = \(scaleInShares) shares × the mean time a modify took at the exchange, arrival to effect (modifyTookMean); unprotected − realisedRoundTrip is FillGuard's part, about \(scaleInShares) shares × reactionMean")
        }
        return measurement
    }

    /// Waits until the exchange is idle, every report was consumed and the manager is quiescent.
    private static func settle(_ exchange: SimulatedExchange, _ manager: FillManager?, _ seed: SeedManager?) async {
        if let manager {
            while true {
                await exchange.waitUntilIdle()
                while manager.eventsReceived < exchange.reportsSent { await Task.yield() }
                await manager.waitUntilIdle()
                if manager.eventsReceived == exchange.reportsSent, exchange.requestsInProgress == 0 { break }
            }
        } else if let seed {
            await SeedWorkloads.waitFor(timeout: .seconds(120)) {
                seed.fillsHandled >= exchange.statistics.fills && seed.operationsPending == 0 && exchange.requestsInProgress == 0
            }
        }
    }

    private static func price(_ cents: Int64) -> Price { Price(units: cents * (Price.unitsPerWhole / 100)) }

    /// "12.345" share-seconds as a number (a measurement, not money).
    private static func shareSeconds(_ text: String) -> Double { Double(text) ?? 0 }
}

/// The exchange as FillGuard's broker, timing FillGuard's own part of each resize: from the
/// moment a symbol's scale-in fills at the exchange (marked just before the price that fills it
/// is set) to the first protective request for that symbol arriving back at the exchange.
final class RequestClock: Broker, Sendable {
    private let exchange: SimulatedExchange
    private let marks = Mutex<[Symbol: Int64]>([:])
    private let histogram = Mutex(Histogram<UInt64>(highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three))

    init(_ exchange: SimulatedExchange) { self.exchange = exchange }

    /// The symbol's next fill happens now.
    func mark(_ symbol: Symbol) {
        let now = BenchClock.now()
        marks.withLock { $0[symbol] = now }
    }

    /// The mean reaction, in microseconds (0 without any).
    var meanMicros: Double {
        histogram.withLock { $0.totalCount == 0 ? 0 : $0.mean / 1_000 }
    }

    /// A percentile of the reactions, in microseconds (0 without any).
    func micros(_ percentile: Double) -> Double {
        histogram.withLock { $0.totalCount == 0 ? 0 : Double($0.valueAtPercentile(percentile)) / 1_000 }
    }

    private func arrived(_ symbol: Symbol) {
        let now = BenchClock.now()
        guard let marked = marks.withLock({ $0.removeValue(forKey: symbol) }) else { return }
        _ = histogram.withLock { $0.record(UInt64(max(0, now - marked))) }
    }

    var capabilities: BrokerCapabilities { exchange.capabilities }

    func submit(_ request: NewOrderRequest) async throws(BrokerError) {
        arrived(request.symbol)
        try await exchange.submit(request)
    }

    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {
        arrived(request.symbol)
        try await exchange.modify(request)
    }

    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {
        arrived(request.symbol)
        try await exchange.cancel(request)
    }

    func events() -> AsyncStream<BrokerEvent> { exchange.events() }
}
