import FillGuard
import FillGuardCore
import Synchronization

/// An in-process exchange that implements `Broker`: seeded random-walk prices, stops and limits
/// that fill when prices cross (with partial fills), latency, and fault injection. It keeps the
/// ground truth (positions, live orders, exposure) that FillGuard is checked against.
///
/// Every state change and the report it produces happen under one lock, so the report stream
/// is in the order things happened (unless a reorder fault is injected).
public final class SimulatedExchange: Broker, Sendable {
    private struct Book {
        var price: Price
        var orders: [OrderID: SimulatedOrder] = [:]
        var live: [OrderID] = []
        var net: Quantity = .zero
    }

    private struct State {
        var books: [Symbol: Book] = [:]
        var symbols: [Symbol] = []
        var random: SplitMix64
        var executions = 0
        var reportsSent = 0
        var clockNanos: Int64 = 0
        var held: BrokerEvent?
        var statistics = SimulatorStatistics()
        var unprotected: Int128 = 0
        var overCovered: Int128 = 0
        var requestsInProgress = 0
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// The behaviour it was made with.
    public let configuration: SimulatorConfiguration
    /// Native modify as configured, and the advertised request budget.
    public let capabilities: BrokerCapabilities
    private let state: Mutex<State>
    private let stream: AsyncStream<BrokerEvent>
    private let continuation: AsyncStream<BrokerEvent>.Continuation

    /// An exchange trading `symbols`, each starting at its price.
    public init(configuration: SimulatorConfiguration, symbols: [Symbol: Price]) {
        self.configuration = configuration
        self.capabilities = BrokerCapabilities(nativeModify: configuration.nativeModify,
                                               requestsPerSecond: configuration.requestsPerSecond, burst: 100)
        var initial = State(random: SplitMix64(seed: configuration.seed))
        for (symbol, price) in symbols.sorted(by: { $0.key < $1.key }) {
            initial.books[symbol] = Book(price: price)
            initial.symbols.append(symbol)
        }
        self.state = Mutex(initial)
        (stream, continuation) = AsyncStream.makeStream()
    }

    // MARK: - Broker

    /// The exchange's reports (one consumer).
    public func events() -> AsyncStream<BrokerEvent> { stream }

    /// Accepts a new order; a market order starts filling at once.
    public func submit(_ request: NewOrderRequest) async throws(BrokerError) {
        try await handle("submit", allowsRace: false) { state throws(BrokerError) in
            guard request.quantity.isPositive else { throw BrokerError(.permanent, "quantity must be positive") }
            guard state.books[request.symbol] != nil else { throw BrokerError(.permanent, "unknown symbol \(request.symbol)") }
            guard state.books[request.symbol]?.orders[request.orderID] == nil else {
                throw BrokerError(.permanent, "duplicate client order id \(request.orderID)")
            }
            let order = SimulatedOrder(id: request.orderID, symbol: request.symbol, side: request.side, type: request.type,
                                       quantity: request.quantity, filled: .zero, state: .live)
            state.books[request.symbol]?.orders[order.id] = order
            state.books[request.symbol]?.live.append(order.id)
            if case .market = request.type { self.match(order.id, in: request.symbol, state: &state) }
        }
    }

    /// Changes a live order's total quantity; too late once it filled.
    public func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {
        try await handle("modify", allowsRace: true, raceOrder: (request.symbol, request.orderID)) { state throws(BrokerError) in
            guard configuration.nativeModify else { throw BrokerError(.permanent, "modify not supported") }
            guard var order = state.books[request.symbol]?.orders[request.orderID] else {
                throw BrokerError(.permanent, "unknown order \(request.orderID)")
            }
            switch order.state {
            case .filled: throw BrokerError(.tooLate, "order \(order.id) already filled")
            case .cancelled: throw BrokerError(.permanent, "order \(order.id) is cancelled")
            case .live: break
            }
            guard request.newQuantity >= order.filled, request.newQuantity.isPositive else {
                throw BrokerError(.permanent, "new quantity \(request.newQuantity) is below the filled \(order.filled)")
            }
            order.quantity = request.newQuantity
            if order.filled == order.quantity { order.state = .filled }
            self.store(order, state: &state)
        }
    }

    /// Cancels a live order's remainder; too late once it filled or ended.
    public func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {
        try await handle("cancel", allowsRace: true, raceOrder: (request.symbol, request.orderID)) { state throws(BrokerError) in
            guard var order = state.books[request.symbol]?.orders[request.orderID] else {
                throw BrokerError(.permanent, "unknown order \(request.orderID)")
            }
            guard order.state == .live else { throw BrokerError(.tooLate, "order \(order.id) is already \(order.state.rawValue)") }
            order.state = .cancelled
            self.store(order, state: &state)
        }
    }

    // MARK: - Time

