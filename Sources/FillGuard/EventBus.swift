import FillGuardCore
import Synchronization

/// An input FillGuard refused, with where it came from.
public struct RejectedInput: Sendable, Hashable {
    /// The typed error.
    public var error: InputError
    /// What was refused ("execution E1 for AAPL", "open P1").
    public var context: String
}

/// One event type's subscribers. Publishing never blocks and never reorders: each subscriber
/// has its own bounded buffer that keeps the newest events.
final class Channel<Value: Sendable>: Sendable {
    private struct Inner {
        var continuations: [Int: AsyncStream<Value>.Continuation] = [:]
        var nextID = 0
        /// Set by `finish()`: later subscribers get a stream that has already ended.
        var finished = false
    }
    private let inner = Mutex(Inner())
    /// The number of subscribers, readable without the lock (checked on every event).
    private let subscribers = Atomic<Int>(0)
    private let buffer: Int

    init(buffer: Int) { self.buffer = buffer }

    var hasSubscribers: Bool { subscribers.load(ordering: .acquiring) > 0 }

    func subscribe() -> AsyncStream<Value> {
        let (stream, continuation) = AsyncStream<Value>.makeStream(bufferingPolicy: .bufferingNewest(buffer))
        let id = inner.withLock { inner -> Int? in
            if inner.finished { return nil }
            inner.nextID += 1
            inner.continuations[inner.nextID] = continuation
            subscribers.store(inner.continuations.count, ordering: .releasing)
            return inner.nextID
        }
        guard let id else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.inner.withLock { inner in
                _ = inner.continuations.removeValue(forKey: id)
                self.subscribers.store(inner.continuations.count, ordering: .releasing)
            }
        }
        return stream
    }

    func publish(_ value: Value) {
        guard hasSubscribers else { return }
        for continuation in inner.withLock({ Array($0.continuations.values) }) { continuation.yield(value) }
    }

    func finish() {
        let all = inner.withLock { inner in
            defer {
                inner.finished = true
                inner.continuations = [:]
                subscribers.store(0, ordering: .releasing)
            }
            return Array(inner.continuations.values)
        }
        for continuation in all {
            continuation.finish()
        }
    }
}

/// Typed channels for the runtime's consumers: position changes, order changes, alerts and
/// refused inputs.
final class EventBus: Sendable {
    let positions: Channel<PositionSnapshot>
    let orders: Channel<OrderSnapshot>
    let alerts: Channel<Alert>
    let rejections: Channel<RejectedInput>
    let corrections: Channel<ReconciliationCorrection>

    init(buffer: Int) {
        positions = Channel(buffer: buffer)
        orders = Channel(buffer: buffer)
        alerts = Channel(buffer: buffer)
        rejections = Channel(buffer: buffer)
        corrections = Channel(buffer: buffer)
    }

    func finishAll() {
        positions.finish()
        orders.finish()
        corrections.finish()
        alerts.finish()
        rejections.finish()
    }
}
