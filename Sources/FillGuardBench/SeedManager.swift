import DequeModule
import FillGuard
import FillGuardCore
import Synchronization

/// A FIFO async mutex (like Python's `asyncio.Lock`): held across suspension points.
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters = Deque<CheckedContinuation<Void, Never>>()
    }
    private let state = Mutex(State())

    func lock() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state -> Bool in
                if !state.locked {
                    state.locked = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    func unlock() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let next = state.waiters.popFirst() { return next }
            state.locked = false
            return nil
        }
        next?.resume()
    }
}

/// The `seed` strategy: a small reproduction of the Python original ("UnifiedFillManager"), for
/// comparison in benchmarks only. It does what the design brief lists as the original's
/// behaviour: one fire-and-forget handler task per fill serialised by a per-symbol async lock;
/// every fill re-reads every order of the bracket and the position from the broker; each
/// protective order is replaced by cancel, sleep 100 ms, create; operations queue per symbol
/// FIFO with the size and order id of the moment they were queued (no coalescing); a failed
/// call is retried after a fixed 0.5 s, three tries, then swallowed; one never-ending queue
/// task per symbol. Quantities stay exact (`Quantity`), unlike the original's floats.
public final class SeedManager: Sendable {
    /// The broker the seed talks to, and the read it makes for each order and for the position.
    public struct Connection: Sendable {
        /// Order operations.
        public var broker: any Broker
        /// One query round trip to the broker (an order's or the position's state).
        public var read: @Sendable (OrderID?, Symbol) async -> Void

        /// A connection.
        public init(broker: any Broker, read: @escaping @Sendable (OrderID?, Symbol) async -> Void) {
            self.broker = broker
            self.read = read
        }
    }

    /// The original's pause between the cancel and the create of a replacement.
    public static let replaceSleep: Duration = .milliseconds(100)
    /// The original's fixed retry delay.
    public static let retryDelay: Duration = .milliseconds(500)
    /// The original's tries per call.
    public static let attempts = 3

    /// The ids of one bracket's entry and scale-in.
    public struct BracketIDs: Sendable {
        /// The entry order.
        public var entry: OrderID
        /// The first scale-in order (if the bracket has one).
        public var scaleIn: OrderID?
    }

    enum Role: Sendable { case stop, target }

    enum Operation: Sendable {
        case replace(Role, old: OrderID?, size: Quantity)
        case cancel(OrderID)
    }

    struct Book: Sendable {
        var position: PositionID
        var side: Side
        var stopPrice: Price?
        var targetPrice: Price?
        var orders: [OrderID]
        var stop: OrderID?
        var target: OrderID?
        var net = Quantity.zero
        var next = 1
    }

    final class Lane: Sendable {
        let symbol: Symbol
        let lock = AsyncLock()
        let book: Mutex<Book>
        let queue: AsyncStream<Operation>.Continuation
        let stream: AsyncStream<Operation>
        let worker = Mutex<Task<Void, Never>?>(nil)

        init(symbol: Symbol, book: Book) {
            self.symbol = symbol
            self.book = Mutex(book)
            (stream, queue) = AsyncStream.makeStream()
        }
    }

    private let connection: Connection
    private let lanes = Mutex<[Symbol: Lane]>([:])
    private let reads = Atomic<Int>(0)
    private let submits = Atomic<Int>(0)
    private let cancels = Atomic<Int>(0)
    private let handledFills = Atomic<Int>(0)
    private let queuedOperations = Atomic<Int>(0)
    private let queuedCalls = Atomic<Int>(0)
    private let runningOperations = Atomic<Int>(0)
    private let swallowed = Atomic<Int>(0)

    /// A seed manager on a connection.
    public init(connection: Connection) {
        self.connection = connection
    }

    /// Broker calls made so far (reads, submits, cancels; every try counts).
    public var callsMade: Int { reads.load(ordering: .relaxed) + submits.load(ordering: .relaxed) + cancels.load(ordering: .relaxed) }
    /// Broker calls that queued operations will still make (cancel and create of each replacement).
    public var callsQueued: Int { queuedCalls.load(ordering: .relaxed) }
    /// Reads made so far.
    public var readsMade: Int { reads.load(ordering: .relaxed) }
    /// Fill handlers that have finished.
    public var fillsHandled: Int { handledFills.load(ordering: .relaxed) }
    /// Operations queued and not started, plus those running.
    public var operationsPending: Int { queuedOperations.load(ordering: .relaxed) + runningOperations.load(ordering: .relaxed) }
    /// Calls that failed three times and were swallowed.
    public var failuresSwallowed: Int { swallowed.load(ordering: .relaxed) }

