/// What recovery needs from a symbol's machine: a complete copy of its state (a snapshot), and
/// the work that was under way when the process stopped.
extension SymbolStateMachine {
    /// A complete, encodable copy of the machine's state (configuration excluded: a restarted
    /// machine takes the configuration it is started with).
    ///
    /// The coded form (format 2) holds positions and orders by slot, the retired orders' records
    /// and the execution memory's counters; the remembered execution ids themselves are kept out
    /// of it (a journal writes them in a compact form of its own, `previousExecutionIDs` and
    /// `currentExecutionIDs`). Format 1 (positions and orders keyed by id, every execution id
    /// ever applied) is still read.
    public struct Image: Sendable, Codable {
        let symbol: Symbol
        let positions: [PositionState]
        let orders: [ManagedOrder]
        let activeOrders: [Int32]
        let sequence: UInt64
        let retired: [RetiredOrder]
        let executionsApplied: UInt64
        let previousStart: UInt64
        let currentStart: UInt64
        /// Not part of the coded form (see the type's notes).
        var previousExecutions: [ExecutionID] = []
        /// Not part of the coded form (see the type's notes).
        var currentExecutions: [ExecutionID] = []
        /// Read from format 1: its execution ids are one set, to be handed to `adoptLegacyExecutionIDs(_:)`.
        public private(set) var isLegacyFormat = false

        enum CodingKeys: String, CodingKey {
            case format, symbol, positions, orders, activeOrders, sequence, retired, executionsApplied, previousStart, currentStart
        }

        init(symbol: Symbol, positions: [PositionState], orders: [ManagedOrder], activeOrders: [Int32], sequence: UInt64,
             retired: [RetiredOrder], executions: ExecutionMemory) {
            self.symbol = symbol
            self.positions = positions
            self.orders = orders
            self.activeOrders = activeOrders
            self.sequence = sequence
            self.retired = retired
            self.executionsApplied = executions.applied
            self.previousStart = executions.previousStart
            self.currentStart = executions.currentStart
            self.previousExecutions = executions.previous.ids
            self.currentExecutions = executions.current.ids
        }

        /// Encodes format 2.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(2, forKey: .format)
            try container.encode(symbol, forKey: .symbol)
            try container.encode(positions, forKey: .positions)
            try container.encode(orders, forKey: .orders)
            try container.encode(activeOrders, forKey: .activeOrders)
            try container.encode(sequence, forKey: .sequence)
            try container.encode(retired, forKey: .retired)
            try container.encode(executionsApplied, forKey: .executionsApplied)
            try container.encode(previousStart, forKey: .previousStart)
            try container.encode(currentStart, forKey: .currentStart)
        }

