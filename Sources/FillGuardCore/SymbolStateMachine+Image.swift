/// What recovery needs from a symbol's machine: a complete copy of its state (a snapshot), and
/// the work that was under way when the process stopped.
extension SymbolStateMachine {
    /// A complete, encodable copy of the machine's state (configuration excluded: a restarted
    /// machine takes the configuration it is started with).
    public struct Image: Sendable, Codable {
        let symbol: Symbol
        let positions: [PositionID: PositionState]
        let positionOrder: [PositionID]
        let orders: [OrderID: ManagedOrder]
        let activeOrders: [OrderID]
        /// Kept out of the coded form: it is by far the largest part, and a journal writes it
        /// in a compact form of its own (`executionIDs`).
        var executions: Set<ExecutionID> = []
        let sequence: UInt64

        enum CodingKeys: String, CodingKey {
            case symbol, positions, positionOrder, orders, activeOrders, sequence
        }

        /// The symbol the image belongs to.
        public var symbolName: Symbol { symbol }

        /// The execution ids applied (not part of the coded form; store them alongside).
        public var executionIDs: Set<ExecutionID> {
            get { executions }
            set { executions = newValue }
        }
    }

    /// A copy of the whole state, for a snapshot.
    public var image: Image {
        Image(symbol: symbol, positions: positions, positionOrder: positionOrder, orders: orders,
              activeOrders: activeOrders, executions: executions, sequence: sequence)
    }

    /// A machine restored from a snapshot, with the configuration it runs under now.
    public init(restoring image: Image, configuration: Configuration) {
        self.init(symbol: image.symbol, configuration: configuration)
        positions = image.positions
        positionOrder = image.positionOrder
        orders = image.orders
        activeOrders = image.activeOrders
        executions = image.executions
        sequence = image.sequence
    }

    /// The operations marked in flight: after a restart their outcome is unknown until the
    /// broker is asked. Each is rebuilt exactly as it was sent.
    public var unresolvedOperations: [OrderOperation] {
        activeOrders.compactMap { id -> OrderOperation? in
            guard let order = orders[id], let inFlight = order.inFlight else { return nil }
            let request: OrderOperation.Request
            let priority: OrderOperation.Priority
            switch inFlight.kind {
            case .submit:
                request = .submit(NewOrderRequest(orderID: id, symbol: symbol, side: order.side, type: order.type,
                                                  quantity: order.quantity, timeInForce: order.timeInForce))
                priority = .new
            case .modify:
                let total = inFlight.requestedQuantity ?? order.quantity
                request = .modify(ModifyOrderRequest(orderID: id, symbol: symbol, newQuantity: total))
                priority = total < order.quantity ? .reduce : .increase
            case .cancel:
                request = .cancel(CancelOrderRequest(orderID: id, symbol: symbol))
                priority = .cancel
            }
            return OrderOperation(id: inFlight.operationID, orderID: id, positionID: order.positionID, role: order.role,
                                  request: request, priority: priority, attempt: order.attempts + 1)
        }
    }

    /// Orders waiting out a retry backoff: after a restart the timer is gone; call `retryDue(_:)`.
    public var ordersAwaitingRetry: [OrderID] {
        activeOrders.filter { orders[$0]?.retryPending == true }
    }

    /// Positions held back by a permanent failure (a role blocked, or a live order marked
    /// failed): after a restart the cool-down timer is gone, so `rearm(_:)` them.
    public var positionsAwaitingRearm: [PositionID] {
        positionOrder.filter { id in
            guard let position = positions[id], position.status != .closed else { return false }
            return !position.blockedRoles.isEmpty
                || position.orderIDs.contains { orders[$0]?.failure != nil && orders[$0]?.isLive == true }
        }
    }

    /// Every order FillGuard believes is live at the broker or about to be (not ended).
    public var liveOrders: [OrderSnapshot] {
        activeOrders.compactMap { id in orders[id].flatMap { $0.isLive ? $0.snapshot(symbol: symbol) : nil } }
    }

    /// True if the order belongs to this machine (live or ended).
    public func knows(_ orderID: OrderID) -> Bool { orders[orderID] != nil }

