/// The rules for one symbol, as a pure state machine: events in (commands, fills, operation
/// outcomes), actions out. No tasks, clocks or I/O; the same inputs always give the same state.
///
/// Order work is held as desired state. The runtime pulls the next operation with
/// `nextOperation()` when it is able to send, so an operation always carries the latest size,
/// at most one operation is in flight per order, and risk-reducing work goes first.
///
/// Inside, positions and orders live in arrays and refer to each other by slot (index); the
/// string ids are used only where an input names an order or a position. Duplicate executions
/// are detected with a bounded memory (see `Configuration.executionWindow`), so a symbol's memory
/// does not grow with its fills.
public struct SymbolStateMachine: Sendable {
    /// How the machine replaces, retries, and how much it remembers.
    public struct Configuration: Sendable, Hashable, Codable {
        /// The broker can change an order's quantity in place (FIX OrderCancelReplaceRequest).
        public var nativeModify: Bool
        /// How to resize a protective order when there is no native modify.
        public var replaceStrategy: ReplaceStrategy
        /// Tries per operation before it fails for good (first try included; at least 1).
        public var maxAttempts: Int { didSet { if maxAttempts < 1 { maxAttempts = 1 } } }
        /// Applied execution ids remembered per symbol for duplicate detection: the newest
        /// `executionWindow` are always remembered (up to twice as many are). An older repeat is
        /// still refused when counting it would overfill its order or contradict the broker's
        /// cumulative quantity (see docs/dedupe.md).
        public var executionWindow: Int { didSet { if executionWindow < 1 { executionWindow = 1 } } }
        /// Closed positions kept in full per symbol; older closed positions whose orders are all
        /// done are retired (only a compact record of their orders stays). nil: never retire.
        public var retainedClosedPositions: Int? {
            didSet { if let keep = retainedClosedPositions, keep < 0 { retainedClosedPositions = 0 } }
        }
        /// Retired orders remembered (id, position, booked quantity), oldest forgotten first: a
        /// late report for one is refused as an unknown order, and recovery knows it was booked.
        public var retiredOrderMemory: Int { didSet { if retiredOrderMemory < 0 { retiredOrderMemory = 0 } } }
        /// How a position flipped against its bracket by a late fill is covered (default: the
        /// bracket's two orders, as rules 2 and 7 say; see `FlippedPositionCover`).
        public var flippedPositionCover: FlippedPositionCover

        /// A configuration; defaults: native modify, cancel-then-create fallback, 3 attempts,
        /// a window of 1,024 execution ids, closed positions kept, 4,096 retired orders remembered,
        /// a flipped position covered by the bracket's two orders.
        public init(nativeModify: Bool = true, replaceStrategy: ReplaceStrategy = .cancelThenCreate, maxAttempts: Int = 3,
                    executionWindow: Int = 1_024, retainedClosedPositions: Int? = nil, retiredOrderMemory: Int = 4_096,
                    flippedPositionCover: FlippedPositionCover = .bracket) {
            self.nativeModify = nativeModify
            self.replaceStrategy = replaceStrategy
            self.maxAttempts = max(1, maxAttempts)
            self.executionWindow = max(1, executionWindow)
            self.retainedClosedPositions = retainedClosedPositions.map { max(0, $0) }
            self.retiredOrderMemory = max(0, retiredOrderMemory)
            self.flippedPositionCover = flippedPositionCover
        }

        private enum CodingKeys: String, CodingKey {
            case nativeModify, replaceStrategy, maxAttempts, executionWindow, retainedClosedPositions, retiredOrderMemory, flippedPositionCover
        }

