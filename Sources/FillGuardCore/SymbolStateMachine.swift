/// The rules for one symbol, as a pure state machine: events in (commands, fills, operation
/// outcomes), actions out. No tasks, clocks or I/O; the same inputs always give the same state.
///
/// Order work is held as desired state. The runtime pulls the next operation with
/// `nextOperation()` when it is able to send, so an operation always carries the latest size,
/// at most one operation is in flight per order, and risk-reducing work goes first.
public struct SymbolStateMachine: Sendable {
    /// How the machine replaces and retries.
    public struct Configuration: Sendable, Hashable, Codable {
        /// The broker can change an order's quantity in place (FIX OrderCancelReplaceRequest).
        public var nativeModify: Bool
        /// How to resize a protective order when there is no native modify.
        public var replaceStrategy: ReplaceStrategy
        /// Tries per operation before it fails for good (first try included).
        public var maxAttempts: Int

        /// A configuration; defaults: native modify, cancel-then-create fallback, 3 attempts.
        public init(nativeModify: Bool = true, replaceStrategy: ReplaceStrategy = .cancelThenCreate, maxAttempts: Int = 3) {
            self.nativeModify = nativeModify
            self.replaceStrategy = replaceStrategy
            self.maxAttempts = max(1, maxAttempts)
        }
    }

    /// How a protective order is resized when the broker has no native modify.
    public enum ReplaceStrategy: String, Sendable, Hashable, CaseIterable, Codable {
        /// Cancel the old order, create the new one when the cancel is confirmed. Never
        /// over-covers (no risk of over-selling); unprotected for one round trip.
        case cancelThenCreate
        /// Create the new order, cancel the old one when the new one is live. Never unprotected;
        /// over-covered for one round trip (both could trigger).
        case createThenCancel
    }

    /// What the runtime must do after an event.
    public enum Action: Sendable, Hashable {
        /// A transient failure: call `retryDue(_:)` for the order after the backoff for `attempt`.
        case scheduleRetry(OrderID, attempt: Int)
        /// A permanent failure left the position's orders wrong: call `rearm(_:)` later to try
        /// again (the alert stays raised; a person should still look).
        case scheduleRearm(PositionID)
        /// The position's state changed (net, status, P&L).
        case positionChanged(PositionID)
        /// The order's state changed.
        case orderChanged(OrderID)
        /// Something a person must look at.
        case alert(Alert)
    }

    struct PositionState: Sendable, Codable {
        let spec: BracketSpec
        var status: PositionStatus = .pending
        var ledger = PositionLedger()
        /// Every order of the bracket, oldest first.
        var orderIDs: [OrderID] = []
        /// Protective roles whose last operation failed for good; not retried until the next fill.
        var blockedRoles: Set<OrderRole> = []
        var nextOrderNumber = 1
    }

    /// The symbol this machine owns.
    public let symbol: Symbol
    /// Its configuration.
    public let configuration: Configuration
    var positions: [PositionID: PositionState] = [:]
    var positionOrder: [PositionID] = []
    var orders: [OrderID: ManagedOrder] = [:]
    /// Orders that are live or have an operation in flight: the only ones with possible work.
    var activeOrders: [OrderID] = []
    var executions: Set<ExecutionID> = []
    var sequence: UInt64 = 0

    /// A machine for one symbol.
    public init(symbol: Symbol, configuration: Configuration = Configuration()) {
        self.symbol = symbol
        self.configuration = configuration
    }

    // MARK: - Commands

