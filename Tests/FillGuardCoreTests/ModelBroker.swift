import Foundation
import FillGuardCore

/// A deterministic model of a broker for one symbol's state machine. It keeps the broker-side
/// truth (each order's quantity, fills and liveness), executes operations the machine hands
/// out (several may be in flight at once, so fills can land while a modify or cancel travels),
/// answers "too late" honestly, and produces execution reports only for orders that are live
/// at the broker.
struct ModelBroker {
    struct BrokerOrder {
        var side: Side
        var type: OrderType
        var quantity: Quantity
        var filled: Quantity = .zero
        var live = true
        var open: Quantity { live ? quantity - filled : .zero }
    }

    var machine: SymbolStateMachine
    var truth: [OrderID: BrokerOrder] = [:]
    var inFlight: [OrderOperation] = []
    var sent: [OrderOperation] = []
    var retries: [OrderID] = []
    var rearms: [PositionID] = []
    var alerts: [Alert] = []
    /// Orders the machine asked to check later for fills a report announced (`checkFillsReported`).
    var fillChecks: [OrderID] = []
    var reports: [ExecutionReport] = []
    /// In-flight operations the broker has carried out and not yet answered (`applyEarly`).
    var appliedEarly: [OrderOperation] = []
    private var executions = 0
    var log: [String] = []

    init(_ symbol: Symbol, _ configuration: SymbolStateMachine.Configuration = .init()) {
        machine = SymbolStateMachine(symbol: symbol, configuration: configuration)
    }

    var symbol: Symbol { machine.symbol }

    mutating func open(_ spec: BracketSpec) throws(InputError) {
        var actions: [SymbolStateMachine.Action] = []
        try machine.open(spec, emitting: &actions)
        record(actions)
    }

    /// Takes every operation the machine has ready (they are now in flight).
    @discardableResult
    mutating func pull() -> [OrderOperation] {
        var pulled: [OrderOperation] = []
        while let operation = machine.nextOperation() {
            pulled.append(operation)
            inFlight.append(operation)
            sent.append(operation)
        }
        return pulled
    }

    /// The broker processes in-flight operation `index` (optionally failing it) and answers.
    /// With `applied`, the operation takes effect at the broker before the injected failure is
    /// answered (a timeout whose request got through).
    mutating func complete(_ index: Int = 0, failing injected: OperationFailure? = nil, applied: Bool = false) {
        let operation = inFlight.remove(at: index)
        log.append("complete \(operation) injected \(String(describing: injected)) applied \(applied)")
        var actions: [SymbolStateMachine.Action] = []
        if let early = appliedEarly.firstIndex(of: operation) {
            // Carried out already: its answer says so (or is lost: a timeout), whatever came since.
            appliedEarly.remove(at: early)
            if case .timedOut? = injected {
                machine.operationFailed(operation, injected!, emitting: &actions)
            } else {
                machine.operationSucceeded(operation, emitting: &actions)
            }
        } else if let injected {
            if applied { _ = execute(operation) }
            machine.operationFailed(operation, injected, emitting: &actions)
        } else if let failure = execute(operation) {
            machine.operationFailed(operation, failure, emitting: &actions)
        } else {
            machine.operationSucceeded(operation, emitting: &actions)
        }
        record(actions)
    }

    /// The broker carries out in-flight operation `index` now and answers it only when it is
    /// completed (fills and the broker's own ends can come between); one it would refuse is left.
    mutating func applyEarly(_ index: Int) {
        let operation = inFlight[index]
        guard !appliedEarly.contains(operation), execute(operation) == nil else { return }
        log.append("applied early \(operation)")
        appliedEarly.append(operation)
    }

    /// The broker (an exchange cancel, an expiry) ends live order `id` on its own and reports it.
    mutating func endAtTheBroker(_ id: OrderID, _ outcome: OrderStatusReport.Outcome) throws(InputError) {
        guard truth[id]?.live == true else { return }
        truth[id]?.live = false
        log.append("broker ends \(id) \(outcome)")
        var actions: [SymbolStateMachine.Action] = []
        try machine.apply(OrderStatusReport(orderID: id, symbol: symbol, outcome: outcome, reason: "exchange"), emitting: &actions)
        record(actions)
    }

