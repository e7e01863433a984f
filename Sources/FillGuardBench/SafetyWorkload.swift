import FillGuard
import FillGuardCore
import FillGuardSimulator
import Synchronization

/// Protection safety against the simulated exchange: every symbol holds a long position with
/// a stop and a target; every `interval` each symbol's next scale-in limit order fills (the price
/// is set to its limit), so each fill is one resize of both protective orders. The exchange's
/// exposure accounting measures unprotected and over-covered share-seconds; a sampler also
/// measures "naked" share-seconds (an open position with no live stop at all).
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

    static let entryShares = 100
    static let scaleInShares = 10

    /// Runs one strategy: `symbols` × `resizes` scale-in fills at `latency` per broker request.
    public static func run(_ strategy: Strategy, symbols: Int, resizes: Int, interval: Duration, latency: Duration) async -> Measurement {
        let names = (0..<symbols).map(BenchUniverse.symbol)
        var configuration = SimulatorConfiguration(seed: 7)
        configuration.nativeModify = strategy == .nativeModify || strategy == .seed
        configuration.latency = latency ... latency
        configuration.volatilityBasisPoints = 0
        configuration.partialFillAbove = nil
        let exchange = SimulatedExchange(configuration: configuration, symbols: Dictionary(uniqueKeysWithValues: names.map { ($0, price(10_000)) }))

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
            let made = FillManager(broker: exchange, configuration: FillGuardConfiguration(
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

        let sampler = ExposureSampler(exchange: exchange, symbols: names)
        let before = exchange.exposure
        let sampling = Task { await sampler.run() }
        for step in 0..<resizes {
            for symbol in names { exchange.setPrice(price(9_990 - 10 * Int64(step)), of: symbol) }
            try? await Task.sleep(for: interval)
        }
        await settle(exchange, manager, seed)
        sampler.stop()
        await sampling.value
        let after = exchange.exposure
        let violations = await manager?.invariantViolations().count ?? 0
        seed?.shutdown()
        manager?.finishSubscriptions()
        feed.cancel()

        let total = symbols * resizes
        let per1000 = 1_000 / Double(max(1, total))
        let unprotected = (shareSeconds(after.unprotected) - shareSeconds(before.unprotected)) * per1000
        let overCovered = (shareSeconds(after.overCovered) - shareSeconds(before.overCovered)) * per1000
        return Measurement(
            workload: "safety", implementation: strategy == .seed ? "seed" : "fillguard",
            parameters: ["symbols": "\(symbols)", "fills": "\(total)", "latency": FillGuardWorkloads.format(latency),
                         "interval": FillGuardWorkloads.format(interval), "strategy": strategy.rawValue],
            metrics: ["resizes": Double(total),
                      "unprotectedShareSecondsPer1000": unprotected,
                      "overCoveredShareSecondsPer1000": overCovered,
                      "nakedShareSecondsPer1000": sampler.nakedShareSeconds * per1000,
                      "violations": Double(violations)],
            notes: ["unprotected = position not covered by stops (includes the round trip before an enlarged stop is live); naked = no live stop at all"])
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

/// Advances the exchange's clock in real time (so its exposure accounting integrates over wall
/// time) and integrates naked share-seconds (an open position with no live stop).
final class ExposureSampler: Sendable {
    private let exchange: SimulatedExchange
    private let symbols: [Symbol]
    private let stopped = Atomic<Bool>(false)
    /// Quantity units (1e-8 share) times nanoseconds, exact.
    private let naked = Mutex<Int128>(0)

    init(exchange: SimulatedExchange, symbols: [Symbol]) {
        self.exchange = exchange
        self.symbols = symbols
    }

    /// Naked share-seconds (converted for reporting only; accumulated exactly).
    var nakedShareSeconds: Double {
        let units = naked.withLock { $0 }
        let nanoshares = units / Int128(Quantity.unitsPerShare) // share-nanoseconds
        return Double(Int64(clamping: nanoshares)) / 1e9
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    func run() async {
        var last = BenchClock.now()
        while !stopped.load(ordering: .relaxed) {
            try? await Task.sleep(for: .microseconds(250))
            let now = BenchClock.now()
            let elapsed = now - last
            last = now
            exchange.step(tick: .nanoseconds(elapsed))
            var uncovered: Int128 = 0
            for symbol in symbols {
                let net = exchange.netPosition(of: symbol)
                guard !net.isZero else { continue }
                let protectiveSide: Side = net.units > 0 ? .sell : .buy
                let hasStop = exchange.liveOrders(of: symbol).contains { order in
                    guard order.side == protectiveSide else { return false }
                    if case .stop = order.type { return true }
                    if case .stopLimit = order.type { return true }
                    return false
                }
                if !hasStop { uncovered += Int128(net.magnitude.units) }
            }
            let add = uncovered * Int128(elapsed)
            naked.withLock { $0 += add }
        }
    }
}
