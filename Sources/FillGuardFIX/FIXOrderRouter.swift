import FillGuard
import FillGuardCore

/// An order's state as the broker reports it in answer to OrderStatusRequest (H) or
/// OrderMassStatusRequest (AF), for reconciliation after a restart.
public struct FIXOrderStatus: Sendable, Hashable {
    /// FillGuard's order id (the ClOrdID chain's root).
    public var orderID: OrderID
    /// The ClOrdID the broker knows the order by now.
    public var clOrdID: String
    /// The broker's order id (37).
    public var brokerOrderID: String
    /// The instrument.
    public var symbol: Symbol
    /// The order's side.
    public var side: Side
    /// OrdStatus (39) as sent: "0" new, "1" partially filled, "2" filled, "4" canceled, "8" rejected...
    public var ordStatus: String
    /// Filled so far.
    public var cumulativeQuantity: Quantity
    /// Still open.
    public var leavesQuantity: Quantity
    /// Average fill price, if any fill.
    public var averagePrice: Price?
    /// OrdType (40) as sent, if present: "1" market, "2" limit, "3" stop, "4" stop-limit.
    public var ordType: String?
    /// OrderQty (38), the order's total quantity at the broker, if sent.
    public var orderQuantity: Quantity?
    /// Price (44), if sent.
    public var price: Price?
    /// StopPx (99), if sent.
    public var stopPrice: Price?
    /// TimeInForce (59) as sent, if present.
    public var timeInForce: String?

    /// True when the order can no longer trade: filled, canceled, rejected, expired, or done for
    /// the day unless it is good till cancel or till a date (it trades again the next day).
    public var isTerminal: Bool {
        if ordStatus == "3" { return !FIXOrderRouter.outlivesTheDay(timeInForce) }
        return ["2", "4", "8", "C"].contains(ordStatus)
    }

    /// An order status.
    public init(orderID: OrderID, clOrdID: String, brokerOrderID: String, symbol: Symbol, side: Side, ordStatus: String,
                cumulativeQuantity: Quantity, leavesQuantity: Quantity, averagePrice: Price?, ordType: String? = nil,
                orderQuantity: Quantity? = nil, price: Price? = nil, stopPrice: Price? = nil, timeInForce: String? = nil) {
        self.orderID = orderID
        self.clOrdID = clOrdID
        self.brokerOrderID = brokerOrderID
        self.symbol = symbol
        self.side = side
        self.ordStatus = ordStatus
        self.cumulativeQuantity = cumulativeQuantity
        self.leavesQuantity = leavesQuantity
        self.averagePrice = averagePrice
        self.ordType = ordType
        self.orderQuantity = orderQuantity
        self.price = price
        self.stopPrice = stopPrice
        self.timeInForce = timeInForce
    }

    /// The order type from OrdType, Price and StopPx; nil when OrdType is absent, not one FillGuard
    /// uses, or its prices are missing.
    public var orderType: OrderType? {
        switch ordType {
        case "1": return .market
        case "2": return price.map { .limit($0) }
        case "3": return stopPrice.map { .stop($0) }
        case "4":
            guard let stopPrice, let price else { return nil }
            return .stopLimit(stop: stopPrice, limit: price)
        default: return nil
        }
    }

    /// OrdStatus (39) in FillGuard's terms. Done for day counts as expired, except for an order
    /// good till cancel or till a date; statuses FillGuard has no name for (stopped, suspended,
    /// calculated, accepted for bidding) count as working or partially filled by CumQty, since the
    /// order may still trade.
    public var orderStatus: OrderStatus {
        switch ordStatus {
        case "3" where FIXOrderRouter.outlivesTheDay(timeInForce): return cumulativeQuantity.isZero ? .working : .partiallyFilled
        case "A": return .pendingNew
        case "0": return .working
        case "1": return .partiallyFilled
        case "2": return .filled
        case "3", "C": return .expired
        case "4": return .cancelled
        case "6": return .pendingCancel
        case "8": return .rejected
        case "E": return .pendingModify
        default: return cumulativeQuantity.isZero ? .working : .partiallyFilled
        }
    }

    /// The order as `BrokerQueries` reports it. The total quantity is OrderQty, or CumQty +
    /// LeavesQty when the broker left OrderQty out; `knownType` stands in when the status carries
    /// no usable OrdType. Throws (permanent) when the type cannot be told at all.
    public func brokerOrderState(knownType: OrderType? = nil) throws(BrokerError) -> BrokerOrderState {
        guard let type = orderType ?? knownType else {
            throw BrokerError(.permanent, "order \(orderID) (\(clOrdID)): the broker's status has no usable OrdType/Price/StopPx")
        }
        return BrokerOrderState(orderID: orderID, symbol: symbol, side: side, type: type,
                                quantity: orderQuantity ?? cumulativeQuantity + leavesQuantity, filled: cumulativeQuantity,
                                status: orderStatus)
    }
}

/// What a MarketDataRequest (V) asks for (SubscriptionRequestType, 263).
public enum FIXMarketDataSubscription: String, Sendable, Hashable {
    /// One snapshot (263=0).
    case snapshot = "0"
    /// A snapshot and updates from then on (263=1).
    case subscribe = "1"
    /// Stop the updates of an earlier subscription (263=2); no answer is expected.
    case unsubscribe = "2"
}

/// How FIX answers an application message FillGuard refused.
public enum FIXRefusalAnswer: Sendable, Hashable {
    /// A session-level Reject (3): the value of `refTagID` has the wrong format (SessionRejectReason
    /// 6) or is out of range (5).
    case sessionReject(refSeqNum: Int, refMsgType: String, refTagID: Int, reason: Int, text: String)
    /// A BusinessMessageReject (j): for instance a conditionally required field missing
    /// (BusinessRejectReason 5); `refID` is the message's ExecID, sent as BusinessRejectRefID (379).
    case businessReject(refSeqNum: Int, refMsgType: String, refID: String, reason: Int, text: String)

    /// The answer as a message (without the standard header): Reject (3) or BusinessMessageReject (j).
    public var message: FIXMessage {
        switch self {
        case .sessionReject(let refSeqNum, let refMsgType, let refTagID, let reason, let text):
            return FIXMessage(msgType: FIXMsgType.reject, fields: [
                FIXField(45, String(refSeqNum)), FIXField(371, String(refTagID)), FIXField(372, refMsgType), FIXField(373, String(reason)),
                FIXField(58, text),
            ])
        case .businessReject(let refSeqNum, let refMsgType, let refID, let reason, let text):
            var message = FIXMessage(msgType: FIXMsgType.businessMessageReject, fields: [FIXField(45, String(refSeqNum)), FIXField(372, refMsgType)])
            if !refID.isEmpty { message.append(379, refID) }
            message.append(380, String(reason))
            message.append(58, text)
            return message
        }
    }
}

/// Application-level settings of the FIX mapping.
public struct FIXApplicationConfiguration: Sendable, Hashable {
    /// Account (1) on every order, if the broker wants one.
    public var account: String?

    /// Application settings.
    public init(account: String? = nil) { self.account = account }
}

/// The order-routing half of FIX as a pure state machine: turns FillGuard's requests into
/// NewOrderSingle / OrderCancelRequest / OrderCancelReplaceRequest / OrderStatusRequest /
/// OrderMassStatusRequest, and the broker's ExecutionReports, OrderCancelRejects and rejects into
/// acknowledgements and `BrokerEvent`s. Keeps each order's ClOrdID chain (OrigClOrdID) and
/// drops execution reports whose ExecID it has seen.
public struct FIXOrderRouter: Sendable {
    /// What a request resolves to.
    public enum Plan: Sendable, Hashable {
        /// Send this message; the answer will complete the request keyed `key`.
        case send(FIXMessage, key: String)
        /// Send this message; no answer is expected.
        case sendOnly(FIXMessage)
        /// The same request is already in flight: wait for `key`.
        case wait(key: String)
        /// Already done (an acknowledged order submitted again): succeed now.
        case succeeded
        /// Refused without sending.
        case failed(BrokerError)
    }

    /// What a received message means.
    public enum Output: Sendable, Hashable {
        /// The request keyed `key` is acknowledged (nil) or refused.
        case completed(key: String, error: BrokerError?)
        /// A fill or an unsolicited order end for the runtime.
        case event(BrokerEvent)
        /// An order status answering the status request keyed `key`; `last` ends a mass status.
        case status(key: String, FIXOrderStatus?, last: Bool)
        /// A status report answering the request keyed `key` that cannot be read (a Side other
        /// than buy or sell, a missing, unreadable or negative CumQty or LeavesQty...): the
        /// request fails with `reason` once its last report came; nothing is learnt from it.
        case malformedStatus(key: String, String, last: Bool)
        /// Last-trade prices answering the market-data request keyed `key`, once every symbol answered.
        case prices(key: String, [Symbol: Price])
        /// Net positions answering the RequestForPositions keyed `key`, once every PositionReport came.
        case positions(key: String, [Symbol: Quantity])
        /// A repeated ExecID: dropped.
        case duplicate(ExecutionID)
        /// Not for us or informational; the reason is for logs.
        case ignored(String)
        /// A report refused before it changed anything (a malformed or out-of-range field, a
        /// ClOrdID this router never issued for the order it names): `error` is the typed refusal
        /// for the runtime's rejected inputs, `context` says which report, `symbol` is its Symbol
        /// as sent, and `answer` is the Reject FIX calls for, if any.
        case refused(InputError, context: String, symbol: Symbol, answer: FIXRefusalAnswer?)
        /// An order the router had told the runtime the broker never took (its cancel was
        /// refused as unknown while the submit went unanswered) turns out live at the broker:
        /// nobody wants it, so it is to be cancelled (`cancel(_:transactTime:)` sends it).
        case cancelOrphan(CancelOrderRequest)
    }

    private struct Order: Sendable {
        var symbol: Symbol
        var side: Side
        var type: OrderType
        /// Nil for an order learnt from a status answer without a TimeInForce FillGuard uses.
        var timeInForce: TimeInForce?
        var quantity: Quantity
        var clOrdID: String
        var acknowledged: Bool
        var requests: Int
        var done: Bool
        var brokerOrderID: String?
        /// Ended by a cancel (asked for or not): a cancel sent again succeeds.
        var cancelled = false
        /// Ended by the broker's reject: a submit sent again fails.
        var rejected = false
        /// Trades on after a done for day (good till cancel or till a date, as sent or as the
        /// broker's status gave TimeInForce).
        var outlivesTheDay = false
        /// Learnt from a status answer as pending new: the broker has not accepted it yet.
        var learntPendingNew = false
        /// Ended here as never taken by the broker (a cancel beside its unanswered submit was
        /// refused as unknown); a later New or fill shows it live, unwanted.
        var presumedNeverTaken = false
        /// Cancelled here as live though the runtime had it as refused (`cancelOrphan`): its
        /// Canceled is passed on, since the runtime may have taken it back meanwhile (a fill).
        var orphanCancelled = false
        /// Submits sent again (PossResend=Y) whose own answer has not come: a broker that took
        /// the first answers each with a Rejected (duplicate ClOrdID), which ends nothing.
        var resentSubmits = 0
    }

    private enum RequestKind: Sendable, Hashable {
        case submit
        case modify(Quantity)
        case cancel
        case status
        case massStatus
        case marketData
        case positions