        /// Decodes a configuration; fields added later take their defaults when absent.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.init(nativeModify: try container.decode(Bool.self, forKey: .nativeModify),
                      replaceStrategy: try container.decode(ReplaceStrategy.self, forKey: .replaceStrategy),
                      maxAttempts: try container.decode(Int.self, forKey: .maxAttempts),
                      executionWindow: try container.decodeIfPresent(Int.self, forKey: .executionWindow) ?? 1_024,
                      retainedClosedPositions: try container.decodeIfPresent(Int.self, forKey: .retainedClosedPositions),
                      retiredOrderMemory: try container.decodeIfPresent(Int.self, forKey: .retiredOrderMemory) ?? 4_096,
                      flippedPositionCover: try container.decodeIfPresent(FlippedPositionCover.self, forKey: .flippedPositionCover) ?? .bracket)
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
        indirect case alert(Alert)
        /// A report's cumulative quantity is above what the order's reports booked (one was lost,
        /// or comes late): call `unreportedFillsAlert(for:)` a little later, which alerts if they
        /// still have not come.
        case checkFillsReported(OrderID)
    }

    /// One position: the bracket's prices, the ledger, and its orders by slot.
    struct PositionState: Sendable, Codable {
        let id: PositionID
        let side: Side
        let stopLoss: Price?
        let takeProfit: Price?
        let timeInForce: TimeInForce
        var status: PositionStatus = .pending
        /// Protective roles whose last operation failed for good (bit 0: stop-loss, bit 1:
        /// take-profit); not retried until the next fill.
        var blockedRoles: UInt8 = 0
        /// Protective roles (same bits) whose order the broker ended on its own since the
        /// position's last fill: a second end waits for the re-arm instead of a new order at once.
        var rolesEndedByBroker: UInt8 = 0
        var ledger = PositionLedger()
        /// Every order of the bracket, oldest first.
        var orderSlots: [Int32] = []
        /// The bracket's orders that are not done, in the same order (derived, not coded).
        var liveSlots: [Int32] = []
        var nextOrderNumber = 1

        init(spec: BracketSpec) {
            id = spec.positionID
            side = spec.side
            stopLoss = spec.stopLoss
            takeProfit = spec.takeProfit
            timeInForce = spec.timeInForce
        }

        private enum CodingKeys: String, CodingKey {
            case id, side, stopLoss, takeProfit, timeInForce, status, blockedRoles, rolesEndedByBroker, ledger, orderSlots, nextOrderNumber
        }

        /// Decodes a position; images written before `rolesEndedByBroker` existed have none.
        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = try container.decode(PositionID.self, forKey: .id)
            side = try container.decode(Side.self, forKey: .side)
            stopLoss = try container.decodeIfPresent(Price.self, forKey: .stopLoss)
            takeProfit = try container.decodeIfPresent(Price.self, forKey: .takeProfit)
            timeInForce = try container.decode(TimeInForce.self, forKey: .timeInForce)
            status = try container.decode(PositionStatus.self, forKey: .status)
            blockedRoles = try container.decode(UInt8.self, forKey: .blockedRoles)
            rolesEndedByBroker = try container.decodeIfPresent(UInt8.self, forKey: .rolesEndedByBroker) ?? 0
            ledger = try container.decode(PositionLedger.self, forKey: .ledger)
            orderSlots = try container.decode([Int32].self, forKey: .orderSlots)
            nextOrderNumber = try container.decode(Int.self, forKey: .nextOrderNumber)
        }

        static func bit(_ role: OrderRole) -> UInt8 {
            switch role {
            case .stopLoss: return 1
            case .takeProfit: return 2
            case .entry, .scaleIn: return 0
            }
        }

        func isBlocked(_ role: OrderRole) -> Bool { blockedRoles & Self.bit(role) != 0 }

        /// The price the role's protective order is kept at now (see `ProtectiveCover`).
        func protectivePrice(_ role: OrderRole, cover: FlippedPositionCover) -> Price? {
            ProtectiveCover.price(of: role, bracketSide: side, net: ledger.net, stopLoss: stopLoss, takeProfit: takeProfit, cover: cover)
        }
    }

    /// The symbol this machine owns.
    public let symbol: Symbol
    /// Its configuration.
    public let configuration: Configuration
    /// Every position kept, in the order opened.
    var positions: [PositionState] = []
    /// Every order kept, by slot.
    var orders: [ManagedOrder] = []
    /// Orders that are live or have an operation in flight: the only ones with possible work.
    var activeOrders: [Int32] = []
    /// Positions that may keep a new bracket from opening (not closed, or with an order live):
    /// every one that does is here (a position is added when opened, filled or given an order;
    /// `open` drops the ones it finds settled), so opening need not look at every position a
    /// symbol ever had.
    var openBlockers: [Int32] = []
    /// Id to slot, built once a symbol holds more than a few orders (a scan is cheaper below).
    var orderIndex: [OrderID: Int32]?
    /// Id to slot, built once a symbol holds more than a few positions.
    var positionIndex: [PositionID: Int32]?
    var executions: ExecutionMemory
    var retired: RetiredOrders
    var sequence: UInt64 = 0
    /// Emit `positionChanged` and `orderChanged` (default true). A runtime with nobody to tell
    /// turns them off; every other action is always emitted. Not part of the state.
    public var emitsChangeActions = true

    static let indexThreshold = 8

    /// A machine for one symbol.
    public init(symbol: Symbol, configuration: Configuration = Configuration()) {
        self.symbol = symbol
        self.configuration = configuration
        self.executions = ExecutionMemory(generationSize: configuration.executionWindow)
        self.retired = RetiredOrders(capacity: configuration.retiredOrderMemory)
    }

    // MARK: - Commands

    /// Opens a bracket: places the entry and scale-ins (protective orders follow the first fill).
    public mutating func open(_ spec: BracketSpec, emitting actions: inout [Action]) throws(InputError) {
        guard spec.symbol == symbol else {
            throw InputError(.symbolMismatch, "bracket for \(spec.symbol) sent to the \(symbol) book")
        }
        try spec.validate()
        guard positionSlot(of: spec.positionID) == nil, !retired.contains(position: spec.positionID) else {
            throw InputError(.positionExists, "position \(spec.positionID) already exists")
        }
        if let blocker = openingBlocker() {
            if blocker.inProgress {
                throw InputError(.positionExists, "\(symbol) already has position \(blocker.position) in progress (one position per symbol)")
            }
            // A closed bracket whose orders are still being wound down (a cancel not yet
            // confirmed, or refused) could still fill and reopen it beside the new one: two
            // positions on one netting symbol. The new one waits until they are done.
            throw InputError(.positionExists, "\(symbol) still has orders of closed position \(blocker.position) working at the broker; open again once they are done (one position per symbol)")
        }
        // All of them closed and settled: none blocks until a fill or a new order changes it.
        openBlockers.removeAll(keepingCapacity: true)
        retireClosedPositions(sparing: nil)
        let p = positions.count
        positions.append(PositionState(spec: spec))
        openBlockers.append(Int32(p))
        if positionIndex != nil {
            positionIndex?[spec.positionID] = Int32(p)
        } else if positions.count > Self.indexThreshold {
            rebuildPositionIndex()
        }
        let entry = makeOrder(in: p, role: .entry, side: spec.side, type: spec.entryType, quantity: spec.quantity, target: .asPlaced)
        if emitsChangeActions { actions.append(.orderChanged(orders[entry].id)) }
        for (index, scaleIn) in spec.scaleIns.enumerated() {
            let slot = makeOrder(in: p, role: .scaleIn(index), side: spec.side, type: scaleIn.type, quantity: scaleIn.quantity, target: .asPlaced)
            if emitsChangeActions { actions.append(.orderChanged(orders[slot].id)) }
        }
        if emitsChangeActions { actions.append(.positionChanged(spec.positionID)) }
    }

    // MARK: - Broker reports

    /// Books a fill. Throws (and changes nothing) for a duplicate, unknown order, mismatch,
    /// bad number, overfill or backwards cumulative quantity.
    public mutating func apply(_ report: ExecutionReport, emitting actions: inout [Action]) throws(InputError) {
        guard executions.reserve(report.executionID) else {
            if let booked = bookedBelow(report) {
                throw InputError(.duplicateExecution, "execution \(report.executionID) was already applied, but not to this fill: order \(report.orderID) has "
                                 + "\(booked), less than this report says, so it is no repeat (the broker reused the id?); refused")
            }
            throw InputError(.duplicateExecution, "execution \(report.executionID) was already applied; the repeat is ignored")
        }
        var s: Int
        do throws(InputError) {
            s = try validate(report)
        } catch {
            executions.release(report.executionID)
            throw error
        }
        let serial = executions.commit()
        if let moved = retireClosedPositions(sparing: Int(orders[s].position)) { s = Int(moved[s]) }

        // Valid: book it, in place.
        let filledAfter = orders[s].filled + report.lastQuantity
        orders[s].filled = filledAfter
        if orders[s].firstFillSerial == 0 { orders[s].firstFillSerial = serial }
        // The broker's cumulative quantity says more has filled than the reports booked (one was
        // lost, or comes late): checked again a little later (`unreportedFillsAlert(for:)`).
        var announced = false
        if let cumulative = report.cumulativeQuantity, cumulative > orders[s].maxCumulative {
            announced = cumulative > filledAfter
            orders[s].maxCumulative = cumulative
        }
        if filledAfter > orders[s].maxCumulative { orders[s].maxCumulative = filledAfter }
        orders[s].fillValue += Money.value(of: report.lastQuantity, at: report.lastPrice)
        if case .unsent = orders[s].phase {
            orders[s].phase = .accepted
            orders[s].mayBeLive = false
        }
        let wasRefused = orders[s].phase == .done(.rejected)
        if wasRefused { revive(s) }
        let wasUnplaced = orders[s].unplaced
        orders[s].unplaced = false
        if filledAfter > orders[s].quantity, orders[s].uncertainHigh >= filledAfter,
           (orders[s].inFlight?.requestedQuantity ?? .zero) < filledAfter {
            // Only a modify that timed out explains this fill: the broker applied it. The size
            // stays unsettled until an answer (the retried modify) settles it.
            orders[s].quantity = orders[s].uncertainHigh
        }
        let maxCumulative = orders[s].maxCumulative
        let isLatest = report.cumulativeQuantity.map { $0 >= maxCumulative } ?? true
        let brokerSaysDone = isLatest && (report.leavesQuantity?.isZero ?? false)
        if orders[s].isLive, filledAfter >= orders[s].fillLimit || brokerSaysDone {
            setPhase(s, .done(.filled))
            // Done at the broker at its cumulative quantity; earlier reports may still arrive late.
            // A report without a cumulative quantity does not say how much was filled in all (an
            // earlier report may come after it): the size it was placed at stays the limit.
            if report.cumulativeQuantity != nil || filledAfter >= orders[s].quantity {
                orders[s].quantity = max(filledAfter, maxCumulative)
            }
        } else if !orders[s].isLive, filledAfter >= orders[s].quantity {
            // A late fill that completes a cancelled order.
            setPhase(s, .done(.filled))
        }
        if orders[s].awaitingFill {
            // The fills a "too late" answer announced are coming in: re-derive from them (a
            // partial one leaves the order live, to be resized with the rest).
            orders[s].awaitingFill = false
            orders[s].attempts = 0
        }
        deactivateIfFinished(s)
        if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }

        let p = Int(orders[s].position)
        if wasRefused {
            let rest = orders[s].openQuantity
            actions.append(.alert(Alert(
                kind: .refusedOrderFilled, positionID: positions[p].id, symbol: symbol, orderID: orders[s].id, role: orders[s].role,
                message: "the broker filled \(report.lastQuantity) of \(orders[s].id), which it had refused"
                    + (rest.isZero ? "; the order is filled" : "; the rest, \(rest), is held as live again (cancelled when no longer wanted)"))))
        }
        if wasUnplaced {
            actions.append(.alert(Alert(
                kind: .unplacedOrderFilled, positionID: positions[p].id, symbol: symbol, orderID: orders[s].id, role: orders[s].role,
                message: "the broker filled \(report.lastQuantity) of \(orders[s].id), which FillGuard never placed with it"
                    + " (it ended before it was sent, or the broker answered that it did not take it); the fill is booked")))
        }
        if announced { actions.append(.checkFillsReported(orders[s].id)) }
        let netBefore = positions[p].ledger.net
        positions[p].ledger.record(side: report.side, quantity: report.lastQuantity, price: report.lastPrice, commission: report.commission)
        let netAfter = positions[p].ledger.net
        // A fill on a closed position may reopen it, or bring back an order held as refused:
        // it may block an opening again. (One not closed is among `openBlockers` already.)
        if positions[p].status == .closed { markMayBlockOpening(p) }
        positions[p].status = netAfter.isZero ? .closed : .open
        positions[p].blockedRoles = 0
        positions[p].rolesEndedByBroker = 0
        rearmFailedOrders(of: p)
        if emitsChangeActions { actions.append(.positionChanged(positions[p].id)) }
        // Through flat to the side opposite the bracket's, from either side of flat or from flat
        // itself (a late protective fill on a closed position).
        let long = positions[p].side == .buy
        let againstBefore = long ? netBefore.units < 0 : netBefore.units > 0
        let againstAfter = long ? netAfter.units < 0 : netAfter.units > 0
        // Against its bracket, nothing may open more: also an order that came back live on a
        // position flipped before (a refused scale-in the broker fills after all).
        if againstAfter { cancelOpeningOrders(p, emitting: &actions) }
        if againstAfter && !againstBefore {
            actions.append(.alert(Alert(kind: .positionFlipped, positionID: positions[p].id, symbol: symbol, orderID: orders[s].id, role: orders[s].role,
                                        message: "a fill of \(report.lastQuantity) took the position from \(netBefore) to \(netAfter)"
                                            + (positions[p].protectivePrice(.takeProfit, cover: configuration.flippedPositionCover) == nil && positions[p].takeProfit != nil
                                               ? "; it is covered by its stop-loss alone (the bracket's take-profit would execute at once beside it)" : ""))))
        }
        plan(p, emitting: &actions)
    }

    /// An order held as refused (its submit refused for good, or ended by the broker as rejected)
    /// is filled all the same: the broker has it after all, so it is held live again, with its
    /// fills and the rest of its size, and its work goes on (rule 5 cancels it at flat).
    private mutating func revive(_ s: Int) {
        let p = Int(orders[s].position)
        orders[s].phase = .accepted
        orders[s].failure = nil
        orders[s].attempts = 0
        // In the position's order of its orders, as its live orders are kept (a rare path: scans).
        let orderSlots = positions[p].orderSlots
        let rank = orderSlots.firstIndex(of: Int32(s)) ?? orderSlots.endIndex
        let at = positions[p].liveSlots.firstIndex { (orderSlots.firstIndex(of: $0) ?? orderSlots.endIndex) > rank }
            ?? positions[p].liveSlots.endIndex
        positions[p].liveSlots.insert(Int32(s), at: at)
        if !activeOrders.contains(Int32(s)) { activeOrders.append(Int32(s)) }
    }

    /// The position went to the side opposite its bracket's (a protective order larger than the
    /// position filled whole, or a late one after it closed): its remaining entry and scale-ins
    /// would now add the wrong way, so they go, as rule 5 cancels them at flat. The new side is
    /// protected by `plan`.
    private mutating func cancelOpeningOrders(_ p: Int, emitting actions: inout [Action]) {
        let live = positions[p].liveSlots
        for slot in live {
            let s = Int(slot)
            guard orders[s].isLive, !orders[s].awaitingFill, orders[s].roleKind < ManagedOrder.stopLossKind else { continue }
            setTarget(.cancelled, of: s, emitting: &actions)
        }
    }

    /// The largest net a position may reach, either way: ten times the largest order, far below
    /// where the fixed-point arithmetic could overflow.
    static let largestNet = Quantity(units: Quantity.maximum.units * 10)
    /// The largest realized P&L a position may reach, either way, in Money's units (10^21).
    static let largestRealizedPnLUnits: UInt128 = 1_000_000_000_000_000_000_000 * 10_000_000_000_000_000

    /// Checks a fill against its order; returns the order's slot. Changes nothing.
    private func validate(_ report: ExecutionReport) throws(InputError) -> Int {
        guard let s = slot(of: report.orderID) else {
            throw unknownOrder(report.orderID)
        }
        guard report.symbol == symbol else {
            throw InputError(.symbolMismatch, "execution \(report.executionID) says \(report.symbol) but order \(orders[s].id) is for \(symbol)")
        }
        guard report.side == orders[s].side else {
            throw InputError(.sideMismatch, "execution \(report.executionID) says \(report.side.rawValue) but order \(orders[s].id) is a \(orders[s].side.rawValue)")
        }
        guard report.lastQuantity.isPositive, report.lastQuantity <= .maximum else {
            throw InputError(.invalidQuantity, "fill quantity must be positive and at most \(Quantity.maximum), got \(report.lastQuantity)")
        }
        guard report.lastPrice.units > 0, report.lastPrice <= .maximum else {
            throw InputError(.invalidPrice, "fill price must be positive and at most \(Price.maximum), got \(report.lastPrice)")
        }
        guard !report.executionID.rawValue.isEmpty else {
            throw InputError(.malformed, "a fill of order \(orders[s].id) has no execution id, so a repeat of it could not be told apart")
        }
        guard report.commission.units.magnitude <= ExecutionReport.maximumCommission.units.magnitude else {
            throw InputError(.invalidCommission, "execution \(report.executionID) has a commission of \(report.commission), beyond ±\(ExecutionReport.maximumCommission)")
        }
        if let reported = report.cumulativeQuantity, !reported.isWithinRange {
            throw InputError(.invalidQuantity, "reported quantity \(reported) is out of range")
        }
        if let reported = report.leavesQuantity, !reported.isWithinRange {
            throw InputError(.invalidQuantity, "reported quantity \(reported) is out of range")
        }
        let fillLimit = orders[s].fillLimit
        let filledAfter = orders[s].filled + report.lastQuantity
        guard filledAfter <= fillLimit else {
            throw InputError(.overfill, "fill of \(report.lastQuantity) would take order \(orders[s].id) to \(filledAfter) filled of \(fillLimit)")
        }
        // Each fill fits its order, but orders replaced again and again as a position flips could
        // add up without end; a net beyond ten times the largest order is refused, not let overflow.
        let p = Int(orders[s].position)
        let netAfter = positions[p].ledger.net + (report.side == .buy ? report.lastQuantity : -report.lastQuantity)
        guard netAfter.magnitude <= Self.largestNet else {
            throw InputError(.invalidQuantity, "fill of \(report.lastQuantity) would take position \(positions[p].id) to a net of \(netAfter), beyond \(Self.largestNet) either way")
        }
        // Likewise the realized P&L: one fill moves it by at most 10^18 (the largest quantity at
        // the largest price), far from where Money overflows; a position past 10^21 takes no more.
        guard positions[p].ledger.realizedPnL.units.magnitude <= Self.largestRealizedPnLUnits else {
            throw InputError(.invalidQuantity, "position \(positions[p].id) has realized \(positions[p].ledger.realizedPnL), beyond what it can book exactly; no more fills are applied to it")
        }
        if let leaves = report.leavesQuantity, leaves.units < 0 {
            throw InputError(.invalidQuantity, "leaves quantity must not be negative, got \(leaves)")
        }
        if let cumulative = report.cumulativeQuantity {
            let maxCumulative = orders[s].maxCumulative
            guard cumulative <= fillLimit else {
                throw InputError(.overfill, "cumulative \(cumulative) exceeds order \(orders[s].id) quantity \(fillLimit)")
            }
            guard cumulative >= report.lastQuantity else {
                throw InputError(.cumulativeWentBackwards, "cumulative \(cumulative) is below the fill's own \(report.lastQuantity)")
            }
            if cumulative >= maxCumulative {
                guard filledAfter <= cumulative else {
                    throw InputError(.cumulativeWentBackwards, "cumulative \(cumulative) is below the \(filledAfter) this fill would make for order \(orders[s].id)")
                }
            } else {
                // An earlier report arriving late: it must fit in the gap the broker already reported.
                guard filledAfter <= maxCumulative else {
                    throw InputError(.cumulativeWentBackwards, "cumulative \(cumulative) went back from \(maxCumulative) for order \(orders[s].id)")
                }
            }
        }
        return s
    }

    /// The error for a report naming an order this machine does not hold.
    private func unknownOrder(_ id: OrderID) -> InputError {
        if let record = retired[id] {
            return InputError(.unknownOrder, "order \(id) of closed position \(record.positionID) was retired on \(symbol); the report changes nothing")
        }
        return InputError(.unknownOrder, "order \(id) is not known for \(symbol)")
    }

    /// Books an order's unsolicited end at the broker (exchange cancel, expiry, late reject).
    public mutating func apply(_ report: OrderStatusReport, emitting actions: inout [Action]) throws(InputError) {
        guard var s = slot(of: report.orderID) else {
            throw unknownOrder(report.orderID)
        }
        guard report.symbol == symbol else {
            throw InputError(.symbolMismatch, "status report says \(report.symbol) but order \(orders[s].id) is for \(symbol)")
        }
        if let moved = retireClosedPositions(sparing: Int(orders[s].position)) { s = Int(moved[s]) }
        guard orders[s].isLive else { return }
        let status: OrderStatus
        switch report.outcome {
        case .cancelled: status = .cancelled
        case .expired: status = .expired
        case .rejected: status = .rejected
        }
        setPhase(s, .done(status))
        orders[s].awaitingFill = false
        deactivateIfFinished(s)
        if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
        let p = Int(orders[s].position)
        let role = orders[s].role
        if role.isProtective, orders[s].target != .cancelled {
            let id = orders[s].id
            let ended = "broker ended \(role) \(id) (\(status.rawValue)\(report.reason.isEmpty ? "" : ": \(report.reason)"))"
            let bit = PositionState.bit(role)
            if positions[p].rolesEndedByBroker & bit != 0, positions[p].status == .open {
                // The broker ended this role's order before, with no fill since: a broker that
                // ends every new order (a price band, a closed market) is not sent one after
                // another at its own pace; the role waits for the re-arm, as after a refusal.
                positions[p].blockedRoles |= bit
                actions.append(.alert(Alert(kind: .protectiveEndedByBroker, positionID: positions[p].id, symbol: symbol, orderID: id, role: role,
                                            message: "\(ended), again since the last fill; re-protecting \(positions[p].ledger.net.magnitude) after the re-arm")))
                actions.append(.scheduleRearm(positions[p].id))
            } else {
                positions[p].rolesEndedByBroker |= bit
                actions.append(.alert(Alert(kind: .protectiveEndedByBroker, positionID: positions[p].id, symbol: symbol, orderID: id, role: role,
                                            message: "\(ended); re-protecting \(positions[p].ledger.net.magnitude)")))
            }
        }
        if role == .entry, orders[s].filled.isZero, positions[p].ledger.net.isZero, positions[p].status == .pending {
            positions[p].status = .closed
            if emitsChangeActions { actions.append(.positionChanged(positions[p].id)) }
        }
        plan(p, emitting: &actions)
    }

    // MARK: - Operation outcomes

    /// The broker accepted an operation.
    public mutating func operationSucceeded(_ operation: OrderOperation, emitting actions: inout [Action]) {
        guard var s = inFlightSlot(of: operation) else { return }
        if let moved = retireClosedPositions(sparing: Int(orders[s].position)) { s = Int(moved[s]) }
        orders[s].inFlight = nil
        orders[s].attempts = 0
        orders[s].unsentTries = 0
        orders[s].mayBeLive = false
        switch operation.request {
        case .submit:
            if case .unsent = orders[s].phase { orders[s].phase = .accepted }
        case .modify(let request):
            orders[s].sizeIsKnown()
            if orders[s].isLive {
                orders[s].quantity = request.newQuantity
                if orders[s].filled >= orders[s].quantity { setPhase(s, .done(.filled)) }
            } else if request.newQuantity > orders[s].quantity {
                // Ended before the answer came (an exchange cancel reported first): the broker
                // held it at the new size, so its late fills (rule 7) may reach that size.
                orders[s].quantity = request.newQuantity
            }
        case .cancel:
            if orders[s].isLive { setPhase(s, .done(orders[s].filled >= orders[s].quantity ? .filled : .cancelled)) }
        }
        deactivateIfFinished(s)
        if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
        plan(Int(orders[s].position), emitting: &actions)
    }

    /// An operation failed: transient failures and timeouts are retried (up to `maxAttempts`),
    /// requests never sent are retried without using a try, too-late answers wait for the order's
    /// fills, permanent failures raise an alert.
    ///
    /// A submit that timed out may have placed the order: from then on the order is resent
    /// unchanged while it is wanted and cancelled when it is not, until an answer (accepted,
    /// refused, unknown to the broker, too late) settles where it stands.
    public mutating func operationFailed(_ operation: OrderOperation, _ failure: OperationFailure, emitting actions: inout [Action]) {
        guard var s = inFlightSlot(of: operation) else { return }
        if let moved = retireClosedPositions(sparing: Int(orders[s].position)) { s = Int(moved[s]) }
        orders[s].inFlight = nil
        let p = Int(orders[s].position)
        var failure = failure
        if case .notSent(let message) = failure, !orders[s].role.isProtective, operation.kind != .cancel {
            // Work that adds exposure (an entry or scale-in going out) is never held through an
            // outage, to go hours later at another market: its tries count as for any failure,
            // and when they are used up the entry is refused, as FillGuard never adds exposure
            // on its own.
            failure = .transient(message)
        }
        // A request that reached the broker ends a run of tries that never left.
        if case .notSent = failure {} else { orders[s].unsentTries = 0 }
        var unsent = false
        if case .unsent = orders[s].phase { unsent = true }
        if unsent, operation.kind == .submit {
            switch failure {
            case .timedOut: orders[s].mayBeLive = true
            case .transient, .notSent: break
            case .unknownOrder: orders[s].mayBeLive = false
            case .permanent, .tooLate: break // a refused resend: the first try may still have placed it
            }
        }
        if unsent, orders[s].target == .cancelled, !orders[s].mayBeLive {
            // The broker never took it and it is no longer wanted: it ends here, whatever the failure.
            endUnplaced(s, emitting: &actions)
            return
        }
        switch failure {
        case .notSent(let message):
            guard orders[s].isLive else {
                deactivateIfFinished(s)
                plan(p, emitting: &actions)
                return
            }
            // Nothing reached the broker, so nothing changed there: protective work (and the
            // cancel of an entry or scale-in) is asked again after a backoff, and uses none of its
            // tries (a broker that stays unreachable is the breaker's to pace), however long the
            // outage. A person is told once per run, when it reaches `maxAttempts`.
            if orders[s].unsentTries < UInt8.max {
                orders[s].unsentTries += 1
                let unsentTries = Int(orders[s].unsentTries)
                if unsentTries == min(configuration.maxAttempts, Int(UInt8.max)) {
                    actions.append(.alert(Alert(
                        kind: .operationHeld, positionID: positions[p].id, symbol: symbol, orderID: orders[s].id, role: orders[s].role,
                        message: "\(operation.kind.rawValue) of \(orders[s].id) not sent \(unsentTries) \(unsentTries == 1 ? "time" : "times") in a row, last: \(message); held, and sent once the broker can be reached")))
                }
            }
            if let work = pendingPriority(of: s), work <= .reduce, work < operation.priority {
                // Risk-reducing work became due while other work was out: it goes now, with tries
                // of its own, as after a transient failure (rule 6).
                orders[s].attempts = 0
                if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
                return
            }
            orders[s].retryPending = true
            actions.append(.scheduleRetry(orders[s].id, attempt: 1))
            if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
        case .transient(let message), .timedOut(let message):
            if case .timedOut = failure, case .modify(let request) = operation.request, !orders[s].isLive {
                // Ended meanwhile: the broker may have held it at the new size before it ended,
                // so late fills up to the larger size are real (rule 7).
                orders[s].sizeMayBe(request.newQuantity)
            }
            guard orders[s].isLive else {
                deactivateIfFinished(s)
                plan(p, emitting: &actions)
                return
            }
            if case .timedOut = failure, case .modify(let request) = operation.request {
                // The broker may hold the order at either size: fills up to the larger are real,
                // and the retried modify (sent even if the sizes look right) settles it.
                orders[s].sizeMayBe(request.newQuantity)
            }
            // A cancel that timed out may have taken effect: the order is never resized again,
            // only cancelled (even if the position wants it back); the role gets a new order.
            if case .timedOut = failure, operation.kind == .cancel { orders[s].cancelMayHaveTakenEffect = true }
            let mayBeCancelled: Bool
            if case .timedOut = failure, operation.kind == .cancel, !orders[s].retiring || orders[s].target != .cancelled {
                mayBeCancelled = true
                retire(s, successor: -1, emitting: &actions)
            } else {
                mayBeCancelled = false
            }
            if !mayBeCancelled, let work = pendingPriority(of: s), work <= .reduce, work < operation.priority {
                // Risk-reducing work became due while riskier work was out (the position went
                // flat, or shrank, during a resize up): the failure was of that other work. The
                // cancel or reduce goes now, with tries of its own, not after a backoff (rule 6).
                orders[s].attempts = 0
                if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
                return
            }
            orders[s].attempts += 1
            let attempts = Int(orders[s].attempts)
            if attempts < configuration.maxAttempts {
                orders[s].retryPending = true
                actions.append(.scheduleRetry(orders[s].id, attempt: attempts))
                if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
                if mayBeCancelled { plan(p, emitting: &actions) }
                return
            }
            failPermanently(s, operation: operation, message: "\(operation.kind.rawValue) failed \(attempts) \(attempts == 1 ? "time" : "times"), last: \(message)", emitting: &actions)
        case .unknownOrder(let message):
            guard operation.kind != .submit else {
                failPermanently(s, operation: operation, message: "\(operation.kind.rawValue) refused: \(message)", emitting: &actions)
                return
            }
            // Nothing of the order works at the broker: what a cancel wanted is so. A modify's
            // order is gone as well: keeping it as working would leave the role unprotected while
            // showing a stop; it ends, and the role gets a new order (a late fill of the old one
            // still counts, rule 7).
            orders[s].mayBeLive = false
            if orders[s].isLive {
                orders[s].attempts = 0
                let wanted = operation.kind == .modify && orders[s].target != .cancelled
                // (A size a timed-out modify may have set stays possible: fills up to it still count.)
                setPhase(s, .done(orders[s].filled >= orders[s].quantity ? .filled : .cancelled))
                if wanted, orders[s].role.isProtective {
                    actions.append(.alert(Alert(
                        kind: .protectiveEndedByBroker, positionID: positions[p].id, symbol: symbol, orderID: orders[s].id, role: orders[s].role,
                        message: "the broker does not know \(orders[s].role) \(orders[s].id) (modify answered: \(message)); it is taken as ended, re-protecting \(positions[p].ledger.net.magnitude)")))
                }
            }
            deactivateIfFinished(s)
            if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
            plan(p, emitting: &actions)
        case .permanent(let message):
            guard orders[s].isLive || operation.kind == .submit else {
                // The order ended meanwhile (the broker's own report of it came first, and the
                // role has been seen to): a refusal to change it changes nothing, and is no
                // reason to hold the role back or alert.
                deactivateIfFinished(s)
                if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
                plan(p, emitting: &actions)
                return
            }
            // A refusal does not say whether an earlier cancel that timed out took effect (a
            // broker refuses for reasons of its own; one that no longer has the order says
            // unknownOrder or tooLate): such an order stays maybe-cancelled, is cancelled again
            // once re-armed, and the role gets a new order.
            failPermanently(s, operation: operation, message: "\(operation.kind.rawValue) refused: \(message)", emitting: &actions)
        case .tooLate(let message):
            if operation.kind == .submit {
                failPermanently(s, operation: operation, message: "submit refused: \(message)", emitting: &actions)
                return
            }
            // The order filled (or ended) first. If its fills are all in, it is done now;
            // otherwise wait for them and re-derive from them. Should none come by the retry's
            // time, the work is sent again (the answer is checked, not trusted for ever); a
            // broker that keeps answering "too late" without the fills is alerted.
            orders[s].mayBeLive = false
            // The broker knows the order (it filled): a submit whose answer was lost took effect.
            if case .unsent = orders[s].phase { orders[s].phase = .accepted }
            if orders[s].isLive {
                if orders[s].filled >= orders[s].quantity {
                    orders[s].attempts = 0
                    setPhase(s, .done(.filled))
                } else if orders[s].hasUncertainSize, orders[s].filled >= orders[s].uncertainLow {
                    // A smaller size asked for by a modify that timed out took effect, and filled.
                    orders[s].attempts = 0
                    orders[s].quantity = orders[s].filled
                    setPhase(s, .done(.filled))
                } else {
                    orders[s].awaitingFill = true
                    orders[s].attempts += 1
                    let attempts = Int(orders[s].attempts)
                    if attempts < configuration.maxAttempts {
                        orders[s].retryPending = true
                        actions.append(.scheduleRetry(orders[s].id, attempt: attempts))
                    } else {
                        actions.append(.alert(Alert(
                            kind: .fillsOverdue, positionID: positions[p].id, symbol: symbol, orderID: orders[s].id, role: orders[s].role,
                            message: "\(operation.kind.rawValue) answered too late \(attempts) time\(attempts == 1 ? "" : "s"), but the fills of \(orders[s].id) have not come; waiting for them")))
                    }
                }
            } else {
                orders[s].attempts = 0
            }
            deactivateIfFinished(s)
            if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
            plan(p, emitting: &actions)
        }
    }

    /// The end of the alert for an over-covering order that is cancelled: beside what the role's
    /// waiting orders may hold when they leave it `allowed` of the position `net`.
    private static func besideWaiting(net: Quantity, allowed: Quantity) -> String {
        allowed < net
            ? ", beside \(net - allowed) that an order waiting for its fills may hold, so it is cancelled (the role grows again once those fills come)"
            : ", so it is cancelled and replaced"
    }

    /// A live protective order of an open position, not being replaced, that covers (or may, after
    /// a modify up that timed out) more than the position, less what the role's orders waiting
    /// for their fills may hold (its resize down failed).
    private func overCovers(_ s: Int) -> Bool {
        let p = Int(orders[s].position)
        let net = positions[p].ledger.net
        guard orders[s].role.isProtective, orders[s].isLive, !orders[s].retiring, !net.isZero,
              positions[p].status != .closed, orders[s].side == (net.units > 0 ? .sell : .buy) else { return false }
        return orders[s].largestOpenQuantity > allowedCover(s)
    }

    /// The most `s` may cover: the position less what the role's other orders on its side that
    /// wait for a "too late"'s fills, their tries used up, may still hold (see `plan`).
    private func allowedCover(_ s: Int) -> Quantity {
        let p = Int(orders[s].position)
        let size = positions[p].ledger.net.magnitude
        var waiting = Quantity.zero
        for slot in positions[p].liveSlots {
            let o = Int(slot)
            guard o != s, orders[o].roleKind == orders[s].roleKind, orders[o].side == orders[s].side, orders[o].awaitingFill,
                  !orders[o].retryPending else { continue }
            waiting += orders[o].largestOpenQuantity
        }
        return size > waiting ? size - waiting : .zero
    }

    /// The position's size when `s` is its role's live protective order, on the right side and
    /// not being replaced, and covers less of it than it should (a resize up failed); else nil.
    private func undercoveredSize(_ s: Int) -> Quantity? {
        let p = Int(orders[s].position)
        let net = positions[p].ledger.net
        guard orders[s].role.isProtective, orders[s].isLive, orders[s].isAccepted, !orders[s].retiring, !orders[s].awaitingFill,
              !net.isZero, positions[p].status != .closed, orders[s].side == (net.units > 0 ? .sell : .buy) else { return nil }
        // (The largest size it may hold: a modify up that timed out may have taken effect, and a
        // new order beside it would then cover the position twice. Less what orders of the role
        // waiting for their fills may hold: the role is not grown beside them.)
        let allowed = allowedCover(s)
        return orders[s].largestOpenQuantity < allowed ? allowed : nil
    }

    /// Ends an order the broker never took and that is no longer wanted.
    private mutating func endUnplaced(_ s: Int, emitting actions: inout [Action]) {
        setPhase(s, .done(.cancelled))
        orders[s].unplaced = true
        deactivateIfFinished(s)
        if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
        plan(Int(orders[s].position), emitting: &actions)
    }

    /// A transient failure's backoff is over: the order's work may be tried again.
    public mutating func retryDue(_ orderID: OrderID, emitting actions: inout [Action]) {
        guard let s = slot(of: orderID) else { return }
        // The work held through an outage went away meanwhile (the position came back to the
        // order's size): its run of unsent tries is over, and a later outage is told again. (Also
        // when other work took the backoff's place since, and went away too.)
        if orders[s].unsentTries > 0, orders[s].inFlight == nil, pendingPriority(of: s, ignoringBackoff: true) == nil {
            orders[s].unsentTries = 0
        }
        guard orders[s].retryPending else { return }
        orders[s].retryPending = false
        // A "too late" answer whose fills are overdue: the order's work is sent again.
        if orders[s].isLive { orders[s].awaitingFill = false }
        plan(Int(orders[s].position), emitting: &actions)
    }

    /// Clears the position's permanent failures and plans its orders again (after a cool-down).
    public mutating func rearm(_ positionID: PositionID, emitting actions: inout [Action]) {
        guard let p = positionSlot(of: positionID) else { return }
        positions[p].blockedRoles = 0
        rearmFailedOrders(of: p)
        plan(p, emitting: &actions)
    }

    // MARK: - Pulling work

    /// The most urgent operation that can be sent now, marked in flight; nil when there is none.
    /// Cancels first, then reductions, increases and new orders (a new protective order before
    /// a new entry or scale-in: it reduces the risk they add); FIFO within a class.
    public mutating func nextOperation() -> OrderOperation? {
        var bestSlot = -1
        var bestPriority = OrderOperation.Priority.new
        var bestRank = 0
        var bestSequence: UInt64 = 0
        for slot in activeOrders {
            let s = Int(slot)
            guard let priority = pendingPriority(of: s) else { continue }
            let rank = priority == .new && !orders[s].role.isProtective ? 1 : 0
            let workSequence = orders[s].workSequence
            if bestSlot >= 0, (bestPriority, bestRank, bestSequence) <= (priority, rank, workSequence) { continue }
            bestSlot = s
            bestPriority = priority
            bestRank = rank
            bestSequence = workSequence
        }
        guard bestSlot >= 0 else { return nil }
        return take(bestSlot, bestPriority)
    }

    /// The oldest entry or scale-in submit waiting to be sent (of order `id` only, if given),
    /// ready now or in a retry's backoff, marked in flight as `nextOperation()` marks what it
    /// returns; nil when there is none. For a runtime that will not send it (its circuit breaker
    /// held it back too long, or it was not sent before a restart) and answers it refused, so
    /// that no exposure is added much later, at another market. (Its backoff ends: the timer's
    /// later `retryDue` changes nothing.)
    public mutating func nextOpeningSubmit(of id: OrderID? = nil) -> OrderOperation? {
        var bestSlot = -1
        for slot in activeOrders {
            let s = Int(slot)
            guard id == nil || orders[s].id == id, waitsToOpen(s) else { continue }
            if bestSlot < 0 || orders[s].workSequence < orders[bestSlot].workSequence { bestSlot = s }
        }
        return bestSlot >= 0 ? take(bestSlot, .new) : nil
    }

    /// The entries and scale-ins whose submit waits to be sent, ready now or in a retry's
    /// backoff (what `nextOpeningSubmit()` would take), oldest first.
    public var waitingOpeningSubmits: [OrderID] {
        activeOrders.map { Int($0) }
            .filter(waitsToOpen)
            .sorted { orders[$0].workSequence < orders[$1].workSequence }
            .map { orders[$0].id }
    }

    /// True when slot `s` is an entry or scale-in whose submit waits to be sent, now or after
    /// its backoff.
    private func waitsToOpen(_ s: Int) -> Bool {
        !orders[s].role.isProtective && pendingPriority(of: s, ignoringBackoff: true) == .new
    }

    /// Builds the operation for the work of slot `s` at `priority` and marks it in flight.
    @inline(__always)
    private mutating func take(_ s: Int, _ priority: OrderOperation.Priority) -> OrderOperation? {
        sequence += 1
        let id = orders[s].id
        let request: OrderOperation.Request
        var requested: Quantity?
        switch priority {
        case .cancel:
            request = .cancel(CancelOrderRequest(orderID: id, symbol: symbol))
        case .reduce, .increase:
            guard case .open(let size) = orders[s].target else { return nil }
            let total = orders[s].filled + size
            requested = total
            request = .modify(ModifyOrderRequest(orderID: id, symbol: symbol, newQuantity: total))
        case .new:
            // A resend after a timeout repeats the first request exactly (the broker may hold it):
            // the size is corrected by a modify once the order is known to be live.
            if case .open(let size) = orders[s].target, !orders[s].mayBeLive { orders[s].quantity = size }
            request = .submit(NewOrderRequest(orderID: id, symbol: symbol, side: orders[s].side, type: orders[s].type,
                                              quantity: orders[s].quantity, timeInForce: orders[s].timeInForce))
        }
        let operation = OrderOperation(id: sequence, orderID: id, positionID: positions[Int(orders[s].position)].id, role: orders[s].role,
                                       request: request, priority: priority, attempt: Int(orders[s].attempts) + 1)
        orders[s].inFlight = ManagedOrder.InFlight(operationID: sequence, kind: operation.kind, requestedQuantity: requested)
        // Taken in its backoff (`nextOpeningSubmit`): the backoff is over (its timer's `retryDue`
        // then changes nothing), as `restoreSent` has it on replay.
        orders[s].retryPending = false
        return operation
    }

    /// True when no operation is in flight, none is waiting for a retry and none is ready to send.
    public var isQuiescent: Bool {
        for slot in activeOrders {
            let s = Int(slot)
            if orders[s].inFlight != nil || orders[s].retryPending || pendingPriority(of: s) != nil { return false }
        }
        return true
    }

    /// True when an operation is ready to send now (`nextOperation()` would return one).
    public var hasOperationReady: Bool {
        for slot in activeOrders where pendingPriority(of: Int(slot)) != nil { return true }
        return false
    }

    /// An `operationHeld` alert for each order whose work waits to be sent (or waits out a
    /// backoff), but those `excluding` names, those the machine has alerted as held itself (its
    /// own unsent tries) and entries' and scale-ins' submits (see `nextOpeningSubmit`): for a
    /// runtime whose circuit breaker has held the symbol's work back, `why` saying how long
    /// (asked only if an alert is made). Changes nothing.
    public func heldWorkAlerts(excluding alerted: Set<OrderID> = [], _ why: () -> String) -> [Alert] {
        var alerts: [Alert] = []
        var reason: String?
        let alertedAt = min(configuration.maxAttempts, Int(UInt8.max))
        for slot in activeOrders {
            let s = Int(slot)
            guard orders[s].inFlight == nil, Int(orders[s].unsentTries) < alertedAt, !alerted.contains(orders[s].id),
                  let work = pendingPriority(of: s, ignoringBackoff: true),
                  // An entry's or scale-in's submit is not held to go later: the runtime refuses it.
                  work != .new || orders[s].role.isProtective else { continue }
            if reason == nil { reason = why() }
            let why = reason ?? ""
            let p = Int(orders[s].position)
            let what = switch work {
            case .cancel: "cancel"
            case .new: "submit"
            case .reduce, .increase: "modify"
            }
            alerts.append(Alert(kind: .operationHeld, positionID: positions[p].id, symbol: symbol, orderID: orders[s].id, role: orders[s].role,
                                message: "\(what) of \(orders[s].id) \(why); held, and sent once the broker can be reached"))
        }
        return alerts
    }

    /// The number of operations in flight.
    public var operationsInFlight: Int {
        activeOrders.reduce(0) { $0 + (orders[Int($1)].inFlight != nil ? 1 : 0) }
    }

    // MARK: - Reading

    /// Every position of this symbol, in the order they were opened (retired ones excluded).
    public var positionIDs: [PositionID] { positions.map(\.id) }

    /// The positions of the retired orders still remembered (see `retiredOrderMemory`): ids a
    /// manager must not give a new position after a restart, on any symbol.
    public var retiredPositionIDs: Set<PositionID> { Set(retired.ordered.map(\.positionID)) }

    /// A copy of one position and its orders.
    public func snapshot(of positionID: PositionID) -> PositionSnapshot? {
        guard let p = positionSlot(of: positionID) else { return nil }
        let position = positions[p]
        return PositionSnapshot(
            id: positionID, symbol: symbol, side: position.side, status: position.status,
            netQuantity: position.ledger.net, averagePrice: position.ledger.averagePrice,
            realizedPnL: position.ledger.realizedPnL, commissions: position.ledger.commissions,
            orders: position.orderSlots.map { orders[Int($0)].snapshot(symbol: symbol, positionID: positionID) },
            stopLoss: position.stopLoss, takeProfit: position.takeProfit)
    }

    /// The alert a fill refused with `error` raises when the refusal says it may still be a trade
    /// at the broker (an overfill, a cumulative quantity going back, a fill that fits its order
    /// but would take the position's net or realized P&L past what it books) of an order this
    /// machine knows; nil for other refusals.
    public func alert(forRefused report: ExecutionReport, _ error: InputError) -> Alert? {
        let mayBeTraded = switch error.code {
        case .overfill, .cumulativeWentBackwards: true
        case .duplicateExecution: bookedBelow(report) != nil
        case .invalidQuantity: isBeyondBookingLimits(report)
        default: false
        }
        guard mayBeTraded, let order = snapshot(of: report.orderID) else { return nil }
        return Self.fillRefusedAlert(report.executionID, of: order, error)
    }

    /// The `fillRefused` alert for fill `executionID` of `order`, refused with `error` though the
    /// broker may have traded it.
    public static func fillRefusedAlert(_ executionID: ExecutionID, of order: OrderSnapshot, _ error: InputError) -> Alert {
        Alert(kind: .fillRefused, positionID: order.positionID, symbol: order.symbol, orderID: order.id, role: order.role,
              message: "fill \(executionID) refused (\(error.message)); if the broker did trade it, the position differs from the broker's: a person must look")
    }

    /// The `fillsOverdue` alert for order `id` when its broker's cumulative quantity is still
    /// above what its reports booked (`Action.checkFillsReported`); nil once they came (or the
    /// order is not known).
    public func unreportedFillsAlert(for id: OrderID) -> Alert? {
        guard let s = slot(of: id), orders[s].maxCumulative > orders[s].filled else { return nil }
        let p = Int(orders[s].position)
        return Alert(kind: .fillsOverdue, positionID: positions[p].id, symbol: symbol, orderID: id, role: orders[s].role,
                     message: "the broker reports \(orders[s].maxCumulative) of \(id) filled, \(orders[s].filled) booked: the reports of "
                        + "\(orders[s].maxCumulative - orders[s].filled) have not come; the position counts only the fills reported")
    }

    /// What the order `report` names has booked, when that is less than the report says (its
    /// own quantity, or its cumulative one): a report whose execution id was applied before,
    /// to another fill, since a repeat says nothing its order has not booked. Nil otherwise.
    private func bookedBelow(_ report: ExecutionReport) -> String? {
        guard let s = slot(of: report.orderID) else { return nil }
        if report.lastQuantity > orders[s].filled { return "\(orders[s].filled) filled" }
        if let cumulative = report.cumulativeQuantity, cumulative > orders[s].maxCumulative { return "a cumulative \(orders[s].maxCumulative)" }
        return nil
    }

    /// Whether `report`, a fill of a known order with a quantity in range, was refused only for
    /// the limits of its position (a net beyond `largestNet`, a realized P&L beyond
    /// `largestRealizedPnLUnits`): a trade the broker made that this machine cannot book.
    private func isBeyondBookingLimits(_ report: ExecutionReport) -> Bool {
        guard let s = slot(of: report.orderID), report.lastQuantity.isPositive, report.lastQuantity <= .maximum else { return false }
        let p = Int(orders[s].position)
        let netAfter = positions[p].ledger.net + (report.side == .buy ? report.lastQuantity : -report.lastQuantity)
        return netAfter.magnitude > Self.largestNet || positions[p].ledger.realizedPnL.units.magnitude > Self.largestRealizedPnLUnits
    }

    /// A copy of one order.
    public func snapshot(of orderID: OrderID) -> OrderSnapshot? {
        guard let s = slot(of: orderID) else { return nil }
        return orders[s].snapshot(symbol: symbol, positionID: positions[Int(orders[s].position)].id)
    }

    /// The order a trace means by "position P, role R" (on `side`, when given): the one waiting
    /// for the fills a "too late" answer, or a report's cumulative quantity (room for `quantity`,
    /// when given), announced, if any;
    /// else the role's live order (the newest,
    /// if a replacement is live beside it); else its newest order, so that a late fill after a
    /// cancel still finds it.
    public func orderID(of positionID: PositionID, role: OrderRole, side: Side? = nil, quantity: Quantity? = nil) -> OrderID? {
        guard let p = positionSlot(of: positionID) else { return nil }
        func matches(_ slot: Int32) -> Bool { orders[Int(slot)].role == role && (side == nil || orders[Int(slot)].side == side) }
        /// Reported filled beyond its booked fills, by at least `quantity` when given.
        func announces(_ slot: Int32) -> Bool {
            let order = orders[Int(slot)]
            return order.maxCumulative > order.filled && (quantity.map { order.filled + $0 <= order.maxCumulative } ?? true)
        }
        // The broker answered "too late" for an order of the role (it filled), or reported more
        // of it filled than its reports booked (a fill that fits there): that order's fills are
        // the ones to come, even when a replacement is newer.
        if let awaiting = positions[p].orderSlots.first(where: { matches($0) && (orders[Int($0)].awaitingFill || announces($0)) }) {
            return orders[Int(awaiting)].id
        }
        // A replacement the role gave up (its old order's cancel was refused, so the old one
        // stays the role's order) is newer but done: the live one is the one that can fill.
        if let live = positions[p].orderSlots.last(where: { matches($0) && orders[Int($0)].isLive }) {
            return orders[Int(live)].id
        }
        return positions[p].orderSlots.last(where: matches).map { orders[Int($0)].id }
    }

    /// True if the execution id is remembered as applied: the newest `executionWindow` applied
    /// ids always are (see `hasApplied(_:)` taking the report for the full answer).
    public func hasApplied(_ executionID: ExecutionID) -> Bool { executions.contains(executionID) }

    // MARK: - Slots

    /// The slot of an order, by id: the active orders first (a fill almost always names one),
    /// then the index or a scan.
    @inline(__always)
    func slot(of id: OrderID) -> Int? {
        for slot in activeOrders where orders[Int(slot)].id == id { return Int(slot) }
        if let orderIndex { return orderIndex[id].map(Int.init) }
        for s in orders.indices.reversed() where orders[s].id == id { return s }
        return nil
    }

    /// The slot of the order an operation was sent for, if that operation is still its one in flight.
    @inline(__always)
    private func inFlightSlot(of operation: OrderOperation) -> Int? {
        for slot in activeOrders {
            let s = Int(slot)
            if orders[s].inFlight?.operationID == operation.id, orders[s].id == operation.orderID { return s }
        }
        return nil
    }

    /// The slot of a position, by id.
    func positionSlot(of id: PositionID) -> Int? {
        if let positionIndex { return positionIndex[id].map(Int.init) }
        for p in positions.indices.reversed() where positions[p].id == id { return p }
        return nil
    }

    mutating func rebuildOrderIndex() {
        guard orders.count > Self.indexThreshold else {
            orderIndex = nil
            return
        }
        var index: [OrderID: Int32] = [:]
        index.reserveCapacity(orders.count)
        for s in orders.indices { index[orders[s].id] = Int32(s) }
        orderIndex = index
    }

    mutating func rebuildPositionIndex() {
        guard positions.count > Self.indexThreshold else {
            positionIndex = nil
            return
        }
        var index: [PositionID: Int32] = [:]
        index.reserveCapacity(positions.count)
        for p in positions.indices { index[positions[p].id] = Int32(p) }
        positionIndex = index
    }

    /// Adds an order record (to the end of the position's list, or to its front).
    mutating func insertOrder(_ order: ManagedOrder, atFront: Bool = false) -> Int {
        let s = orders.count
        let p = Int(order.position)
        orders.append(order)
        if orderIndex != nil {
            orderIndex?[order.id] = Int32(s)
        } else if orders.count > Self.indexThreshold {
            rebuildOrderIndex()
        }
        activeOrders.append(Int32(s))
        // (A position not closed is among `openBlockers` already.)
        if order.isLive, positions[p].status == .closed { markMayBlockOpening(p) }
        if atFront {
            positions[p].orderSlots.insert(Int32(s), at: 0)
            if order.isLive { positions[p].liveSlots.insert(Int32(s), at: 0) }
        } else {
            positions[p].orderSlots.append(Int32(s))
            if order.isLive { positions[p].liveSlots.append(Int32(s)) }
        }
        return s
    }

    /// The position an order id was made for, by the grammar `makeOrder` writes ids in:
    /// "<position>-en<n>", "-sl<n>", "-tp<n>" or "-si<index>-<n>". Nil for an id of another form.
    /// Position ids may contain '-' themselves ("S000-1-si0-2" is position S000-1's scale-in 0).
    public static func positionID(ofOrder id: OrderID) -> PositionID? {
        func isNumber(_ text: Substring) -> Bool { !text.isEmpty && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }
        let text = id.rawValue[...]
        guard let lastDash = text.lastIndex(of: "-") else { return nil }
        let last = text[text.index(after: lastDash)...]
        var positionEnd = lastDash
        if isNumber(last) {
            // A scale-in: "-si<index>-<n>".
            guard let dash = text[..<lastDash].lastIndex(of: "-") else { return nil }
            let tag = text[text.index(after: dash)..<lastDash]
            guard tag.hasPrefix("si"), isNumber(tag.dropFirst(2)) else { return nil }
            positionEnd = dash
        } else {
            guard ["en", "sl", "tp"].contains(last.prefix(2)), isNumber(last.dropFirst(2)) else { return nil }
        }
        let position = text[..<positionEnd]
        return position.isEmpty ? nil : PositionID(String(position))
    }

    /// True for the id of a stop-loss or take-profit ("<position>-sl<n>", "<position>-tp<n>"), by
    /// the same grammar.
    public static func isProtectiveOrder(_ id: OrderID) -> Bool {
        guard positionID(ofOrder: id) != nil, let dash = id.rawValue.lastIndex(of: "-") else { return false }
        let last = id.rawValue[id.rawValue.index(after: dash)...]
        return last.hasPrefix("sl") || last.hasPrefix("tp")
    }

    // MARK: - Internals

    private mutating func makeOrder(in p: Int, role: OrderRole, side: Side, type: OrderType,
                                    quantity: Quantity, target: ManagedOrder.Target) -> Int {
        let tag: String
        switch role {
        case .entry: tag = "en"
        case .scaleIn(let index): tag = "si\(index)-"
        case .stopLoss: tag = "sl"
        case .takeProfit: tag = "tp"
        }
        let id = OrderID("\(positions[p].id)-\(tag)\(positions[p].nextOrderNumber)")
        positions[p].nextOrderNumber += 1
        sequence += 1
        let order = ManagedOrder(id: id, position: Int32(p), role: role, side: side, type: type,
                                 timeInForce: positions[p].timeInForce, quantity: quantity, target: target, workSequence: sequence)
        return insertOrder(order)
    }

    /// The position that keeps a new bracket from opening: one in progress first, else a closed
    /// one with an order still live; nil when none does. Looks at `openBlockers` only, or, with
    /// `scanningAll` (for tests of that list), at every position.
    func openingBlocker(scanningAll: Bool = false) -> (position: PositionID, inProgress: Bool)? {
        let candidates = scanningAll ? positions.indices.map { Int32($0) } : openBlockers
        if let p = candidates.first(where: { positions[Int($0)].status != .closed }) { return (positions[Int(p)].id, true) }
        if let p = candidates.first(where: { hasLiveOrder(Int($0)) }) { return (positions[Int(p)].id, false) }
        return nil
    }

    /// Notes that position `p` may now keep a new bracket from opening (see `openBlockers`).
    mutating func markMayBlockOpening(_ p: Int) {
        let position = Int32(p)
        if !openBlockers.contains(position) { openBlockers.append(position) }
    }

    /// Whether any order of position `p` is live.
    func hasLiveOrder(_ p: Int) -> Bool {
        positions[p].liveSlots.contains { orders[Int($0)].isLive }
    }

    /// Sets an order's phase, keeping its position's list of live orders in step.
    mutating func setPhase(_ s: Int, _ phase: ManagedOrder.Phase) {
        let wasLive = orders[s].isLive
        orders[s].phase = phase
        if wasLive, orders[s].isDone {
            let p = Int(orders[s].position)
            if let index = positions[p].liveSlots.firstIndex(of: Int32(s)) { positions[p].liveSlots.remove(at: index) }
        }
    }

    /// The class of work the order needs now, or nil if none can be sent (with
    /// `ignoringBackoff`: the class it will need once a transient failure's backoff is over).
    @inline(__always)
    private func pendingPriority(of s: Int, ignoringBackoff: Bool = false) -> OrderOperation.Priority? {
        guard orders[s].inFlight == nil, ignoringBackoff || !orders[s].retryPending, !orders[s].awaitingFill, orders[s].failure == nil else { return nil }
        switch (orders[s].phase, orders[s].target) {
        case (.done, _):
            return nil
        case (.unsent, .cancelled):
            // Settled locally by plan(), unless a submit timed out: then it may be live.
            return orders[s].mayBeLive ? .cancel : nil
        case (.unsent, _):
            return .new
        case (.accepted, .cancelled):
            if orders[s].retiring, orders[s].hasSuccessor {
                // create-then-cancel: the old order goes only once the new one is live (or is
                // no longer wanted either).
                let next = Int(orders[s].successor)
                guard orders[next].isAccepted || orders[next].isDone || orders[next].target == .cancelled else { return nil }
            }
            return .cancel
        case (.accepted, .asPlaced):
            return nil
        case (.accepted, .open(let size)):
            let open = orders[s].openQuantity
            guard configuration.nativeModify, size != open || orders[s].hasUncertainSize else { return nil }
            // A size the broker may hold after a modify up that timed out counts too: bringing it
            // down is risk-reducing work even when the size last confirmed is already right.
            return size < orders[s].largestOpenQuantity ? .reduce : .increase
        }
    }

    private mutating func setTarget(_ target: ManagedOrder.Target, of s: Int, emitting actions: inout [Action]) {
        guard orders[s].target != target else { return }
        // Tries count per operation: a cancel after failed modifies (or a resize after a failed
        // cancel) is other work and gets its own tries, so a position gone flat is not left with a
        // protective order alerted after one failure of its cancel.
        if (orders[s].target == .cancelled) != (target == .cancelled), !orders[s].awaitingFill { orders[s].attempts = 0 }
        let failedBefore = (orders[s].retryPending || orders[s].attempts > 0) && !orders[s].awaitingFill
        let workBefore = failedBefore ? pendingPriority(of: s, ignoringBackoff: true) : nil
        orders[s].target = target
        if failedBefore, let work = pendingPriority(of: s, ignoringBackoff: true), work <= .reduce, workBefore.map({ work < $0 }) ?? true {
            // Risk-reducing work (a cancel of a stop on a position gone flat, a reduce after a
            // protective fill) is other work than the riskier work that failed (a resize up): it
            // gets tries of its own, and does not wait out that work's backoff: it goes now
            // (rule 6). A broker that is down is the breaker's to hold. (The backoff's retryDue,
            // when it comes, finds nothing to do, or brings a retry of a later failure forward:
            // tries stay bounded by maxAttempts.)
            orders[s].retryPending = false
            orders[s].attempts = 0
        }
        sequence += 1
        orders[s].workSequence = sequence
        if case .unsent = orders[s].phase, target == .cancelled, orders[s].inFlight == nil, !orders[s].mayBeLive {
            setPhase(s, .done(.cancelled))
            orders[s].unplaced = true
        }
        deactivateIfFinished(s)
        if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
    }

    private mutating func deactivateIfFinished(_ s: Int) {
        guard orders[s].isDone, orders[s].inFlight == nil else { return }
        activeOrders.removeAll { $0 == Int32(s) }
    }

    private mutating func rearmFailedOrders(of p: Int) {
        // By index: a `for in` over the slots would take a reference to the array (an atomic
        // retain and release on every fill) to guard against the loop changing it.
        for index in positions[p].liveSlots.indices {
            let s = Int(positions[p].liveSlots[index])
            guard orders[s].failure != nil else { continue }
            orders[s].failure = nil
            orders[s].attempts = 0
        }
    }

    private mutating func failPermanently(_ s: Int, operation: OrderOperation, message: String, emitting actions: inout [Action]) {
        let p = Int(orders[s].position)
        orders[s].attempts = 0
        if operation.kind == .submit, orders[s].isAccepted {
            // A resend of a submit the broker had taken already (a report of the order came
            // since the first try timed out): its refusal, a duplicate id, changes nothing. The
            // order is live; the order it replaces goes on being cancelled.
            deactivateIfFinished(s)
            plan(p, emitting: &actions)
            return
        }
        if operation.kind == .modify, overCovers(s) {
            // A protective order left larger than the position could over-sell it (rule 6): it is
            // cancelled instead (risk-reducing work goes first), and the role gets a new order of
            // the right size: once the cancel is answered, or at once with createThenCancel (the
            // over-coverage then lasts one round trip). Only a failed cancel leaves it alerted.
            let covers = orders[s].largestOpenQuantity
            retire(s, successor: -1, emitting: &actions)
            if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
            actions.append(.alert(Alert(
                kind: .operationFailed, positionID: positions[p].id, symbol: symbol, orderID: orders[s].id, role: orders[s].role,
                message: "\(message); it covers \(covers) of \(positions[p].ledger.net.magnitude)\(Self.besideWaiting(net: positions[p].ledger.net.magnitude, allowed: allowedCover(s)))")))
            plan(p, emitting: &actions)
            return
        }
        if operation.kind == .modify, let size = undercoveredSize(s) {
            // A resize up the broker would not make (refused, or its tries used up: a venue that
            // never answers a replace) left the position partly unprotected, and re-arming would
            // only ask for the same modify again. The order is replaced instead: a new one of the
            // position's size first, the old one cancelled once it is live (never without cover;
            // the two over-cover for that one round trip, rule 6). A replacement refused too
            // keeps the old order (below, `.submit`), alerted, until the re-arm.
            let covers = orders[s].openQuantity
            let role = orders[s].role
            let price = positions[p].protectivePrice(role, cover: configuration.flippedPositionCover)
            if let price, !positions[p].isBlocked(role) {
                let successor = createProtective(p, role: role, side: orders[s].side, price: price, size: size, emitting: &actions)
                retire(s, successor: successor, emitting: &actions)
                actions.append(.alert(Alert(
                    kind: .operationFailed, positionID: positions[p].id, symbol: symbol, orderID: orders[s].id, role: role,
                    message: "\(message); it covers \(covers) of \(size), so a new order of \(size) replaces it")))
                return
            }
        }
        if operation.kind == .cancel, orders[s].isLive, orders[s].target != .cancelled, !orders[s].retiring, !orders[s].hasSuccessor {
            // A cancel no longer wanted (a late fill reopened the position while it was out) that
            // the broker refused: the order stays live and is wanted, as if no cancel had gone.
            // Nothing failed that the role needs: no alert, no block; its size is planned again.
            deactivateIfFinished(s)
            if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
            plan(p, emitting: &actions)
            return
        }
        var unsent = false
        if case .unsent = orders[s].phase { unsent = true }
        var mayHaveBeenPlaced = false
        if operation.kind == .submit, unsent, orders[s].mayBeLive {
            // An earlier try timed out and may have placed the order: it is cancelled to settle
            // where it stands (not marked failed, so the cancel goes at once), never forgotten.
            retire(s, successor: -1, emitting: &actions)
            mayHaveBeenPlaced = true
        } else if operation.kind == .modify, orders[s].target == .cancelled {
            // The order is to be cancelled now (the position went flat, or through it, while the
            // resize was out): a failed resize says nothing of a cancel, which goes at once, not
            // after the re-arm (a stop live on a flat position meanwhile).
        } else {
            orders[s].failure = message
            if operation.kind == .submit, unsent { setPhase(s, .done(.rejected)) }
        }
        // create-then-cancel: the old order's cancel was refused, so it stays live beside the
        // order created to replace it, and the two would cover the role twice (a triggered stop
        // selling the position twice: rule 6). The replacement, which can be cancelled, goes; the
        // role is left to the old order, the alert and the re-arm. Not when an earlier cancel of
        // the old order timed out: that one may be gone, and the replacement is then all there is.
        var cancelledSuccessor: (id: OrderID, open: Quantity)?
        if operation.kind == .cancel, orders[s].isLive, orders[s].hasSuccessor, !orders[s].cancelMayHaveTakenEffect {
            // The newest order of the chain of replacements (a replacement may itself have been
            // replaced already, when the position changed again while it was placed).
            var next = Int(orders[s].successor)
            orders[s].successor = -1
            var steps = 0
            while orders[next].retiring, orders[next].hasSuccessor, steps < orders.count {
                next = Int(orders[next].successor)
                steps += 1
            }
            if orders[next].isLive, orders[next].target != .cancelled, orders[next].side == orders[s].side {
                cancelledSuccessor = (orders[next].id, orders[next].openQuantity)
                retire(next, successor: -1, emitting: &actions)
                if configuration.nativeModify {
                    // The old order is the role's order again (a short one, after a resize up the
                    // broker would not make), not one still being cancelled: the re-arm resizes or
                    // replaces it without first taking it away (never without cover).
                    orders[s].retiring = false
                    orders[s].target = .open(orders[s].openQuantity)
                }
            }
        }
        deactivateIfFinished(s)
        let id = orders[s].id
        let role = orders[s].role
        let positionID = positions[p].id
        if emitsChangeActions { actions.append(.orderChanged(id)) }
        // A replacement that could not be placed: keep the order it was replacing, unless a cancel
        // of it is in flight or timed out (it may be gone): that one keeps being cancelled until
        // an answer settles it, and the role gets a new order once re-armed. Nor is one kept
        // that covers more than the position (the replacement was a resize down): it could
        // over-sell (rule 6), so it is cancelled and the role is left to the alert and re-arm.
        var cancelledOversized: Quantity?
        if operation.kind == .submit {
            for slot in positions[p].orderSlots {
                let other = Int(slot)
                guard orders[other].successor == Int32(s), orders[other].isLive else { continue }
                orders[other].successor = -1
                if orders[other].cancelMayHaveTakenEffect || orders[other].inFlight?.kind == .cancel { continue }
                orders[other].retiring = false
                if overCovers(other) {
                    let allowed = allowedCover(other)
                    if configuration.nativeModify, !allowed.isZero {
                        // Brought down by a modify (the broker refused the new order, not a
                        // resize down): cancelling it would leave the role with nothing.
                        orders[other].target = .open(allowed)
                        continue
                    }
                    cancelledOversized = orders[other].largestOpenQuantity
                    retire(other, successor: -1, emitting: &actions)
                    continue
                }
                orders[other].target = .open(orders[other].openQuantity)
                // It replaced a resize up the broker would not make: asking for that modify again
                // at once would only go round the loop; it waits for the re-arm, as failed work does.
                if configuration.nativeModify, undercoveredSize(other) != nil { orders[other].failure = message }
            }
        }
        let signedNet = positions[p].ledger.net
        // The position went through flat: this order is on the wrong side, no cover at all.
        let onWrongSide = role.isProtective && !signedNet.isZero && orders[s].side != (signedNet.units > 0 ? Side.sell : .buy)
        // The role waits for the re-arm, but not for an order on the wrong side: its failed
        // cancel must not keep the right side from its own order (the failure itself re-arms).
        if role.isProtective, !onWrongSide { positions[p].blockedRoles |= PositionState.bit(role) }
        var kind = Alert.Kind.operationFailed
        if role == .entry, operation.kind == .submit, positions[p].ledger.net.isZero, positions[p].status == .pending {
            kind = .entryRejected
            positions[p].status = .closed
            if emitsChangeActions { actions.append(.positionChanged(positionID)) }
        }
        var said = cancelledOversized.map { "\(message); the order it replaced covers \($0) of \(positions[p].ledger.net.magnitude), so it is cancelled" } ?? message
        if mayHaveBeenPlaced { said += "; an earlier try timed out and may have placed it: it is being cancelled, and any fill of it is still booked" }
        let net = positions[p].ledger.net.magnitude
        var saidStaysLive = false
        if operation.kind == .cancel, orders[s].isLive, onWrongSide {
            // The position went through flat: this order covers nothing, it would add to the position.
            let stays = orders[s].cancelMayHaveTakenEffect ? "it may still be live" : "it stays live"
            said += "; \(stays) on the wrong side: a \(orders[s].side.rawValue) of \(orders[s].openQuantity) that would add to the \(signedNet.units > 0 ? "long" : "short") of \(net)"
            saidStaysLive = true
        } else if operation.kind == .cancel, role.isProtective, orders[s].isLive, orders[s].openQuantity > net {
            // The one case that leaves a protective order larger than the position live: say so.
            said += "; it stays live and covers \(orders[s].openQuantity) of \(net), more than the position"
            saidStaysLive = true
        }
        if let cancelledSuccessor {
            let stays = saidStaysLive ? "" : "; it stays live (\(orders[s].openQuantity))"
            said += "\(stays); \(cancelledSuccessor.id), created to replace it (\(cancelledSuccessor.open)), is being cancelled so that the role is not covered twice"
        } else if operation.kind == .cancel, role.isProtective, orders[s].isLive, !onWrongSide {
            // Other orders of the role still live beside this one (a replacement whose own cancel
            // was refused too): the role's cover is their sum, which is what a person must see.
            var total = Quantity.zero
            var others = 0
            for slot in positions[p].liveSlots {
                let other = Int(slot)
                guard orders[other].isLive, orders[other].role == role, orders[other].side == orders[s].side else { continue }
                total += orders[other].openQuantity
                if other != s { others += 1 }
            }
            if others > 0, total > net {
                said += "; with \(others) other live \(role) \(others == 1 ? "order" : "orders") the role covers \(total) of \(net), more than the position"
            }
        }
        if kind == .operationFailed { actions.append(.scheduleRearm(positionID)) }
        plan(p, emitting: &actions)
        // Said once planning has done what it can: a role left short of the position says by how
        // much (an order whose cancel may have gone through is not counted as cover).
        if role.isProtective, kind == .operationFailed, positions[p].status != .closed, !positions[p].ledger.net.isZero, !said.contains(" covers ") {
            let position = positions[p].ledger.net
            let side: Side = position.units > 0 ? .sell : .buy
            var covered = Quantity.zero
            for slot in positions[p].liveSlots {
                let o = Int(slot)
                // Not one being cancelled (unless its cancel failed: then it stays), nor one whose
                // cancel may have gone through.
                guard orders[o].isLive, orders[o].role == role, orders[o].side == side, !orders[o].cancelMayHaveTakenEffect,
                      orders[o].target != .cancelled || orders[o].failure != nil else { continue }
                covered += orders[o].openQuantity
            }
            if covered < position.magnitude {
                said += "; the role's orders known to be live cover \(covered) of \(position.magnitude)"
            }
        }
        if kind == .entryRejected {
            // The bracket is over: its other orders the broker holds, or may (a submit out or
            // timed out), are being cancelled, and said so.
            let cancelled = positions[p].liveSlots.map { Int($0) }
                .filter { $0 != s && orders[$0].target == .cancelled && (orders[$0].isAccepted || orders[$0].mayBeLive || orders[$0].inFlight?.kind == .submit) }
                .map { orders[$0].id.rawValue }
            if !cancelled.isEmpty { said += "; the bracket's other \(cancelled.count == 1 ? "order" : "orders") \(cancelled.joined(separator: ", ")) \(cancelled.count == 1 ? "is" : "are") being cancelled wherever the broker holds \(cancelled.count == 1 ? "it" : "them")" }
        }
        actions.append(.alert(Alert(kind: kind, positionID: positionID, symbol: symbol, orderID: id, role: role, message: said)))
    }

    /// Derives every order's desired state from the position (rules 2-7) and records the work.
    mutating func plan(_ p: Int, emitting actions: inout [Action]) {
        let net = positions[p].ledger.net
        let closed = positions[p].status == .closed

        if closed || net.isZero {
            // Flat: everything left goes (rule 5). A pending bracket keeps its entry and scale-ins.
            let live = positions[p].liveSlots
            for slot in live {
                let s = Int(slot)
                guard orders[s].isLive, closed || orders[s].roleKind >= ManagedOrder.stopLossKind else { continue }
                if !orders[s].awaitingFill {
                    setTarget(.cancelled, of: s, emitting: &actions)
                } else if asksAgain(s), case .open = orders[s].target {
                    // A protective order that waits, its tries used up, for the fills of a "too
                    // late" to a resize: should that answer be wrong, it is live on a flat
                    // position (rule 5). It is asked once to cancel (a cancel never over-sells);
                    // should the answer be "too late" again, it waits as before.
                    orders[s].awaitingFill = false
                    orders[s].attempts = 0
                    setTarget(.cancelled, of: s, emitting: &actions)
                }
            }
            return
        }

        let side = net.units > 0 ? Side.sell : Side.buy
        let size = net.magnitude
        // Read once, from the stored fields (the fill path: no call per role).
        let stopLoss = positions[p].stopLoss
        let takeProfit = configuration.flippedPositionCover == .stopLossOnly && stopLoss != nil
            && ProtectiveCover.isAgainst(bracketSide: positions[p].side, net: net) ? nil : positions[p].takeProfit
        for roleIndex in 0..<2 {
            let role: OrderRole = roleIndex == 0 ? .stopLoss : .takeProfit
            let kind = roleIndex == 0 ? ManagedOrder.stopLossKind : ManagedOrder.takeProfitKind
            guard let price = roleIndex == 0 ? stopLoss : takeProfit else {
                // Not covered now: a flipped position's take-profit goes (see `ProtectiveCover`).
                guard roleIndex == 1, positions[p].takeProfit != nil else { continue }
                for slot in positions[p].liveSlots where orders[Int(slot)].roleKind == kind {
                    let s = Int(slot)
                    if orders[s].isLive, !orders[s].awaitingFill { setTarget(.cancelled, of: s, emitting: &actions) }
                }
                continue
            }
            // One pass over the role's live orders gives what planning needs.
            var summary = summarize(p, kind, side: side)
            if summary.older {
                // One order per role (rule 2): any older one beside the current goes.
                for slot in positions[p].liveSlots {
                    let s = Int(slot)
                    guard s != summary.current, orders[s].roleKind == kind, orders[s].side == side, !orders[s].retiring,
                          !orders[s].awaitingFill else { continue }
                    retire(s, successor: -1, emitting: &actions)
                }
                summary = summarize(p, kind, side: side)
            }
            // An order of the role on the position's own side would add to it: it goes, whether
            // or not the role waits for fills (a flip and back can leave one while it waits).
            if summary.wrongSide {
                let live = positions[p].liveSlots
                for slot in live where orders[Int(slot)].roleKind == kind && orders[Int(slot)].side != side && !orders[Int(slot)].awaitingFill {
                    setTarget(.cancelled, of: Int(slot), emitting: &actions)
                }
                // Again: an order never sent was just cancelled locally and is no longer live.
                summary = summarize(p, kind, side: side)
            }
            // The broker said too late: wait for those fills before adding to the role. But an
            // order of the role that covers more than the position is brought down meanwhile
            // (rule 6): a cancel, or a smaller size, never over-sells.
            if summary.awaiting {
                let s = summary.current
                // What the role's other order may cover: the position less what the waiting orders
                // may still hold. Right in either case: if their "too late" is right they filled,
                // and the position is that much smaller once their fills come; if it is wrong they
                // are live, and cover that much of it.
                let allowed = size > summary.awaitingCover ? size - summary.awaitingCover : .zero
                if s >= 0, !orders[s].awaitingFill, orders[s].failure == nil, orders[s].isLive, orders[s].openQuantity > allowed {
                    if allowed.isZero {
                        // The waiting orders cover it all: this one is all excess, whatever the answer.
                        retire(s, successor: -1, emitting: &actions)
                    } else if configuration.nativeModify || !orders[s].isAccepted || orders[s].inFlight != nil {
                        setTarget(.open(allowed), of: s, emitting: &actions)
                    } else if configuration.replaceStrategy == .createThenCancel, !positions[p].isBlocked(role) {
                        // Replaced by a smaller one; the role is never left without an order that
                        // is live (the one waiting for its fills has ended at the broker).
                        let successor = createProtective(p, role: role, side: side, price: price, size: allowed, emitting: &actions)
                        retire(s, successor: successor, emitting: &actions)
                    }
                    // cancelThenCreate cannot bring it down here: its cancel would leave the
                    // role with no live order until the awaited fills come (the fillsOverdue alert
                    // says they are late), so it stays.
                } else if s >= 0, orders[s].awaitingFill, configuration.nativeModify, asksAgain(s),
                          case .open(let asked) = orders[s].target, asked > size, orders[s].largestOpenQuantity > size {
                    // The order that waits, its tries used up, was last asked for more than the
                    // position now holds. Its "too late" may be wrong, and then it over-covers
                    // (rule 6): it is asked once more, to come down to the position. A modify down
                    // never over-sells; should the answer be "too late" again, it waits as before.
                    orders[s].awaitingFill = false
                    orders[s].attempts = 0
                    setTarget(.open(size), of: s, emitting: &actions)
                }
                continue
            }
            // The role's current order: the newest live one on the right side not being replaced.
            if summary.current >= 0 {
                let s = summary.current
                if orders[s].failure != nil { continue }
                let target = ManagedOrder.Target.open(size)
                if configuration.nativeModify || !orders[s].isAccepted || orders[s].inFlight != nil || orders[s].openQuantity == size {
                    // Native modify (or a submit that will carry the size): set the size and let
                    // nextOperation() send the difference. Without native modify, an in-flight
                    // operation's outcome re-plans this when it completes.
                    setTarget(target, of: s, emitting: &actions)
                    continue
                }
                // No native modify: replace.
                guard !positions[p].isBlocked(role) else { continue }
                switch configuration.replaceStrategy {
                case .cancelThenCreate:
                    retire(s, successor: -1, emitting: &actions)
                case .createThenCancel:
                    let successor = createProtective(p, role: role, side: side, price: price, size: size, emitting: &actions)
                    retire(s, successor: successor, emitting: &actions)
                }
                continue
            }
            guard !positions[p].isBlocked(role) else { continue }
            // No current order. With cancel-then-create, wait while an old one on the right side
            // is still being cancelled. One on the wrong side (the position went through flat) is
            // no cover, whether its cancel goes through or is refused: the right side's order is
            // placed at once, beside it (rule 6: never left without protection).
            if summary.retiringRightSide && configuration.replaceStrategy == .cancelThenCreate { continue }
            let successor = createProtective(p, role: role, side: side, price: price, size: size, emitting: &actions)
            if summary.retiringWithoutSuccessor {
                for index in positions[p].liveSlots.indices {
                    let s = Int(positions[p].liveSlots[index])
                    if s != successor, orders[s].roleKind == kind, orders[s].side == side, orders[s].retiring, !orders[s].hasSuccessor {
                        orders[s].successor = Int32(successor)
                    }
                }
            }
        }
    }

    /// An order waiting for the fills of a "too late" may be asked once more (its tries used up,
    /// nothing in flight or failed): only when what it should be has changed since.
    private func asksAgain(_ s: Int) -> Bool {
        orders[s].isAccepted && !orders[s].retryPending && orders[s].inFlight == nil && orders[s].failure == nil
    }

    /// What planning needs to know about a protective role's live orders.
    private struct RoleSummary {
        /// Some live order of the role is waiting for fills after a "too late".
        var awaiting = false
        /// The most the role's waiting orders on the right side, their tries used up, may still hold open.
        var awaitingCover = Quantity.zero
        /// Some live order of the role is on the wrong side (found before any cancel).
        var wrongSide = false
        /// Some live order of the role on the right side is being replaced.
        var retiringRightSide = false
        /// The newest live order of the role on the right side and not being replaced, or -1.
        var current = -1
        /// Some live order of the role on the right side is being replaced and has no successor yet.
        var retiringWithoutSuccessor = false
        /// Another live order of the role on the right side, older than `current`, is not being
        /// replaced either (two replacements that could not be placed each kept what they
        /// replaced): the role has one order, so it goes.
        var older = false
    }

    /// One pass over the position's live orders of a protective role (by kind), oldest first, without copying them.
    @inline(__always)
    private func summarize(_ p: Int, _ kind: UInt8, side: Side) -> RoleSummary {
        var summary = RoleSummary()
        for index in positions[p].liveSlots.indices {
            let s = Int(positions[p].liveSlots[index])
            guard orders[s].roleKind == kind else { continue }
            // An order on the other side waiting for its fills after a "too late" has ended at the
            // broker; those fills can only take the position further this way, so it does not
            // hold up the role's order for the side the position is on now.
            if orders[s].awaitingFill, orders[s].side != side { continue }
            if orders[s].awaitingFill {
                summary.awaiting = true
                // Once its tries are used up (while a retry is due, the work is asked again soon:
                // counting it meanwhile would resize the role's other order back and forth).
                if !orders[s].retryPending { summary.awaitingCover += orders[s].largestOpenQuantity }
            }
            if orders[s].side != side {
                summary.wrongSide = true
            } else if orders[s].retiring {
                summary.retiringRightSide = true
                if !orders[s].hasSuccessor { summary.retiringWithoutSuccessor = true }
            } else {
                if summary.current >= 0 { summary.older = true }
                summary.current = s
            }
        }
        return summary
    }

    private mutating func retire(_ s: Int, successor: Int, emitting actions: inout [Action]) {
        orders[s].retiring = true
        orders[s].successor = Int32(successor)
        setTarget(.cancelled, of: s, emitting: &actions)
    }

    private mutating func createProtective(_ p: Int, role: OrderRole, side: Side, price: Price, size: Quantity,
                                           emitting actions: inout [Action]) -> Int {
        let type: OrderType = role == .stopLoss ? .stop(price) : .limit(price)
        let s = makeOrder(in: p, role: role, side: side, type: type, quantity: size, target: .open(size))
        if emitsChangeActions { actions.append(.orderChanged(orders[s].id)) }
        return s
    }
}