        /// Decodes format 2, or format 1 (written before orders had slots).
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            guard container.contains(.format) else {
                self = try LegacyImage(from: decoder).converted()
                return
            }
            let format = try container.decode(Int.self, forKey: .format)
            guard format == 2 else {
                throw DecodingError.dataCorruptedError(forKey: .format, in: container, debugDescription: "unknown image format \(format)")
            }
            symbol = try container.decode(Symbol.self, forKey: .symbol)
            var positions = try container.decode([PositionState].self, forKey: .positions)
            orders = try container.decode([ManagedOrder].self, forKey: .orders)
            activeOrders = try container.decode([Int32].self, forKey: .activeOrders)
            sequence = try container.decode(UInt64.self, forKey: .sequence)
            retired = try container.decode([RetiredOrder].self, forKey: .retired)
            executionsApplied = try container.decode(UInt64.self, forKey: .executionsApplied)
            previousStart = try container.decode(UInt64.self, forKey: .previousStart)
            currentStart = try container.decode(UInt64.self, forKey: .currentStart)
            // Check every slot before anything indexes with it: a damaged image must not crash.
            let orderCount = orders.count
            func valid(_ slot: Int32) -> Bool { slot >= 0 && Int(slot) < orderCount }
            for position in positions where !position.orderSlots.allSatisfy(valid) {
                throw DecodingError.dataCorruptedError(forKey: .positions, in: container, debugDescription: "an order slot is out of range")
            }
            for order in orders where !(order.position >= 0 && Int(order.position) < positions.count) || (order.successor != -1 && !valid(order.successor)) {
                throw DecodingError.dataCorruptedError(forKey: .orders, in: container, debugDescription: "a position or successor slot is out of range")
            }
            guard activeOrders.allSatisfy(valid) else {
                throw DecodingError.dataCorruptedError(forKey: .activeOrders, in: container, debugDescription: "an active slot is out of range")
            }
            for p in positions.indices {
                positions[p].liveSlots = positions[p].orderSlots.filter { [orders] in orders[Int($0)].isLive }
            }
            self.positions = positions
        }

        /// The symbol the image belongs to.
        public var symbolName: Symbol { symbol }

        /// The remembered execution ids of the older generation (not part of the coded form).
        public var previousExecutionIDs: [ExecutionID] {
            get { previousExecutions }
            set { previousExecutions = newValue }
        }

        /// The remembered execution ids of the newer generation (not part of the coded form).
        public var currentExecutionIDs: [ExecutionID] {
            get { currentExecutions }
            set { currentExecutions = newValue }
        }

        /// Format 1 kept every execution id ever applied, as one set: they become the older
        /// generation of the execution memory (forgotten once a full window of new ids is in).
        public mutating func adoptLegacyExecutionIDs(_ ids: Set<ExecutionID>) {
            previousExecutions = ids.sorted { $0.rawValue < $1.rawValue }
            currentExecutions = []
            self = Image(symbol: symbol, positions: positions, orders: orders, activeOrders: activeOrders, sequence: sequence,
                         retired: retired, applied: UInt64(ids.count), previousStart: 1, currentStart: UInt64(ids.count) + 1,
                         previous: previousExecutions, current: [])
        }

        fileprivate init(symbol: Symbol, positions: [PositionState], orders: [ManagedOrder], activeOrders: [Int32], sequence: UInt64,
                         retired: [RetiredOrder], applied: UInt64, previousStart: UInt64, currentStart: UInt64,
                         previous: [ExecutionID], current: [ExecutionID], legacy: Bool = false) {
            self.symbol = symbol
            self.positions = positions
            self.orders = orders
            self.activeOrders = activeOrders
            self.sequence = sequence
            self.retired = retired
            self.executionsApplied = applied
            self.previousStart = previousStart
            self.currentStart = currentStart
            self.previousExecutions = previous
            self.currentExecutions = current
            self.isLegacyFormat = legacy
        }
    }

    /// A copy of the whole state, for a snapshot.
    public var image: Image {
        Image(symbol: symbol, positions: positions, orders: orders, activeOrders: activeOrders, sequence: sequence,
              retired: retired.ordered, executions: executions)
    }

    /// A machine restored from a snapshot, with the configuration it runs under now.
    public init(restoring image: Image, configuration: Configuration) {
        self.init(symbol: image.symbol, configuration: configuration)
        positions = image.positions
        orders = image.orders
        activeOrders = image.activeOrders
        // Any of them may block an opening until the next one has looked (see `openBlockers`).
        openBlockers = positions.indices.map { Int32($0) }
        sequence = image.sequence
        for record in image.retired { retired.insert(record) }
        executions.previous = ExecutionIDSet(image.previousExecutions, limit: executions.generationSize)
        executions.current = ExecutionIDSet(image.currentExecutions, limit: executions.generationSize)
        executions.applied = image.executionsApplied
        executions.previousStart = image.previousStart
        executions.currentStart = image.currentStart
        rebuildOrderIndex()
        rebuildPositionIndex()
    }

    /// The operations marked in flight: after a restart their outcome is unknown until the
    /// broker is asked. Each is rebuilt exactly as it was sent.
    public var unresolvedOperations: [OrderOperation] {
        activeOrders.compactMap { slot -> OrderOperation? in
            let order = orders[Int(slot)]
            guard let inFlight = order.inFlight else { return nil }
            let id = order.id
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
            return OrderOperation(id: inFlight.operationID, orderID: id, positionID: positions[Int(order.position)].id, role: order.role,
                                  request: request, priority: priority, attempt: Int(order.attempts) + 1)
        }
    }

    /// Orders waiting out a retry backoff: after a restart the timer is gone; call `retryDue(_:)`.
    public var ordersAwaitingRetry: [OrderID] {
        activeOrders.filter { orders[Int($0)].retryPending }.map { orders[Int($0)].id }
    }

    /// Live orders that wait, their tries used up, for the fills of a "too late" answer: the
    /// broker is asked where they stand (`adoptBrokerQuantity(_:quantity:emitting:)` when it
    /// still works one).
    public var ordersAwaitingFills: [OrderID] {
        activeOrders.filter { orders[Int($0)].awaitingFill && !orders[Int($0)].retryPending && orders[Int($0)].inFlight == nil }
            .map { orders[Int($0)].id }
    }

    /// Positions held back by a permanent failure (a role of an open position blocked, or a live
    /// order marked failed): after a restart the cool-down timer is gone, so `rearm(_:)` them.
    public var positionsAwaitingRearm: [PositionID] {
        positions.filter { position in
            // A closed position can still hold a failed live order (a cancel that kept failing).
            (position.status != .closed && position.blockedRoles != 0)
                || position.orderSlots.contains { orders[Int($0)].failure != nil && orders[Int($0)].isLive }
        }.map(\.id)
    }

    /// Every order FillGuard believes is live at the broker or about to be (not ended).
    public var liveOrders: [OrderSnapshot] {
        activeOrders.compactMap { slot in
            let order = orders[Int(slot)]
            return order.isLive ? order.snapshot(symbol: symbol, positionID: positions[Int(order.position)].id) : nil
        }
    }

    /// True if the order belongs to this machine (live or ended), or was retired from it and is
    /// still remembered (see `Configuration.retiredOrderMemory`).
    public func knows(_ orderID: OrderID) -> Bool { slot(of: orderID) != nil || retired[orderID] != nil }

    /// The record of a retired order, if it is still remembered.
    public func retiredOrder(_ orderID: OrderID) -> RetiredOrder? { retired[orderID] }

    /// The net quantity over every position of the symbol (one per symbol at a time, so this is
    /// the symbol's net at the broker when all fills are in).
    public var netQuantity: Quantity {
        positions.reduce(Quantity.zero) { $0 + $1.ledger.net }
    }

    /// The number of distinct executions applied (ever, not only the remembered ones).
    public var executionCount: Int { Int(executions.applied) }

    /// What the machine holds, counted: stays bounded however many fills a symbol takes (the
    /// execution ids by the window; closed positions, when `retainedClosedPositions` is set).
    public struct Footprint: Sendable, Hashable {
        /// Positions kept in full.
        public var positions: Int
        /// Orders kept in full.
        public var orders: Int
        /// Orders live or with an operation in flight.
        public var activeOrders: Int
        /// Execution ids remembered for duplicate detection.
        public var rememberedExecutions: Int
        /// Retired orders remembered.
        public var retiredOrders: Int
    }

    /// The machine's current counts.
    public var footprint: Footprint {
        Footprint(positions: positions.count, orders: orders.count, activeOrders: activeOrders.count,
                  rememberedExecutions: executions.count, retiredOrders: retired.count)
    }
}