        /// True when an execution report of `execType` answers a request of this kind: Replaced
        /// (5) a modify, Canceled (4) a cancel.
        func isAnswered(by execType: String) -> Bool {
            switch self {
            case .modify: return execType == "5"
            case .cancel: return execType == "4"
            default: return false
            }
        }
    }

    private struct Pending: Sendable {
        var kind: RequestKind
        var orderID: OrderID?
        var message: FIXMessage
        /// Status reports received so far for a mass status request.
        var reports = 0
        /// A mass status answer whose reports carry neither LastRptRequested (912) nor
        /// TotNumReports (911): nothing says which is last, so it is complete when the request's
        /// time is up (`queryTimedOut`), never cut short at a report.
        var openEnded = false
        /// The TotNumReports (911) of a mass status answer whose reports all say 912=N: when that
        /// many have come and the request's time is up, the answer is complete.
        var expected: Int?
        /// For a cancel sent beside an unanswered replace: the replace's ClOrdID.
        var besideReplace: String?
    }

    /// Requests in flight by key, with an index of each order's order requests (submit, modify,
    /// cancel), so finding an order's request does not scan every request in flight.
    private struct PendingRequests: Sendable {
        private var byKey: [String: Pending] = [:]
        private var byOrder: [OrderID: Set<String>] = [:]

        var count: Int { byKey.count }

        /// Every request's key.
        var keys: Dictionary<String, Pending>.Keys { byKey.keys }

        subscript(key: String) -> Pending? {
            get { byKey[key] }
            set {
                if let old = byKey[key] { unindex(key, old) }
                byKey[key] = newValue
                if let newValue, let orderID = newValue.orderID, newValue.kind != .status { byOrder[orderID, default: []].insert(key) }
            }
        }

        @discardableResult
        mutating func removeValue(forKey key: String) -> Pending? {
            guard let old = byKey.removeValue(forKey: key) else { return nil }
            unindex(key, old)
            return old
        }

        /// Keys of the order requests in flight for `orderID`.
        func orderKeys(of orderID: OrderID) -> [String] { byOrder[orderID].map { Array($0) } ?? [] }

        private mutating func unindex(_ key: String, _ request: Pending) {
            guard let orderID = request.orderID, var keys = byOrder[orderID] else { return }
            keys.remove(key)
            byOrder[orderID] = keys.isEmpty ? nil : keys
        }
    }