    /// Opens a bracket: places the entry and scale-ins (protective orders follow the first fill).
    public mutating func open(_ spec: BracketSpec, emitting actions: inout [Action]) throws(InputError) {
        guard spec.symbol == symbol else {
            throw InputError(.symbolMismatch, "bracket for \(spec.symbol) sent to the \(symbol) book")
        }
        try spec.validate()
        guard positions[spec.positionID] == nil else {
            throw InputError(.positionExists, "position \(spec.positionID) already exists")
        }
        if let active = positionOrder.first(where: { positions[$0]?.status != .closed }) {
            throw InputError(.positionExists, "\(symbol) already has position \(active) in progress (one position per symbol)")
        }
        var position = PositionState(spec: spec)
        positions[spec.positionID] = position
        positionOrder.append(spec.positionID)
        let entry = makeOrder(in: &position, role: .entry, side: spec.side, type: spec.entryType, quantity: spec.quantity, target: .asPlaced)
        actions.append(.orderChanged(entry))
        for (index, scaleIn) in spec.scaleIns.enumerated() {
            let id = makeOrder(in: &position, role: .scaleIn(index), side: spec.side, type: scaleIn.type, quantity: scaleIn.quantity, target: .asPlaced)
            actions.append(.orderChanged(id))
        }
        positions[spec.positionID] = position
        actions.append(.positionChanged(spec.positionID))
    }

    // MARK: - Broker reports

    /// Books a fill. Throws (and changes nothing) for a duplicate, unknown order, mismatch,
    /// bad number, overfill or backwards cumulative quantity.
    public mutating func apply(_ report: ExecutionReport, emitting actions: inout [Action]) throws(InputError) {
        if executions.contains(report.executionID) {
            throw InputError(.duplicateExecution, "execution \(report.executionID) was already applied; the repeat is ignored")
        }
        guard var order = orders[report.orderID] else {
            throw InputError(.unknownOrder, "order \(report.orderID) is not known for \(symbol)")
        }
        guard report.symbol == symbol else {
            throw InputError(.symbolMismatch, "execution \(report.executionID) says \(report.symbol) but order \(order.id) is for \(symbol)")
        }
        guard report.side == order.side else {
            throw InputError(.sideMismatch, "execution \(report.executionID) says \(report.side.rawValue) but order \(order.id) is a \(order.side.rawValue)")
        }
        guard report.lastQuantity.isPositive, report.lastQuantity <= .maximum else {
            throw InputError(.invalidQuantity, "fill quantity must be positive and at most \(Quantity.maximum), got \(report.lastQuantity)")
        }
        guard report.lastPrice.units > 0, report.lastPrice <= .maximum else {
            throw InputError(.invalidPrice, "fill price must be positive and at most \(Price.maximum), got \(report.lastPrice)")
        }
        for reported in [report.cumulativeQuantity, report.leavesQuantity] {
            if let reported, !reported.isWithinRange {
                throw InputError(.invalidQuantity, "reported quantity \(reported) is out of range")
            }
        }
        let filledAfter = order.filled + report.lastQuantity
        guard filledAfter <= order.fillLimit else {
            throw InputError(.overfill, "fill of \(report.lastQuantity) would take order \(order.id) to \(filledAfter) filled of \(order.fillLimit)")
        }
        if let leaves = report.leavesQuantity, leaves.units < 0 {
            throw InputError(.invalidQuantity, "leaves quantity must not be negative, got \(leaves)")
        }
        if let cumulative = report.cumulativeQuantity {
            guard cumulative <= order.fillLimit else {
                throw InputError(.overfill, "cumulative \(cumulative) exceeds order \(order.id) quantity \(order.fillLimit)")
            }
            guard cumulative >= report.lastQuantity else {
                throw InputError(.cumulativeWentBackwards, "cumulative \(cumulative) is below the fill's own \(report.lastQuantity)")
            }
            if cumulative >= order.maxCumulative {
                guard filledAfter <= cumulative else {
                    throw InputError(.cumulativeWentBackwards, "cumulative \(cumulative) is below the \(filledAfter) this fill would make for order \(order.id)")
                }
            } else {
                // An earlier report arriving late: it must fit in the gap the broker already reported.
                guard filledAfter <= order.maxCumulative else {
                    throw InputError(.cumulativeWentBackwards, "cumulative \(cumulative) went back from \(order.maxCumulative) for order \(order.id)")
                }
            }
        }

        // Valid: book it.
        executions.insert(report.executionID)
        order.filled = filledAfter
        if let cumulative = report.cumulativeQuantity, cumulative > order.maxCumulative { order.maxCumulative = cumulative }
        if order.filled > order.maxCumulative { order.maxCumulative = order.filled }
        order.fillValue += Money.value(of: report.lastQuantity, at: report.lastPrice)
        if case .unsent = order.phase { order.phase = .accepted }
        let isLatest = report.cumulativeQuantity.map { $0 >= order.maxCumulative } ?? true
        let brokerSaysDone = isLatest && (report.leavesQuantity?.isZero ?? false)
        if order.isLive, order.filled >= order.fillLimit || brokerSaysDone {
            order.phase = .done(.filled)
            // Done at the broker at its cumulative quantity; earlier reports may still arrive late.
            order.quantity = max(order.filled, order.maxCumulative)
        } else if !order.isLive, order.filled >= order.quantity {
            // A late fill that completes a cancelled order.
            order.phase = .done(.filled)
        }
        if !order.isLive { order.awaitingFill = false }
        orders[order.id] = order
        deactivateIfFinished(order.id)
        actions.append(.orderChanged(order.id))

        let positionID = order.positionID
        guard var position = positions[positionID] else { return }
        position.ledger.record(side: report.side, quantity: report.lastQuantity, price: report.lastPrice, commission: report.commission)
        position.status = position.ledger.net.isZero ? .closed : .open
        position.blockedRoles.removeAll()
        positions[positionID] = position
        rearmFailedOrders(of: positionID)
        actions.append(.positionChanged(positionID))
        plan(positionID, emitting: &actions)
    }