extension SymbolStateMachine {
    /// True if this fill is known to be booked: its id is remembered, or the broker's cumulative
    /// quantity shows it (the order has no gap in its reports and the cumulative is within what
    /// was booked for it, live or retired).
    public func hasApplied(_ report: ExecutionReport) -> Bool {
        if executions.contains(report.executionID) { return true }
        guard let cumulative = report.cumulativeQuantity else { return false }
        if let s = slot(of: report.orderID) {
            return orders[s].filled == orders[s].maxCumulative && cumulative <= orders[s].filled
        }
        if let record = retired[report.orderID] {
            return record.filled == record.maxCumulative && cumulative <= record.filled
        }
        return false
    }

    /// Sorts the broker's executions of this symbol for reconciliation after a restart: which
    /// were not booked and should be applied, and which cannot be. See `ExecutionReconciliation`.
    /// Each list keeps the broker's order (oldest first): fills are applied as they happened, so
    /// a position that never went flat at the broker does not pass through flat here, and its
    /// average price and realized P&L come out as the broker's.
    public func reconcile(brokerExecutions: [ExecutionReport]) -> ExecutionReconciliation {
        var result = ExecutionReconciliation()
        var groups: [OrderID: [Int]] = [:]
        var order: [OrderID] = []
        for (index, report) in brokerExecutions.enumerated() {
            if groups[report.orderID] == nil { order.append(report.orderID) }
            groups[report.orderID, default: []].append(index)
        }
        var missing: [Int] = []
        var unknown: [Int] = []
        var retiredMissing: [(index: Int, positionID: PositionID)] = []
        for orderID in order {
            let indices = groups[orderID] ?? []
            let unbooked = indices.filter { !hasApplied(brokerExecutions[$0]) }
            if unbooked.isEmpty { continue }
            let booked: Quantity
            let firstFill: UInt64
            let retiredRecord = slot(of: orderID) == nil ? retired[orderID] : nil
            if let s = slot(of: orderID) {
                booked = orders[s].filled
                firstFill = orders[s].firstFillSerial
            } else if let retiredRecord {
                booked = retiredRecord.filled
                firstFill = retiredRecord.firstFillSerial
            } else {
                unknown += unbooked
                continue
            }
            var missingOfOrder = unbooked
            if firstFill != 0, !executions.remembersAll(since: firstFill) {
                // Some of this order's booked ids left the window: judge by quantity. Nothing is
                // missing if the broker's total is booked; otherwise the newest unbooked
                // executions that add up exactly to the difference are the missing ones.
                let total = indices.reduce(Quantity.zero) { $0 + brokerExecutions[$1].lastQuantity }
                if total <= booked { continue }
                let need = total - booked
                var sum = Quantity.zero
                var suffix: [Int] = []
                for index in unbooked.reversed() where sum < need {
                    sum += brokerExecutions[index].lastQuantity
                    suffix.append(index)
                }
                guard sum == need else {
                    result.ambiguous.append(ExecutionReconciliation.Ambiguity(
                        orderID: orderID,
                        message: "the broker reports \(total) filled, \(booked) was booked, and the executions not remembered do not add up to the \(need) missing (their ids left the window of \(configuration.executionWindow)); nothing applied"))
                    continue
                }
                missingOfOrder = suffix.reversed()
            }
            if let retiredRecord {
                retiredMissing += missingOfOrder.map { ($0, retiredRecord.positionID) }
            } else {
                missing += missingOfOrder
            }
        }
        // Back in the broker's order, across orders (each was gathered order by order).
        result.missing = missing.sorted().map { brokerExecutions[$0] }
        result.unknownOrder = unknown.sorted().map { brokerExecutions[$0] }
        result.retiredOrder = retiredMissing.sorted { $0.index < $1.index }.map {
            ExecutionReconciliation.Retired(report: brokerExecutions[$0.index], positionID: $0.positionID)
        }
        return result
    }
}