    /// Opens a bracket: submits the entry and the scale-ins (one call each) and starts the
    /// symbol's never-ending queue task.
    public func open(_ spec: BracketSpec) async -> BracketIDs {
        let entry = OrderID("\(spec.positionID)-en")
        let scaleIns = spec.scaleIns.indices.map { OrderID("\(spec.positionID)-si\($0)") }
        let lane = Lane(symbol: spec.symbol, book: Book(position: spec.positionID, side: spec.side, stopPrice: spec.stopLoss,
                                                        targetPrice: spec.takeProfit, orders: [entry] + scaleIns))
        lanes.withLock { $0[spec.symbol] = lane }
        lane.worker.withLock { worker in
            worker = Task { [self] in
                for await operation in lane.stream {
                    if Task.isCancelled { break }
                    queuedOperations.subtract(1, ordering: .relaxed)
                    runningOperations.add(1, ordering: .relaxed)
                    await execute(operation, on: lane)
                    runningOperations.subtract(1, ordering: .relaxed)
                }
            }
        }
        _ = await retrying(.submit) {
            try await self.connection.broker.submit(NewOrderRequest(orderID: entry, symbol: spec.symbol, side: spec.side, type: spec.entryType,
                                                                  quantity: spec.quantity, timeInForce: spec.timeInForce))
        }
        for (index, scaleIn) in spec.scaleIns.enumerated() {
            _ = await retrying(.submit) {
                try await self.connection.broker.submit(NewOrderRequest(orderID: scaleIns[index], symbol: spec.symbol, side: spec.side,
                                                                      type: scaleIn.type, quantity: scaleIn.quantity, timeInForce: spec.timeInForce))
            }
        }
        return BracketIDs(entry: entry, scaleIn: scaleIns.first)
    }

    /// The live stop (`true`) or target (`false`) order id of a symbol, as the seed knows it.
    public func protectiveOrder(of symbol: Symbol, stop: Bool) -> OrderID? {
        guard let lane = lanes.withLock({ $0[symbol] }) else { return nil }
        return lane.book.withLock { stop ? $0.stop : $0.target }
    }

    /// Takes one broker report: like the original, a fire-and-forget task per report.
    public func receive(_ event: BrokerEvent) {
        guard case .execution(let report) = event else { return }
        Task { await self.handle(report) }
    }

    /// Consumes the broker's event stream until it ends or the task is cancelled.
    public func run() async {
        for await event in connection.broker.events() { receive(event) }
    }

    /// Stops every queue task; queued operations are left unexecuted (see `callsQueued`).
    public func shutdown() {
        let all = lanes.withLock { Array($0.values) }
        for lane in all {
            lane.queue.finish()
            lane.worker.withLock { $0?.cancel() }
        }
    }

    private func handle(_ report: ExecutionReport) async {
        defer { handledFills.add(1, ordering: .relaxed) }
        guard let lane = lanes.withLock({ $0[report.symbol] }) else { return }
        await lane.lock.lock()
        // No de-duplication by execution id.
        let (orders, size, stop, target) = lane.book.withLock { book -> ([OrderID], Quantity, OrderID?, OrderID?) in
            book.net += report.side == .buy ? report.lastQuantity : -report.lastQuantity
            return (book.orders + [book.stop, book.target].compactMap { $0 }, book.net.magnitude, book.stop, book.target)
        }
        // Every fill re-reads every order of the bracket, then the position.
        for id in orders {
            reads.add(1, ordering: .relaxed)
            await connection.read(id, report.symbol)
        }
        reads.add(1, ordering: .relaxed)
        await connection.read(nil, report.symbol)
        if size.isZero {
            for id in [stop, target].compactMap({ $0 }) { enqueue(.cancel(id), calls: 1, on: lane) }
        } else {
            enqueue(.replace(.stop, old: stop, size: size), calls: stop == nil ? 1 : 2, on: lane)
            enqueue(.replace(.target, old: target, size: size), calls: target == nil ? 1 : 2, on: lane)
        }
        lane.lock.unlock()
    }

    private func enqueue(_ operation: Operation, calls: Int, on lane: Lane) {
        queuedOperations.add(1, ordering: .relaxed)
        queuedCalls.add(calls, ordering: .relaxed)
        lane.queue.yield(operation)
    }

    private func execute(_ operation: Operation, on lane: Lane) async {
        let broker = connection.broker
        let symbol = lane.symbol
        switch operation {
        case .cancel(let id):
            queuedCalls.subtract(1, ordering: .relaxed)
            _ = await retrying(.cancel) { try await broker.cancel(CancelOrderRequest(orderID: id, symbol: symbol)) }
        case .replace(let role, let old, let size):
            if let old {
                queuedCalls.subtract(1, ordering: .relaxed)
                _ = await retrying(.cancel) { try await broker.cancel(CancelOrderRequest(orderID: old, symbol: symbol)) }
                try? await Task.sleep(for: Self.replaceSleep)
            }
            queuedCalls.subtract(1, ordering: .relaxed)
            let (id, side, price) = lane.book.withLock { book -> (OrderID, Side, Price?) in
                book.next += 1
                return (OrderID("\(book.position)-\(role == .stop ? "sl" : "tp")\(book.next)"), book.side.opposite,
                        role == .stop ? book.stopPrice : book.targetPrice)
            }
            guard let price else { return }
            let type: OrderType = role == .stop ? .stop(price) : .limit(price)
            let placed = await retrying(.submit) {
                try await broker.submit(NewOrderRequest(orderID: id, symbol: symbol, side: side, type: type, quantity: size,
                                                        timeInForce: .goodTillCancel))
            }
            if placed {
                lane.book.withLock { book in
                    if role == .stop { book.stop = id } else { book.target = id }
                }
            }
        }
    }

    /// Three tries with a fixed 0.5 s pause; a final failure is swallowed (the original logged it).
    private func retrying(_ kind: OrderOperation.Kind, _ call: () async throws -> Void) async -> Bool {
        for attempt in 1...Self.attempts {
            if kind == .cancel { cancels.add(1, ordering: .relaxed) } else { submits.add(1, ordering: .relaxed) }
            do {
                try await call()
                return true
            } catch {
                if attempt < Self.attempts { try? await Task.sleep(for: Self.retryDelay) }
            }
        }
        swallowed.add(1, ordering: .relaxed)
        return false
    }
}