    /// Books an order's unsolicited end at the broker (exchange cancel, expiry, late reject).
    public mutating func apply(_ report: OrderStatusReport, emitting actions: inout [Action]) throws(InputError) {
        guard var order = orders[report.orderID] else {
            throw InputError(.unknownOrder, "order \(report.orderID) is not known for \(symbol)")
        }
        guard report.symbol == symbol else {
            throw InputError(.symbolMismatch, "status report says \(report.symbol) but order \(order.id) is for \(symbol)")
        }
        guard order.isLive else { return }
        let status: OrderStatus
        switch report.outcome {
        case .cancelled: status = .cancelled
        case .expired: status = .expired
        case .rejected: status = .rejected
        }
        order.phase = .done(status)
        order.awaitingFill = false
        orders[order.id] = order
        deactivateIfFinished(order.id)
        actions.append(.orderChanged(order.id))
        if order.role.isProtective, order.target != .cancelled, let position = positions[order.positionID] {
            actions.append(.alert(Alert(kind: .protectiveEndedByBroker, positionID: order.positionID, symbol: symbol, orderID: order.id, role: order.role,
                                        message: "broker ended \(order.role) \(order.id) (\(status.rawValue)\(report.reason.isEmpty ? "" : ": \(report.reason)")); re-protecting \(position.ledger.net.magnitude)")))
        }
        if order.role == .entry, order.filled.isZero, var position = positions[order.positionID], position.ledger.net.isZero, position.status == .pending {
            position.status = .closed
            positions[order.positionID] = position
            actions.append(.positionChanged(order.positionID))
        }
        plan(order.positionID, emitting: &actions)
    }

    // MARK: - Operation outcomes