    /// Application settings.
    public let configuration: FIXApplicationConfiguration
    private var orders: [OrderID: Order] = [:]
    /// The highest chain number issued for each order before this process started, read from
    /// the FIX store's sent messages (`noteIssued`): a replace or cancel refused then (never
    /// shown in a status answer) still used its number, and the broker refuses it again.
    private var issuedBefore: [OrderID: Int] = [:]
    private var byClOrdID: [String: OrderID] = [:]
    /// Orders by the broker's OrderID (37): a report may leave out ClOrdID (optional in FIX 4.4).
    private var byBrokerOrderID: [String: OrderID] = [:]
    private var pending = PendingRequests()
    /// Orders in the order they became known, for forgetting the oldest ended ones.
    private var arrivals: [OrderID] = []
    /// The number of orders at which ended ones are next looked for to forget.
    private var forgetAt = 0
    /// Ended orders kept, the newest (a late report of one still maps to it; a fill of an older
    /// one goes to the runtime under its id's root, which decides, never dropped): so a
    /// session that runs for weeks keeps memory flat.
    var endedOrdersKept = 100_000
    private var keyBySeq: [Int: String] = [:]
    private var seenExecIDs = RecentExecIDs()
    private var everSent = Set<String>()
    private var statusCounter = 0
    /// Makes this router's query ids (`S1.x7k2p9qa`) its own: after a restart, answers to the
    /// queries of an earlier process (resent by the counterparty) never match a new query's id.
    private let queryNonce: String = {
        let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<8).map { _ in letters.randomElement()! })
    }()
    private var quotes: [String: (waiting: Set<Symbol>, prices: [Symbol: Price])] = [:]
    private var positionReports: [String: PositionCollection] = [:]

    /// The answer to one RequestForPositions as it comes in: the ack's count, then the reports.
    private struct PositionCollection: Sendable {
        var expected: Int?
        var received = 0
        var nets: [Symbol: Quantity] = [:]
    }

    /// Notes a ClOrdID this session sent before a restart (from the store's sent messages): the
    /// order's chain goes on after its number, never issuing it again.
    public mutating func noteIssued(_ clOrdID: String) {
        guard let orderID = Self.root(of: clOrdID), let number = Self.chainNumber(of: clOrdID) else { return }
        issuedBefore[orderID] = max(issuedBefore[orderID] ?? 0, number)
        if let order = orders[orderID], order.requests < number { orders[orderID]?.requests = number }
    }

    /// A router with no orders.
    public init(configuration: FIXApplicationConfiguration = FIXApplicationConfiguration()) {
        self.configuration = configuration
    }

    /// Requests sent and not yet answered.
    public var pendingCount: Int { pending.count }
    /// The ClOrdID the broker currently knows `orderID` by.
    public func currentClOrdID(of orderID: OrderID) -> String? { orders[orderID]?.clOrdID }
    /// The side of `orderID`, if the router knows the order (sent by it, or learnt from a status answer).
    public func side(of orderID: OrderID) -> Side? { orders[orderID]?.side }
    /// The type of `orderID`, if the router knows the order.
    public func type(of orderID: OrderID) -> OrderType? { orders[orderID]?.type }

    // MARK: Requests

    /// Plans a NewOrderSingle (D). A submit of an order the router already has means "this order,
    /// at this size": the same request still in flight is resent with PossResend=Y under the same
    /// ClOrdID; one already acknowledged at that size succeeds at once, at another size it becomes
    /// a replace (G) to the requested total; a different size while the first submit is unanswered
    /// is refused as transient (retry once it is answered).
    public mutating func submit(_ request: NewOrderRequest, transactTime: Int64) -> Plan {
        if let existing = orders[request.orderID] {
            guard existing.symbol == request.symbol, existing.side == request.side, existing.type == request.type else {
                return .failed(BrokerError(.permanent, "order \(request.orderID) exists with another symbol, side or type"))
            }
            if let pendingRequest = pending[request.orderID.rawValue], pendingRequest.kind == .submit {
                guard existing.quantity == request.quantity else {
                    return .failed(BrokerError(.transient, "order \(request.orderID): first submit still unanswered"))
                }
                var again = pendingRequest.message
                again[97] = "Y"
                orders[request.orderID]?.resentSubmits += 1
                return .send(again, key: request.orderID.rawValue)
            }
            if existing.rejected {
                // A submit sent again after a timeout: the broker rejected the first.
                return .failed(BrokerError(.permanent, "order \(request.orderID) was rejected"))
            }
            if existing.quantity == request.quantity, existing.acknowledged || existing.done { return .succeeded }
            if existing.done { return .failed(BrokerError(.tooLate, "order \(request.orderID) is done")) }
            if existing.acknowledged {
                return modify(ModifyOrderRequest(orderID: request.orderID, symbol: request.symbol, newQuantity: request.quantity),
                              transactTime: transactTime)
            }
        }
        guard request.quantity.isPositive, request.quantity.isWithinRange else {
            return .failed(BrokerError(.permanent, "order \(request.orderID): quantity \(request.quantity) is not positive"))
        }
        let clOrdID = request.orderID.rawValue
        var message = FIXMessage(msgType: FIXMsgType.newOrderSingle)
        message.append(11, clOrdID)
        if let account = configuration.account { message.append(1, account) }
        message.append(21, "1")
        message.append(55, request.symbol.name)
        message.append(54, Self.sideCode(request.side))
        message.append(60, FIXTimestamp.format(epochNanoseconds: transactTime))
        message.append(38, request.quantity.description)
        Self.appendType(request.type, to: &message)
        message.append(59, Self.timeInForceCode(request.timeInForce))
        let isNew = orders[request.orderID] == nil
        orders[request.orderID] = Order(symbol: request.symbol, side: request.side, type: request.type, timeInForce: request.timeInForce,
                                        quantity: request.quantity, clOrdID: clOrdID, acknowledged: false, requests: issuedBefore[request.orderID] ?? 0,
                                        done: false, brokerOrderID: nil,
                                        outlivesTheDay: Self.outlivesTheDay(Self.timeInForceCode(request.timeInForce)))
        byClOrdID[clOrdID] = request.orderID
        if isNew { noteNewOrder(request.orderID) }
        pending[clOrdID] = Pending(kind: .submit, orderID: request.orderID, message: message)
        return .send(message, key: clOrdID)
    }

    /// A modify or cancel of an order this session has neither sent nor learnt from the broker (its
    /// mass status, or a status answer, after a restart): its current ClOrdID is unknown, so
    /// nothing can be sent. That says nothing of the broker, which may well work the order (a
    /// mass status that failed): not `unknownOrder`, which would have the runtime take it as gone
    /// and place its role's order again beside it, but transient (tried again; alerted if it stays so).
    static func notKnownToThisSession(_ orderID: OrderID) -> BrokerError {
        BrokerError(.transient, "order \(orderID) is not known to this FIX session (not sent by it, nor listed by the broker since it logged on); nothing sent")
    }

    /// Plans an OrderCancelReplaceRequest (G) to a new total quantity: a new ClOrdID chained to
    /// the current one by OrigClOrdID.
    public mutating func modify(_ request: ModifyOrderRequest, transactTime: Int64) -> Plan {
        guard var order = orders[request.orderID] else { return .failed(Self.notKnownToThisSession(request.orderID)) }
        guard request.newQuantity.isPositive, request.newQuantity.isWithinRange else {
            return .failed(BrokerError(.permanent, "order \(request.orderID): quantity \(request.newQuantity) is not positive"))
        }
        if let (key, inFlight) = inFlight(for: request.orderID) {
            if inFlight.kind == .modify(request.newQuantity) {
                var again = inFlight.message
                again[97] = "Y"
                return .send(again, key: key)
            }
            return .failed(BrokerError(.transient, "order \(request.orderID) has a request in flight"))
        }
        if order.done { return .failed(BrokerError(.tooLate, "order \(request.orderID) is done")) }
        order.requests += 1
        let clOrdID = "\(request.orderID.rawValue)~\(order.requests)"
        var message = FIXMessage(msgType: FIXMsgType.orderCancelReplaceRequest)
        if let brokerOrderID = order.brokerOrderID { message.append(37, brokerOrderID) }
        message.append(41, order.clOrdID)
        message.append(11, clOrdID)
        if let account = configuration.account { message.append(1, account) }
        message.append(21, "1")
        message.append(55, order.symbol.name)
        message.append(54, Self.sideCode(order.side))
        message.append(60, FIXTimestamp.format(epochNanoseconds: transactTime))
        message.append(38, request.newQuantity.description)
        Self.appendType(order.type, to: &message)
        if let timeInForce = order.timeInForce { message.append(59, Self.timeInForceCode(timeInForce)) }
        orders[request.orderID] = order
        byClOrdID[clOrdID] = request.orderID
        pending[clOrdID] = Pending(kind: .modify(request.newQuantity), orderID: request.orderID, message: message)
        return .send(message, key: clOrdID)
    }

    /// Plans an OrderCancelRequest (F): a new ClOrdID chained to the current one.
    public mutating func cancel(_ request: CancelOrderRequest, transactTime: Int64) -> Plan {
        // Never sent by this router, nor listed by the broker's mass status after a restart.
        guard var order = orders[request.orderID] else { return .failed(Self.notKnownToThisSession(request.orderID)) }
        let inFlight = pending.orderKeys(of: request.orderID).compactMap { key in pending[key].map { (key: key, request: $0) } }
        if let cancelling = inFlight.first(where: { $0.request.kind == .cancel }) {
            var again = cancelling.request.message
            again[97] = "Y"
            return .send(again, key: cancelling.key)
        }
        // A cancel may go beside a submit still unanswered (FIX cancels an order by the ClOrdID it
        // was sent with, before its acknowledgement), or beside a replace still unanswered (by the
        // ClOrdID last accepted): the runtime sends a cancel only once it has given up waiting for
        // them, and a broker that never answers one must not keep a stop live on a flat position.
        // Any other request in flight goes first.
        let cancellableBeside = inFlight.allSatisfy { request in
            switch request.request.kind {
            case .submit: return !order.acknowledged
            case .modify: return true
            default: return false
            }
        }
        if !inFlight.isEmpty, !cancellableBeside {
            return .failed(BrokerError(.transient, "order \(request.orderID) has a request in flight"))
        }
        if order.done {
            // A cancel sent again after a timeout: the first one (or the exchange) ended it.
            if order.cancelled { return .succeeded }
            if !order.acknowledged { return .failed(BrokerError(.unknownOrder, "order \(request.orderID) was never accepted")) }
            return .failed(BrokerError(.tooLate, "order \(request.orderID) is done"))
        }
        order.requests += 1
        let clOrdID = "\(request.orderID.rawValue)~\(order.requests)"
        var message = FIXMessage(msgType: FIXMsgType.orderCancelRequest)
        if let brokerOrderID = order.brokerOrderID { message.append(37, brokerOrderID) }
        message.append(41, order.clOrdID)
        message.append(11, clOrdID)
        if let account = configuration.account { message.append(1, account) }
        message.append(55, order.symbol.name)
        message.append(54, Self.sideCode(order.side))
        message.append(60, FIXTimestamp.format(epochNanoseconds: transactTime))
        message.append(38, order.quantity.description)
        orders[request.orderID] = order
        byClOrdID[clOrdID] = request.orderID
        var cancel = Pending(kind: .cancel, orderID: request.orderID, message: message)
        cancel.besideReplace = inFlight.first { if case .modify = $0.request.kind { true } else { false } }?.key
        pending[clOrdID] = cancel
        return .send(message, key: clOrdID)
    }

    /// Plans an OrderStatusRequest (H) for one order, by its current ClOrdID (and the broker's
    /// OrderID when known); `symbol` and `side` are needed only for an order this router has not
    /// seen (after a restart, before a mass status taught it the order). The answer is nil when
    /// the broker does not know the order (OrdRejReason 5).
    public mutating func statusRequest(_ orderID: OrderID, symbol: Symbol? = nil, side: Side? = nil) -> Plan {
        let known = orders[orderID]
        guard let symbol = known?.symbol ?? symbol, let side = known?.side ?? side else {
            return .failed(BrokerError(.permanent, "unknown order \(orderID): symbol and side needed"))
        }
        statusCounter += 1
        let key = "S\(statusCounter).\(queryNonce)"
        var message = FIXMessage(msgType: FIXMsgType.orderStatusRequest)
        if let brokerOrderID = known?.brokerOrderID { message.append(37, brokerOrderID) }
        message.append(11, known?.clOrdID ?? orderID.rawValue)
        message.append(790, key)
        message.append(55, symbol.name)
        message.append(54, Self.sideCode(side))
        pending[key] = Pending(kind: .status, orderID: orderID, message: message)
        return .send(message, key: key)
    }

    /// Plans an OrderMassStatusRequest (AF) for all orders (MassStatusReqType 7).
    public mutating func massStatusRequest() -> Plan {
        statusCounter += 1
        let key = "M\(statusCounter).\(queryNonce)"
        let message = FIXMessage(msgType: FIXMsgType.orderMassStatusRequest, fields: [FIXField(584, key), FIXField(585, "7")])
        pending[key] = Pending(kind: .massStatus, orderID: nil, message: message)
        return .send(message, key: key)
    }

    /// Plans a RequestForPositions (AN, PosReqType 0 positions) for `account` as of
    /// `clearingBusinessDate` (YYYYMMDD). The account is sent as Account (1) and as the one party
    /// (PartyRole 24 customer account, PartyIDSource D proprietary), AccountType 1. The request
    /// completes with the net per symbol once the ack (AO) and every PositionReport (AP) came.
    public mutating func positionsRequest(account: String, clearingBusinessDate: String, transactTime: Int64) -> Plan {
        guard !account.isEmpty else { return .failed(BrokerError(.permanent, "RequestForPositions needs an account")) }
        statusCounter += 1
        let key = "PR\(statusCounter).\(queryNonce)"
        var message = FIXMessage(msgType: FIXMsgType.requestForPositions)
        message.append(710, key)
        message.append(724, "0")
        message.append(453, "1")
        message.append(448, account)
        message.append(447, "D")
        message.append(452, "24")
        message.append(1, account)
        message.append(581, "1")
        message.append(715, clearingBusinessDate)
        message.append(60, FIXTimestamp.format(epochNanoseconds: transactTime))
        pending[key] = Pending(kind: .positions, orderID: nil, message: message)
        positionReports[key] = PositionCollection()
        return .send(message, key: key)
    }

    /// Plans a MarketDataRequest (V) for the last-trade price of `symbols` (snapshot, or snapshot
    /// and subscription); the request completes when a snapshot (W) arrived for every symbol. An
    /// unsubscribe is sent without waiting for an answer.
    public mutating func marketDataRequest(_ symbols: [Symbol], subscription: FIXMarketDataSubscription) -> Plan {
        guard !symbols.isEmpty else { return subscription == .unsubscribe ? .succeeded : .failed(BrokerError(.permanent, "no symbols")) }
        statusCounter += 1
        let key = "MD\(statusCounter).\(queryNonce)"
        var message = FIXMessage(msgType: FIXMsgType.marketDataRequest)
        message.append(262, key)
        message.append(263, subscription.rawValue)
        message.append(264, "1")
        if subscription == .subscribe { message.append(265, "0") }
        message.append(267, "1")
        message.append(269, "2")
        message.append(146, String(symbols.count))
        for symbol in symbols { message.append(55, symbol.name) }
        if subscription == .unsubscribe { return .sendOnly(message) }
        pending[key] = Pending(kind: .marketData, orderID: nil, message: message)
        quotes[key] = (Set(symbols), [:])
        return .send(message, key: key)
    }

    /// Records the MsgSeqNum a request went out with, so a session Reject (3) can name it.
    public mutating func sent(key: String, seq: Int) {
        keyBySeq[seq] = key
        everSent.insert(key)
        // Only requests still pending are looked up (a Reject naming one, an abandoned resend):
        // the others go now and then, so a session that runs for days keeps memory flat.
        let kept = 2 * pending.count + Self.sentMemoryFloor
        if keyBySeq.count > kept { keyBySeq = keyBySeq.filter { pending[$0.value] != nil } }
        if everSent.count > kept { everSent = everSent.filter { pending[$0] != nil } }
    }

    /// Sent requests remembered beyond twice those pending before answered ones are forgotten.
    static let sentMemoryFloor = 4_096

    /// Sent requests remembered (MsgSeqNum to request, and which went out): bounded.
    var sentRequestsRemembered: (bySequence: Int, sent: Int) { (keyBySeq.count, everSent.count) }

    /// Forgets a request that could not be sent. A request that went out once (a retry of it
    /// failing to go out again) stays pending: its answer may still come.
    public mutating func abandon(key: String) {
        if everSent.contains(key) {
            // A submit's resend (PossResend) that did not go out: no reject will answer it, so it
            // must not count as one awaited (a later reject of the order would be taken for it).
            if let request = pending[key], request.kind == .submit, let orderID = request.orderID,
               let resent = orders[orderID]?.resentSubmits, resent > 0 {
                orders[orderID]?.resentSubmits = resent - 1
            }
            return
        }
        guard let request = pending.removeValue(forKey: key) else { return }
        quotes[key] = nil
        if request.kind == .submit, let orderID = request.orderID, orders[orderID]?.acknowledged == false {
            orders[orderID] = nil
            byClOrdID[key] = nil
        }
    }

    /// Forgets a query (status, mass status, market data, positions) whose answer did not come in
    /// time: its caller has given up, and a late answer is then ignored. Order requests stay
    /// pending: their answers still say what the broker did. Returns true for a mass status
    /// whose reports carry neither 912 nor 911, or 912=N on every one but as many as 911 said:
    /// its answer is then complete with what came.
    @discardableResult
    public mutating func queryTimedOut(key: String) -> Bool {
        guard let request = pending[key] else { return false }
        if request.kind == .massStatus, request.openEnded || request.expected.map({ request.reports >= $0 }) == true {
            // Reports without 912 or 911, or 912=N on every report but as many as TotNumReports
            // said: what came by now is the answer.
            pending.removeValue(forKey: key)
            return true
        }
        switch request.kind {
        case .status, .massStatus, .marketData, .positions:
            pending.removeValue(forKey: key)
            quotes[key] = nil
            positionReports[key] = nil
        case .submit, .modify, .cancel:
            break
        }
        return false
    }

    /// How many reports a mass status or positions request has received so far, nil for any
    /// other request (or none in flight under `key`): an answer still coming in is progress, and
    /// its request's time runs from its latest report, not from when it was sent.
    public func reportsReceived(key: String) -> Int? {
        guard let request = pending[key] else { return nil }
        switch request.kind {
        case .massStatus: return request.reports
        case .positions: return positionReports[key]?.received
        default: return nil
        }
    }

    /// Queries waiting for their answer (status, mass status, market data, positions).
    public var queriesInFlight: Int {
        pending.keys.count { key in
            switch pending[key]?.kind {
            case .status?, .massStatus?, .marketData?, .positions?: true
            default: false
            }
        }
    }

    // MARK: Answers

    /// Interprets an application message (or session Reject) from the broker.
    public mutating func received(_ message: FIXMessage) -> [Output] {
        switch message.msgType {
        case FIXMsgType.executionReport: return executionReport(message)
        case FIXMsgType.orderCancelReject: return cancelReject(message)
        case FIXMsgType.marketDataSnapshot: return marketDataSnapshot(message)
        case FIXMsgType.requestForPositionsAck: return positionsAck(message)
        case FIXMsgType.positionReport: return positionReport(message)
        case FIXMsgType.marketDataRequestReject:
            let key = message[262] ?? ""
            quotes[key] = nil
            let outputs = fail(key: key, BrokerError(.permanent, "market data refused (\(message[281] ?? "?")): \(message[58] ?? "")"))
            return outputs.isEmpty ? [.ignored("market data reject for unknown request \(key)")] : outputs
        case FIXMsgType.reject:
            guard let seq = message.int(45), let key = keyBySeq.removeValue(forKey: seq), pending[key] != nil else {
                return [.ignored("session reject of message \(message[45] ?? "?"): \(message[58] ?? "")")]
            }
            return fail(key: key, BrokerError(.permanent, "session reject (\(message[373] ?? "?")): \(message[58] ?? "")"))
        case FIXMsgType.businessMessageReject:
            let key = message[379].flatMap { pending[$0] != nil ? $0 : nil } ?? message.int(45).flatMap { keyBySeq[$0] }
            guard let key, pending[key] != nil else { return [.ignored("business reject: \(message[58] ?? "")")] }
            return fail(key: key, BrokerError(.permanent, "business reject (\(message[380] ?? "?")): \(message[58] ?? "")"))
        default:
            return [.ignored("unsupported message type \(message.msgType)")]
        }
    }

    /// The ExecType (150) values of FIX 4.4; others (FIX 4.2's 1 and 2 among them) are refused.
    static let executionTypes: Set<String> = ["0", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G", "H", "I", "L"]
    /// The Side (54) values of FIX 4.4; of these FillGuard trades only 1 (buy) and 2 (sell).
    static let sideCodes: Set<String> = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G"]

    /// Why an execution report is refused, and what FIX answers.
    private struct Refusal: Error {
        var error: InputError
        var answer: FIXRefusalAnswer?
    }

    /// The numbers an execution report carries, each read strictly: a field that is present must
    /// read as what its tag holds, or the whole report is refused.
    private struct ReportFields {
        var side: Side
        var cumulative: Quantity?
        var leaves: Quantity?
        var lastQuantity: Quantity?
        var lastPrice: Price?
        var orderQuantity: Quantity?
        var commission: Money?
        var transactTime: Int64?
    }

    private mutating func executionReport(_ message: FIXMessage) -> [Output] {
        let execType = message[150] ?? ""
        let execID = message[17] ?? ""
        let symbolText = message[55] ?? ""
        let described = "execution report \(execID) (ExecType \(execType)) for ClOrdID \(message[11] ?? "-") on \(symbolText)"
        func refused(_ refusal: Refusal) -> [Output] {
            [.refused(refusal.error, context: described, symbol: Symbol(symbolText), answer: refusal.answer)]
        }
        guard Self.executionTypes.contains(execType) else {
            return refused(Refusal(error: InputError(.malformed, "ExecType \(execType) is not a FIX 4.4 execution type"),
                                   answer: Self.sessionReject(message, tag: 150, reason: 5, "ExecType \(execType) is not a FIX 4.4 value")))
        }
        if execType == "I" {
            if message[790] == nil, message[584] == nil, let clOrdID = message[11] {
                if pending[clOrdID]?.kind == .submit { return statusAnsweringASubmit(message, clOrdID: clOrdID) }
                answeredAResentSubmit(clOrdID)
            }
            return statusReport(message)
        }
        let clOrdID: String
        if let given = message[11] {
            clOrdID = given
        } else if let brokerOrderID = message[37], let orderID = byBrokerOrderID[brokerOrderID], let current = orders[orderID]?.clOrdID {
            // ClOrdID is optional in an execution report; the broker's OrderID (37), which it
            // gave the order in an earlier report, names the order as well. A Replaced or
            // Canceled answers the order's request in flight, whose ClOrdID it then stands for.
            if let key = pending.orderKeys(of: orderID).sorted().first(where: { pending[$0]?.kind.isAnswered(by: execType) == true }) {
                clOrdID = key
            } else {
                clOrdID = current
            }
        } else if execType == "F" {
            // A fill must never vanish: refused (recorded, answered) when it names no order we know.
            let text = "a fill without ClOrdID (11) whose OrderID (37) \(message[37] ?? "-") names no order FillGuard knows"
            return refused(Refusal(error: InputError(.unknownOrder, text),
                                   answer: Self.businessReject(message, reason: 1, "unknown OrderID \(message[37] ?? "-") and no ClOrdID")))
        } else {
            return [.ignored("execution report \(execID) without ClOrdID, for OrderID \(message[37] ?? "-") that names no known order")]
        }
        let known = resolve(clOrdID) ?? message[41].flatMap(resolve)
        if known == nil, let root = Self.root(of: clOrdID), orders[root] != nil {
            // The id names one of our orders but is not one this router issued for it.
            return refused(Refusal(error: InputError(.unknownOrder, "ClOrdID \(clOrdID) was never issued for order \(root)"),
                                   answer: Self.businessReject(message, reason: 1, "ClOrdID \(clOrdID) was never issued")))
        }
        // A fill (or a trade bust) for an order this router does not know (after a restart, say) goes to the
        // runtime under the ClOrdID chain's root: the runtime decides, and records a refusal.
        guard let orderID = known ?? (["F", "H", "G"].contains(execType) ? Self.root(of: clOrdID) : nil) else {
            return [.ignored("execution report \(execID) for unknown ClOrdID \(clOrdID)")]
        }
        // A repeat of a report already taken is dropped (a fill's repeat with other numbers is
        // alerted, below); a refused report's ExecID is not taken, so a well-formed report with
        // it still counts.
        if let repeated = repeatOfATakenReport(message, execID: execID, execType: execType, orderID: orderID, symbol: symbolText) {
            return repeated
        }
        if execType == "H" || execType == "G" {
            // A trade bust or correction: FillGuard never takes back a fill it applied; the
            // runtime records and alerts it. Taken once: a repeat is a duplicate. Under the
            // ExecID of the fill it names, it is remembered beside that fill, whose numbers stay
            // (a later repeat of the fill is still seen as one).
            seenExecIDs.insert(seenExecIDs.fillContent(of: execID) != nil ? Self.bustKey(execID, execType) : execID)
            let what = execType == "H" ? "cancelled" : "corrected"
            return [.event(.correction(orderID, symbol: Symbol(symbolText),
                                       message: "the broker \(what) fill \(message[19] ?? "?") of order \(orderID) (ExecID \(execID)): "
                                           + "FillGuard does not undo a fill it applied, so the position may be off by that fill; a person must look"))]
        }
        let fields: ReportFields
        do {
            fields = try Self.readFields(message, execType: execType, order: orders[orderID], orderID: orderID)
        } catch {
            return refused(error)
        }
        seenExecIDs.insert(execID, fill: fields.lastQuantity.flatMap { quantity in
            fields.lastPrice.map { RecentExecIDs.FillContent(lastQuantity: quantity, lastPrice: $0) }
        })
        if known != nil, resolve(clOrdID) == nil, let root = Self.root(of: clOrdID) {
            if orders[root] == nil {
                // A ClOrdID someone else gave our order (a desk's cancel/replace, mapped by
                // OrigClOrdID): the order's later reports, its fills above all, carry it alone.
                byClOrdID[clOrdID] = orderID
            } else if root == orderID, let number = Self.chainNumber(of: clOrdID), number > orders[orderID]?.requests ?? 0 {
                // One of ours sent before a restart, further along the chain than the status
                // answer showed (a replace in flight then): its later reports carry it alone,
                // and the chain goes on after it.
                orders[orderID]?.requests = number
                byClOrdID[clOrdID] = orderID
            }
        }
        if let brokerOrderID = message[37], brokerOrderID != "NONE", orders[orderID] != nil {
            orders[orderID]?.brokerOrderID = brokerOrderID
            byBrokerOrderID[brokerOrderID] = orderID
        }
        let text = message[58] ?? ""
        var outputs: [Output] = []
        if let order = orders[orderID], order.presumedNeverTaken || (order.rejected && !order.acknowledged),
           execType == "0" || execType == "F" {
            // Taken after all (the venue booked it after refusing the cancel as unknown, or after
            // its submit was answered with a reject). A New: the runtime has it as refused, so it
            // is cancelled here. A fill: the runtime takes it back itself on that fill (it counts;
            // the rest is held live as the runtime decides), so it is left to the runtime.
            orders[orderID]?.presumedNeverTaken = false
            orders[orderID]?.done = false
            orders[orderID]?.rejected = false
            orders[orderID]?.acknowledged = true
            if execType == "0", let order = orders[orderID] {
                orders[orderID]?.orphanCancelled = true
                outputs.append(.cancelOrphan(CancelOrderRequest(orderID: orderID, symbol: order.symbol)))
            }
        }
        switch execType {
        case "0": // New
            if pending[clOrdID]?.kind != .submit { answeredAResentSubmit(clOrdID) }
            orders[orderID]?.acknowledged = true
            orders[orderID]?.learntPendingNew = false
            outputs += complete(key: clOrdID, expecting: .submit)
        case "5": // Replaced
            if case .modify(let quantity)? = pending[clOrdID]?.kind {
                orders[orderID]?.quantity = quantity
            } else if let quantity = fields.orderQuantity {
                let ours = Self.root(of: clOrdID) == orderID && Self.chainNumber(of: clOrdID) != nil
                if pending[clOrdID] == nil, let order = orders[orderID], order.acknowledged, quantity != order.quantity {
                    // The broker now works the order at a size FillGuard does not have for it:
                    // one of our own chain (`O7~2`) with nothing pending is a replace FillGuard
                    // sent before a restart whose answer comes only now (recovery may have
                    // settled it as not applied, from a status taken before it took effect);
                    // another is a replace by someone else (a desk, the broker). Said as a
                    // correction: the manager asks how the order stands and takes that size, so
                    // a protective order is brought back to the position.
                    let how = ours ? "by a replace FillGuard sent before a restart, answered only now"
                        : "by a request FillGuard did not send"
                    outputs.append(.event(.correction(orderID, symbol: Symbol(symbolText),
                                                      message: "order \(orderID) was replaced at the broker from \(order.quantity) to \(quantity) \(how) (ClOrdID \(clOrdID)); FillGuard reads the order and plans it again")))
                }
                orders[orderID]?.quantity = quantity
            }
            orders[orderID]?.clOrdID = clOrdID
            orders[orderID]?.acknowledged = true
            orders[orderID]?.learntPendingNew = false
            if pending[clOrdID] != nil { outputs += complete(key: clOrdID, expecting: nil) }
            if message[39] == "2" { outputs += finish(orderID, reason: "filled") }
        case "4": // Canceled
            orders[orderID]?.clOrdID = clOrdID
            orders[orderID]?.cancelled = true
            if pending[clOrdID]?.kind == .cancel {
                // A cancel sent beside an unanswered submit: the broker had the order, so the submit took.
                if pending[orderID.rawValue]?.kind == .submit {
                    orders[orderID]?.acknowledged = true
                    outputs += complete(key: orderID.rawValue, expecting: .submit)
                }
                outputs += complete(key: clOrdID, expecting: .cancel)
                outputs += finish(orderID, reason: "canceled")
                if let order = orders[orderID], order.orphanCancelled {
                    // The router's own cancel of an order the runtime had as refused: the runtime
                    // is told, in case a fill made it take the order back meanwhile.
                    outputs.append(.event(.orderStatus(OrderStatusReport(orderID: orderID, symbol: order.symbol, outcome: .cancelled,
                                                                         reason: "live at the broker though refused; cancelled"))))
                }
            } else {
                outputs += end(orderID, .cancelled, reason: text)
            }
        case "C": // Expired
            outputs += end(orderID, .expired, reason: text)
        case "3": // Done for day: a day order is over; one good till cancel trades again tomorrow.
            if orders[orderID]?.outlivesTheDay == true {
                outputs.append(.ignored("done for day (3) for \(clOrdID), an order that trades again the next day"))
            } else {
                outputs += end(orderID, .expired, reason: text.isEmpty ? "done for day" : text)
            }
        case "D": // Restated by the broker: an end is taken as such; a new size cannot be.
            switch message[39] {
            case "4": outputs += end(orderID, .cancelled, reason: text)
            case "C": outputs += end(orderID, .expired, reason: text)
            case "8": outputs += end(orderID, .rejected, reason: text)
            case "3" where orders[orderID]?.outlivesTheDay != true:
                outputs += end(orderID, .expired, reason: text.isEmpty ? "done for day" : text)
            default:
                if let quantity = fields.orderQuantity, let order = orders[orderID], quantity != order.quantity {
                    // Said as a correction: the runtime records and alerts it, then reads the
                    // order and brings it back to the size the position needs.
                    return [.event(.correction(orderID, symbol: Symbol(symbolText),
                                               message: "the broker restated order \(orderID) from \(order.quantity) to \(quantity)"
                                                   + " (ExecRestatementReason \(message[378] ?? "?")); FillGuard reads the order and plans it again"))]
                }
                outputs.append(.ignored("restatement (D) for \(clOrdID) that changes nothing FillGuard tracks"))
            }
        case "8": // Rejected
            if pending[clOrdID]?.kind == .submit, message[103] == "6", let order = orders[orderID], order.resentSubmits > 0 {
                // A duplicate ClOrdID answering the resend (PossResend) of a submit whose own
                // answer has not come (still on its way): the broker holds the first, whose
                // answer settles the submit. Ending the order here would leave it live unseen.
                orders[orderID]?.resentSubmits = order.resentSubmits - 1
                outputs.append(.ignored("reject (8) for \(clOrdID) as a duplicate ClOrdID, answering its resent submit: the first is awaited (\(text))"))
            } else if pending[clOrdID]?.kind == .submit {
                orders[orderID]?.done = true
                orders[orderID]?.rejected = true
                outputs += fail(key: clOrdID, BrokerError(.permanent, text.isEmpty ? (message[103].map { "order rejected (OrdRejReason \($0))" } ?? "order rejected (no reason given)") : text))
            } else if pending[clOrdID] != nil {
                outputs += fail(key: clOrdID, BrokerError(.permanent, text.isEmpty ? "request rejected" : text))
            } else if let order = orders[orderID], order.acknowledged, !order.learntPendingNew,
                      order.resentSubmits > 0 || message[103] == "6" {
                // FIX 4.4 rejects a new order this way: on one it accepted, this answers a repeat
                // of the submit (PossResend after a timeout, a duplicate ClOrdID: OrdRejReason 6
                // says so, also for a resend made before a restart), and the order stays live.
                orders[orderID]?.resentSubmits = max(0, order.resentSubmits - 1)
                outputs.append(.ignored("reject (8) for \(clOrdID), an order the broker accepted, answering its resent submit: \(text)"))
            } else {
                // Unsolicited (no resend of it waits for an answer): the broker ended the order
                // (a late reject by the venue, a risk check), accepted or not.
                orders[orderID]?.rejected = true
                outputs += end(orderID, .rejected, reason: text)
            }
        case "F": // Trade
            guard let lastQty = fields.lastQuantity, let lastPx = fields.lastPrice else {
                return [.ignored("fill \(execID) without LastQty/LastPx")]  // readFields refuses these first
            }
            // LeavesQty 0 says the order is done; a working OrdStatus (new, partially filled,
            // pending) says it is not. The two disagree: neither is taken, and the order's size
            // stays as FillGuard knows it (taking the 0 would end it short of its real size, and
            // its next fill would be refused as an overfill).
            var leaves = fields.leaves
            if leaves?.isZero == true, let status = message[39], Self.workingOrdStatus.contains(status) { leaves = nil }
            let report = ExecutionReport(
                executionID: ExecutionID(execID), orderID: orderID, symbol: Symbol(symbolText), side: fields.side,
                lastQuantity: lastQty, lastPrice: lastPx, cumulativeQuantity: fields.cumulative, leavesQuantity: leaves,
                transactTime: fields.transactTime, commission: fields.commission ?? .zero)
            orders[orderID]?.acknowledged = true
            orders[orderID]?.learntPendingNew = false
            if pending[clOrdID]?.kind == .submit { outputs += complete(key: clOrdID, expecting: .submit) }
            outputs.append(.event(.execution(report)))
            // The order is not marked done here: the runtime may still refuse this fill (an
            // overfill, say), and the router must not act on a report the runtime did not take.
            // A request for an order the fills did end is answered by the broker (too late).
        case "A", "E", "6": // Pending New / Replace / Cancel: the answer comes later.
            outputs.append(.ignored("pending (\(execType)) for \(clOrdID)"))
        default:
            outputs.append(.ignored("execution report type \(execType) for \(clOrdID)"))
        }
        return outputs
    }

    /// Reads an execution report's Side and numbers strictly. Refuses: a field present but not
    /// readable (SessionRejectReason 6) or out of range (5); a fill without LastQty or LastPx
    /// (BusinessRejectReason 5); a Side or Symbol other than the known order's.
    private static func readFields(_ message: FIXMessage, execType: String, order: Order?, orderID: OrderID) throws(Refusal) -> ReportFields {
        let sideCode = message[54] ?? ""
        guard sideCodes.contains(sideCode) else {
            throw Refusal(error: InputError(.malformed, "Side \(sideCode) is not a FIX 4.4 value"),
                          answer: sessionReject(message, tag: 54, reason: 5, "Side \(sideCode) is not a FIX 4.4 value"))
        }
        guard let side = side(code: sideCode) else {
            let name = order.map { " (order \(orderID) is a \($0.side.rawValue))" } ?? ""
            throw Refusal(error: InputError(order == nil ? .malformed : .sideMismatch, "Side \(sideCode) is neither buy (1) nor sell (2)\(name)"),
                          answer: businessReject(message, reason: 0, "Side \(sideCode) is not the order's side"))
        }
        if let order {
            guard side == order.side else {
                throw Refusal(error: InputError(.sideMismatch, "report says \(side.rawValue) but order \(orderID) is a \(order.side.rawValue)"),
                              answer: businessReject(message, reason: 0, "Side \(sideCode) is not the order's side"))
            }
            guard message[55].map({ Symbol($0) }) == order.symbol else {
                throw Refusal(error: InputError(.symbolMismatch, "report says \(message[55] ?? "-") but order \(orderID) is for \(order.symbol)"),
                              answer: businessReject(message, reason: 0, "Symbol \(message[55] ?? "-") is not the order's symbol"))
            }
        }
        var fields = ReportFields(side: side)
        fields.cumulative = try quantity(message, 14, "CumQty", allowZero: true)
        fields.leaves = try quantity(message, 151, "LeavesQty", allowZero: true)
        _ = try averagePrice(message)
        fields.orderQuantity = try quantity(message, 38, "OrderQty", allowZero: false)
        if let text = message[12] {
            guard let commission = Money(text) else {
                throw Refusal(error: InputError(.malformed, "Commission \"\(text)\" is not an amount"),
                              answer: sessionReject(message, tag: 12, reason: 6, "Commission is not an amount"))
            }
            fields.commission = commission
        }
        if let text = message[60] {
            guard let time = FIXTimestamp.parse(text) else {
                throw Refusal(error: InputError(.malformed, "TransactTime \"\(text)\" is not a UTC timestamp"),
                              answer: sessionReject(message, tag: 60, reason: 6, "TransactTime is not a UTCTimestamp"))
            }
            fields.transactTime = time
        }
        if execType == "F" {
            for (tag, name) in [(32, "LastQty"), (31, "LastPx")] where message[tag] == nil {
                throw Refusal(error: InputError(.malformed, "fill without \(name) (\(tag))"),
                              answer: .businessReject(refSeqNum: message.int(34) ?? 0, refMsgType: message.msgType, refID: message[17] ?? "",
                                                      reason: 5, text: "conditionally required field missing: \(name) (\(tag))"))
            }
            fields.lastQuantity = try quantity(message, 32, "LastQty", allowZero: false)
            fields.lastPrice = try price(message, 31, "LastPx", allowZero: false)
            if let amount = fields.commission, let lastQuantity = fields.lastQuantity, let lastPrice = fields.lastPrice {
                fields.commission = try commission(amount, message, lastQuantity: lastQuantity, lastPrice: lastPrice)
            }
        }
        return fields
    }

    /// The commission a fill paid, from Commission (12) as CommType (13) says: absolute (3, or
    /// no CommType), per unit (1; 6, points per contract, taken per unit), a percentage of the
    /// fill's value (2); 4 and 5 (percentages waived) cost nothing. Rounded half away from zero
    /// to money's 16 places; one too large to hold is left for the core to refuse (beyond its
    /// maximum). Another CommType is refused (not a FIX 4.4 value).
    private static func commission(_ amount: Money, _ message: FIXMessage, lastQuantity: Quantity, lastPrice: Price) throws(Refusal) -> Money {
        let tooLarge = Money(units: .max)
        switch message[13] {
        case nil, "3":
            return amount
        case "1", "6":
            // 10^-16 × 10^-8, back to 10^-16.
            let (product, overflow) = amount.units.multipliedReportingOverflow(by: Int128(lastQuantity.units))
            return overflow ? tooLarge : Money(units: dividedRounding(product, by: 100_000_000))
        case "2":
            // The fill's value to 10^-8, times the percentage (10^-16), over 100: to 10^-16.
            let value = dividedRounding(Money.value(of: lastQuantity, at: lastPrice).units, by: 100_000_000)
            let (product, overflow) = value.multipliedReportingOverflow(by: amount.units)
            return overflow ? tooLarge : Money(units: dividedRounding(product, by: 10_000_000_000))
        case "4", "5":
            return .zero
        case let other?:
            throw Refusal(error: InputError(.malformed, "CommType \"\(other.prefix(40))\" is not a FIX 4.4 value"),
                          answer: sessionReject(message, tag: 13, reason: 5, "CommType is not a FIX 4.4 value"))
        }
    }

    /// `value / divisor`, rounded half away from zero.
    private static func dividedRounding(_ value: Int128, by divisor: Int128) -> Int128 {
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        guard remainder.magnitude * 2 >= divisor.magnitude else { return quotient }
        return value < 0 ? quotient - 1 : quotient + 1
    }

    /// True when `text` has the syntax of a FIX Qty/Price/float: an optional minus, digits, at most one point.
    private static func isFIXDecimal(_ text: String) -> Bool {
        var body = Substring(text)
        if body.first == "-" { body = body.dropFirst() }
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.contains(where: { !$0.isEmpty }) else { return false }
        return parts.allSatisfy { $0.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }
    }

    /// A FIX float in the plain form `Quantity` and `Price` read: FIX allows a bare point on
    /// either side (".5", "5."), which the core refuses as an odd form in a trace.
    static func plainDecimal(_ text: String) -> String {
        var body = Substring(text)
        let sign = body.first == "-" ? "-" : ""
        if !sign.isEmpty { body = body.dropFirst() }
        if body.hasPrefix(".") { body = "0" + body }
        if body.hasSuffix(".") { body = body.dropLast() }
        return sign + body
    }

    /// The quantity in `tag`, nil when absent. Refused when present and unreadable (malformed,
    /// SessionRejectReason 6), or out of range, too precise, negative, or zero when not allowed
    /// (invalid quantity, SessionRejectReason 5).
    private static func quantity(_ message: FIXMessage, _ tag: Int, _ name: String, allowZero: Bool) throws(Refusal) -> Quantity? {
        guard let text = message[tag] else { return nil }
        guard isFIXDecimal(text) else {
            throw Refusal(error: InputError(.malformed, "\(name) \"\(text.prefix(40))\" is not a number"),
                          answer: sessionReject(message, tag: tag, reason: 6, "\(name) is not a number"))
        }
        guard let value = Quantity(plainDecimal(text)), value.units > 0 || (allowZero && value.isZero) else {
            let rule = allowZero ? "zero or positive" : "positive"
            throw Refusal(error: InputError(.invalidQuantity, "\(name) must be \(rule), at most \(Quantity.maximum) with at most \(Quantity.decimalPlaces) decimals, got \(text.prefix(40))"),
                          answer: sessionReject(message, tag: tag, reason: 5, "\(name) out of range"))
        }
        return value
    }

    /// The price in `tag`, nil when absent; refused like `quantity`.
    private static func price(_ message: FIXMessage, _ tag: Int, _ name: String, allowZero: Bool) throws(Refusal) -> Price? {
        guard let text = message[tag] else { return nil }
        guard isFIXDecimal(text) else {
            throw Refusal(error: InputError(.malformed, "\(name) \"\(text.prefix(40))\" is not a number"),
                          answer: sessionReject(message, tag: tag, reason: 6, "\(name) is not a number"))
        }
        guard let value = Price(plainDecimal(text)), value.units > 0 || (allowZero && value.units == 0), value <= .maximum else {
            let rule = allowZero ? "zero or positive" : "positive"
            throw Refusal(error: InputError(.invalidPrice, "\(name) must be \(rule) and at most \(Price.maximum), got \(text.prefix(40))"),
                          answer: sessionReject(message, tag: tag, reason: 5, "\(name) out of range"))
        }
        return value
    }

    /// OrdStatus (39) values of an order still working: new, partially filled, pending cancel,
    /// pending new, pending replace.
    static let workingOrdStatus: Set<String> = ["0", "1", "6", "A", "E"]

    /// AvgPx (6), nil when absent, cut to `Price`'s 8 places: an average of fills at different
    /// prices seldom ends (10 at 245 and 20 at 244.5 average 244.666...), and brokers print it
    /// with more places than that. FillGuard books each fill at its LastPx; the average is only
    /// read for what it says, so its extra places never refuse the report (and its fill with it).
    private static func averagePrice(_ message: FIXMessage) throws(Refusal) -> Price? {
        guard let text = message[6] else { return nil }
        guard isFIXDecimal(text) else {
            throw Refusal(error: InputError(.malformed, "AvgPx \"\(text.prefix(40))\" is not a number"),
                          answer: sessionReject(message, tag: 6, reason: 6, "AvgPx is not a number"))
        }
        var plain = plainDecimal(text)
        if let point = plain.firstIndex(of: "."), plain.distance(from: point, to: plain.endIndex) > Price.decimalPlaces + 1 {
            plain = String(plain[..<plain.index(point, offsetBy: Price.decimalPlaces + 1)])
        }
        guard let value = Price(plain), value.units >= 0, value <= .maximum else {
            throw Refusal(error: InputError(.invalidPrice, "AvgPx must be zero or positive and at most \(Price.maximum), got \(text.prefix(40))"),
                          answer: sessionReject(message, tag: 6, reason: 5, "AvgPx out of range"))
        }
        return value
    }

    /// A BusinessMessageReject (j) of an execution report that is valid FIX but names the wrong
    /// order, side or symbol (BusinessRejectReason 1, unknown id, or 0, other).
    private static func businessReject(_ message: FIXMessage, reason: Int, _ text: String) -> FIXRefusalAnswer {
        .businessReject(refSeqNum: message.int(34) ?? 0, refMsgType: message.msgType, refID: message[17] ?? "", reason: reason, text: text)
    }

    private static func sessionReject(_ message: FIXMessage, tag: Int, reason: Int, _ text: String) -> FIXRefusalAnswer {
        .sessionReject(refSeqNum: message.int(34) ?? 0, refMsgType: message.msgType, refTagID: tag, reason: reason, text: text)
    }

    private mutating func marketDataSnapshot(_ message: FIXMessage) -> [Output] {
        let key = message[262] ?? ""
        guard var request = quotes[key], pending[key] != nil else { return [.ignored("market data for unknown request \(key)")] }
        guard let symbol = message[55].map({ Symbol($0) }) else { return [.ignored("market data without Symbol")] }
        let entries = message.groups(268)
        func price(_ entry: [FIXField]) -> Price? { entry.first(where: { $0.tag == 270 }).flatMap { Price(Self.plainDecimal($0.value)) } }
        let trade = entries.first { $0.first?.tag == 269 && $0.first?.value == "2" }.flatMap(price)
        guard let last = trade ?? entries.lazy.compactMap(price).first, last.units > 0 else {
            return [.ignored("market data for \(symbol) without a price")]
        }
        request.prices[symbol] = last
        request.waiting.remove(symbol)
        guard request.waiting.isEmpty else {
            quotes[key] = request
            return []
        }
        quotes[key] = nil
        pending[key] = nil
        return [.prices(key: key, request.prices)]
    }

    private mutating func statusReport(_ message: FIXMessage) -> [Output] {
        let key = message[790] ?? message[584] ?? ""
        guard var request = pending[key] else { return [.ignored("status report for unknown request \(key)")] }
        request.reports += 1
        pending[key] = request
        // The last of a mass status answer says so (LastRptRequested 912=Y); a counterparty that
        // sets 912 on the last report only is read by TotNumReports (911) on the others. With
        // neither (both are optional), nothing says where the answer ends: it is taken whole when
        // the request's time is up. Ending it at the first report left the others "missing", and
        // recovery placed their orders again beside them.
        let last: Bool
        if request.kind == .status {
            last = true
        } else if let flag = message[912] {
            last = flag == "Y"
            if !last, let total = message[911].flatMap({ Int($0) }), total >= 0 {
                request.expected = total
                pending[key] = request
            }
        } else if let text = message[911] {
            guard let total = Int(text), total >= 0 else {
                // A count that cannot be read cannot say where the answer ends: it fails, rather
                // than being cut short at this report.
                pending[key] = nil
                return [.malformedStatus(key: key, "TotNumReports \"\(text.prefix(40))\" is not a count", last: true)]
            }
            last = request.reports >= total
        } else {
            request.openEnded = true
            pending[key] = request
            last = false
        }
        var status: FIXOrderStatus?
        // OrdStatus Rejected with OrdRejReason 5 (unknown order) is the answer for an order the
        // broker does not have: no status.
        let unknownOrder = message[39] == "8" && message[103] == "5"
        if request.kind == .massStatus, let code = message[54], Self.foreignSideCodes.contains(code) {
            // Another program's order (FillGuard sends only buy and sell): counted, not read, so
            // that it does not make the whole answer unreadable (that cost the whole
            // reconciliation); FillGuard could neither resize nor book it on such a side.
            if last { pending[key] = nil }
            return [.ignored("status report for \(message[11] ?? "?") with Side \(code), another program's order: not read"),
                    .status(key: key, nil, last: last)]
        }
        if message[911] != "0", !unknownOrder, let clOrdID = message[11], let orderID = resolve(clOrdID) ?? statusOrderID(clOrdID, original: message[41]),
           let symbol = message[55], let status39 = message[39] {
            do {
                status = try Self.readStatus(message, orderID: orderID, clOrdID: clOrdID, symbol: Symbol(symbol), ordStatus: status39)
            } catch {
                if last { pending[key] = nil }
                return [.malformedStatus(key: key, "malformed status report for order \(orderID) (\(clOrdID)): \(error.error.message)", last: last)]
            }
        }
        if let status {
            learn(status)
            // Listed under a desk's ClOrdID with one of ours as OrigClOrdID: our chain goes on
            // after that one's number (numbers up to it were issued; reused, they are refused
            // as duplicates).
            if let original = message[41], Self.root(of: original) == status.orderID, let number = Self.chainNumber(of: original),
               number > orders[status.orderID]?.requests ?? Int.max {
                orders[status.orderID]?.requests = number
            }
        }
        if last { pending[key] = nil }
        return [.status(key: key, status, last: last)]
    }

    /// A New or an unrequested status (I) for an order whose submit was answered already: the
    /// answer to one of its submits sent again (PossResend), which is then no longer awaited (a
    /// later Rejected of the order is the venue's, not the answer to a resend, and ends it).
    private mutating func answeredAResentSubmit(_ clOrdID: String) {
        guard let orderID = resolve(clOrdID), let order = orders[orderID], order.acknowledged, order.resentSubmits > 0 else { return }
        orders[orderID]?.resentSubmits = order.resentSubmits - 1
    }

    /// An Order Status report (ExecType I) that answers no status request but names a submit in
    /// flight: how FIX 4.4 lets a broker answer a NewOrderSingle resent with PossResend=Y that it
    /// had received already. The order exists, so the submit is acknowledged (rejected, when the
    /// status says so; an order the broker has since cancelled or expired has ended; one still
    /// pending new waits for its New). Fills come in
    /// their own reports. One whose Side or Symbol does not fit the order is not taken as an answer.
    private mutating func statusAnsweringASubmit(_ message: FIXMessage, clOrdID: String) -> [Output] {
        guard let orderID = resolve(clOrdID), let order = orders[orderID] else {
            return [.ignored("order status for submit \(clOrdID) of no known order")]
        }
        let symbol = message[55] ?? ""
        guard message[54].flatMap(Self.side(code:)) == order.side, Symbol(symbol) == order.symbol else {
            // Not taken as the answer (the submit waits on), but refused and answered, as any report that does not fit its order.
            let sideFits = message[54].flatMap(Self.side(code:)) == order.side
            let error = sideFits
                ? InputError(.symbolMismatch, "order status says \(symbol) but order \(orderID) is for \(order.symbol)")
                : InputError(.sideMismatch, "order status says Side \(message[54] ?? "-") but order \(orderID) is a \(order.side.rawValue)")
            return [.refused(error, context: "order status (ExecType I) for submit \(clOrdID)", symbol: Symbol(symbol),
                             answer: Self.businessReject(message, reason: 0, sideFits ? "Symbol \(symbol) is not the order's symbol" : "Side \(message[54] ?? "-") is not the order's side"))]
        }
        if let brokerOrderID = message[37], brokerOrderID != "NONE" {
            orders[orderID]?.brokerOrderID = brokerOrderID
            byBrokerOrderID[brokerOrderID] = orderID
        }
        let text = message[58] ?? ""
        switch message[39] {
        case "8":
            orders[orderID]?.done = true
            orders[orderID]?.rejected = true
            return fail(key: clOrdID, BrokerError(.permanent, text.isEmpty ? (message[103].map { "order rejected (OrdRejReason \($0))" } ?? "order rejected (no reason given)") : text))
        case "4":
            orders[orderID]?.cancelled = true
            return end(orderID, .cancelled, reason: text)
        case "C":
            return end(orderID, .expired, reason: text)
        case "A":
            // Pending New: the broker has it but has not accepted it yet; its New comes later.
            return [.ignored("order status pending new (A) for submit \(clOrdID)")]
        default:
            orders[orderID]?.acknowledged = true
            orders[orderID]?.learntPendingNew = false
            return complete(key: clOrdID, expecting: .submit)
        }
    }

    /// An order status read strictly: Side buy or sell, CumQty and LeavesQty present, readable and
    /// not negative, every other number present readable and in range; else the reason.
    private static func readStatus(_ message: FIXMessage, orderID: OrderID, clOrdID: String, symbol: Symbol,
                                   ordStatus: String) throws(Refusal) -> FIXOrderStatus {
        guard let side = message[54].flatMap(side(code:)) else {
            throw Refusal(error: InputError(.malformed, "Side \(message[54] ?? "-") is neither buy (1) nor sell (2)"), answer: nil)
        }
        guard let cumulative = try quantity(message, 14, "CumQty", allowZero: true),
              let leaves = try quantity(message, 151, "LeavesQty", allowZero: true) else {
            throw Refusal(error: InputError(.malformed, "CumQty and LeavesQty are required"), answer: nil)
        }
        return FIXOrderStatus(orderID: orderID, clOrdID: clOrdID, brokerOrderID: message[37] ?? "", symbol: symbol, side: side,
                              ordStatus: ordStatus, cumulativeQuantity: cumulative, leavesQuantity: leaves,
                              averagePrice: try averagePrice(message).flatMap { $0.units > 0 ? $0 : nil },
                              ordType: message[40], orderQuantity: try quantity(message, 38, "OrderQty", allowZero: false),
                              price: try price(message, 44, "Price", allowZero: false), stopPrice: try price(message, 99, "StopPx", allowZero: false),
                              timeInForce: message[59])
    }

    /// The order a status report is about when its ClOrdID maps to none known: the root of its
    /// ClOrdID, unless OrigClOrdID (41) names another chain: then the order that one names. After
    /// a restart a desk's cancel/replace of our stop is listed under the desk's ClOrdID, with ours
    /// as its OrigClOrdID; taken by the desk's id it would be a stranger, and our stop "missing".
    private func statusOrderID(_ clOrdID: String, original: String?) -> OrderID? {
        guard let original, let root = Self.root(of: original), root != Self.root(of: clOrdID) else { return Self.root(of: clOrdID) }
        return resolve(original) ?? root
    }

    /// Takes in an order the broker reports that this router does not know (after a restart): its
    /// symbol, side, type, size and current ClOrdID, so it can be modified, cancelled and asked
    /// about again. The ClOrdID chain continues after the broker's current ClOrdID's number.
    private mutating func learn(_ status: FIXOrderStatus) {
        let brokerOrderID = status.brokerOrderID.isEmpty || status.brokerOrderID == "NONE" ? nil : status.brokerOrderID
        if let brokerOrderID { byBrokerOrderID[brokerOrderID] = status.orderID }
        guard orders[status.orderID] == nil else {
            if let brokerOrderID, orders[status.orderID]?.brokerOrderID == nil { orders[status.orderID]?.brokerOrderID = brokerOrderID }
            return
        }
        guard let type = status.orderType else { return }
        var requests = issuedBefore[status.orderID] ?? 0
        if let tilde = status.clOrdID.lastIndex(of: "~"), let number = Int(status.clOrdID[status.clOrdID.index(after: tilde)...]) {
            requests = max(requests, number)
        }
        orders[status.orderID] = Order(symbol: status.symbol, side: status.side, type: type,
                                       timeInForce: status.timeInForce.flatMap(Self.timeInForce(code:)),
                                       quantity: status.orderQuantity ?? status.cumulativeQuantity + status.leavesQuantity,
                                       clOrdID: status.clOrdID, acknowledged: true, requests: requests, done: status.isTerminal,
                                       brokerOrderID: brokerOrderID, cancelled: status.ordStatus == "4", rejected: status.ordStatus == "8",
                                       outlivesTheDay: Self.outlivesTheDay(status.timeInForce), learntPendingNew: status.ordStatus == "A")
        byClOrdID[status.clOrdID] = status.orderID
        noteNewOrder(status.orderID)
    }

    /// Notes an order that became known; now and then forgets the oldest ended orders beyond
    /// `endedOrdersKept` (never one with a request in flight).
    private mutating func noteNewOrder(_ id: OrderID) {
        arrivals.append(id)
        guard orders.count > max(forgetAt, endedOrdersKept + 1_024) else { return }
        var excess = orders.values.reduce(0) { $0 + ($1.done ? 1 : 0) } - endedOrdersKept
        var forgotten = Set<OrderID>()
        var kept: [OrderID] = []
        kept.reserveCapacity(arrivals.count)
        var seen = Set<OrderID>()
        for arrival in arrivals {
            guard let order = orders[arrival], seen.insert(arrival).inserted else { continue }
            if excess > 0, order.done, pending.orderKeys(of: arrival).isEmpty {
                orders[arrival] = nil
                forgotten.insert(arrival)
                excess -= 1
            } else {
                kept.append(arrival)
            }
        }
        arrivals = kept
        if !forgotten.isEmpty {
            byClOrdID = byClOrdID.filter { !forgotten.contains($0.value) }
            byBrokerOrderID = byBrokerOrderID.filter { !forgotten.contains($0.value) }
        }
        forgetAt = orders.count + max(1_024, endedOrdersKept / 10)
    }

    /// Orders the router knows (live and ended).
    var ordersKnown: Int { orders.count }

    /// RequestForPositionsAck (AO): how many PositionReports follow, or why there are none.
    private mutating func positionsAck(_ message: FIXMessage) -> [Output] {
        let key = message[710] ?? ""
        guard var collection = positionReports[key], pending[key] != nil else { return [.ignored("positions ack for unknown request \(key)")] }
        let result = message[728] ?? ""
        if result == "2" { return finishPositions(key: key, nets: [:]) }  // no positions found
        guard result == "0", message[729] != "2" else {
            return fail(key: key, BrokerError(.permanent, "positions refused (PosReqResult \(result), PosReqStatus \(message[729] ?? "?")): \(message[58] ?? "")"))
        }
        // TotalNumPosReports (727) is optional in the ack: without it the reports' own count
        // (or LastRptRequested, 912=Y, from brokers that send it) says where the answer ends, or
        // nothing does (the request then times out: no net is better than a broker taken as
        // flat everywhere before its reports came).
        let expected = message.int(727) ?? collection.expected
        collection.expected = expected
        positionReports[key] = collection
        guard let expected else { return [] }
        return collection.received >= expected ? finishPositions(key: key, nets: collection.nets) : []
    }

    /// PositionReport (AP): one symbol's position. The net is LongQty - ShortQty of the end-of-day
    /// (FIN) entry when there is one, else summed over the report's entries.
    private mutating func positionReport(_ message: FIXMessage) -> [Output] {
        let key = message[710] ?? ""
        guard var collection = positionReports[key], pending[key] != nil else { return [.ignored("position report for unknown request \(key)")] }
        collection.received += 1
        // FIX 4.4's PositionReport carries TotalNumPosReports (727) itself: the count, when the
        // ack left it out.
        if collection.expected == nil, let total = message.int(727), total >= 0 { collection.expected = total }
        if let symbol = message[55] {
            let entries = message.groups(702)
            // The net: the end-of-day (FIN) entry; else the start of day (SOD) plus the day's
            // total transaction quantity (TOT) when there is one (TOT totals the day's trades:
            // summed with the transaction entries it totals, they would count twice); else the
            // entries summed.
            func typed(_ types: Set<String>) -> [[FIXField]] {
                entries.filter { $0.first?.tag == 703 && $0.first.map { types.contains($0.value) } == true }
            }
            let final = !typed(["FIN"]).isEmpty ? typed(["FIN"]) : !typed(["TOT"]).isEmpty ? typed(["SOD", "TOT"]) : []
            // Summed wide, each quantity read strictly: a quantity that is unreadable, negative or
            // out of range, or a net beyond any quantity, fails the request (the net would be a
            // guess, and a guess compared with the journal's is worse than none).
            var units: Int128 = Int128(collection.nets[Symbol(symbol)]?.units ?? 0)
            for entry in final.isEmpty ? entries : final {
                for (tag, sign) in [(704, Int128(1)), (705, Int128(-1))] {
                    guard let field = entry.first(where: { $0.tag == tag }) else { continue }
                    guard Self.isFIXDecimal(field.value), let quantity = Quantity(Self.plainDecimal(field.value)),
                          quantity.units >= 0, quantity <= .maximum else {
                        return fail(key: key, BrokerError(.permanent, "position report for \(symbol): \(tag == 704 ? "LongQty" : "ShortQty") \"\(field.value.prefix(40))\" is not a quantity"))
                    }
                    units += sign * Int128(quantity.units)
                }
            }
            guard units.magnitude <= UInt128(Quantity.maximum.units) else {
                return fail(key: key, BrokerError(.permanent, "position report for \(symbol): a net beyond \(Quantity.maximum)"))
            }
            collection.nets[Symbol(symbol)] = Quantity(units: Int64(units))
        }
        positionReports[key] = collection
        if message[912] == "Y" { return finishPositions(key: key, nets: collection.nets) }
        guard let expected = collection.expected, collection.received >= expected else { return [] }
        return finishPositions(key: key, nets: collection.nets)
    }

    private mutating func finishPositions(key: String, nets: [Symbol: Quantity]) -> [Output] {
        positionReports[key] = nil
        pending[key] = nil
        return [.positions(key: key, nets)]
    }

    private mutating func cancelReject(_ message: FIXMessage) -> [Output] {
        guard let clOrdID = message[11], let request = pending[clOrdID] else {
            return [.ignored("cancel reject for unknown request \(message[11] ?? "?")")]
        }
        let text = message[58] ?? ""
        if request.kind == .cancel, message[102] == "1", let orderID = request.orderID, let order = orders[orderID], !order.done {
            // "Unknown order" for a cancel that named a ClOrdID the order may no longer go by:
            // the refusal is of that name, not of the order (whatever OrdStatus it gives: FIX 4.4
            // says Rejected for an unknown order, other brokers give the order's status).
            if let replaceKey = request.besideReplace, case .modify(let quantity)? = pending[replaceKey]?.kind {
                // Sent beside an unanswered replace under the ClOrdID last accepted: the replace
                // took (its Replaced never came). The order goes on under the replace's ClOrdID,
                // and the cancel again under it.
                orders[orderID]?.clOrdID = replaceKey
                orders[orderID]?.quantity = quantity
                orders[orderID]?.acknowledged = true
                let outputs = complete(key: replaceKey, expecting: nil)
                return fail(key: clOrdID, BrokerError(.transient, "the broker knows order \(orderID) by its replace's ClOrdID \(replaceKey) (\(text.isEmpty ? "unknown order" : text)); cancel again under it")) + outputs
            }
            if let named = request.message[41], named != order.clOrdID {
                // The order went by another ClOrdID since (the Replaced of a replace sent beside
                // it came first): cancel again under that one.
                return fail(key: clOrdID, BrokerError(.transient, "the broker knows order \(orderID) as \(order.clOrdID) now, not \(named) (\(text.isEmpty ? "unknown order" : text)); cancel again under it"))
            }
        }
        // Done for day (3) ends a day order, not one that outlives the day (it works again
        // tomorrow): as for an execution report saying so.
        let doneForDay = message[39] == "3" && !(request.orderID.flatMap { orders[$0]?.outlivesTheDay } ?? false)
        let terminal = ["2", "4", "8", "C"].contains(message[39] ?? "") || doneForDay
        if let orderID = request.orderID, terminal { orders[orderID]?.done = true }
        if let orderID = request.orderID, message[39] == "4" {
            orders[orderID]?.cancelled = true
            // A cancel of an order already cancelled (a resend after a timeout) did what it asked.
            if request.kind == .cancel { return complete(key: clOrdID, expecting: .cancel) }
        }
        let error: BrokerError
        var outputs: [Output] = []
        if message[102] == "1", (message[39] ?? "8") == "8" {
            // Unknown order (CxlRejReason 1, OrdStatus rejected): the broker does not hold it.
            error = BrokerError(.unknownOrder, text.isEmpty ? "unknown order" : text)
            if let orderID = request.orderID, pending[orderID.rawValue]?.kind == .submit, orders[orderID]?.acknowledged == false {
                // A cancel sent beside an unanswered submit, on the same sequenced session after
                // it: the broker never took the submit. The order is over; a late answer to the
                // submit is a report for an ended order.
                orders[orderID]?.done = true
                orders[orderID]?.rejected = true
                orders[orderID]?.presumedNeverTaken = true
                outputs += fail(key: orderID.rawValue, BrokerError(.permanent, "the broker does not know order \(orderID): its NewOrderSingle was never taken"))
            }
        } else if message[102] == "0", let status = message[39], Self.workingOrdStatus.contains(status) {
            // "Too late" while the OrdStatus says the order still works (a venue refusing to
            // change an order it is executing, or to go below what filled): not ended, so not
            // "too late" to FillGuard (which would take the order as done). Asked again.
            error = BrokerError(.transient, text.isEmpty ? "too late to cancel, though the order still works (OrdStatus \(status))" : text)
        } else if message[102] == "0" || terminal {
            error = BrokerError(.tooLate, text.isEmpty ? "too late to cancel" : text)
        } else if message[102] == "3" || message[102] == "6" {
            // Already pending cancel or replace (3: another of our requests is there first, such as
            // a replace this cancel was sent beside), or a duplicate ClOrdID (6: a number of the
            // chain used before a restart): asked again later, under a new ClOrdID, it can take.
            error = BrokerError(.transient, text.isEmpty ? "cancel rejected (\(message[102] == "3" ? "already pending" : "duplicate ClOrdID"))" : text)
        } else {
            error = BrokerError(.permanent, text.isEmpty ? "cancel rejected (\(message[102] ?? "?"))" : text)
        }
        return fail(key: clOrdID, error) + outputs
    }

    /// Completes `key` successfully if it is pending (of the expected kind, when given).
    private mutating func complete(key: String, expecting kind: RequestKind?) -> [Output] {
        guard let request = pending[key], kind == nil || request.kind == kind else { return [] }
        pending[key] = nil
        return [.completed(key: key, error: nil)]
    }

    private mutating func fail(key: String, _ error: BrokerError) -> [Output] {
        guard pending.removeValue(forKey: key) != nil else { return [] }
        quotes[key] = nil
        positionReports[key] = nil
        return [.completed(key: key, error: error)]
    }

    /// The broker ended the order without being asked (or before it answered what was asked):
    /// requests in flight are too late, and the runtime hears how the order ended.
    private mutating func end(_ orderID: OrderID, _ outcome: OrderStatusReport.Outcome, reason: String) -> [Output] {
        let name: String
        switch outcome {
        case .cancelled: name = "canceled"
        case .expired: name = "expired"
        case .rejected: name = "rejected"
        }
        var outputs: [Output] = []
        if outcome != .rejected, pending[orderID.rawValue]?.kind == .submit {
            // Ended before its New came (an IOC that found nothing, say): it was accepted.
            orders[orderID]?.acknowledged = true
            outputs += complete(key: orderID.rawValue, expecting: .submit)
        }
        outputs += finish(orderID, reason: name)
        if let order = orders[orderID] {
            outputs.append(.event(.orderStatus(OrderStatusReport(orderID: orderID, symbol: order.symbol, outcome: outcome, reason: reason))))
        }
        return outputs
    }

    /// The order can trade no more: requests still in flight for it are too late.
    private mutating func finish(_ orderID: OrderID, reason: String) -> [Output] {
        orders[orderID]?.done = true
        var outputs: [Output] = []
        for key in pending.orderKeys(of: orderID) {
            outputs += fail(key: key, BrokerError(.tooLate, "order \(orderID) \(reason)"))
        }
        return outputs
    }

    private func inFlight(for orderID: OrderID) -> (String, Pending)? {
        pending.orderKeys(of: orderID).first.flatMap { key in pending[key].map { (key, $0) } }
    }

    /// The order a ClOrdID belongs to: only an id of the order's chain maps, one this router issued
    /// (or, for an order learnt from a status answer, one up to the learnt ClOrdID's number). An id
    /// that merely starts with an order's id ("O7~9" when O7 went no further than "O7~2") maps to nothing.
    private func resolve(_ clOrdID: String) -> OrderID? {
        if let known = byClOrdID[clOrdID] { return known }
        guard let root = Self.root(of: clOrdID), let order = orders[root] else { return nil }
        if clOrdID == root.rawValue { return root }
        guard let tilde = clOrdID.lastIndex(of: "~"), let number = Int(clOrdID[clOrdID.index(after: tilde)...]),
              String(number) == clOrdID[clOrdID.index(after: tilde)...], number >= 1, number <= order.requests else { return nil }
        return root
    }

    /// The number of a ClOrdID of ours after the first ("O7~2" -> 2), written as FIX writes an int.
    static func chainNumber(of clOrdID: String) -> Int? {
        guard let tilde = clOrdID.lastIndex(of: "~") else { return nil }
        let digits = clOrdID[clOrdID.index(after: tilde)...]
        guard let number = Int(digits), String(number) == digits, number >= 1 else { return nil }
        return number
    }

    /// True for a TimeInForce (59) code whose order trades on after a done for day: good till
    /// cancel (1) or till a date (6). Absent is Day.
    static func outlivesTheDay(_ timeInForce: String?) -> Bool { timeInForce == "1" || timeInForce == "6" }

    /// The FillGuard order id a ClOrdID of ours belongs to ("O7~2" -> "O7").
    static func root(of clOrdID: String) -> OrderID? {
        guard !clOrdID.isEmpty else { return nil }
        if let tilde = clOrdID.lastIndex(of: "~"), Int(clOrdID[clOrdID.index(after: tilde)...]) != nil {
            return OrderID(String(clOrdID[..<tilde]))
        }
        return OrderID(clOrdID)
    }

    // MARK: Codes

    /// FIX Side (54) code.
    public static func sideCode(_ side: Side) -> String { side == .buy ? "1" : "2" }
    /// Side from a FIX Side (54) code; nil for codes FillGuard does not use.
    public static func side(code: String) -> Side? { code == "1" ? .buy : code == "2" ? .sell : nil }
    /// FIX 4.4 Side codes FillGuard never sends (buy minus, sell plus, sell short and the rest):
    /// an order listed with one is another program's.
    static let foreignSideCodes: Set<String> = ["3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G"]
    /// TimeInForce from a FIX TimeInForce (59) code; nil for codes FillGuard does not use.
    public static func timeInForce(code: String) -> TimeInForce? {
        switch code {
        case "0": return .day
        case "1": return .goodTillCancel
        case "3": return .immediateOrCancel
        default: return nil
        }
    }
    /// FIX TimeInForce (59) code.
    public static func timeInForceCode(_ timeInForce: TimeInForce) -> String {
        switch timeInForce {
        case .day: return "0"
        case .goodTillCancel: return "1"
        case .immediateOrCancel: return "3"
        }
    }

    static func appendType(_ type: OrderType, to message: inout FIXMessage) {
        switch type {
        case .market:
            message.append(40, "1")
        case .limit(let price):
            message.append(40, "2")
            message.append(44, price.description)
        case .stop(let stop):
            message.append(40, "3")
            message.append(99, stop.description)
        case .stopLimit(let stop, let limit):
            message.append(40, "4")
            message.append(44, limit.description)
            message.append(99, stop.description)
        }
    }
}

