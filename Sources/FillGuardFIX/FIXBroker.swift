import FillGuard
import FillGuardCore
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything a `FIXBroker` needs to know: where to connect, the session, the mapping, timing.
public struct FIXBrokerConfiguration: Sendable {
    /// The acceptor's host.
    public var host: String
    /// The acceptor's port.
    public var port: Int
    /// Session settings (CompIDs, heartbeat, ResetSeqNumFlag).
    public var session: FIXSessionConfiguration
    /// Order-mapping settings (account).
    public var application: FIXApplicationConfiguration
    /// Backoff between reconnection attempts.
    public var reconnect: FIXReconnectPolicy
    /// How long a request waits for its answer before failing as `.timedOut`, nanoseconds.
    public var requestTimeoutNanoseconds: Int64
    /// What the connection can do; FIX has a native modify.
    public var capabilities: BrokerCapabilities
    /// Execution reports kept per symbol for `executions(of:)` (the newest; older ones are dropped).
    public var executionsKeptPerSymbol: Int

    /// A configuration; the request timeout defaults to 10 s, 10,000 execution reports are kept per symbol.
    public init(host: String, port: Int, session: FIXSessionConfiguration, application: FIXApplicationConfiguration = FIXApplicationConfiguration(),
                reconnect: FIXReconnectPolicy = FIXReconnectPolicy(), requestTimeoutNanoseconds: Int64 = 10_000_000_000,
                capabilities: BrokerCapabilities = BrokerCapabilities(nativeModify: true), executionsKeptPerSymbol: Int = 10_000) {
        self.host = host
        self.port = port
        self.session = session
        self.application = application
        self.reconnect = reconnect
        self.requestTimeoutNanoseconds = requestTimeoutNanoseconds
        self.capabilities = capabilities
        self.executionsKeptPerSymbol = max(0, executionsKeptPerSymbol)
    }
}

/// Why a `FIXBroker` could not start or answer.
public enum FIXBrokerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The TCP connection failed.
    case connectionFailed(String)
    /// The session did not come up (logon rejected, timeout, protocol error).
    case sessionClosed(FIXSessionCloseReason)
    /// The broker was stopped.
    case stopped
    /// A wait ran out of time.
    case timedOut(String)

    /// A readable reason.
    public var description: String {
        switch self {
        case .connectionFailed(let text): return "connection failed: \(text)"
        case .sessionClosed(let reason): return "session closed: \(reason)"
        case .stopped: return "broker stopped"
        case .timedOut(let what): return "timed out waiting for \(what)"
        }
    }
}

/// Counters a `FIXBroker` keeps, for monitoring and tests.
public struct FIXBrokerStatistics: Sendable, Hashable {
    /// Successful Logons (the first one and every reconnection).
    public var logons = 0
    /// Connections that ended while logged on or logging on.
    public var disconnections = 0
    /// Execution reports dropped as repeats of an ExecID.
    public var duplicateReports = 0
    /// Fills delivered to the runtime.
    public var fillsDelivered = 0
    /// Events (fills and unsolicited order ends) put on the `events()` stream.
    public var eventsDelivered = 0
    /// Session Rejects (3) we sent for malformed messages.
    public var rejectsSent = 0
    /// Session Rejects (3) of our messages received from the counterparty.
    public var rejectsReceived = 0
    /// Requests that got no answer within the request timeout.
    public var requestTimeouts = 0
    /// Messages ignored (garbled, duplicates by sequence number, unknown orders).
    public var ignored = 0
    /// Execution reports refused before they changed anything (a malformed or out-of-range field,
    /// a ClOrdID never issued for the order it names), each passed to the runtime as refused.
    public var refusedReports = 0
    /// BusinessMessageRejects (j) we sent.
    public var businessRejectsSent = 0
    /// Why the session last closed, since the last Logon (nil while logged on, or never closed).
    public var lastCloseReason: FIXSessionCloseReason?
    /// The reconnect policy's attempts are used up: the session stays down until restarted, and
    /// requests fail `transient` (not `notSent`), so that their tries run out.
    public var reconnectsUsedUp = false
}

/// A `Broker` over FIX 4.4 (initiator) on SwiftNIO: the session and order-routing state machines
/// driven by one event loop, a session store for sequence numbers and resends, and reconnection
/// with backoff. Requests return when the broker acknowledges them (ExecType New, Replaced,
/// Canceled) and throw its refusals as `BrokerError`. Answers `BrokerQueries` for reconciliation
/// after a restart (mass status, order status, the session's execution reports, positions).
public final class FIXBroker: CallbackBroker, BrokerQueries {
    /// What the connection supports.
    public let capabilities: BrokerCapabilities
    private let core: FIXBrokerCore
    private let stream: AsyncStream<BrokerEvent>

    /// A broker that will connect on `start()`. `store` keeps sequence numbers across restarts.
    public init(configuration: FIXBrokerConfiguration, store: FIXSessionStore = InMemoryFIXSessionStore(),
                group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger = Logger(label: "fillguard.fix")) {
        let (stream, continuation) = AsyncStream.makeStream(of: BrokerEvent.self)
        self.stream = stream
        self.capabilities = configuration.capabilities
        self.core = FIXBrokerCore(configuration: configuration, store: store, loop: group.next(), continuation: continuation, logger: logger)
    }

    /// Connects and logs on; returns once logged on. After that the broker reconnects by itself.
    public func start() async throws(FIXBrokerError) {
        try await bridge(core.loop.flatSubmit { self.core.start() }) { $0 as? FIXBrokerError ?? .connectionFailed("\($0)") }
    }

    /// Logs out, closes the connection, stops reconnecting and ends `events()`.
    public func stop() async {
        _ = try? await core.loop.flatSubmit { self.core.stop() }.get()
    }