    /// One tick: every price moves, resting orders that are crossed fill, exposure accrues.
    public func step(tick: Duration = .milliseconds(1)) {
        let nanos = max(0, tick.components.seconds * 1_000_000_000 + tick.components.attoseconds / 1_000_000_000)
        state.withLock { state in
            state.clockNanos += nanos
            for symbol in state.symbols {
                guard var book = state.books[symbol] else { continue }
                let bound = Int64(configuration.volatilityBasisPoints)
                let basisPoints = bound == 0 ? 0 : Int64.random(in: -bound...bound, using: &state.random)
                let moved = book.price.units + book.price.units * basisPoints / 10_000
                book.price = Price(units: max(Price.unitsPerWhole / 100, moved))
                state.books[symbol] = book
                for id in book.live { match(id, in: symbol, state: &state) }
                accrueExposure(symbol, nanos: Int128(nanos), state: &state)
            }
        }
    }

    /// Ticks every `tick` until the task is cancelled.
    public func run(tick: Duration) async {
        while !Task.isCancelled {
            step(tick: tick)
            try? await Task.sleep(for: tick)
        }
    }

    /// Sends a report that a reorder fault is still holding back.
    public func flushHeldReports() {
        state.withLock { state in
            if let held = state.held {
                state.held = nil
                continuation.yield(held)
                state.reportsSent += 1
            }
        }
    }

    /// Requests being processed now.
    public var requestsInProgress: Int { state.withLock { $0.requestsInProgress } }
    /// Reports put on the event stream so far (duplicates included).
    public var reportsSent: Int { state.withLock { $0.reportsSent } }

