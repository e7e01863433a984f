import Dispatch
import FillGuard
import FillGuardCore
import Synchronization
import Testing

/// A broker for runtime tests: records every request, can hold requests until released
/// (a "slow" broker without sleeping), and fails requests by a script.
final class TestBroker: Broker, Sendable {
    struct Request: Sendable, Hashable {
        var kind: OrderOperation.Kind
        var orderID: OrderID
        var quantity: Quantity?
    }
    private struct Inner {
        var requests: [Request] = []
        var holding = false
        var held: [CheckedContinuation<Void, Never>] = []
        var heldWaiters: [(Int, CheckedContinuation<Void, Never>)] = []
        var failures: [(kind: OrderOperation.Kind?, error: BrokerError)] = []
    }
    private let inner = Mutex(Inner())
    let capabilities: BrokerCapabilities
    private let stream: AsyncStream<BrokerEvent>
    private let continuation: AsyncStream<BrokerEvent>.Continuation

    init(capabilities: BrokerCapabilities = BrokerCapabilities()) {
        self.capabilities = capabilities
        (stream, continuation) = AsyncStream.makeStream()
    }

    /// Holds every request from now on until `releaseAll()`.
    func hold() { inner.withLock { $0.holding = true } }

    /// Lets every held request (and later ones) through.
    func releaseAll() {
        let held = inner.withLock { inner -> [CheckedContinuation<Void, Never>] in
            inner.holding = false
            defer { inner.held = [] }
            return inner.held
        }
        for continuation in held { continuation.resume() }
    }

    /// Lets the oldest held request through; later ones are still held.
    func releaseFirst() {
        let first = inner.withLock { inner -> CheckedContinuation<Void, Never>? in
            inner.held.isEmpty ? nil : inner.held.removeFirst()
        }
        first?.resume()
    }