    /// Places a new order (NewOrderSingle); returns on ExecType New (or an immediate fill).
    public func submit(_ request: NewOrderRequest) async throws(BrokerError) {
        _ = try await self.request(core.loop.flatSubmit { self.core.submit(request) })
    }

    /// Changes the order's total quantity (OrderCancelReplaceRequest); returns on ExecType Replaced.
    public func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {
        _ = try await self.request(core.loop.flatSubmit { self.core.modify(request) })
    }

    /// Cancels the order's remainder (OrderCancelRequest); returns on ExecType Canceled.
    public func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {
        _ = try await self.request(core.loop.flatSubmit { self.core.cancel(request) })
    }

    /// Sends an order request and calls back with the broker's answer (the runtime's fast path:
    /// no task per request; the answer completes on the event loop).
    public func send(_ request: OrderOperation.Request, completion: @escaping @Sendable (Result<Void, BrokerError>) -> Void) {
        let future: EventLoopFuture<Void>
        switch request {
        case .submit(let request): future = core.loop.flatSubmit { self.core.submit(request) }.map { _ in }
        case .modify(let request): future = core.loop.flatSubmit { self.core.modify(request) }.map { _ in }
        case .cancel(let request): future = core.loop.flatSubmit { self.core.cancel(request) }.map { _ in }
        }
        future.whenComplete { result in
            completion(result.mapError { $0 as? BrokerError ?? BrokerError(.transient, "\($0)") })
        }
    }

    /// The broker's fills and unsolicited order ends, deduplicated by ExecID, in sequence order.
    public func events() -> AsyncStream<BrokerEvent> { stream }

    /// Asks the broker for one order's state (OrderStatusRequest).
    public func orderStatus(_ orderID: OrderID, symbol: Symbol? = nil, side: Side? = nil) async throws(BrokerError) -> FIXOrderStatus? {
        try await request(core.loop.flatSubmit { self.core.status(orderID, symbol: symbol, side: side) }).first
    }

    /// Asks the broker for every order's state (OrderMassStatusRequest), for reconciliation.
    public func massStatus() async throws(BrokerError) -> [FIXOrderStatus] {
        try await request(core.loop.flatSubmit { self.core.massStatus() })
    }

    /// Asks for the last-trade price of `symbols` (MarketDataRequest, snapshot); with `subscribe`
    /// the broker also starts sending updates (ignored here), which `unsubscribeMarketData` stops.
    public func marketData(_ symbols: [Symbol], subscribe: Bool = false) async throws(BrokerError) -> [Symbol: Price] {
        try await request(core.loop.flatSubmit { self.core.marketData(symbols, subscription: subscribe ? .subscribe : .snapshot) })
    }

    /// Ends the market-data subscription of `symbols` (MarketDataRequest 263=2); returns once sent.
    public func unsubscribeMarketData(_ symbols: [Symbol]) async throws(BrokerError) {
        _ = try await request(core.loop.flatSubmit { self.core.marketData(symbols, subscription: .unsubscribe) })
    }

    /// Every live order on the account (OrderMassStatusRequest, all orders; the terminal ones are
    /// left out). Orders the router did not know (after a restart) are learnt from the answer.
    public func openOrders() async throws(BrokerError) -> [BrokerOrderState] {
        try await request(core.loop.flatSubmit { self.core.openOrders() })
    }

    /// One order as the broker has it (OrderStatusRequest by its current ClOrdID); nil when the
    /// broker does not know it (ExecType I with OrdStatus 8 and OrdRejReason 5, or, for an order
    /// this session has not seen, absent from the mass status of all orders).
    public func orderState(_ id: OrderID, symbol: Symbol) async throws(BrokerError) -> BrokerOrderState? {
        try await request(core.loop.flatSubmit { self.core.orderState(id) }).first
    }

    /// The fills of `symbol` this broker has received, oldest first (the newest
    /// `executionsKeptPerSymbol`): those the session store kept from earlier runs, then those of
    /// this session since `start()`. Returned once the session is synchronised: logged on, and the
    /// resend of what the counterparty sent meanwhile complete. FIX 4.4 has no query for past
    /// executions; the reports missed while down come back through that resend, and those received
    /// but not journaled before a kill come from the store.
    public func executions(of symbol: Symbol) async throws(BrokerError) -> [ExecutionReport] {
        try await request(core.loop.flatSubmit { self.core.executions(of: symbol) })
    }

    /// Net position per symbol (RequestForPositions, answered by RequestForPositionsAck and one
    /// PositionReport per symbol) for the configured account, or the SenderCompID when none is set.
    public func positions() async throws(BrokerError) -> [Symbol: Quantity] {
        try await request(core.loop.flatSubmit { self.core.positions() })
    }

    /// Counters so far.
    public var statistics: FIXBrokerStatistics {
        get async { (try? await core.loop.submit { self.core.statistics }.get()) ?? FIXBrokerStatistics() }
    }

    /// Waits until the session has logged on `count` times in all (reconnections included).
    public func waitForLogons(_ count: Int, timeoutNanoseconds: Int64 = 30_000_000_000) async throws(FIXBrokerError) {
        try await bridge(core.loop.flatSubmit { self.core.waitForLogons(count, timeoutNanoseconds: timeoutNanoseconds) }) {
            $0 as? FIXBrokerError ?? .timedOut("logon")
        }
    }

    /// Waits until the counters satisfy `predicate` (checked after every change).
    public func waitUntil(timeoutNanoseconds: Int64 = 30_000_000_000,
                          _ predicate: @escaping @Sendable (FIXBrokerStatistics) -> Bool) async throws(FIXBrokerError) {
        try await bridge(core.loop.flatSubmit { self.core.waitUntil(predicate, timeoutNanoseconds: timeoutNanoseconds) }) {
            $0 as? FIXBrokerError ?? .timedOut("statistics")
        }
    }