extension FIXOrderRouter {
    /// The key a trade bust (H) or correction (G) sent under its fill's own ExecID is remembered
    /// by (a control character no ExecID holds keeps it apart from every ExecID).
    fileprivate static func bustKey(_ execID: String, _ execType: String) -> String { "\(execID)\u{1}\(execType)" }

    /// What to do with a report whose ExecID was taken already: nil when it is to be read as new.
    ///
    /// An exact repeat is a duplicate. A fill repeated with other numbers is the broker
    /// contradicting itself: the first report stands (it may have been applied) and the runtime
    /// records and alerts it. A fill under an ExecID that a report of another kind took (a New,
    /// say) repeats nothing: it is read as new, never dropped; nor is a trade bust or correction
    /// under a fill's ExecID. A repeat of a fill that lacks its numbers is a duplicate (the fill
    /// under that ExecID is in already).
    fileprivate func repeatOfATakenReport(_ message: FIXMessage, execID: String, execType: String,
                                          orderID: OrderID, symbol: String) -> [Output]? {
        guard seenExecIDs.contains(execID) else { return nil }
        // A trade bust or correction under the ExecID of the fill it names is not that fill's
        // repeat; a repeat of the bust is.
        if execType == "H" || execType == "G", seenExecIDs.fillContent(of: execID) != nil {
            return seenExecIDs.contains(Self.bustKey(execID, execType)) ? [.duplicate(ExecutionID(execID))] : nil
        }
        guard execType == "F" else { return [.duplicate(ExecutionID(execID))] }
        guard let first = seenExecIDs.fillContent(of: execID) else { return nil }
        guard let quantity = message[32].flatMap({ Quantity(Self.plainDecimal($0)) }),
              let price = message[31].flatMap({ Price(Self.plainDecimal($0)) }),
              quantity != first.lastQuantity || price != first.lastPrice else { return [.duplicate(ExecutionID(execID))] }
        return [.event(.correction(orderID, symbol: Symbol(symbol),
                                   message: "the broker reported fill ExecID \(execID) of order \(orderID) again as \(quantity) at \(price), "
                                       + "after \(first.lastQuantity) at \(first.lastPrice): FillGuard keeps the first report (an ExecID names one fill), "
                                       + "so the position may be off by the difference; a person must look"))]
    }
}