    /// The broker accepted an operation.
    public mutating func operationSucceeded(_ operation: OrderOperation, emitting actions: inout [Action]) {
        guard var order = orders[operation.orderID], order.inFlight?.operationID == operation.id else { return }
        order.inFlight = nil
        order.attempts = 0
        switch operation.request {
        case .submit:
            if case .unsent = order.phase { order.phase = .accepted }
        case .modify(let request):
            if order.isLive {
                order.quantity = request.newQuantity
                if order.filled >= order.quantity { order.phase = .done(.filled) }
            }
        case .cancel:
            if order.isLive { order.phase = .done(order.filled >= order.quantity ? .filled : .cancelled) }
        }
        orders[order.id] = order
        deactivateIfFinished(order.id)
        actions.append(.orderChanged(order.id))
        plan(order.positionID, emitting: &actions)
    }

    /// An operation failed: transient failures are retried (up to `maxAttempts`), too-late
    /// answers wait for the order's fills, permanent failures raise an alert.
    public mutating func operationFailed(_ operation: OrderOperation, _ failure: OperationFailure, emitting actions: inout [Action]) {
        guard var order = orders[operation.orderID], order.inFlight?.operationID == operation.id else { return }
        order.inFlight = nil
        if case .unsent = order.phase, order.target == .cancelled {
            // The broker never took it and it is no longer wanted: it ends here, whatever the failure.
            order.phase = .done(.cancelled)
            orders[order.id] = order
            deactivateIfFinished(order.id)
            actions.append(.orderChanged(order.id))
            plan(order.positionID, emitting: &actions)
            return
        }
        switch failure {
        case .transient(let message):
            guard order.isLive else {
                orders[order.id] = order
                deactivateIfFinished(order.id)
                plan(order.positionID, emitting: &actions)
                return
            }
            order.attempts += 1
            if order.attempts < configuration.maxAttempts {
                order.retryPending = true
                orders[order.id] = order
                actions.append(.scheduleRetry(order.id, attempt: order.attempts))
                actions.append(.orderChanged(order.id))
                return
            }
            orders[order.id] = order
            failPermanently(order.id, operation: operation, message: "\(operation.kind.rawValue) failed \(order.attempts) times, last: \(message)", emitting: &actions)
        case .permanent(let message):
            orders[order.id] = order
            failPermanently(order.id, operation: operation, message: "\(operation.kind.rawValue) refused: \(message)", emitting: &actions)
        case .tooLate(let message):
            if operation.kind == .submit {
                orders[order.id] = order
                failPermanently(order.id, operation: operation, message: "submit refused: \(message)", emitting: &actions)
                return
            }
            // The order filled (or ended) first. If its fills are all in, it is done now;
            // otherwise wait for them and re-derive from them.
            order.attempts = 0
            if order.isLive {
                if order.filled >= order.quantity {
                    order.phase = .done(.filled)
                } else {
                    order.awaitingFill = true
                }
            }
            orders[order.id] = order
            deactivateIfFinished(order.id)
            actions.append(.orderChanged(order.id))
            plan(order.positionID, emitting: &actions)
        }
    }

    /// A transient failure's backoff is over: the order's work may be tried again.
    public mutating func retryDue(_ orderID: OrderID, emitting actions: inout [Action]) {
        guard var order = orders[orderID], order.retryPending else { return }
        order.retryPending = false
        orders[orderID] = order
        plan(order.positionID, emitting: &actions)
    }

    /// Clears the position's permanent failures and plans its orders again (after a cool-down).
    public mutating func rearm(_ positionID: PositionID, emitting actions: inout [Action]) {
        guard var position = positions[positionID] else { return }
        position.blockedRoles.removeAll()
        positions[positionID] = position
        rearmFailedOrders(of: positionID)
        plan(positionID, emitting: &actions)
    }

    // MARK: - Pulling work

