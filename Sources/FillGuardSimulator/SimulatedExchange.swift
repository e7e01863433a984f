import Dispatch
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
        var executions: [ExecutionReport] = []
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
        var naked: Int128 = 0
        /// Per symbol, when its exposure was last accrued (real-time exposure only).
        var exposureSince: [Symbol: Int64] = [:]
        var requestsInProgress = 0
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        /// False while the manager is "disconnected": reports are not delivered, only kept.
        var connected = true
        /// Set by `stopFaults()`: requests and reports go through as they are.
        var faultsStopped = false
        var connectionReports = 0
        var continuation: AsyncStream<BrokerEvent>.Continuation
        /// The stream made at start, handed to the first `events()` call (reports sent before
        /// the client subscribed wait in it).
        var firstStream: AsyncStream<BrokerEvent>?
    }

    /// The behaviour it was made with.
    public let configuration: SimulatorConfiguration
    /// Native modify as configured, and the advertised request budget.
    public let capabilities: BrokerCapabilities
    private let state: Mutex<State>
    private let log: ExchangeLog?
    /// Wall-clock time (Unix nanoseconds) of the last clock entry in the state file when it was
    /// reopened; nil for a new exchange.
    public let lastSeenAlive: Int64?

    /// An exchange trading `symbols`, each starting at its price. With `statePath`, the exchange
    /// keeps its state in that file: reopened, it has every order and fill it had (and its
    /// prices), as a real broker would after the client restarted. With `session`, the file
    /// must be that session's (a new file is marked as its); `ExchangeLogError` otherwise, and
    /// when `requiresSavedState` and the file holds nothing.
    public init(configuration: SimulatorConfiguration, symbols: [Symbol: Price], statePath: String? = nil,
                session: ExchangeSession? = nil, requiresSavedState: Bool = false) throws {
        self.configuration = configuration
        self.capabilities = BrokerCapabilities(nativeModify: configuration.nativeModify,
                                               requestsPerSecond: configuration.requestsPerSecond, burst: 100)
        let (stream, continuation) = AsyncStream<BrokerEvent>.makeStream()
        var initial = State(random: SplitMix64(seed: configuration.seed), continuation: continuation, firstStream: stream)
        for (symbol, price) in symbols.sorted(by: { $0.key < $1.key }) {
            initial.books[symbol] = Book(price: price)
            initial.symbols.append(symbol)
        }
        var lastSeen: Int64?
        if let statePath {
            let entries = try ExchangeLog.read(path: statePath)
            if requiresSavedState, entries.isEmpty {
                throw ExchangeLogError(message: "the exchange state \(statePath) is empty, but the journal holds a session: its exchange's orders and fills are lost, and a new, empty exchange would contradict every position in the journal")
            }
            for entry in entries {
                switch entry {
                case .order(let order):
                    Self.restore(order, into: &initial)
                case .execution(let report, let order):
                    Self.restore(order, into: &initial)
                    initial.books[report.symbol]?.executions.append(report)
                    initial.books[report.symbol]?.net += report.side == .buy ? report.lastQuantity : -report.lastQuantity
                    initial.books[report.symbol]?.price = report.lastPrice
                    initial.executions += 1
                    initial.statistics.fills += 1
                case .clock(let nanos, let prices):
                    lastSeen = nanos
                    for (symbol, price) in prices {
                        // A symbol the exchange listed but had no order for yet is still listed
                        // (a recovery with no symbols of its own would refuse its entry).
                        if initial.books[symbol] == nil {
                            initial.books[symbol] = Book(price: price)
                            initial.symbols.append(symbol)
                        } else {
                            initial.books[symbol]?.price = price
                        }
                    }
                case .session(let saved):
                    if let session { try Self.check(saved, against: session, path: statePath) }
                }
            }
            if !entries.isEmpty {
                initial.random = SplitMix64(seed: configuration.seed &+ UInt64(entries.count) &* 0x9E37_79B9_7F4A_7C15)
            }
            let log = try ExchangeLog(path: statePath)
            if entries.isEmpty, let session { log.write(.session(session)) }
            self.log = log
        } else {
            self.log = nil
        }
        self.lastSeenAlive = lastSeen
        self.state = Mutex(initial)
    }

    /// Refuses a saved state whose session is not `session`.
    private static func check(_ saved: ExchangeSession, against session: ExchangeSession, path: String) throws(ExchangeLogError) {
        guard saved.journalID == session.journalID else {
            throw ExchangeLogError(message: "\(path) is the exchange state of another journal's session (journal \(saved.journalID), not \(session.journalID.isEmpty ? "this one, which has no identity" : session.journalID)): reconciling against it would take another session's fills as this one's. Pass this journal's own state (JOURNAL.exchange); if this is it, the journal has lost the identity it was created with (its meta row 'id') and cannot be matched to it")
        }
        guard saved.nativeModify == session.nativeModify else {
            throw ExchangeLogError(message: "the session in \(path) ran \(saved.nativeModify ? "with native modify (no --no-modify)" : "without native modify (--no-modify)"); run with the same setting")
        }
        guard saved.nativeModify || saved.strategy == session.strategy else {
            throw ExchangeLogError(message: "the session in \(path) ran with --strategy \(saved.strategy); run with the same setting")
        }
    }

    /// Why the exchange stopped saving its state (a full disk), if it did.
    public var stateFailure: String? { log?.failure }

    /// An exchange kept in memory only.
    public convenience init(configuration: SimulatorConfiguration, symbols: [Symbol: Price]) {
        // Without a state file nothing can fail.
        try! self.init(configuration: configuration, symbols: symbols, statePath: nil)
    }

    private static func restore(_ order: SimulatedOrder, into state: inout State) {
        if state.books[order.symbol] == nil {
            state.books[order.symbol] = Book(price: Price(units: Price.unitsPerWhole))
            state.symbols.append(order.symbol)
        }
        state.books[order.symbol]?.orders[order.id] = order
        state.books[order.symbol]?.live.removeAll { $0 == order.id }
        if order.state == .live { state.books[order.symbol]?.live.append(order.id) }
    }

    /// Runs the market for `duration` (in `tick` steps) with the client disconnected: orders
    /// fill, but no report is delivered; the client learns of them only by asking
    /// (`BrokerQueries`). Simulates the time a crashed client was down. `going` is asked as it
    /// runs: false ends the downtime there (a stop asked for: Ctrl-C during a long catch-up).
    public func runDisconnected(for duration: Duration, tick: Duration = .milliseconds(1), while going: () -> Bool = { true }) {
        state.withLock { $0.connected = false }
        var elapsed = Duration.zero
        // `going` is asked every 16 ticks.
        var steps = 0
        while elapsed < duration, steps % 16 != 0 || going() {
            steps += 1
            step(tick: tick)
            elapsed += tick
        }
        state.withLock { $0.connected = true }
    }

    /// Writes the wall clock and prices to the state file (the session calls it now and then).
    public func recordClock() {
        guard let log else { return }
        let nanos = ExchangeLog.wallClockNanos()
        let prices = state.withLock { state in state.books.mapValues(\.price) }
        log.write(.clock(nanos, prices: prices))
    }

    private func persist(_ entry: ExchangeLogEntry, state: inout State) {
        log?.write(entry)
    }

    // MARK: - Broker

    /// The exchange's reports. Each call is a new connection: the previous stream ends, and
    /// reports go to the new one from now on (a restarted client asks for the ones it missed).
    public func events() -> AsyncStream<BrokerEvent> {
        state.withLock { state in
            if let first = state.firstStream {
                state.firstStream = nil
                return first
            }
            let (stream, continuation) = AsyncStream<BrokerEvent>.makeStream()
            state.continuation.finish()
            state.continuation = continuation
            state.connectionReports = 0
            return stream
        }
    }

    /// Stops (false) or resumes (true) delivering reports, as a dropped connection would:
    /// orders keep filling meanwhile and the fills are kept for `executions(of:)`.
    public func setConnected(_ connected: Bool) {
        state.withLock { $0.connected = connected }
    }

    /// Accepts a new order; a market order starts filling at once.
    public func submit(_ request: NewOrderRequest) async throws(BrokerError) {
        try await handle("submit", allowsRace: false) { state throws(BrokerError) in
            guard request.quantity.isPositive else { throw BrokerError(.permanent, "quantity must be positive") }
            guard state.books[request.symbol] != nil else { throw BrokerError(.permanent, "unknown symbol \(request.symbol)") }
            if let existing = state.books[request.symbol]?.orders[request.orderID] {
                // A resend after a timeout: the same order, not a second one.
                guard existing.side == request.side, existing.type == request.type, existing.quantity == request.quantity else {
                    throw BrokerError(.permanent, "duplicate client order id \(request.orderID) with other terms")
                }
                // As a real broker refuses a duplicate id: a resend never revives an ended order.
                switch existing.state {
                case .live: return
                case .filled: throw BrokerError(.tooLate, "order \(request.orderID) already filled")
                case .cancelled: throw BrokerError(.permanent, "order \(request.orderID) was already cancelled")
                }
            }
            let order = SimulatedOrder(id: request.orderID, symbol: request.symbol, side: request.side, type: request.type,
                                       quantity: request.quantity, filled: .zero, state: .live)
            self.accrueUntilNow(request.symbol, state: &state)
            state.books[request.symbol]?.orders[order.id] = order
            state.books[request.symbol]?.live.append(order.id)
            self.persist(.order(order), state: &state)
            if case .market = request.type { self.match(order.id, in: request.symbol, state: &state) }
        }
    }

    /// Changes a live order's total quantity; too late once it filled.
    public func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {
        try await handle("modify", allowsRace: true, raceOrder: (request.symbol, request.orderID)) { state throws(BrokerError) in
            guard configuration.nativeModify else { throw BrokerError(.permanent, "modify not supported") }
            guard var order = state.books[request.symbol]?.orders[request.orderID] else {
                throw BrokerError(.unknownOrder, "unknown order \(request.orderID)")
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

    /// Cancels a live order's remainder; too late once it filled; a cancelled order stays cancelled.
    public func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {
        try await handle("cancel", allowsRace: true, raceOrder: (request.symbol, request.orderID)) { state throws(BrokerError) in
            guard var order = state.books[request.symbol]?.orders[request.orderID] else {
                throw BrokerError(.unknownOrder, "unknown order \(request.orderID)")
            }
            switch order.state {
            case .filled: throw BrokerError(.tooLate, "order \(order.id) is already filled")
            case .cancelled: return // a resend after a timeout: it is cancelled, as asked
            case .live: break
            }
            order.state = .cancelled
            self.store(order, state: &state)
        }
    }

    // MARK: - Time

    /// One tick: every price moves, resting orders that are crossed fill, exposure accrues.
    public func step(tick: Duration = .milliseconds(1)) {
        let nanos = tick.clampedNanoseconds
        state.withLock { state in
            state.clockNanos = state.clockNanos > .max - nanos ? .max : state.clockNanos + nanos
            for symbol in state.symbols {
                guard var book = state.books[symbol] else { continue }
                let bound = Int64(configuration.volatilityBasisPoints)
                let basisPoints = bound == 0 ? 0 : Int64.random(in: -bound...bound, using: &state.random)
                let moved = book.price.units + book.price.units * basisPoints / 10_000
                book.price = Price(units: max(Price.unitsPerWhole / 100, moved))
                state.books[symbol] = book
                for id in book.live { match(id, in: symbol, state: &state) }
                if !state.faultsStopped, configuration.unsolicitedCancelRate > 0, let live = state.books[symbol]?.live, !live.isEmpty,
                   state.random.chance(configuration.unsolicitedCancelRate) {
                    cancelUnasked(live[Int.random(in: 0..<live.count, using: &state.random)], in: symbol, state: &state)
                }
                if !configuration.exposureInRealTime { accrueExposure(symbol, nanos: Int128(nanos), state: &state) }
            }
        }
    }

    /// Ticks every `tick` until the task is cancelled. With many symbols a step takes a while
    /// under the exchange's one lock: the pause after it is then twice the step, so the market
    /// takes at most a third of a processor and requests are not starved.
    public func run(tick: Duration) async {
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let started = clock.now
            step(tick: tick)
            try? await Task.sleep(for: max(tick, (clock.now - started) * 2))
        }
    }

    /// Sends a report that a reorder fault is still holding back.
    public func flushHeldReports() {
        state.withLock { state in
            if let held = state.held {
                state.held = nil
                state.continuation.yield(held)
                state.reportsSent += 1
            state.connectionReports += 1
            }
        }
    }

    /// Injects no more faults (failed requests, duplicated or reordered reports) from now on:
    /// the broker has recovered, for a session's wind-down.
    public func stopFaults() {
        state.withLock { $0.faultsStopped = true }
    }

    /// Whether a reorder fault is holding a report back (`flushHeldReports()` sends it).
    public var holdsReport: Bool { state.withLock { $0.held != nil } }

    /// Requests being processed now.
    public var requestsInProgress: Int { state.withLock { $0.requestsInProgress } }
    /// Reports put on the current connection's stream (see `events()`).
    public var reportsOnCurrentConnection: Int { state.withLock { $0.connectionReports } }
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
        state.withLock { state in
            for symbol in state.symbols { accrueUntilNow(symbol, state: &state) }
            return ExposureTotals(unprotected: Self.shareSeconds(state.unprotected), overCovered: Self.shareSeconds(state.overCovered),
                                  naked: Self.shareSeconds(state.naked))
        }
    }

    // MARK: - Internals

    private func handle(_ kind: String, allowsRace: Bool, raceOrder: (Symbol, OrderID)? = nil,
                        _ apply: (inout State) throws(BrokerError) -> Void) async throws(BrokerError) {
        let arrived = ContinuousClock.now
        let delay = state.withLock { state -> Duration in
            state.requestsInProgress += 1
            state.statistics.requests[kind, default: 0] += 1
            let range = configuration.latency
            guard range.upperBound > range.lowerBound else { return range.lowerBound }
            let low = range.lowerBound.clampedNanoseconds
            let high = range.upperBound.clampedNanoseconds
            return .nanoseconds(Int64.random(in: low...high, using: &state.random))
        }
        if delay > .zero { try? await Task.sleep(for: delay) }
        let result: Result<Void, BrokerError> = state.withLock { state in
            defer { finishRequest(&state) }
            if !state.faultsStopped, state.random.chance(configuration.faultRate) {
                let roll = Double.random(in: 0..<1, using: &state.random)
                if roll < 0.15 {
                    // The connection is down for this request: it never reaches the exchange.
                    state.statistics.faults["notSent", default: 0] += 1
                    return .failure(BrokerError(.notSent, "simulated connection down"))
                }
                if roll < 0.55 || (roll >= 0.85 && !allowsRace) {
                    state.statistics.faults["transient", default: 0] += 1
                    return .failure(BrokerError(.transient, "simulated throttling"))
                }
                if roll < 0.70 {
                    // The request takes effect but its answer is lost.
                    state.statistics.faults["timedOut", default: 0] += 1
                    do throws(BrokerError) {
                        try apply(&state)
                        state.statistics.applied[kind, default: AppliedDelay()].add(since: arrived)
                    } catch {}
                    return .failure(BrokerError(.timedOut, "simulated timeout (the request may have taken effect)"))
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
                state.statistics.applied[kind, default: AppliedDelay()].add(since: arrived)
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
        accrueUntilNow(order.symbol, state: &state)
        persist(.order(order), state: &state)
        state.books[order.symbol]?.orders[order.id] = order
        if order.state != .live { state.books[order.symbol]?.live.removeAll { $0 == order.id } }
    }

    /// Ends a live order on the exchange's own account (an expiry, a venue's cancel) and says so.
    private func cancelUnasked(_ id: OrderID, in symbol: Symbol, state: inout State) {
        guard var order = state.books[symbol]?.orders[id], order.state == .live else { return }
        order.state = .cancelled
        store(order, state: &state)
        state.statistics.faults["unsolicitedCancel", default: 0] += 1
        deliver(.orderStatus(OrderStatusReport(orderID: id, symbol: symbol, outcome: .cancelled, reason: "cancelled by the exchange (simulated)")),
                state: &state)
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
        accrueUntilNow(symbol, state: &state)
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
        state.books[symbol]?.executions.append(report)
        persist(.execution(report, order: order), state: &state)
        deliver(.execution(report), state: &state)
    }

    /// Sends a report, injecting duplicates and reorders as configured.
    private func deliver(_ event: BrokerEvent, state: inout State) {
        guard state.connected else { return }
        if state.held == nil, !state.faultsStopped, state.random.chance(configuration.reorderRate) {
            state.held = event
            state.statistics.reorders += 1
            return
        }
        state.continuation.yield(event)
        state.reportsSent += 1
            state.connectionReports += 1
        if !state.faultsStopped, state.random.chance(configuration.duplicateRate) {
            state.continuation.yield(event)
            state.reportsSent += 1
            state.connectionReports += 1
            state.statistics.duplicates += 1
        }
        if let held = state.held {
            state.held = nil
            state.continuation.yield(held)
            state.reportsSent += 1
            state.connectionReports += 1
        }
    }

    /// Real-time exposure: accrues the symbol's exposure as it stood since the last change, up to
    /// now (called before every change of its book).
    private func accrueUntilNow(_ symbol: Symbol, state: inout State) {
        guard configuration.exposureInRealTime else { return }
        let now = Int64(clamping: DispatchTime.now().uptimeNanoseconds)
        let since = state.exposureSince[symbol] ?? now
        state.exposureSince[symbol] = now
        if now > since { accrueExposure(symbol, nanos: Int128(now - since), state: &state) }
    }

    /// Accrues `nanos` of the symbol's exposure. A stop-loss or take-profit of FillGuard's (by its
    /// id) that is live on a flat symbol, or on the side that would add to the position (left
    /// from before a flip), is over-covered in full: it can only open a position the account
    /// does not want.
    private func accrueExposure(_ symbol: Symbol, nanos: Int128, state: inout State) {
        guard let book = state.books[symbol] else { return }
        if book.net.isZero {
            for id in book.live where SymbolStateMachine.isProtectiveOrder(id) {
                if let order = book.orders[id] { state.overCovered += Int128(order.openQuantity.units) * nanos }
            }
            return
        }
        let protectiveSide: Side = book.net.units > 0 ? .sell : .buy
        var stops = Quantity.zero
        var limits = Quantity.zero
        for id in book.live {
            guard let order = book.orders[id] else { continue }
            guard order.side == protectiveSide else {
                if SymbolStateMachine.isProtectiveOrder(id) { state.overCovered += Int128(order.openQuantity.units) * nanos }
                continue
            }
            // A bracket's entry or scale-in on the covering side (left from before a flip) covers
            // nothing: it is cancelled, not counted as a stop or a target.
            if SymbolStateMachine.positionID(ofOrder: id) != nil, !SymbolStateMachine.isProtectiveOrder(id) { continue }
            switch order.type {
            case .stop, .stopLimit: stops += order.openQuantity
            case .limit: limits += order.openQuantity
            case .market: break
            }
        }
        let size = book.net.magnitude
        if stops < size { state.unprotected += Int128((size - stops).units) * nanos }
        if stops.isZero { state.naked += Int128(size.units) * nanos }
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

extension SimulatedExchange: BrokerQueries {
    /// One order's state, as a broker's order status request answers it.
    public func orderState(_ id: OrderID, symbol: Symbol) async throws(BrokerError) -> BrokerOrderState? {
        state.withLock { state in state.books[symbol]?.orders[id].map(Self.brokerState) }
    }

    /// Every live order.
    public func openOrders() async throws(BrokerError) -> [BrokerOrderState] {
        state.withLock { state in
            state.symbols.flatMap { symbol in
                (state.books[symbol]?.live ?? []).compactMap { state.books[symbol]?.orders[$0].map(Self.brokerState) }
            }
        }
    }

    /// Every execution of the symbol, oldest first.
    public func executions(of symbol: Symbol) async throws(BrokerError) -> [ExecutionReport] {
        state.withLock { $0.books[symbol]?.executions ?? [] }
    }

    /// Net position per symbol (non-zero ones).
    public func positions() async throws(BrokerError) -> [Symbol: Quantity] {
        state.withLock { state in state.books.compactMapValues { $0.net.isZero ? nil : $0.net } }
    }

    /// Every execution of the symbol so far (ground truth for tests).
    public func allExecutions(of symbol: Symbol) -> [ExecutionReport] {
        state.withLock { $0.books[symbol]?.executions ?? [] }
    }

    private static func brokerState(_ order: SimulatedOrder) -> BrokerOrderState {
        let status: OrderStatus
        switch order.state {
        case .live: status = order.filled.isZero ? .working : .partiallyFilled
        case .filled: status = .filled
        case .cancelled: status = .cancelled
        }
        return BrokerOrderState(orderID: order.id, symbol: order.symbol, side: order.side, type: order.type,
                                quantity: order.quantity, filled: order.filled, status: status)
    }
}

extension AppliedDelay {
    /// Counts one request that arrived at `arrived` and takes effect now.
    mutating func add(since arrived: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - arrived
        count += 1
        totalNanoseconds += elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
    }
}
