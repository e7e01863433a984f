import FillGuard
import FillGuardCore
import FillGuardSimulator
import Synchronization

/// A connection to the simulated exchange that can "die" with the process: after `kill()` no
/// request reaches the exchange. With `holdAcknowledgements`, requests reach the exchange (and
/// take effect) but their answers never come back: the process dies not knowing the outcome.
final class CrashableBroker: Broker, BrokerQueries {
    private struct State {
        var killed = false
        var holding = false
        var held: [CheckedContinuation<Void, Never>] = []
        var forwardedWhileHolding = 0
        var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
        var refuseSubmitsContaining: String?
        var timeOutSubmits: (text: String, count: Int)?
        var timedOut = 0
        var timeOutWaiters: [(Int, CheckedContinuation<Void, Never>)] = []
        var forwarded = 0
        var forwardedBeforePositions: Int?
        var beforeFirstPositions: (@Sendable () -> Void)?
        var forgedExecutions: [ExecutionReport] = []
        var throttledCancels = 0
        var lost: Set<OrderID> = []
        var failingQueries: [String: Int] = [:]
        var executionsWithoutQuantities = false
    }

    let exchange: SimulatedExchange
    private let state = Mutex(State())

    init(_ exchange: SimulatedExchange) { self.exchange = exchange }

    var capabilities: BrokerCapabilities { exchange.capabilities }

    func events() -> AsyncStream<BrokerEvent> { exchange.events() }

    /// From now on requests take effect at the exchange but are never answered.
    func holdAcknowledgements() { state.withLock { $0.holding = true } }

    /// Waits until `count` requests have reached the exchange while holding.
    func waitForHeldRequests(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.forwardedWhileHolding >= count { return true }
                state.waiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// The process died: nothing more reaches the exchange; held answers are dropped.
    func kill() {
        let held = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.killed = true
            defer { state.held = [] }
            return state.held
        }
        for continuation in held { continuation.resume() }
    }