    /// Drops the TCP connection without a Logout, as a network failure would (for tests and drills).
    public func dropConnection() async {
        _ = try? await core.loop.submit { self.core.dropConnection() }.get()
    }

    /// Stops as a killed process would: the connection drops without a Logout, nothing more is
    /// sent, no reconnection, `events()` ends. The store keeps what it had (for restart tests).
    func abort() async {
        _ = try? await core.loop.flatSubmit { self.core.abort() }.get()
    }

    /// Sends `message` as it is (header added), bypassing the order mapping: for tests that need
    /// the counterparty to refuse something. Returns its MsgSeqNum.
    func sendUnchecked(_ message: FIXMessage) async throws(BrokerError) -> Int {
        try await request(core.loop.flatSubmit { self.core.sendUnchecked(message) })
    }

    private func request<Value: Sendable>(_ future: EventLoopFuture<Value>) async throws(BrokerError) -> Value {
        try await bridge(future) { $0 as? BrokerError ?? BrokerError(.transient, "\($0)") }
    }

    private func bridge<Value: Sendable, Failure: Error>(_ future: EventLoopFuture<Value>, _ map: (any Error) -> Failure) async throws(Failure) -> Value {
        do {
            return try await future.get()
        } catch {
            throw map(error)
        }
    }
}

/// The broker's state, confined to one event loop: every method runs on `loop`.
final class FIXBrokerCore: @unchecked Sendable {
    let loop: EventLoop
    private let configuration: FIXBrokerConfiguration
    private let store: FIXSessionStore
    private let continuation: AsyncStream<BrokerEvent>.Continuation
    private let logger: Logger
    private var session: FIXSessionStateMachine
    private var router: FIXOrderRouter
    private var decoder = FIXFrameDecoder()
    /// Above 0 while a read's messages are taken in: `perform` then leaves the persist and the
    /// flush to the end of the read (`flushHeld`, `persistHeld`).
    private var holdingFlush = 0
    private var flushHeld = false
    private var persistHeld = false
    /// True while `perform` carries out a list; actions arising meanwhile wait in `deferredActions`.
    private var performing = false
    private var deferredActions: [FIXSessionAction] = []
    private var channel: Channel?
    private var generation = 0
    private var started = false
    private var stopped = false
    private var reconnectAttempt = 0
    private var timer: RepeatedTask?
    private var startPromise: EventLoopPromise<Void>?
    private var stopPromise: EventLoopPromise<Void>?
    private var waiters: [String: [EventLoopPromise<[FIXOrderStatus]>]] = [:]
    private var collected: [String: [FIXOrderStatus]] = [:]
    /// The first malformed status report of each status request, by key.
    private var malformedStatuses: [String: String] = [:]
    private var prices: [String: [Symbol: Price]] = [:]
    private var positionNets: [String: [Symbol: Quantity]] = [:]
    private var executionLog: [Symbol: ExecutionRing] = [:]
    /// The fills an earlier run's store kept, by symbol, order and execution id: a resend of one
    /// is not kept twice (a venue that reuses execution ids on other orders still has those kept).
    private let storedExecutionKeys: Set<StoredExecutionKey>
    private var synchronizedWaiters: [EventLoopPromise<Void>] = []
    private var logonWaiters: [(count: Int, promise: EventLoopPromise<Void>)] = []
    private var statisticWaiters: [(predicate: @Sendable (FIXBrokerStatistics) -> Bool, promise: EventLoopPromise<Void>)] = []
    private(set) var statistics = FIXBrokerStatistics()

    init(configuration: FIXBrokerConfiguration, store: FIXSessionStore, loop: EventLoop, continuation: AsyncStream<BrokerEvent>.Continuation,
         logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.loop = loop
        self.continuation = continuation
        self.logger = logger
        self.session = FIXSessionStateMachine(configuration: configuration.session, nextSenderSeqNum: store.nextSenderSeqNum,
                                              nextTargetSeqNum: store.nextTargetSeqNum)
        self.router = FIXOrderRouter(configuration: configuration.application)
        // The ClOrdIDs this session sent before (a restart): never issued again.
        if store.nextSenderSeqNum > 1 {
            for bytes in store.messages(in: 1...(store.nextSenderSeqNum - 1)).values {
                guard let message = try? FIXCodec.decode(bytes), ["D", "F", "G"].contains(message.msgType), let clOrdID = message[11] else { continue }
                router.noteIssued(clOrdID)
            }
        }
        let stored = store.storedExecutions
        self.storedExecutionKeys = Set(stored.map(StoredExecutionKey.init))
        if configuration.executionsKeptPerSymbol > 0 {
            for report in stored {
                executionLog[report.symbol, default: ExecutionRing(limit: configuration.executionsKeptPerSymbol)].append(report)
            }
        }
    }

    // MARK: Lifecycle