    /// Runs the broker until the machine is quiescent: every operation answered, retries done.
    /// Replaces the machine with one restored from its image, coded to JSON and back (the
    /// execution ids travel beside it, as a journal keeps them).
    mutating func restoreFromImage() throws {
        let image = machine.image
        var decoded = try JSONDecoder().decode(SymbolStateMachine.Image.self, from: JSONEncoder().encode(image))
        decoded.previousExecutionIDs = image.previousExecutionIDs
        decoded.currentExecutionIDs = image.currentExecutionIDs
        machine = SymbolStateMachine(restoring: decoded, configuration: machine.configuration)
    }

    mutating func settle(limit: Int = 10_000) {
        for _ in 0..<limit {
            pull()
            if !inFlight.isEmpty { complete(0); continue }
            if !retries.isEmpty {
                fireRetries()
                continue
            }
            return
        }
        Issue.record("settle did not converge")
    }

    /// Every scheduled retry comes due now.
    mutating func fireRetries() {
        var actions: [SymbolStateMachine.Action] = []
        for id in retries { machine.retryDue(id, emitting: &actions) }
        retries.removeAll()
        record(actions)
    }

    /// The broker fills `quantity` of a live order and reports it (with cumulative and leaves).
    mutating func fill(_ id: OrderID, _ quantity: Quantity, at price: Price) throws(InputError) {
        guard let report = fillUnreported(id, quantity, at: price) else { return }
        try deliver(report)
    }

    /// The broker fills `quantity` of a live order; its report does not reach the machine (made
    /// while FillGuard was down). Nil (and an issue recorded) when the order cannot fill it.
    mutating func fillUnreported(_ id: OrderID, _ quantity: Quantity, at price: Price) -> ExecutionReport? {
        guard var order = truth[id], order.live, quantity <= order.open, quantity.isPositive else {
            Issue.record("model: \(id) cannot fill \(quantity)")
            return nil
        }
        order.filled += quantity
        if order.filled == order.quantity { order.live = false }
        truth[id] = order
        executions += 1
        let report = ExecutionReport(executionID: ExecutionID("\(symbol)-X\(executions)"), orderID: id, symbol: symbol, side: order.side,
                                     lastQuantity: quantity, lastPrice: price, cumulativeQuantity: order.filled,
                                     leavesQuantity: order.quantity - order.filled)
        reports.append(report)
        log.append("fill \(id) \(quantity)")
        return report
    }

    /// Hands a report to the machine (for duplicates and out-of-order delivery).
    mutating func deliver(_ report: ExecutionReport) throws(InputError) {
        log.append("deliver \(report.orderID) last \(report.lastQuantity) cum \(report.cumulativeQuantity.map { "\($0)" } ?? "-") leaves \(report.leavesQuantity.map { "\($0)" } ?? "-")")
        var actions: [SymbolStateMachine.Action] = []
        try machine.apply(report, emitting: &actions)
        record(actions)
    }

    /// The machine's newest live order of a role.
    func live(_ position: PositionID, _ role: OrderRole) -> OrderSnapshot? {
        machine.snapshot(of: position)?.liveOrder(role)
    }

    func snapshot(_ position: PositionID) -> PositionSnapshot { machine.snapshot(of: position)! }

    /// Fills the role's live order at the broker.
    mutating func fill(_ position: PositionID, _ role: OrderRole, _ quantity: Quantity, at price: String) throws(InputError) {
        guard let order = live(position, role) else {
            Issue.record("no live \(role) in \(position)")
            return
        }
        try fill(order.id, quantity, at: Price(price)!)
    }

    /// Net position at the broker: the sum of broker-side fills of this position's orders.
    func brokerNet(_ position: PositionID) -> Quantity {
        var net = Quantity.zero
        for order in snapshot(position).orders {
            guard let truth = truth[order.id] else { continue }
            net += truth.side == .buy ? truth.filled : -truth.filled
        }
        return net
    }