/// The broker's executions of one symbol, sorted by `SymbolStateMachine.reconcile(brokerExecutions:)`.
///
/// An execution counts as booked when its id is remembered, or the broker's cumulative quantity
/// shows it was. For an order whose older ids have left the window, quantities decide: if the
/// broker's total for the order is booked, nothing is missing; otherwise the newest executions
/// not remembered that add up exactly to the difference are missing (else the order is ambiguous).
public struct ExecutionReconciliation: Sendable {
    /// An execution of a retired order that was not booked: it cannot be applied any more.
    public struct Retired: Sendable {
        /// The execution.
        public var report: ExecutionReport
        /// The closed position the order belonged to.
        public var positionID: PositionID
    }

    /// An order whose missing fills cannot be told apart.
    public struct Ambiguity: Sendable {
        /// The order.
        public var orderID: OrderID
        /// What was found.
        public var message: String
    }

    /// Executions of orders the machine holds that were not booked: apply them.
    public var missing: [ExecutionReport] = []
    /// Executions of orders the machine does not know (never did, or forgot after retiring them).
    public var unknownOrder: [ExecutionReport] = []
    /// Executions of retired orders that were not booked.
    public var retiredOrder: [Retired] = []
    /// Orders whose missing quantity could not be matched to executions.
    public var ambiguous: [Ambiguity] = []
}