    /// The most urgent operation that can be sent now, marked in flight; nil when there is none.
    /// Cancels first, then reductions, increases and new orders; FIFO within a class.
    public mutating func nextOperation() -> OrderOperation? {
        var best: (index: Int, priority: OrderOperation.Priority, sequence: UInt64)?
        for (index, id) in activeOrders.enumerated() {
            guard let order = orders[id], let priority = pendingPriority(of: order) else { continue }
            if let current = best, (current.priority, current.sequence) <= (priority, order.workSequence) { continue }
            best = (index, priority, order.workSequence)
        }
        guard let best, var order = orders[activeOrders[best.index]] else { return nil }
        sequence += 1
        let request: OrderOperation.Request
        var requested: Quantity?
        switch best.priority {
        case .cancel:
            request = .cancel(CancelOrderRequest(orderID: order.id, symbol: symbol))
        case .reduce, .increase:
            guard case .open(let size) = order.target else { return nil }
            let total = order.filled + size
            requested = total
            request = .modify(ModifyOrderRequest(orderID: order.id, symbol: symbol, newQuantity: total))
        case .new:
            if case .open(let size) = order.target { order.quantity = size }
            request = .submit(NewOrderRequest(orderID: order.id, symbol: symbol, side: order.side, type: order.type,
                                              quantity: order.quantity, timeInForce: order.timeInForce))
        }
        let operation = OrderOperation(id: sequence, orderID: order.id, positionID: order.positionID, role: order.role,
                                       request: request, priority: best.priority, attempt: order.attempts + 1)
        order.inFlight = ManagedOrder.InFlight(operationID: sequence, kind: operation.kind, requestedQuantity: requested)
        orders[order.id] = order
        return operation
    }

    /// True when no operation is in flight, none is waiting for a retry and none is ready to send.
    public var isQuiescent: Bool {
        for id in activeOrders {
            guard let order = orders[id] else { continue }
            if order.inFlight != nil || order.retryPending || pendingPriority(of: order) != nil { return false }
        }
        return true
    }

    /// The number of operations in flight.
    public var operationsInFlight: Int {
        activeOrders.reduce(0) { $0 + (orders[$1]?.inFlight != nil ? 1 : 0) }
    }

    // MARK: - Reading

    /// Every position of this symbol, in the order they were opened.
    public var positionIDs: [PositionID] { positionOrder }

    /// A copy of one position and its orders.
    public func snapshot(of positionID: PositionID) -> PositionSnapshot? {
        guard let position = positions[positionID] else { return nil }
        return PositionSnapshot(
            id: positionID, symbol: symbol, side: position.spec.side, status: position.status,
            netQuantity: position.ledger.net, averagePrice: position.ledger.averagePrice,
            realizedPnL: position.ledger.realizedPnL, commissions: position.ledger.commissions,
            orders: position.orderIDs.compactMap { orders[$0]?.snapshot(symbol: symbol) },
            stopLoss: position.spec.stopLoss, takeProfit: position.spec.takeProfit)
    }

    /// A copy of one order.
    public func snapshot(of orderID: OrderID) -> OrderSnapshot? {
        orders[orderID]?.snapshot(symbol: symbol)
    }

    /// The order a trace means by "position P, role R": the role's newest order (live or not,
    /// so that a late fill after a cancel still finds it).
    public func orderID(of positionID: PositionID, role: OrderRole) -> OrderID? {
        positions[positionID]?.orderIDs.last { orders[$0]?.role == role }
    }

    /// True if the execution id has been applied.
    public func hasApplied(_ executionID: ExecutionID) -> Bool { executions.contains(executionID) }

    // MARK: - Internals

    private mutating func makeOrder(in position: inout PositionState, role: OrderRole, side: Side, type: OrderType,
                                    quantity: Quantity, target: ManagedOrder.Target) -> OrderID {
        let tag: String
        switch role {
        case .entry: tag = "en"
        case .scaleIn(let index): tag = "si\(index)-"
        case .stopLoss: tag = "sl"
        case .takeProfit: tag = "tp"
        }
        let id = OrderID("\(position.spec.positionID)-\(tag)\(position.nextOrderNumber)")
        position.nextOrderNumber += 1
        sequence += 1
        let order = ManagedOrder(id: id, positionID: position.spec.positionID, role: role, side: side, type: type,
                                 timeInForce: position.spec.timeInForce, quantity: quantity, target: target, workSequence: sequence)
        orders[id] = order
        activeOrders.append(id)
        position.orderIDs.append(id)
        return id
    }