    /// Waits until at least `count` requests are being held.
    func waitForHeld(_ count: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = inner.withLock { inner -> Bool in
                if inner.held.count >= count { return true }
                inner.heldWaiters.append((count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// The next requests (of `kind`, or any) fail with `error`, once per entry.
    func fail(_ times: Int, _ kind: OrderOperation.Kind?, with error: BrokerError) {
        inner.withLock { inner in
            for _ in 0..<times { inner.failures.append((kind, error)) }
        }
    }

    var requests: [Request] { inner.withLock { $0.requests } }

    func count(_ kind: OrderOperation.Kind) -> Int { requests.filter { $0.kind == kind }.count }

    func submit(_ request: NewOrderRequest) async throws(BrokerError) {
        try await handle(Request(kind: .submit, orderID: request.orderID, quantity: request.quantity))
    }

    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {
        try await handle(Request(kind: .modify, orderID: request.orderID, quantity: request.newQuantity))
    }

    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {
        try await handle(Request(kind: .cancel, orderID: request.orderID, quantity: nil))
    }

    func events() -> AsyncStream<BrokerEvent> { stream }

    /// Sends a report on the event stream.
    func emit(_ event: BrokerEvent) { continuation.yield(event) }

    private func handle(_ request: Request) async throws(BrokerError) {
        let failure = inner.withLock { inner -> BrokerError? in
            inner.requests.append(request)
            if let index = inner.failures.firstIndex(where: { $0.kind == nil || $0.kind == request.kind }) {
                return inner.failures.remove(at: index).error
            }
            return nil
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let (holdIt, waiters) = inner.withLock { inner -> (Bool, [CheckedContinuation<Void, Never>]) in
                guard inner.holding else { return (false, []) }
                inner.held.append(continuation)
                let count = inner.held.count
                let ready = inner.heldWaiters.filter { $0.0 <= count }.map(\.1)
                inner.heldWaiters.removeAll { $0.0 <= count }
                return (true, ready)
            }
            for waiter in waiters { waiter.resume() }
            if !holdIt { continuation.resume() }
        }
        if let failure { throw failure }
    }
}

/// Builds fills for tests.
struct FillMaker {
    private var next = 0

    mutating func fill(_ order: OrderSnapshot, _ quantity: Quantity, at price: String) -> BrokerEvent {
        next += 1
        return .execution(ExecutionReport(executionID: ExecutionID("X\(next)"), orderID: order.id, symbol: order.symbol,
                                          side: order.side, lastQuantity: quantity, lastPrice: Price(price)!))
    }
}

extension BracketSpec {
    /// A long bracket: buy `quantity` at market, stop 95, target 110, one scale-in limit at 98.
    static func long(_ id: PositionID, _ symbol: Symbol, _ quantity: Quantity = 100) -> BracketSpec {
        BracketSpec(positionID: id, symbol: symbol, side: .buy, quantity: quantity, entryType: .market,
                    stopLoss: Price("95"), takeProfit: Price("110"),
                    scaleIns: [ScaleIn(quantity: quantity, type: .limit(Price("98")!))])
    }
}

/// A broker that answers through callbacks (`CallbackBroker`): at once, on the caller's thread
/// (`inline`), or later from another task; it fails requests by a script and records them.
final class CallbackTestBroker: CallbackBroker, Sendable {
    enum Answer: Sendable, CaseIterable { case inline, later }
    private struct Inner {
        var requests: [OrderOperation.Kind] = []
        var failures: [(kind: OrderOperation.Kind, error: BrokerError)] = []
        var asyncCalls = 0
        var unanswered = 0
        var withheld: [@Sendable (Result<Void, BrokerError>) -> Void] = []
    }
    let answer: Answer
    /// A second answer this broker gives after the first, breaking the protocol's "exactly once".
    let repeatAnswer: Result<Void, BrokerError>?
    let capabilities = BrokerCapabilities()
    private let inner = Mutex(Inner())

    /// A broker answering as `answer` says; the first `unanswered` requests get no answer until
    /// `answerWithheld` (a broker whose call hangs).
    init(answer: Answer, repeatAnswer: Result<Void, BrokerError>? = nil, unanswered: Int = 0) {
        self.answer = answer
        self.repeatAnswer = repeatAnswer
        inner.withLock { $0.unanswered = unanswered }
    }

    /// Answers, with success, the requests held back so far.
    func answerWithheld() {
        let completions = inner.withLock { inner in
            defer { inner.withheld = [] }
            return inner.withheld
        }
        for completion in completions { completion(.success(())) }
    }

    /// The next `times` requests of `kind` fail with `error`.
    func fail(_ times: Int, _ kind: OrderOperation.Kind, with error: BrokerError) {
        inner.withLock { inner in for _ in 0..<times { inner.failures.append((kind, error)) } }
    }

    /// The next `count` requests get no answer until `answerWithheld`.
    func withholdNext(_ count: Int) {
        inner.withLock { $0.unanswered = count }
    }

    func count(_ kind: OrderOperation.Kind) -> Int { inner.withLock { $0.requests.filter { $0 == kind }.count } }

    /// Calls that came through the async methods instead of `send` (the runtime should make none).
    var asyncCalls: Int { inner.withLock { $0.asyncCalls } }

    func send(_ request: OrderOperation.Request, completion: @escaping @Sendable (Result<Void, BrokerError>) -> Void) {
        let kind: OrderOperation.Kind
        switch request {
        case .submit: kind = .submit
        case .modify: kind = .modify
        case .cancel: kind = .cancel
        }
        let withhold = inner.withLock { inner -> Bool in
            inner.requests.append(kind)
            guard inner.unanswered > 0 else { return false }
            inner.unanswered -= 1
            inner.withheld.append(completion)
            return true
        }
        if withhold { return }
        let failure = inner.withLock { inner -> BrokerError? in
            guard let index = inner.failures.firstIndex(where: { $0.kind == kind }) else { return nil }
            return inner.failures.remove(at: index).error
        }
        let result: Result<Void, BrokerError> = failure.map { .failure($0) } ?? .success(())
        let repeated = repeatAnswer
        switch answer {
        case .inline:
            completion(result)
            if let repeated { completion(repeated) }
        case .later:
            Task.detached {
                completion(result)
                if let repeated { completion(repeated) }
            }
        }
    }

    func submit(_ request: NewOrderRequest) async throws(BrokerError) { inner.withLock { $0.asyncCalls += 1 } }
    func modify(_ request: ModifyOrderRequest) async throws(BrokerError) { inner.withLock { $0.asyncCalls += 1 } }
    func cancel(_ request: CancelOrderRequest) async throws(BrokerError) { inner.withLock { $0.asyncCalls += 1 } }
    func events() -> AsyncStream<BrokerEvent> { AsyncStream { $0.finish() } }
}

/// Several producers at once, each sending one share to every order per round (`prefix` keeps
/// the execution ids apart between callers), yielding between bursts so runners go idle and restart.
func sendConcurrently(to manager: FillManager, orders: [OrderSnapshot], producers: Int, rounds: Int, prefix: String) async {
    await withTaskGroup(of: Void.self) { group in
        for producer in 0..<producers {
            group.addTask {
                for round in 0..<rounds {
                    for order in orders {
                        manager.receive(.execution(ExecutionReport(executionID: ExecutionID("\(prefix)\(producer)-\(round)-\(order.id)"), orderID: order.id,
                                                                   symbol: order.symbol, side: order.side, lastQuantity: 1, lastPrice: Price("98")!)))
                    }
                    if round % 5 == 4 { await Task.yield() }
                }
            }
        }
    }
}

/// Expects positions P0 ... P(count - 1) each at `net`, with the stop (and the target, where the
/// bracket has one) covering exactly that, and no rule broken across the manager.
func expectCovered(_ manager: FillManager, positions count: Int, net: Quantity, withTarget: Bool = true,
                   sourceLocation: SourceLocation = #_sourceLocation) async throws {
    for index in 0..<count {
        let position = try #require(await manager.position(PositionID("P\(index)")), sourceLocation: sourceLocation)
        #expect(position.netQuantity == net, sourceLocation: sourceLocation)
        #expect(position.liveOrder(.stopLoss)?.openQuantity == net, sourceLocation: sourceLocation)
        if withTarget { #expect(position.liveOrder(.takeProfit)?.openQuantity == net, sourceLocation: sourceLocation) }
    }
    #expect(await manager.invariantViolations().isEmpty, sourceLocation: sourceLocation)
}

/// Expects lanes AAA and BBB to be inside their processing at the same moment. Each lane's
/// reaction hook waits for the other (a 20 s timeout is the failure guard), so both get in only if
/// two threads run them at once. `configure` adds to the configuration (runner threads, say).
func expectTwoSymbolsRunAtOnce(configure: (inout FillGuardConfiguration) -> Void = { _ in },
                               sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let arrivals = Mutex(0)
    let bothInside = DispatchSemaphore(value: 0)
    let met = Mutex(0)
    var configuration = FillGuardConfiguration(retry: .immediate, reactionObserver: { _ in
        let count = arrivals.withLock { $0 += 1; return $0 }
        if count == 2 { bothInside.signal(); bothInside.signal() }
        // The first lane in waits for the second: it can only arrive if it runs meanwhile.
        if count <= 2, bothInside.wait(timeout: .now() + .seconds(20)) == .success, count == 1 { met.withLock { $0 += 1 } }
    })
    configure(&configuration)
    let manager = FillManager(broker: TestBroker(), configuration: configuration, logger: .quiet)
    var fills = FillMaker()
    try await manager.open(BracketSpec(positionID: "A", symbol: "AAA", side: .buy, quantity: 10, stopLoss: Price("90"), takeProfit: nil))
    try await manager.open(BracketSpec(positionID: "B", symbol: "BBB", side: .buy, quantity: 10, stopLoss: Price("90"), takeProfit: nil))
    await manager.waitUntilIdle()
    let entryA = try #require(await manager.position("A")?.liveOrder(.entry), sourceLocation: sourceLocation)
    let entryB = try #require(await manager.position("B")?.liveOrder(.entry), sourceLocation: sourceLocation)
    manager.receive(fills.fill(entryA, 10, at: "100"))
    manager.receive(fills.fill(entryB, 10, at: "100"))
    await manager.waitUntilIdle()
    #expect(met.withLock { $0 } == 1, "lane AAA and lane BBB were inside processing at the same time", sourceLocation: sourceLocation)
    #expect(await manager.invariantViolations().isEmpty, sourceLocation: sourceLocation)
}

extension FillManager {
    /// Opens a long bracket (`BracketSpec.long`) and fills its entry whole at 100, each to
    /// quiescence; returns the open position.
    func openLongAndFillEntry(_ id: PositionID, _ symbol: Symbol, fills: inout FillMaker) async throws -> PositionSnapshot {
        try await open(.long(id, symbol))
        await waitUntilIdle()
        let entry = try #require(await position(id)?.liveOrder(.entry))
        receive(fills.fill(entry, entry.openQuantity, at: "100"))
        await waitUntilIdle()
        return try #require(await position(id))
    }

    /// Opens `count` long brackets (positions P0, P1, ... on symbols S0, S1, ...) with the entry
    /// filled, one at a time to quiescence; returns their working scale-ins.
    func openLongPositions(count: Int, fills: inout FillMaker) async throws -> [OrderSnapshot] {
        var scaleIns: [OrderSnapshot] = []
        for index in 0..<count {
            let position = try await openLongAndFillEntry(PositionID("P\(index)"), Symbol("S\(index)"), fills: &fills)
            scaleIns.append(try #require(position.liveOrder(.scaleIn(0))))
        }
        return scaleIns
    }
}

/// Waits until `manager` is idle and returns true, or returns false after `limit` (a failure
/// guard, not synchronisation): a test of lost work counts fails instead of hanging.
func waitUntilIdle(_ manager: FillManager, failingAfter limit: Duration = .seconds(30)) async -> Bool {
    await manager.waitUntilIdle(atMost: limit)
}

/// Runs `wait` (a wait on a real signal) and returns true when it ends, or false after `limit`
/// (a failure guard, not synchronisation): a signal that never comes fails the test instead of
/// hanging it.
func finishes(failingAfter limit: Duration = .seconds(30), _ wait: @escaping @Sendable () async -> Void) async -> Bool {
    await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
        let outcome = FirstOutcome(continuation)
        Task {
            await wait()
            outcome.resume(returning: true)
        }
        Task {
            try? await Task.sleep(for: limit) // a failure guard, not synchronisation
            outcome.resume(returning: false)
        }
    }
}

/// A continuation resumed by whichever of several racing tasks comes first.
final class FirstOutcome<Value: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Value, Never>?>

    init(_ continuation: CheckedContinuation<Value, Never>) { self.continuation = Mutex(continuation) }

    func resume(returning value: Value) { continuation.withLock { $0.take() }?.resume(returning: value) }
}