    private func forward(_ body: () async throws(BrokerError) -> Void) async throws(BrokerError) {
        if state.withLock({ $0.killed }) { throw BrokerError(.transient, "connection is dead") }
        state.withLock { $0.forwarded += 1 }
        try await body()
        let hold = state.withLock { state -> Bool in
            guard state.holding, !state.killed else { return false }
            state.forwardedWhileHolding += 1
            return true
        }
        guard hold else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (keep, ready) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                let ready = state.waiters.filter { $0.0 <= state.forwardedWhileHolding }.map(\.1)
                state.waiters.removeAll { $0.0 <= state.forwardedWhileHolding }
                if state.killed { return (false, ready) }
                state.held.append(continuation)
                return (true, ready)
            }
            for waiter in ready { waiter.resume() }
            if !keep { continuation.resume() }
        }
        throw BrokerError(.transient, "connection is dead")
    }

    /// The next submit whose order id contains `text` is refused for good (not forwarded).
    func refuseNextSubmit(containing text: String) { state.withLock { $0.refuseSubmitsContaining = text } }

    func submit(_ request: NewOrderRequest) async throws(BrokerError) {
        let refuse = state.withLock { state -> Bool in
            guard let text = state.refuseSubmitsContaining, request.orderID.rawValue.contains(text) else { return false }
            state.refuseSubmitsContaining = nil
            return true
        }
        if refuse { throw BrokerError(.permanent, "refused by the test") }
        let timeOut = state.withLock { state -> Bool in
            guard let rule = state.timeOutSubmits, rule.count > 0, request.orderID.rawValue.contains(rule.text) else { return false }
            state.timeOutSubmits?.count -= 1
            return true
        }
        try await forward { () async throws(BrokerError) in try await exchange.submit(request) }
        guard timeOut else { return }
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.timedOut += 1
            let ready = state.timeOutWaiters.filter { $0.0 <= state.timedOut }.map(\.1)
            state.timeOutWaiters.removeAll { $0.0 <= state.timedOut }
            return ready
        }
        for waiter in ready { waiter.resume() }
        throw BrokerError(.timedOut, "no answer (the test)")
    }

    /// The next `count` submits whose order id contains `text` take effect at the exchange but
    /// are answered "timed out".
    func timeOutSubmits(containing text: String, count: Int) { state.withLock { $0.timeOutSubmits = (text, count) } }

    /// Waits until `count` submits have been answered "timed out".
    func waitForTimeOuts(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.timedOut >= count { return true }
                state.timeOutWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) { try await forward { () async throws(BrokerError) in try await exchange.modify(request) } }
    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {
        let throttle = state.withLock { state -> Bool in
            guard state.throttledCancels > 0 else { return false }
            state.throttledCancels -= 1
            return true
        }
        if throttle { throw BrokerError(.transient, "throttled by the test") }
        try await forward { () async throws(BrokerError) in try await exchange.cancel(request) }
    }

    /// The next `count` cancels are refused as transient (not forwarded).
    func throttleNextCancels(_ count: Int) { state.withLock { $0.throttledCancels = count } }

    /// The next `count` queries of each kind (open orders, an order's state, executions,
    /// positions) fail as transient, as on a connection reset at start-up.
    func failNextQueries(_ count: Int) {
        state.withLock { $0.failingQueries = ["openOrders": count, "orderState": count, "executions": count, "positions": count] }
    }

    /// From now on the open orders cannot be read: refused for good (one order the adapter
    /// cannot read fails the whole list, as FIX's mass status does).
    func refuseOpenOrders() { state.withLock { $0.failingQueries["openOrdersForGood"] = 1 } }

    private func failIfAsked(_ query: String) throws(BrokerError) {
        let fail = state.withLock { state -> Bool in
            guard let left = state.failingQueries[query], left > 0 else { return false }
            state.failingQueries[query] = left - 1
            return true
        }
        if fail { throw BrokerError(.transient, "connection reset (the test)") }
    }

    /// From now on the broker's queries do not know `id` (a broker that lost the order).
    func lose(_ id: OrderID) { state.withLock { _ = $0.lost.insert(id) } }

    func orderState(_ id: OrderID, symbol: Symbol) async throws(BrokerError) -> BrokerOrderState? {
        try failIfAsked("orderState")
        if state.withLock({ $0.lost.contains(id) }) { return nil }
        return try await exchange.orderState(id, symbol: symbol)
    }
    func openOrders() async throws(BrokerError) -> [BrokerOrderState] {
        if state.withLock({ $0.failingQueries["openOrdersForGood"] != nil }) {
            throw BrokerError(.permanent, "a status report could not be read (the test)")
        }
        try failIfAsked("openOrders")
        let lost = state.withLock { $0.lost }
        return try await exchange.openOrders().filter { !lost.contains($0.orderID) }
    }
    func executions(of symbol: Symbol) async throws(BrokerError) -> [ExecutionReport] {
        try failIfAsked("executions")
        let (forged, bare) = state.withLock { ($0.forgedExecutions.filter { $0.symbol == symbol }, $0.executionsWithoutQuantities) }
        var executions = try await exchange.executions(of: symbol) + forged
        if bare {
            for index in executions.indices {
                executions[index].cumulativeQuantity = nil
                executions[index].leavesQuantity = nil
            }
        }
        return executions
    }

    /// The broker's executions come without cumulative and leaves quantities (a broker that
    /// keeps only each fill's own quantity).
    func answerExecutionsWithoutQuantities() { state.withLock { $0.executionsWithoutQuantities = true } }

    /// Has the broker report `execution` too, in its executions and its net position: a fill
    /// the exchange never made (for a report FillGuard must refuse).
    func forge(_ execution: ExecutionReport) { state.withLock { $0.forgedExecutions.append(execution) } }
    func positions() async throws(BrokerError) -> [Symbol: Quantity] {
        try failIfAsked("positions")
        let action = state.withLock { state -> (@Sendable () -> Void)? in
            if state.forwardedBeforePositions == nil { state.forwardedBeforePositions = state.forwarded }
            defer { state.beforeFirstPositions = nil }
            return state.beforeFirstPositions
        }
        action?()
        var positions = try await exchange.positions()
        for execution in state.withLock({ $0.forgedExecutions }) {
            let signed = execution.side == .buy ? execution.lastQuantity : Quantity.zero - execution.lastQuantity
            positions[execution.symbol, default: .zero] += signed
        }
        return positions
    }

    /// Runs `action` when positions are first asked for, before answering (the market moving
    /// while recovery reconciles).
    func beforeFirstPositions(_ action: @escaping @Sendable () -> Void) { state.withLock { $0.beforeFirstPositions = action } }

    /// Requests sent to the exchange before positions were first asked for (recovery's net check).
    var requestsBeforeNetCheck: Int? { state.withLock { $0.forwardedBeforePositions } }
}
