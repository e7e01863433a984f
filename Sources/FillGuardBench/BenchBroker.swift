import FillGuard
import FillGuardCore
import Synchronization

/// Sees every request the moment it is handed to the broker (before any latency), for
/// reaction-latency measurement.
public protocol BrokerObserver: Sendable {
    /// A request of `kind` for `orderID` on `symbol`; `quantity` is the new total for a modify,
    /// the order quantity for a submit, nil for a cancel; `order` is the submit's type.
    func handed(_ kind: OrderOperation.Kind, orderID: OrderID, symbol: Symbol, quantity: Quantity?, type: OrderType?)
}

/// An in-process broker for benchmarks: accepts every request (after an optional fixed latency),
/// counts requests by kind and tells an optional observer. Fills are fed to the manager by the
/// workload's feed thread, playing the exchange's report stream.
public final class BenchBroker: CallbackBroker, Sendable {
    /// Native modify, no rate limit.
    public let capabilities: BrokerCapabilities
    /// Acknowledgement latency (zero: the ack returns at once, without suspending).
    public let latency: Duration
    private let observer: (any BrokerObserver)?
    private let submits = Atomic<Int>(0)
    private let modifies = Atomic<Int>(0)
    private let cancels = Atomic<Int>(0)
    private let stream: AsyncStream<BrokerEvent>

    /// A broker with the given latency, native modify unless `nativeModify` is false.
    public init(latency: Duration = .zero, nativeModify: Bool = true, observer: (any BrokerObserver)? = nil) {
        self.latency = latency
        self.capabilities = BrokerCapabilities(nativeModify: nativeModify)
        self.observer = observer
        self.stream = AsyncStream { $0.finish() }
    }

    /// Requests received so far: submits, modifies and cancels together.
    public var requests: Int {
        submits.load(ordering: .relaxed) + modifies.load(ordering: .relaxed) + cancels.load(ordering: .relaxed)
    }

    /// Requests received so far, by kind.
    public var requestsByKind: [OrderOperation.Kind: Int] {
        [.submit: submits.load(ordering: .relaxed), .modify: modifies.load(ordering: .relaxed), .cancel: cancels.load(ordering: .relaxed)]
    }

    /// Accepts a new order.
    public func submit(_ request: NewOrderRequest) async throws(BrokerError) {
        count(.submit(request))
        await wait()
    }

    /// Accepts a modify.
    public func modify(_ request: ModifyOrderRequest) async throws(BrokerError) {
        count(.modify(request))
        await wait()
    }

    /// Accepts a cancel.
    public func cancel(_ request: CancelOrderRequest) async throws(BrokerError) {
        count(.cancel(request))
        await wait()
    }

    /// Accepts any request, calling back at once (zero latency) or after the latency.
    public func send(_ request: OrderOperation.Request, completion: @escaping @Sendable (Result<Void, BrokerError>) -> Void) {
        count(request)
        guard latency > .zero else { return completion(.success(())) }
        let latency = latency
        Task {
            try? await Task.sleep(for: latency)
            completion(.success(()))
        }
    }

    /// An empty, finished stream: the workload feeds reports to `FillManager.receive(_:)` itself.
    public func events() -> AsyncStream<BrokerEvent> { stream }

    /// Counts a request and tells the observer.
    private func count(_ request: OrderOperation.Request) {
        switch request {
        case .submit(let request):
            submits.add(1, ordering: .relaxed)
            observer?.handed(.submit, orderID: request.orderID, symbol: request.symbol, quantity: request.quantity, type: request.type)
        case .modify(let request):
            modifies.add(1, ordering: .relaxed)
            observer?.handed(.modify, orderID: request.orderID, symbol: request.symbol, quantity: request.newQuantity, type: nil)
        case .cancel(let request):
            cancels.add(1, ordering: .relaxed)
            observer?.handed(.cancel, orderID: request.orderID, symbol: request.symbol, quantity: nil, type: nil)
        }
    }

    private func wait() async {
        if latency > .zero { try? await Task.sleep(for: latency) }
    }
}