    /// The class of work the order needs now, or nil if none can be sent.
    private func pendingPriority(of order: ManagedOrder) -> OrderOperation.Priority? {
        guard order.inFlight == nil, !order.retryPending, !order.awaitingFill, order.failure == nil else { return nil }
        switch (order.phase, order.target) {
        case (.done, _):
            return nil
        case (.unsent, .cancelled):
            return nil // settled locally by plan()
        case (.unsent, _):
            return .new
        case (.accepted, .cancelled):
            if order.retiring, let successor = order.successor, let next = orders[successor] {
                // create-then-cancel: the old order goes only once the new one is live.
                guard next.isAccepted || next.isDone else { return nil }
            }
            return .cancel
        case (.accepted, .asPlaced):
            return nil
        case (.accepted, .open(let size)):
            let open = order.openQuantity
            guard configuration.nativeModify, size != open else { return nil }
            return size < open ? .reduce : .increase
        }
    }

    private mutating func setTarget(_ target: ManagedOrder.Target, of id: OrderID, emitting actions: inout [Action]) {
        guard var order = orders[id], order.target != target else { return }
        order.target = target
        sequence += 1
        order.workSequence = sequence
        if case .unsent = order.phase, target == .cancelled, order.inFlight == nil {
            order.phase = .done(.cancelled)
        }
        orders[id] = order
        deactivateIfFinished(id)
        actions.append(.orderChanged(id))
    }

    private mutating func deactivateIfFinished(_ id: OrderID) {
        guard let order = orders[id], order.isDone, order.inFlight == nil else { return }
        activeOrders.removeAll { $0 == id }
    }

    private mutating func rearmFailedOrders(of positionID: PositionID) {
        guard let position = positions[positionID] else { return }
        for id in position.orderIDs {
            guard var order = orders[id], order.isLive, order.failure != nil else { continue }
            order.failure = nil
            order.attempts = 0
            orders[id] = order
        }
    }

    private mutating func failPermanently(_ id: OrderID, operation: OrderOperation, message: String, emitting actions: inout [Action]) {
        guard var order = orders[id], var position = positions[order.positionID] else { return }
        order.attempts = 0
        order.failure = message
        if operation.kind == .submit, case .unsent = order.phase {
            order.phase = .done(.rejected)
        }
        orders[id] = order
        deactivateIfFinished(id)
        actions.append(.orderChanged(id))
        // A replacement that could not be placed: keep the order it was replacing.
        if operation.kind == .submit {
            for otherID in position.orderIDs {
                guard var other = orders[otherID], other.successor == id, other.isLive else { continue }
                other.retiring = false
                other.successor = nil
                other.target = .open(other.openQuantity)
                orders[otherID] = other
            }
        }
        if order.role.isProtective { position.blockedRoles.insert(order.role) }
        var kind = Alert.Kind.operationFailed
        if order.role == .entry, operation.kind == .submit, position.ledger.net.isZero, position.status == .pending {
            kind = .entryRejected
            position.status = .closed
            actions.append(.positionChanged(order.positionID))
        }
        positions[order.positionID] = position
        actions.append(.alert(Alert(kind: kind, positionID: order.positionID, symbol: symbol, orderID: id, role: order.role, message: message)))
        if kind == .operationFailed { actions.append(.scheduleRearm(order.positionID)) }
        plan(order.positionID, emitting: &actions)
    }