    /// Waits until no request is being processed (requests sleep out their latency first).
    public func waitUntilIdle() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                if state.requestsInProgress == 0 { return true }
                state.idleWaiters.append(waiter)
                return false
            }
            if idle { waiter.resume() }
        }
    }

    // MARK: - Ground truth

    /// The symbols traded.
    public var symbols: [Symbol] { state.withLock { $0.symbols } }
    /// The current price of a symbol.
    public func price(of symbol: Symbol) -> Price { state.withLock { $0.books[symbol]?.price ?? Price(units: 0) } }
    /// Sets a symbol's price (for tests and scripted scenarios); crossed orders fill.
    public func setPrice(_ price: Price, of symbol: Symbol) {
        state.withLock { state in
            guard state.books[symbol] != nil else { return }
            state.books[symbol]?.price = price
            for id in state.books[symbol]?.live ?? [] { match(id, in: symbol, state: &state) }
        }
    }
    /// The net position of a symbol: the sum of its fills, buys positive.
    public func netPosition(of symbol: Symbol) -> Quantity { state.withLock { $0.books[symbol]?.net ?? .zero } }
    /// The live orders of a symbol.
    public func liveOrders(of symbol: Symbol) -> [SimulatedOrder] {
        state.withLock { state in (state.books[symbol]?.live ?? []).compactMap { state.books[symbol]?.orders[$0] } }
    }
    /// One order by id.
    public func order(_ id: OrderID, of symbol: Symbol) -> SimulatedOrder? { state.withLock { $0.books[symbol]?.orders[id] } }
    /// Requests, faults and reports so far.
    public var statistics: SimulatorStatistics { state.withLock { $0.statistics } }
    /// Unprotected and over-covered share-seconds so far.
    public var exposure: ExposureTotals {
        state.withLock { ExposureTotals(unprotected: Self.shareSeconds($0.unprotected), overCovered: Self.shareSeconds($0.overCovered)) }
    }

    // MARK: - Internals

    private func handle(_ kind: String, allowsRace: Bool, raceOrder: (Symbol, OrderID)? = nil,
                        _ apply: (inout State) throws(BrokerError) -> Void) async throws(BrokerError) {
        let delay = state.withLock { state -> Duration in
            state.requestsInProgress += 1
            state.statistics.requests[kind, default: 0] += 1
            let range = configuration.latency
            guard range.upperBound > range.lowerBound else { return range.lowerBound }
            let low = range.lowerBound.components.seconds * 1_000_000_000 + range.lowerBound.components.attoseconds / 1_000_000_000
            let high = range.upperBound.components.seconds * 1_000_000_000 + range.upperBound.components.attoseconds / 1_000_000_000
            return .nanoseconds(Int64.random(in: low...high, using: &state.random))
        }
        if delay > .zero { try? await Task.sleep(for: delay) }
        let result: Result<Void, BrokerError> = state.withLock { state in
            defer { finishRequest(&state) }
            if state.random.chance(configuration.faultRate) {
                let roll = Double.random(in: 0..<1, using: &state.random)
                if roll < 0.70 || (roll >= 0.85 && !allowsRace) {
                    state.statistics.faults["transient", default: 0] += 1
                    return .failure(BrokerError(.transient, "simulated timeout"))
                }
                if roll < 0.85 {
                    state.statistics.faults["permanent", default: 0] += 1
                    return .failure(BrokerError(.permanent, "simulated rejection"))
                }
                // An honest race: the order fills completely just before the request arrives.
                if let (symbol, id) = raceOrder, let order = state.books[symbol]?.orders[id], order.state == .live {
                    state.statistics.faults["tooLate", default: 0] += 1
                    fill(id, in: symbol, quantity: order.quantity - order.filled, state: &state)
                }
            }
            do throws(BrokerError) {
                try apply(&state)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    private func finishRequest(_ state: inout State) {
        state.requestsInProgress -= 1
        guard state.requestsInProgress == 0 else { return }
        let waiters = state.idleWaiters
        state.idleWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    private func store(_ order: SimulatedOrder, state: inout State) {
        state.books[order.symbol]?.orders[order.id] = order
        if order.state != .live { state.books[order.symbol]?.live.removeAll { $0 == order.id } }
    }

    /// Fills what the current price allows of one live order.
    private func match(_ id: OrderID, in symbol: Symbol, state: inout State) {
        guard let book = state.books[symbol], var order = book.orders[id], order.state == .live else { return }
        let price = book.price
        var marketable = false
        switch order.type {
        case .market:
            marketable = true
        case .limit(let limit):
            marketable = order.side == .buy ? price <= limit : price >= limit
        case .stop(let stop):
            if !order.triggered { order.triggered = order.side == .buy ? price >= stop : price <= stop }
            marketable = order.triggered
        case .stopLimit(let stop, let limit):
            if !order.triggered { order.triggered = order.side == .buy ? price >= stop : price <= stop }
            marketable = order.triggered && (order.side == .buy ? price <= limit : price >= limit)
        }
        state.books[symbol]?.orders[id] = order
        guard marketable else { return }
        var quantity = order.quantity - order.filled
        if let above = configuration.partialFillAbove, quantity > above, state.random.chance(configuration.partialFillChance) {
            // A partial fill: about half, in whole shares, at least one share.
            let half = (quantity.units / 2) / Quantity.unitsPerShare * Quantity.unitsPerShare
            quantity = Quantity(units: max(Quantity.unitsPerShare, half))
        }
        fill(id, in: symbol, quantity: quantity, state: &state)
    }

    private func fill(_ id: OrderID, in symbol: Symbol, quantity: Quantity, state: inout State) {
        guard quantity.isPositive, var book = state.books[symbol], var order = book.orders[id], order.state == .live else { return }
        order.filled += quantity
        if order.filled >= order.quantity { order.state = .filled }
        book.orders[id] = order
        if order.state != .live { book.live.removeAll { $0 == id } }
        book.net += order.side == .buy ? quantity : -quantity
        state.books[symbol] = book
        state.executions += 1
        state.statistics.fills += 1
        let report = ExecutionReport(
            executionID: ExecutionID("SIMX\(state.executions)"), orderID: id, symbol: symbol, side: order.side,
            lastQuantity: quantity, lastPrice: book.price, cumulativeQuantity: order.filled,
            leavesQuantity: order.quantity - order.filled, transactTime: state.clockNanos)
        deliver(.execution(report), state: &state)
    }

    /// Sends a report, injecting duplicates and reorders as configured.
    private func deliver(_ event: BrokerEvent, state: inout State) {
        if state.held == nil, state.random.chance(configuration.reorderRate) {
            state.held = event
            state.statistics.reorders += 1
            return
        }
        continuation.yield(event)
        state.reportsSent += 1
        if state.random.chance(configuration.duplicateRate) {
            continuation.yield(event)
            state.reportsSent += 1
            state.statistics.duplicates += 1
        }
        if let held = state.held {
            state.held = nil
            continuation.yield(held)
            state.reportsSent += 1
        }
    }

    private func accrueExposure(_ symbol: Symbol, nanos: Int128, state: inout State) {
        guard let book = state.books[symbol], !book.net.isZero else { return }
        let protectiveSide: Side = book.net.units > 0 ? .sell : .buy
        var stops = Quantity.zero
        var limits = Quantity.zero
        for id in book.live {
            guard let order = book.orders[id], order.side == protectiveSide else { continue }
            switch order.type {
            case .stop, .stopLimit: stops += order.openQuantity
            case .limit: limits += order.openQuantity
            case .market: break
            }
        }
        let size = book.net.magnitude
        if stops < size { state.unprotected += Int128((size - stops).units) * nanos }
        if stops > size { state.overCovered += Int128((stops - size).units) * nanos }
        if limits > size { state.overCovered += Int128((limits - size).units) * nanos }
    }

    /// Quantity units (1e-8 shares) times nanoseconds, as share-seconds with 3 decimals.
    private static func shareSeconds(_ units: Int128) -> String {
        let thousandths = units / 100_000_000_000_000 // 1e8 units per share * 1e9 ns per s / 1e3
        let whole = thousandths / 1000
        let fraction = String(thousandths % 1000)
        return "\(whole)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