/// The ExecIDs of reports the router took, so a repeat (a resend after a gap, PossDup) is not
/// acted on twice: the newest `generationSize` at least, never more than twice that, so memory
/// stays flat in a session that runs for days (FIX promises ExecIDs unique within a trading day,
/// so an id may come back much later). A repeat older than that is taken again: a fill reaches
/// the runtime, which has its own duplicate check; an old end or replace is applied again (at
/// worst a later request names a stale ClOrdID, which the broker refuses).
struct RecentExecIDs: Sendable {
    /// What a fill said, so that a repeat saying something else is seen (nil for other reports).
    struct FillContent: Sendable, Hashable {
        var lastQuantity: Quantity
        var lastPrice: Price
    }

    /// Ids per generation.
    static let generationSize = 100_000
    private var current: [String: FillContent?] = [:]
    private var previous: [String: FillContent?] = [:]

    /// True if `id` was taken recently.
    func contains(_ id: String) -> Bool { current[id] != nil || previous[id] != nil }

    /// What the fill taken under `id` said; nil if `id` was not taken recently or was no fill.
    func fillContent(of id: String) -> FillContent? { (current[id] ?? previous[id]) ?? nil }

    /// Remembers `id` (with what its fill said); the older generation is forgotten when the newer one is full.
    mutating func insert(_ id: String, fill: FillContent? = nil) {
        if current.count >= Self.generationSize {
            previous = current
            current = [:]
        }
        current[id] = .some(fill)
    }

    /// Forgets `id` (a report that was not taken after all).
    mutating func remove(_ id: String) {
        current[id] = nil
        previous[id] = nil
    }

    /// The number of ids held.
    var count: Int { current.count + previous.count }
}
