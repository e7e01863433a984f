import FillGuard
import FillGuardCore
import Histogram
import Synchronization

/// Measures fill-to-protection latency from the broker's side, free of coordinated omission.
///
/// Fill `g` of a paced run goes to symbol `g % symbols` as that symbol's fill number
/// `k = g / symbols + 1` (one share on the scale-in), so the position is `baseShares + k`
/// after it. A protective request of total quantity `q` for a symbol covers every fill up to
/// `q - baseShares`. A fill's latency runs from its intended send time to the moment the second
/// of its two protective requests (stop and target) was handed to the broker.
final class ReactionTracker: BrokerObserver, Sendable {
    /// The symbol and protective role of an order id.
    struct Role: Sendable, Hashable {
        var symbol: Int
        var isStop: Bool
    }

    private struct State {
        var armed = false
        var roles: [OrderID: Role] = [:]
        /// `roles` by symbol index (stop, target): found without hashing an order id, so the
        /// measurement adds as little as possible to what it measures.
        var protective: [(stop: OrderID?, target: OrderID?)] = []

        /// The role of `orderID` on `symbol`, if it is one of the named protective orders.
        func role(of orderID: OrderID, symbol: Symbol) -> Role? {
            let index = BenchUniverse.index(of: symbol)
            guard protective.indices.contains(index) else { return nil }
            if protective[index].stop == orderID { return Role(symbol: index, isStop: true) }
            if protective[index].target == orderID { return Role(symbol: index, isStop: false) }
            return nil
        }
        var stopCovered: [Int]
        var targetCovered: [Int]
        var fills = 0
        /// Fills before this global index are warm-up: sent and covered, not recorded.
        var measuredFrom = 0
        var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)
    }

    private let symbols: Int
    private let baseShares: Int
    private let interval: Double
    private let start = Atomic<Int64>(0)
    private let state: Mutex<State>

    init(symbols: Int, baseShares: Int, rate: Int) {
        self.symbols = symbols
        self.baseShares = baseShares
        self.interval = 1e9 / Double(rate)
        self.state = Mutex(State(stopCovered: [Int](repeating: 0, count: symbols), targetCovered: [Int](repeating: 0, count: symbols)))
    }

    /// Starts measuring: `roles` names the protective orders (nil roles: decided by order type, for
    /// the seed, whose order ids change with every replacement). `fills` are sent in all; the first
    /// `warmup` of them are not recorded.
    func arm(roles: [OrderID: Role]?, start: Int64, fills: Int, warmup: Int = 0) {
        self.start.store(start, ordering: .relaxed)
        state.withLock { state in
            state.roles = roles ?? [:]
            state.protective = Array(repeating: (nil, nil), count: symbols)
            for (id, role) in state.roles where role.symbol < symbols {
                if role.isStop { state.protective[role.symbol].stop = id } else { state.protective[role.symbol].target = id }
            }
            state.fills = fills
            state.measuredFrom = max(0, warmup)
            state.armed = true
        }
    }

    private func intended(symbol: Int, fill k: Int) -> Int64 {
        start.load(ordering: .relaxed) + Int64(Double((k - 1) * symbols + symbol) * interval)
    }

    /// Whether fill `k` of `symbol` is past the warm-up.
    private func isMeasured(symbol: Int, fill k: Int, state: borrowing State) -> Bool {
        (k - 1) * symbols + symbol >= state.measuredFrom
    }

    private func count(symbol: Int, state: borrowing State) -> Int {
        state.fills / symbols + (symbol < state.fills % symbols ? 1 : 0)
    }

    func handed(_ kind: OrderOperation.Kind, orderID: OrderID, symbol: Symbol, quantity: Quantity?, type: OrderType?) {
        guard kind != .cancel, let quantity else { return }
        let now = BenchClock.now()
        state.withLock { state in
            guard state.armed else { return }
            let role: Role
            if let known = state.role(of: orderID, symbol: symbol) {
                role = known
            } else if state.roles.isEmpty, let type {
                let index = BenchUniverse.index(of: symbol)
                switch type {
                case .stop, .stopLimit: role = Role(symbol: index, isStop: true)
                case .limit: role = Role(symbol: index, isStop: false)
                case .market: return
                }
            } else {
                return
            }
            guard role.symbol < symbols else { return }
            let covers = min(Int(quantity.units / Quantity.unitsPerShare) - baseShares, count(symbol: role.symbol, state: state))
            let before = role.isStop ? state.stopCovered[role.symbol] : state.targetCovered[role.symbol]
            guard covers > before else { return }
            let other = role.isStop ? state.targetCovered[role.symbol] : state.stopCovered[role.symbol]
            if role.isStop { state.stopCovered[role.symbol] = covers } else { state.targetCovered[role.symbol] = covers }
            // Fills the other role already covers are complete now.
            var k = before + 1
            while k <= min(covers, other) {
                if isMeasured(symbol: role.symbol, fill: k, state: state) {
                    _ = state.histogram.record(UInt64(max(0, now - intended(symbol: role.symbol, fill: k))))
                }
                k += 1
            }
        }
    }

    /// Stops measuring; fills not fully covered by `now` are counted as covered at `now` (a lower
    /// bound on their latency) and reported as censored.
    func finish(now: Int64) -> (metrics: [String: Double], distribution: [LatencyPoint], censored: Int) {
        state.withLock { state in
            state.armed = false
            var censored = 0
            for symbol in 0..<symbols {
                let covered = min(state.stopCovered[symbol], state.targetCovered[symbol])
                let total = count(symbol: symbol, state: state)
                guard covered < total else { continue }
                for k in (covered + 1)...total {
                    if isMeasured(symbol: symbol, fill: k, state: state) {
                        _ = state.histogram.record(UInt64(max(0, now - intended(symbol: symbol, fill: k))))
                    }
                    censored += 1
                }
            }
            let histogram = state.histogram
            func micros(_ percentile: Double) -> Double {
                histogram.totalCount == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1_000
            }
            var distribution: [LatencyPoint] = []
            for percentile in [0.0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100] {
                distribution.append(LatencyPoint(percentile: percentile, micros: percentile == 100
                                                    ? Double(histogram.max) / 1_000 : micros(percentile)))
            }
            let metrics: [String: Double] = [
                "samples": Double(histogram.totalCount),
                "censored": Double(censored),
                "p50Micros": micros(50), "p99Micros": micros(99), "p999Micros": micros(99.9),
                "maxMicros": Double(histogram.max) / 1_000,
            ]
            return (metrics, distribution, censored)
        }
    }
}