    /// The net quantity over every position of the symbol (one per symbol at a time, so this is
    /// the symbol's net at the broker when all fills are in).
    public var netQuantity: Quantity {
        positionOrder.reduce(Quantity.zero) { $0 + (positions[$1]?.ledger.net ?? .zero) }
    }

    /// The number of distinct executions applied.
    public var executionCount: Int { executions.count }
}

extension SymbolStateMachine {
    /// Replays a journaled intent: marks its order in flight exactly as `nextOperation()` did when
    /// it produced `operation`. Returns false (and changes nothing) if the order is unknown.
    @discardableResult
    public mutating func restoreSent(_ operation: OrderOperation) -> Bool {
        guard var order = orders[operation.orderID] else { return false }
        sequence = max(sequence, operation.id)
        var requested: Quantity?
        switch operation.request {
        case .submit(let request): order.quantity = request.quantity
        case .modify(let request): requested = request.newQuantity
        case .cancel: break
        }
        order.inFlight = ManagedOrder.InFlight(operationID: operation.id, kind: operation.kind, requestedQuantity: requested)
        orders[order.id] = order
        if !activeOrders.contains(order.id) { activeOrders.append(order.id) }
        return true
    }
}

extension SymbolStateMachine {
    /// Reconciliation: the broker holds this order at `quantity` in total, not the size the
    /// machine believes (a change it applied that no record holds, or a change by hand). The
    /// broker's size is taken, so that its fills fit and planning resizes from the truth.
    /// Ignored for unknown orders, ended orders and orders with an operation in flight (their
    /// outcome is resolved separately).
    public mutating func adoptBrokerQuantity(_ orderID: OrderID, quantity: Quantity, emitting actions: inout [Action]) {
        guard var order = orders[orderID], order.isLive, order.inFlight == nil, quantity.isPositive, quantity != order.quantity else { return }
        order.quantity = max(quantity, order.filled)
        if case .unsent = order.phase { order.phase = .accepted }
        orders[orderID] = order
        actions.append(.orderChanged(orderID))
        plan(order.positionID, emitting: &actions)
    }
}

extension SymbolStateMachine {
    /// Reconciliation with the `adopt` policy: takes a live broker order that no record knows
    /// into the symbol's open position as its stop-loss (a stop on the protective side) or
    /// take-profit (a limit on the protective side). If the role already has a live order,
    /// the adopted one is a duplicate and is cancelled; otherwise it becomes the role's order
    /// and is resized to the position. Returns false (and changes nothing) when there is no open
    /// position, the order is not protective, or it has fills (they could not be booked exactly).
    @discardableResult
    public mutating func adopt(_ orderID: OrderID, side: Side, type: OrderType, quantity: Quantity, filled: Quantity,
                               emitting actions: inout [Action]) -> Bool {
        guard orders[orderID] == nil, filled.isZero, quantity.isPositive,
              let positionID = positionOrder.last(where: { positions[$0]?.status == .open }),
              var position = positions[positionID], !position.ledger.net.isZero else { return false }
        let protective: Side = position.ledger.net.units > 0 ? .sell : .buy
        guard side == protective else { return false }
        let role: OrderRole
        switch type {
        case .stop, .stopLimit: role = .stopLoss
        case .limit: role = .takeProfit
        case .market: return false
        }
        let hasLive = position.orderIDs.contains { orders[$0]?.role == role && orders[$0]?.isLive == true && orders[$0]?.side == side }
        let wanted = role == .stopLoss ? position.spec.stopLoss != nil : position.spec.takeProfit != nil
        sequence += 1
        var order = ManagedOrder(id: orderID, positionID: positionID, role: role, side: side, type: type,
                                 timeInForce: position.spec.timeInForce, quantity: quantity,
                                 target: hasLive || !wanted ? .cancelled : .open(position.ledger.net.magnitude), workSequence: sequence)
        order.phase = .accepted
        orders[orderID] = order
        activeOrders.append(orderID)
        if hasLive || !wanted {
            // Not the role's order: first in the list, so planning keeps the role's own order.
            position.orderIDs.insert(orderID, at: 0)
        } else {
            position.orderIDs.append(orderID)
        }
        positions[positionID] = position
        actions.append(.orderChanged(orderID))
        plan(positionID, emitting: &actions)
        return true
    }
}