    /// Derives every order's desired state from the position (rules 2-7) and records the work.
    mutating func plan(_ positionID: PositionID, emitting actions: inout [Action]) {
        guard let position = positions[positionID] else { return }
        let net = position.ledger.net

        if position.status == .closed || net.isZero {
            // Flat: everything left goes (rule 5). A pending bracket keeps its entry and scale-ins.
            for id in position.orderIDs {
                guard let order = orders[id], order.isLive, !order.awaitingFill else { continue }
                if position.status == .closed || order.role.isProtective {
                    setTarget(.cancelled, of: id, emitting: &actions)
                }
            }
            return
        }

        let side = net.units > 0 ? Side.sell : Side.buy
        let size = net.magnitude
        for (role, price) in [(OrderRole.stopLoss, position.spec.stopLoss), (OrderRole.takeProfit, position.spec.takeProfit)] {
            guard let price else { continue }
            let liveBefore = liveOrders(role, of: position)
            // The broker said too late: wait for those fills before touching the role.
            if liveBefore.contains(where: \.awaitingFill) { continue }
            for order in liveBefore where order.side != side {
                setTarget(.cancelled, of: order.id, emitting: &actions)
            }
            // Re-read: an order never sent was just cancelled locally and is gone. Nothing was
            // cancelled when every live order is on the right side: then nothing changed.
            let live = liveBefore.contains { $0.side != side } ? liveOrders(role, of: position) : liveBefore
            let current = live.last { !$0.retiring && $0.side == side }
            if let current {
                if current.failure != nil { continue }
                let target = ManagedOrder.Target.open(size)
                if configuration.nativeModify || !current.isAccepted || current.inFlight != nil || current.openQuantity == size {
                    // Native modify (or a submit that will carry the size): set the size and let
                    // nextOperation() send the difference. Without native modify, an in-flight
                    // operation's outcome re-plans this when it completes.
                    setTarget(target, of: current.id, emitting: &actions)
                    continue
                }
                // No native modify: replace.
                guard !position.blockedRoles.contains(role) else { continue }
                switch configuration.replaceStrategy {
                case .cancelThenCreate:
                    retire(current.id, successor: nil, emitting: &actions)
                case .createThenCancel:
                    let successor = createProtective(positionID, role: role, side: side, price: price, size: size, emitting: &actions)
                    retire(current.id, successor: successor, emitting: &actions)
                }
                continue
            }
            guard !position.blockedRoles.contains(role) else { continue }
            // No current order. Wait while an old one is still being cancelled, unless the
            // strategy creates first and the old one is on the right side.
            let waiting = live.contains { $0.side != side || configuration.replaceStrategy == .cancelThenCreate }
            if waiting { continue }
            let successor = createProtective(positionID, role: role, side: side, price: price, size: size, emitting: &actions)
            for order in live where order.retiring && order.successor == nil {
                var old = order
                old.successor = successor
                orders[old.id] = old
            }
        }
    }

    /// The position's live orders of `role`, oldest first: one pass, copying only the matches
    /// (the hot path of every fill; `compactMap` + `filter` copied every order twice).
    private func liveOrders(_ role: OrderRole, of position: PositionState) -> [ManagedOrder] {
        var result: [ManagedOrder] = []
        for id in position.orderIDs {
            guard let order = orders[id], order.role == role, order.isLive else { continue }
            result.append(order)
        }
        return result
    }

    private mutating func retire(_ id: OrderID, successor: OrderID?, emitting actions: inout [Action]) {
        guard var order = orders[id] else { return }
        order.retiring = true
        order.successor = successor
        orders[id] = order
        setTarget(.cancelled, of: id, emitting: &actions)
    }

    private mutating func createProtective(_ positionID: PositionID, role: OrderRole, side: Side, price: Price, size: Quantity,
                                           emitting actions: inout [Action]) -> OrderID {
        guard var position = positions[positionID] else { preconditionFailure("plan for a missing position") }
        let type: OrderType = role == .stopLoss ? .stop(price) : .limit(price)
        let id = makeOrder(in: &position, role: role, side: side, type: type, quantity: size, target: .open(size))
        positions[positionID] = position
        actions.append(.orderChanged(id))
        return id
    }
}