extension SymbolStateMachine {
    /// Replays a journaled intent: marks its order in flight exactly as `nextOperation()` did when
    /// it produced `operation`. Returns false (and changes nothing) if the order is unknown.
    @discardableResult
    public mutating func restoreSent(_ operation: OrderOperation) -> Bool {
        guard let s = slot(of: operation.orderID) else { return false }
        sequence = max(sequence, operation.id)
        var requested: Quantity?
        switch operation.request {
        case .submit(let request): orders[s].quantity = request.quantity
        case .modify(let request): requested = request.newQuantity
        case .cancel: break
        }
        orders[s].inFlight = ManagedOrder.InFlight(operationID: operation.id, kind: operation.kind, requestedQuantity: requested)
        // An operation taken is not in a backoff (one taken in it ended it: `nextOpeningSubmit`).
        orders[s].retryPending = false
        if !activeOrders.contains(Int32(s)) { activeOrders.append(Int32(s)) }
        return true
    }
}

extension SymbolStateMachine {
    /// Reconciliation: the broker holds this order live at `quantity` in total, not the size the
    /// machine believes (a change it applied that no record holds, or a change by hand), or holds
    /// an order the machine has as not yet sent (its submit went out but the record of it was
    /// lost), or works an order the machine waits on after a "too late" (its tries used up: that
    /// answer was wrong, the order is live). The broker's size is taken and the order counts as
    /// placed and live, so that its fills fit, planning resizes (or cancels) it from the truth,
    /// and the id is never submitted twice.
    /// Ignored for unknown orders, ended orders and orders with an operation in flight or a retry
    /// due (their outcome is resolved separately).
    public mutating func adoptBrokerQuantity(_ orderID: OrderID, quantity: Quantity, emitting actions: inout [Action]) {
        guard let s = slot(of: orderID), orders[s].isLive, orders[s].inFlight == nil, quantity.isPositive else { return }
        let unsent: Bool
        if case .unsent = orders[s].phase { unsent = true } else { unsent = false }
        let waited = orders[s].awaitingFill && !orders[s].retryPending
        guard unsent || waited || quantity != orders[s].quantity else { return }
        if waited {
            orders[s].awaitingFill = false
            orders[s].attempts = 0
        }
        orders[s].quantity = max(quantity, orders[s].filled)
        if case .unsent = orders[s].phase { orders[s].phase = .accepted }
        orders[s].mayBeLive = false
        if emitsChangeActions { actions.append(.orderChanged(orderID)) }
        plan(Int(orders[s].position), emitting: &actions)
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
        guard slot(of: orderID) == nil, filled.isZero, quantity.isPositive,
              let p = positions.lastIndex(where: { $0.status == .open }), !positions[p].ledger.net.isZero else { return false }
        let protective: Side = positions[p].ledger.net.units > 0 ? .sell : .buy
        guard side == protective else { return false }
        let role: OrderRole
        switch type {
        case .stop, .stopLimit: role = .stopLoss
        case .limit: role = .takeProfit
        case .market: return false
        }
        let hasLive = positions[p].liveSlots.contains { orders[Int($0)].role == role && orders[Int($0)].side == side }
        let wanted = positions[p].protectivePrice(role, cover: configuration.flippedPositionCover) != nil
        sequence += 1
        var order = ManagedOrder(id: orderID, position: Int32(p), role: role, side: side, type: type,
                                 timeInForce: positions[p].timeInForce, quantity: quantity,
                                 target: hasLive || !wanted ? .cancelled : .open(positions[p].ledger.net.magnitude), workSequence: sequence)
        order.phase = .accepted
        // Not the role's order: first in the list, so planning keeps the role's own order.
        _ = insertOrder(order, atFront: hasLive || !wanted)
        if emitsChangeActions { actions.append(.orderChanged(orderID)) }
        plan(p, emitting: &actions)
        return true
    }
}