    /// Orders live at the broker for a position's role.
    func brokerLive(_ position: PositionID, _ role: OrderRole) -> [(OrderID, BrokerOrder)] {
        snapshot(position).orders.filter { $0.role == role }.compactMap { order in
            truth[order.id].flatMap { $0.live ? (order.id, $0) : nil }
        }
    }

    private mutating func execute(_ operation: OrderOperation) -> OperationFailure? {
        switch operation.request {
        case .submit(let request):
            if let existing = truth[request.orderID] {
                // A resend after a timeout is the same order; other terms under the id are refused.
                let same = existing.side == request.side && existing.type == request.type && existing.quantity == request.quantity
                return same ? nil : .permanent("duplicate order id with other terms")
            }
            truth[request.orderID] = BrokerOrder(side: request.side, type: request.type, quantity: request.quantity)
            return nil
        case .modify(let request):
            guard var order = truth[request.orderID] else { return .unknownOrder("unknown order") }
            guard order.live else { return order.filled == order.quantity ? .tooLate("filled") : .permanent("cancelled") }
            guard request.newQuantity >= order.filled else { return .permanent("below filled") }
            order.quantity = request.newQuantity
            if order.filled == order.quantity { order.live = false }
            truth[request.orderID] = order
            return nil
        case .cancel(let request):
            guard var order = truth[request.orderID] else { return .unknownOrder("unknown order") }
            // Cancelling a cancelled order again (a resend after a timeout) succeeds.
            guard order.live else { return order.filled == order.quantity ? .tooLate("filled") : nil }
            order.live = false
            truth[request.orderID] = order
            return nil
        }
    }

    private mutating func record(_ actions: [SymbolStateMachine.Action]) {
        for action in actions {
            switch action {
            case .scheduleRetry(let id, _): retries.append(id)
            case .alert(let alert): alerts.append(alert)
            case .scheduleRearm(let id): rearms.append(id)
            case .positionChanged, .orderChanged: break
            case .checkFillsReported(let id): fillChecks.append(id)
            }
        }
    }
}

import Testing

extension BracketSpec {
    /// A bracket for tests: long (buy) or short (sell) `quantity` at market, stop 5 away, target
    /// 10 away, one scale-in limit 2 away.
    static func test(_ side: Side, _ quantity: Quantity = 300, id: PositionID = "P1", symbol: Symbol = "GLD") -> BracketSpec {
        let long = side == .buy
        return BracketSpec(positionID: id, symbol: symbol, side: side, quantity: quantity, entryType: .market,
                           stopLoss: Price(long ? "95" : "105"), takeProfit: Price(long ? "110" : "90"),
                           scaleIns: [ScaleIn(quantity: quantity, type: .limit(Price(long ? "98" : "102")!))])
    }
}

extension ModelBroker {
    /// Long (or short) 300 with its stop and target live; the scale-in fills 300 more and both
    /// protective orders' resizes to 600 go out; with `answeringTheTarget`, the target's is
    /// answered. `spec` replaces the bracket (its first scale-in must be 300 at 98, or 102 short). Returns the model, the stop and the in-flight index of the stop's modify.
    static func stopResizeInFlight(_ side: Side = .buy, _ configuration: SymbolStateMachine.Configuration = .init(),
                                   spec: BracketSpec? = nil, answeringTheTarget: Bool = true) throws -> (ModelBroker, OrderSnapshot, Int) {
        var model = ModelBroker("GLD", configuration)
        try model.open(spec ?? .test(side))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        let stop = try #require(model.live("P1", .stopLoss))
        try model.fill("P1", .scaleIn(0), 300, at: side == .buy ? "98" : "102")
        model.pull()
        if answeringTheTarget {
            while let target = model.inFlight.firstIndex(where: { $0.role == .takeProfit }) { model.complete(target) }
        }
        let modify = try #require(model.inFlight.firstIndex { $0.orderID == stop.id && $0.kind == .modify })
        return (model, stop, modify)
    }
}
