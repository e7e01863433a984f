import Synchronization

/// Asks a running session to stop trading early and wind down as it would at the end of its
/// duration (a signal handler calls `request()`): operations settle, the final check runs, the
/// report says it was interrupted.
public final class SimulationStop: Sendable {
    private let requested = Atomic<Bool>(false)

    /// A stop not yet requested.
    public init() {}

    /// Requests the stop; returns false if it had been requested already.
    @discardableResult
    public func request() -> Bool {
        !requested.exchange(true, ordering: .acquiringAndReleasing)
    }

    /// Whether the stop was requested.
    public var isRequested: Bool { requested.load(ordering: .acquiring) }
}