    func start() -> EventLoopFuture<Void> {
        guard !stopped else { return loop.makeFailedFuture(FIXBrokerError.stopped) }
        guard startPromise == nil, !started else { return loop.makeSucceededVoidFuture() }
        let promise = loop.makePromise(of: Void.self)
        startPromise = promise
        timer = loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [self] _ in
            self.perform(self.session.tick(now: Self.now()))
        }
        connect()
        return promise.futureResult
    }

    func stop() -> EventLoopFuture<Void> {
        guard !stopped else { return stopPromise?.futureResult ?? loop.makeSucceededVoidFuture() }
        stopped = true
        let promise = loop.makePromise(of: Void.self)
        stopPromise = promise
        startPromise?.fail(FIXBrokerError.stopped)
        startPromise = nil
        if session.state == .active, channel != nil {
            perform(session.logout(text: "stopping", now: Self.now()))
            // The answer (or the logout timeout in tick) closes the channel; cap the wait.
            loop.scheduleTask(in: .seconds(Int64(configuration.session.logonTimeout))) { [self] in self.channel?.close(promise: nil) }
        } else {
            channel?.close(promise: nil)
        }
        if channel == nil { finishStop() }
        return promise.futureResult
    }

    private func finishStop() {
        timer?.cancel()
        timer = nil
        for waiter in synchronizedWaiters { waiter.fail(BrokerError(.transient, "broker stopped")) }
        synchronizedWaiters = []
        // These requests went out: the broker may have applied them, so stopping is no answer.
        for (_, promises) in waiters {
            for promise in promises { promise.fail(BrokerError(.timedOut, "broker stopped before the answer came (the request may have taken effect)")) }
        }
        waiters = [:]
        lastReportAt = [:]
        for waiter in logonWaiters { waiter.promise.fail(FIXBrokerError.stopped) }
        logonWaiters = []
        for waiter in statisticWaiters { waiter.promise.fail(FIXBrokerError.stopped) }
        statisticWaiters = []
        continuation.finish()
        stopPromise?.succeed()
    }

    func dropConnection() {
        channel?.close(promise: nil)
    }

    func abort() -> EventLoopFuture<Void> {
        guard !stopped else { return stopPromise?.futureResult ?? loop.makeSucceededVoidFuture() }
        stopped = true
        let promise = loop.makePromise(of: Void.self)
        stopPromise = promise
        startPromise?.fail(FIXBrokerError.stopped)
        startPromise = nil
        if let channel {
            channel.close(promise: nil)  // closed(generation:) finishes the stop
        } else {
            finishStop()
        }
        return promise.futureResult
    }

    func waitForLogons(_ count: Int, timeoutNanoseconds: Int64) -> EventLoopFuture<Void> {
        if statistics.logons >= count { return loop.makeSucceededVoidFuture() }
        if stopped { return loop.makeFailedFuture(FIXBrokerError.stopped) }
        let promise = loop.makePromise(of: Void.self)
        logonWaiters.append((count, promise))
        loop.scheduleTask(in: .nanoseconds(timeoutNanoseconds)) {
            promise.fail(FIXBrokerError.timedOut("\(count) logons"))
        }
        return promise.futureResult
    }

    func waitUntil(_ predicate: @escaping @Sendable (FIXBrokerStatistics) -> Bool, timeoutNanoseconds: Int64) -> EventLoopFuture<Void> {
        if predicate(statistics) { return loop.makeSucceededVoidFuture() }
        let promise = loop.makePromise(of: Void.self)
        statisticWaiters.append((predicate, promise))
        loop.scheduleTask(in: .nanoseconds(timeoutNanoseconds)) {
            promise.fail(FIXBrokerError.timedOut("statistics: \(self.statistics)"))
        }
        return promise.futureResult
    }

    private func checkStatisticWaiters() {
        guard !statisticWaiters.isEmpty else { return }
        let current = statistics
        let reached = statisticWaiters.filter { $0.predicate(current) }
        statisticWaiters.removeAll { $0.predicate(current) }
        for waiter in reached { waiter.promise.succeed() }
    }

    private func connect() {
        guard !stopped else { return }
        generation += 1
        let current = generation
        decoder = FIXFrameDecoder()
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FIXChannelHandler(core: self, generation: current))
                }
            }
            .connect(host: configuration.host, port: configuration.port)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    guard current == self.generation, !self.stopped else {
                        channel.close(promise: nil)
                        return
                    }
                    self.channel = channel
                    if self.session.resetsOnNextLogon {
                        do { try self.store.reset() } catch { self.logger.error("FIX store reset failed: \(error)") }
                    }
                    self.perform(self.session.connected(now: Self.now()))
                case .failure(let error):
                    self.logger.info("FIX connect to \(self.configuration.host):\(self.configuration.port) failed: \(error)")
                    if let promise = self.startPromise {
                        self.startPromise = nil
                        self.stopped = true
                        promise.fail(FIXBrokerError.connectionFailed("\(error)"))
                        // Done for good: its waiters fail and events() ends (a loop over it would
                        // otherwise wait for ever).
                        self.finishStop()
                    } else {
                        self.scheduleReconnect()
                    }
                }
            }
    }

    private func scheduleReconnect() {
        guard !stopped else { return }
        reconnectAttempt += 1
        guard let delay = configuration.reconnect.delay(attempt: reconnectAttempt, jitter: UInt8.random(in: 0...255)) else {
            logger.error("FIX reconnect attempts used up")
            statistics.reconnectsUsedUp = true
            checkStatisticWaiters()
            return
        }
        loop.scheduleTask(in: .nanoseconds(delay)) { [self] in self.connect() }
    }

    // MARK: Channel events

    func received(_ bytes: [UInt8], generation: Int) {
        guard generation == self.generation else { return }
        decoder.append(bytes)
        // The messages of one read are taken in together: the store records the sequence numbers
        // once, and what they made us send is flushed once, after it (not once per message).
        holdingFlush += 1
        defer {
            holdingFlush -= 1
            if holdingFlush == 0 { releaseHeldFlush() }
        }
        while true {
            let frame: [UInt8]?
            do {
                frame = try decoder.next()
            } catch {
                statistics.ignored += 1
                logger.warning("FIX garbled input dropped: \(error)")
                continue
            }
            guard let frame else { break }
            if logger.logLevel <= .trace { logger.trace("FIX in: \(Self.printable(frame))") }
            perform(session.received(frame, now: Self.now()))
        }
    }

    func closed(generation: Int) {
        guard generation == self.generation else { return }
        let wasUp = session.state != .disconnected || channel != nil
        // A session that ends without saying why (no Logout, nothing we closed it for) was lost.
        if session.state == .active, statistics.lastCloseReason == nil { statistics.lastCloseReason = .connectionLost }
        channel = nil
        session.disconnected()
        persistSequenceNumbers()
        if wasUp { statistics.disconnections += 1 }
        checkStatisticWaiters()
        if stopped {
            finishStop()
            return
        }
        if let promise = startPromise {
            // The first logon failed: report why and do not keep trying (and end events()).
            startPromise = nil
            stopped = true
            promise.fail(FIXBrokerError.sessionClosed(statistics.lastCloseReason ?? .protocolViolation("connection closed before logon")))
            finishStop()
            return
        }
        scheduleReconnect()
    }

    // MARK: Requests

    func submit(_ request: NewOrderRequest) -> EventLoopFuture<[FIXOrderStatus]> {
        dispatch(router.submit(request, transactTime: Self.now()))
    }

    func modify(_ request: ModifyOrderRequest) -> EventLoopFuture<[FIXOrderStatus]> {
        guard session.state == .active else { return notLoggedOn() }
        return dispatch(router.modify(request, transactTime: Self.now()))
    }

    func cancel(_ request: CancelOrderRequest) -> EventLoopFuture<[FIXOrderStatus]> {
        guard session.state == .active else { return notLoggedOn() }
        return dispatch(router.cancel(request, transactTime: Self.now()))
    }

    func status(_ orderID: OrderID, symbol: Symbol?, side: Side?) -> EventLoopFuture<[FIXOrderStatus]> {
        guard session.state == .active else { return notLoggedOn() }
        return dispatch(router.statusRequest(orderID, symbol: symbol, side: side))
    }

    func massStatus() -> EventLoopFuture<[FIXOrderStatus]> {
        guard session.state == .active else { return notLoggedOn() }
        return dispatch(router.massStatusRequest())
    }

    // MARK: Reconciliation queries

    func openOrders() -> EventLoopFuture<[BrokerOrderState]> {
        massStatus().flatMapThrowing { statuses in
            try statuses.filter { !$0.isTerminal }.map { try $0.brokerOrderState(knownType: self.router.type(of: $0.orderID)) }
        }
    }

    /// The error for a request made while not logged on, with why the session last closed:
    /// `notSent` while the session may come back, `transient` once it will not (stopped, or its
    /// reconnect attempts used up), so that the work's tries run out instead of waiting for ever.
    private func notLoggedOnError() -> BrokerError {
        let givenUp = statistics.reconnectsUsedUp
        let kind: BrokerError.Kind = stopped || givenUp ? .transient : .notSent
        let state = stopped ? "FIX broker stopped" : givenUp ? "FIX session not logged on, and its reconnect attempts are used up" : "FIX session not logged on"
        guard let reason = statistics.lastCloseReason else { return BrokerError(kind, state + "; nothing sent") }
        var text = "\(state) (it last closed: \(reason)"
        if case .sequenceTooLow = reason {
            text += "; the counterparty's sequence numbers went back, as when it restarts without its store: reset both sides' sequence numbers (ResetOnLogon) if it lost them"
        }
        return BrokerError(kind, text + ")")
    }

    /// The order's state by OrderStatusRequest; none when the broker does not know it. An order this
    /// session has not seen is looked up by mass status first (which teaches the router its side
    /// and ClOrdID chain); one the mass status of all orders does not list is unknown to the broker.
    func orderState(_ orderID: OrderID) -> EventLoopFuture<[BrokerOrderState]> {
        guard session.state == .active else { return loop.makeFailedFuture(notLoggedOnError()) }
        if router.side(of: orderID) != nil { return askStatus(orderID, symbol: nil, side: nil) }
        return massStatus().flatMap { statuses in
            guard let listed = statuses.first(where: { $0.orderID == orderID }) else { return self.loop.makeSucceededFuture([]) }
            return self.askStatus(orderID, symbol: listed.symbol, side: listed.side)
        }
    }

    private func askStatus(_ orderID: OrderID, symbol: Symbol?, side: Side?) -> EventLoopFuture<[BrokerOrderState]> {
        status(orderID, symbol: symbol, side: side).flatMapThrowing { statuses in
            // Only the order asked about: an answer about another is no answer about this one.
            guard let answer = statuses.first else { return [] }
            guard answer.orderID == orderID else {
                throw BrokerError(.transient, "the status answer for \(orderID) is about order \(answer.orderID)")
            }
            return [try answer.brokerOrderState(knownType: self.router.type(of: orderID))]
        }
    }

    /// The fills of `symbol` the store kept from earlier runs and those received since `start()`
    /// (the newest `executionsKeptPerSymbol`), once the session is synchronised.
    func executions(of symbol: Symbol) -> EventLoopFuture<[ExecutionReport]> {
        synchronized().map { self.executionLog[symbol]?.ordered ?? [] }
    }

    func positions() -> EventLoopFuture<[Symbol: Quantity]> {
        guard session.state == .active else { return loop.makeFailedFuture(notLoggedOnError()) }
        let now = Self.now()
        let account = configuration.application.account ?? configuration.session.senderCompID
        let plan = router.positionsRequest(account: account, clearingBusinessDate: String(FIXTimestamp.format(epochNanoseconds: now).prefix(8)),
                                           transactTime: now)
        guard case .send(_, let key) = plan else { return dispatch(plan).map { _ in [:] } }
        // The reports' nets are parked under the key; the waiter's success reads them at once, on this loop.
        return dispatch(plan).map { _ in self.positionNets.removeValue(forKey: key) ?? [:] }
    }

    /// Succeeds once logged on with no ResendRequest of ours outstanding: everything the
    /// counterparty sent before its Logon (the reports missed while down) has been delivered.
    /// Fails when not logged on, or when the resend does not complete within the request timeout.
    func synchronized() -> EventLoopFuture<Void> {
        if stopped { return loop.makeFailedFuture(BrokerError(.transient, "broker stopped")) }
        guard session.state == .active else { return loop.makeFailedFuture(notLoggedOnError()) }
        if !session.isResending { return loop.makeSucceededVoidFuture() }
        let promise = loop.makePromise(of: Void.self)
        synchronizedWaiters.append(promise)
        let timeout = configuration.requestTimeoutNanoseconds
        loop.scheduleTask(in: .nanoseconds(timeout)) { [self] in
            guard let index = self.synchronizedWaiters.firstIndex(where: { $0.futureResult === promise.futureResult }) else { return }
            self.synchronizedWaiters.remove(at: index)
            promise.fail(BrokerError(.transient, "the counterparty's resend did not complete in \(timeout / 1_000_000) ms"))
        }
        return promise.futureResult
    }

    private func checkSynchronizedWaiters() {
        guard !synchronizedWaiters.isEmpty, session.state == .active, !session.isResending else { return }
        let ready = synchronizedWaiters
        synchronizedWaiters = []
        for waiter in ready { waiter.succeed() }
    }

    func marketData(_ symbols: [Symbol], subscription: FIXMarketDataSubscription) -> EventLoopFuture<[Symbol: Price]> {
        guard session.state == .active else { return loop.makeFailedFuture(notLoggedOnError()) }
        let plan = router.marketDataRequest(symbols, subscription: subscription)
        guard case .send(_, let key) = plan else { return dispatch(plan).map { _ in [:] } }
        // The answer's prices are parked under the key; the waiter's success reads them at once, on this loop.
        return dispatch(plan).map { _ in self.prices.removeValue(forKey: key) ?? [:] }
    }

    func sendUnchecked(_ message: FIXMessage) -> EventLoopFuture<Int> {
        do {
            let actions = try session.send(message, now: Self.now())
            perform(actions)
            for case .send(let seq, _, _) in actions { return loop.makeSucceededFuture(seq) }
            return loop.makeFailedFuture(BrokerError(.permanent, "nothing sent"))
        } catch {
            return loop.makeFailedFuture(BrokerError(.transient, error.description))
        }
    }

    private func notLoggedOn() -> EventLoopFuture<[FIXOrderStatus]> {
        loop.makeFailedFuture(notLoggedOnError())
    }

    private func dispatch(_ plan: FIXOrderRouter.Plan) -> EventLoopFuture<[FIXOrderStatus]> {
        switch plan {
        case .succeeded:
            return loop.makeSucceededFuture([])
        case .failed(let error):
            return loop.makeFailedFuture(error)
        case .wait(let key):
            return addWaiter(key)
        case .sendOnly(let message):
            guard session.state == .active else { return notLoggedOn() }
            do {
                perform(try session.send(message, now: Self.now()))
            } catch {
                switch error {
                case .notLoggedOn: return notLoggedOn()
                case .encoding(let failure): return loop.makeFailedFuture(BrokerError(.permanent, "cannot encode: \(failure)"))
                }
            }
            return loop.makeSucceededFuture([])
        case .send(let message, let key):
            guard session.state == .active else {
                router.abandon(key: key)
                return notLoggedOn()
            }
            let actions: [FIXSessionAction]
            do {
                actions = try session.send(message, now: Self.now())
            } catch {
                router.abandon(key: key)
                switch error {
                case .notLoggedOn: return notLoggedOn()
                case .encoding(let failure): return loop.makeFailedFuture(BrokerError(.permanent, "cannot encode: \(failure)"))
                }
            }
            for case .send(let seq, _, _) in actions { router.sent(key: key, seq: seq) }
            let future = addWaiter(key)
            perform(actions)
            return future
        }
    }

    private func addWaiter(_ key: String) -> EventLoopFuture<[FIXOrderStatus]> {
        let promise = loop.makePromise(of: [FIXOrderStatus].self)
        waiters[key, default: []].append(promise)
        armTimeout(key, promise, at: .now() + .nanoseconds(configuration.requestTimeoutNanoseconds), periods: 1)
        return promise.futureResult
    }

    /// How many request timeouts a mass status or positions answer may take in all while its
    /// reports keep coming.
    static let longAnswerPeriods = 60

    /// When each mass status or positions request in flight last received a report.
    private var lastReportAt: [String: NIODeadline] = [:]

    /// Notes the arrival of a report answering a mass status (584) or positions (710) request in
    /// flight: that request's time then runs from now.
    private func noteReport(_ message: FIXMessage) {
        let type = message.msgType
        guard type == FIXMsgType.executionReport || type == FIXMsgType.positionReport || type == FIXMsgType.requestForPositionsAck,
              let key = message[584] ?? message[710], waiters[key] != nil, router.reportsReceived(key: key) != nil else { return }
        lastReportAt[key] = .now()
    }

    /// Fails `promise` as timed out at `deadline`, unless its answer (a mass status or positions
    /// request) received a report within the request timeout before then: its time then runs
    /// from that report (a large account's mass status is not cut off while its reports still
    /// stream in), up to `longAnswerPeriods` timeouts in all.
    private func armTimeout(_ key: String, _ promise: EventLoopPromise<[FIXOrderStatus]>, at deadline: NIODeadline, periods: Int) {
        let timeout = configuration.requestTimeoutNanoseconds
        loop.scheduleTask(deadline: deadline) { [self] in
            guard var list = self.waiters[key], let index = list.firstIndex(where: { $0.futureResult === promise.futureResult }) else { return }
            let reports = self.router.reportsReceived(key: key) ?? 0
            var streaming = false
            if let last = self.lastReportAt[key], last + .nanoseconds(timeout) > .now() {
                if periods < Self.longAnswerPeriods {
                    self.armTimeout(key, promise, at: last + .nanoseconds(timeout), periods: periods + 1)
                    return
                }
                streaming = true
            }
            if !streaming, self.router.queryTimedOut(key: key) {
                // A mass status answer that never says which report is last: complete now.
                self.logger.notice("FIX mass status \(key): its reports carry neither LastRptRequested nor TotNumReports; taken whole after \(timeout / 1_000_000) ms without another")
                self.lastReportAt[key] = nil
                self.finishStatus(key)
                return
            }
            list.remove(at: index)
            self.waiters[key] = list.isEmpty ? nil : list
            if list.isEmpty {
                // What a query's answer had brought so far goes with it (its late reports are
                // ignored: the router forgot the query).
                if streaming { self.router.queryTimedOut(key: key) }
                self.collected[key] = nil
                self.malformedStatuses[key] = nil
                self.lastReportAt[key] = nil
            }
            self.statistics.requestTimeouts += 1
            let message: String
            if streaming {
                message = "the answer to \(key) was still coming after \(periods) request timeouts (\(reports) reports): given up, not taken as complete"
            } else if reports > 0 {
                message = "the answer to \(key) stopped after \(reports) reports: none more in \(timeout / 1_000_000) ms"
            } else {
                message = "no answer to \(key) in \(timeout / 1_000_000) ms"
            }
            self.logger.warning("FIX request: \(message)")
            // The request went out: the broker may have acted on it.
            promise.fail(BrokerError(.timedOut, message))
        }
    }

    private func resolve(_ key: String, _ result: Result<[FIXOrderStatus], BrokerError>) {
        lastReportAt[key] = nil
        guard let promises = waiters.removeValue(forKey: key) else { return }
        for promise in promises { promise.completeWith(result.mapError { $0 as any Error }) }
    }

    // MARK: Actions

    /// Carries out the session's actions in order. Actions that arise while a list is being
    /// carried out (a Reject answering a delivered report, a cancel of an orphan, a request the
    /// runtime makes on a delivered fill) wait until the list is done: their sequence numbers come
    /// after those already given out in it, so the wire stays in sequence order.
    private func perform(_ actions: [FIXSessionAction]) {
        guard !actions.isEmpty else { return }
        if performing {
            deferredActions += actions
            return
        }
        performing = true
        defer { performing = false }
        var batch = actions
        while true {
            performNow(batch)
            guard !deferredActions.isEmpty else { return }
            batch = deferredActions
            deferredActions = []
        }
    }

    private func performNow(_ actions: [FIXSessionAction]) {
        guard !actions.isEmpty else { return }
        var wrote = false
        for action in actions {
            switch action {
            case .send(let seq, let bytes, let shouldStore):
                if shouldStore {
                    do { try store.storeMessage(seq: seq, bytes: bytes) } catch { logger.error("FIX store: \(error)") }
                }
                if let decoded = try? FIXCodec.decode(bytes), decoded.msgType == FIXMsgType.reject { statistics.rejectsSent += 1 }
                if logger.logLevel <= .trace { logger.trace("FIX out: \(Self.printable(bytes))") }
                if let channel {
                    channel.write(ByteBuffer(bytes: bytes), promise: nil)
                    wrote = true
                }
            case .resend(let from, let through):
                let stored = from <= through ? store.messages(in: from...through) : [:]
                // At once, before what follows: the messages asked for keep their own numbers.
                performNow(session.resend(stored: stored, from: from, through: through, now: Self.now()))
            case .deliver(let message):
                if message.msgType == FIXMsgType.reject { statistics.rejectsReceived += 1 }
                noteReport(message)
                handle(router.received(message))
            case .refusedApplication(let msgType, let seq, let reason):
                // Answered with a Reject already; recorded as the runtime's refused input too, so a
                // report that never became a fill is counted and visible, not only logged.
                statistics.refusedReports += 1
                logger.warning("FIX refused message \(seq) (\(msgType)): \(reason)")
                statistics.eventsDelivered += 1
                continuation.yield(.refused(InputError(.malformed, "FIX message \(seq) (MsgType \(msgType)) refused by the session: \(reason)"),
                                            context: "FIX message \(seq)", symbol: Symbol("?")))
            case .loggedOn:
                statistics.logons += 1
                // Why an earlier session closed no longer explains anything.
                statistics.lastCloseReason = nil
                reconnectAttempt = 0
                statistics.reconnectsUsedUp = false
                if let promise = startPromise {
                    startPromise = nil
                    started = true
                    promise.succeed()
                }
                let reached = logonWaiters.filter { $0.count <= statistics.logons }
                logonWaiters.removeAll { $0.count <= statistics.logons }
                for waiter in reached { waiter.promise.succeed() }
            case .close(let reason):
                statistics.lastCloseReason = reason
                if case .sequenceTooLow = reason {
                    logger.error("FIX session closing: \(reason); the counterparty's sequence numbers went back (did it restart without its store?)")
                } else {
                    logger.info("FIX session closing: \(reason)")
                }
                // Answers that arose earlier in this list go out first, while there is a
                // connection to write them to (a Reject of a report, say, before the Logout's close).
                if !deferredActions.isEmpty {
                    let earlier = deferredActions
                    deferredActions = []
                    performNow(earlier)
                }
                if wrote { flushAfterPersisting() }
                wrote = false
                channel?.close(promise: nil)
            case .ignored(let reason):
                statistics.ignored += 1
                logger.debug("FIX ignored: \(reason)")
            }
        }
        if holdingFlush > 0 {
            flushHeld = flushHeld || wrote
            persistHeld = true
        } else if wrote {
            flushAfterPersisting()
        } else {
            persistSequenceNumbers()
        }
        checkStatisticWaiters()
        checkSynchronizedWaiters()
    }

    private func handle(_ outputs: [FIXOrderRouter.Output]) {
        for output in outputs {
            switch output {
            case .completed(let key, let error):
                resolve(key, error.map { .failure($0) } ?? .success([]))
            case .event(let event):
                if case .execution(let report) = event {
                    statistics.fillsDelivered += 1
                    // Kept in the store before this message's sequence number is (at the end of
                    // `perform`): a kill before the journal holds the fill leaves it for recovery.
                    if !storedExecutionKeys.contains(StoredExecutionKey(report)) {
                        do {
                            try store.storeExecution(report)
                        } catch {
                            logger.critical("FIX store: fill \(report.executionID) not kept (\(error)); a kill before the journal holds it loses it")
                        }
                        if configuration.executionsKeptPerSymbol > 0 {
                            executionLog[report.symbol, default: ExecutionRing(limit: configuration.executionsKeptPerSymbol)].append(report)
                        }
                    }
                }
                statistics.eventsDelivered += 1
                continuation.yield(event)
            case .prices(let key, let quotes):
                if waiters[key] != nil { prices[key] = quotes }
                resolve(key, .success([]))
            case .positions(let key, let nets):
                if waiters[key] != nil { positionNets[key] = nets }
                resolve(key, .success([]))
            case .status(let key, let status, let last):
                if let status { collected[key, default: []].append(status) }
                if last { finishStatus(key) }
            case .malformedStatus(let key, let reason, let last):
                logger.warning("FIX: \(reason)")
                if malformedStatuses[key] == nil { malformedStatuses[key] = reason }
                if last { finishStatus(key) }
            case .duplicate(let execID):
                statistics.duplicateReports += 1
                logger.debug("FIX duplicate execution report \(execID) dropped")
            case .ignored(let reason):
                statistics.ignored += 1
                logger.debug("FIX: \(reason)")
            case .cancelOrphan(let request):
                logger.warning("FIX: order \(request.orderID), taken as never placed, is live at the broker after all; cancelling it")
                dispatch(router.cancel(request, transactTime: Self.now())).whenFailure { [logger] error in
                    logger.error("FIX: the cancel of order \(request.orderID), live at the broker though given up, failed: \(error); a person must look")
                }
            case .refused(let error, let context, let symbol, let answer):
                statistics.refusedReports += 1
                logger.warning("FIX refused \(context): \(error)")
                if let answer { sendRefusalAnswer(answer) }
                statistics.eventsDelivered += 1
                continuation.yield(.refused(error, context: "FIX \(context)", symbol: symbol))
            }
        }
    }

    /// Sends the Reject (3) or BusinessMessageReject (j) answering a refused report.
    private func sendRefusalAnswer(_ answer: FIXRefusalAnswer) {
        let now = Self.now()
        switch answer {
        case .sessionReject(let refSeqNum, let refMsgType, let refTagID, let reason, let text):
            perform(session.rejectDelivered(refSeqNum: refSeqNum, refMsgType: refMsgType, refTagID: refTagID, reason: reason, text: text, now: now))
        case .businessReject:
            do {
                let actions = try session.send(answer.message, now: now)
                statistics.businessRejectsSent += 1
                perform(actions)
            } catch {
                logger.warning("FIX: cannot send a business reject: \(error)")
            }
        }
    }

    /// Completes a status request once its last report came: with the statuses, or failed
    /// (permanent) with the first malformed report's reason.
    private func finishStatus(_ key: String) {
        let statuses = collected.removeValue(forKey: key) ?? []
        if let reason = malformedStatuses.removeValue(forKey: key) {
            resolve(key, .failure(BrokerError(.permanent, reason)))
        } else {
            resolve(key, .success(statuses))
        }
    }

    /// The persist and flush a read held back while it took its messages in.
    private func releaseHeldFlush() {
        let flush = flushHeld
        let persist = persistHeld
        flushHeld = false
        persistHeld = false
        if flush {
            flushAfterPersisting()
        } else if persist {
            persistSequenceNumbers()
        }
    }

    /// Sends what was written, once the store has the sequence numbers it used: a kill can then
    /// leave the store ahead of what the counterparty got (a gap it fills), never behind (our next
    /// Logon refused as MsgSeqNum too low).
    private func flushAfterPersisting() {
        persistSequenceNumbers()
        channel?.flush()
    }

    private func persistSequenceNumbers() {
        do {
            try store.setSequenceNumbers(sender: session.nextSenderSeqNum, target: session.nextTargetSeqNum)
        } catch {
            logger.error("FIX store: \(error)")
        }
    }

    /// A frame with SOH shown as "|", for logs.
    static func printable(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.map { $0 == 1 ? UInt8(ascii: "|") : $0 }, as: UTF8.self)
    }

    /// Wall-clock time, nanoseconds since the epoch (SendingTime and timers).
    static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// The newest execution reports of one symbol, at most `limit`, in the order received.
struct ExecutionRing {
    private var items: [ExecutionReport] = []
    private var head = 0
    let limit: Int

    init(limit: Int) { self.limit = max(1, limit) }

    mutating func append(_ report: ExecutionReport) {
        if items.count < limit {
            items.append(report)
        } else {
            items[head] = report
            head = (head + 1) % limit
        }
    }

    /// Oldest first.
    var ordered: [ExecutionReport] { head == 0 ? items : Array(items[head...]) + Array(items[..<head]) }
}

/// What identifies a fill among those a session store kept.
struct StoredExecutionKey: Hashable {
    let symbol: Symbol
    let orderID: OrderID
    let executionID: ExecutionID

    init(_ report: ExecutionReport) {
        symbol = report.symbol
        orderID = report.orderID
        executionID = report.executionID
    }
}

/// Feeds a connection's bytes and its end to the broker core.
final class FIXChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let core: FIXBrokerCore
    private let generation: Int

    init(core: FIXBrokerCore, generation: Int) {
        self.core = core
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if let bytes = buffer.readBytes(length: buffer.readableBytes) { core.received(bytes, generation: generation) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        core.closed(generation: generation)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