extension SymbolStateMachine {
    /// Retires the oldest closed positions beyond `retainedClosedPositions` whose orders are all
    /// done with nothing in flight, except position `spared`: their orders leave the machine, each
    /// leaving a compact record (`RetiredOrder`). Returns the old-slot -> new-slot map of the
    /// orders when slots moved (nil when nothing was retired).
    ///
    /// Called at the start of an input that passed validation (a refused input changes nothing),
    /// sparing the position that input is about: the event that finished a position still
    /// publishes its final state, and a valid late report for a finished order is booked, not
    /// turned away. Deterministic, so a journal replay retires exactly the same ones.
    @discardableResult
    mutating func retireClosedPositions(sparing spared: Int?) -> [Int32]? {
        guard let keep = configuration.retainedClosedPositions, positions.count > keep else { return nil }
        var excess = positions.reduce(0) { $0 + ($1.status == .closed ? 1 : 0) } - keep
        guard excess > 0 else { return nil }
        var retiring = [Bool](repeating: false, count: positions.count)
        var any = false
        for p in positions.indices where excess > 0 && positions[p].status == .closed && p != spared {
            let finished = positions[p].orderSlots.allSatisfy { orders[Int($0)].isDone && orders[Int($0)].inFlight == nil }
            guard finished else { continue }
            retiring[p] = true
            any = true
            excess -= 1
        }
        guard any else { return nil }
        // Records first, oldest position first.
        for p in positions.indices where retiring[p] {
            for slot in positions[p].orderSlots {
                let order = orders[Int(slot)]
                retired.insert(RetiredOrder(id: order.id, positionID: positions[p].id, filled: order.filled,
                                            maxCumulative: order.maxCumulative, firstFillSerial: order.firstFillSerial))
            }
        }
        // Compact: keep the other positions and their orders, in their order, and renumber slots.
        var positionMap = [Int32](repeating: -1, count: positions.count)
        var keptPositions: [PositionState] = []
        keptPositions.reserveCapacity(positions.count)
        for p in positions.indices where !retiring[p] {
            positionMap[p] = Int32(keptPositions.count)
            keptPositions.append(positions[p])
        }
        var orderMap = [Int32](repeating: -1, count: orders.count)
        var keptOrders: [ManagedOrder] = []
        keptOrders.reserveCapacity(orders.count)
        for s in orders.indices where positionMap[Int(orders[s].position)] >= 0 {
            orderMap[s] = Int32(keptOrders.count)
            var order = orders[s]
            order.position = positionMap[Int(order.position)]
            keptOrders.append(order)
        }
        for s in keptOrders.indices where keptOrders[s].successor >= 0 {
            keptOrders[s].successor = orderMap[Int(keptOrders[s].successor)]
        }
        for p in keptPositions.indices {
            keptPositions[p].orderSlots = keptPositions[p].orderSlots.map { orderMap[Int($0)] }
            keptPositions[p].liveSlots = keptPositions[p].liveSlots.map { orderMap[Int($0)] }
        }
        activeOrders = activeOrders.compactMap { orderMap[Int($0)] >= 0 ? orderMap[Int($0)] : nil }
        positions = keptPositions
        openBlockers = openBlockers.compactMap { positionMap[Int($0)] >= 0 ? positionMap[Int($0)] : nil }
        orders = keptOrders
        rebuildOrderIndex()
        rebuildPositionIndex()
        return orderMap
    }
}

/// Format 1 of the image, as written before orders had slots: read, then converted.
private struct LegacyImage: Decodable {
    struct Position: Decodable {
        let spec: BracketSpec
        var status: PositionStatus
        var ledger: PositionLedger
        var orderIDs: [OrderID]
        var blockedRoles: Set<OrderRole>
        var nextOrderNumber: Int
    }

    struct Order: Decodable {
        let id: OrderID
        let positionID: PositionID
        let role: OrderRole
        let side: Side
        let type: OrderType
        let timeInForce: TimeInForce
        var quantity: Quantity
        var filled: Quantity
        var maxCumulative: Quantity
        var fillValue: Money
        var phase: ManagedOrder.Phase
        var target: ManagedOrder.Target
        var inFlight: ManagedOrder.InFlight?
        var retryPending: Bool
        var attempts: Int
        var awaitingFill: Bool
        var failure: String?
        var retiring: Bool
        var successor: OrderID?
        var workSequence: UInt64
    }

    let symbol: Symbol
    let positions: [PositionID: Position]
    let positionOrder: [PositionID]
    let orders: [OrderID: Order]
    let activeOrders: [OrderID]
    let sequence: UInt64

    func converted() throws -> SymbolStateMachine.Image {
        var positionStates: [SymbolStateMachine.PositionState] = []
        var positionSlots: [PositionID: Int32] = [:]
        var orderSlots: [OrderID: Int32] = [:]
        var orderIDs: [OrderID] = []
        for id in positionOrder {
            guard let position = positions[id] else { throw LegacyError() }
            positionSlots[id] = Int32(positionStates.count)
            var state = SymbolStateMachine.PositionState(spec: position.spec)
            state.status = position.status
            state.ledger = position.ledger
            state.nextOrderNumber = position.nextOrderNumber
            for role in position.blockedRoles { state.blockedRoles |= SymbolStateMachine.PositionState.bit(role) }
            for orderID in position.orderIDs where orderSlots[orderID] == nil {
                orderSlots[orderID] = Int32(orderIDs.count)
                orderIDs.append(orderID)
            }
            state.orderSlots = try position.orderIDs.map { guard let slot = orderSlots[$0] else { throw LegacyError() }; return slot }
            positionStates.append(state)
        }
        var converted: [ManagedOrder] = []
        for id in orderIDs {
            guard let order = orders[id], let position = positionSlots[order.positionID] else { throw LegacyError() }
            var managed = ManagedOrder(id: id, position: position, role: order.role, side: order.side, type: order.type,
                                       timeInForce: order.timeInForce, quantity: order.quantity, target: order.target,
                                       workSequence: order.workSequence)
            managed.filled = order.filled
            managed.maxCumulative = order.maxCumulative
            managed.fillValue = order.fillValue
            managed.phase = order.phase
            managed.inFlight = order.inFlight
            managed.retryPending = order.retryPending
            managed.attempts = Int32(clamping: order.attempts)
            managed.awaitingFill = order.awaitingFill
            managed.failure = order.failure
            managed.retiring = order.retiring
            managed.successor = order.successor.flatMap { orderSlots[$0] } ?? -1
            // Format 1 remembered every execution: all of this order's are in the legacy set.
            managed.firstFillSerial = order.filled.isZero ? 0 : 1
            converted.append(managed)
        }
        for p in positionStates.indices {
            positionStates[p].liveSlots = positionStates[p].orderSlots.filter { converted[Int($0)].isLive }
        }
        let active = try activeOrders.map { guard let slot = orderSlots[$0] else { throw LegacyError() }; return slot }
        return SymbolStateMachine.Image(symbol: symbol, positions: positionStates, orders: converted, activeOrders: active,
                                        sequence: sequence, retired: [], applied: 0, previousStart: 1, currentStart: 1,
                                        previous: [], current: [], legacy: true)
    }

    struct LegacyError: Error {}
}
