import FillGuardCore
import Synchronization

/// The write-ahead journal a `FillManager` writes through: lanes hand it records, it writes them
/// to its store in group commits (everything that arrived while the previous write was going on
/// becomes one batch, one transaction, one fsync) and calls each lane back once its records are
/// durable. A lane applies an input only after that callback, and sends an operation only after
/// its intent is durable: durable before applied, with many events per fsync under load.
public final class Journal: Sendable {
    /// The format of the records this build writes and replays; it names the rules they are
    /// derived under, so records of another format are not replayed (see README, "Upgrading").
    public static let recordFormat = Int(JournalCodec.version)

    /// Counters of what the journal has written.
    public struct Statistics: Sendable, Hashable {
        /// Records written (inputs, intents, snapshots).
        public var records = 0
        /// Batches written (one transaction and, with `fsync` durability, one fsync each).
        public var batches = 0
        /// Snapshots written.
        public var snapshots = 0
    }

    private struct Pending {
        var records: [JournalRecord] = []
        var callbacks: [Completion] = []
        var writing = false
        var failure: JournalError?
        var statistics = Statistics()
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        var closing = false
        var owner: ObjectIdentifier?
    }

    /// Where records go.
    public let store: any JournalStore
    /// A lane writes a snapshot after this many of its own records (inputs and intents).
    public let snapshotInterval: Int
    private let pending = Mutex(Pending())

    /// A journal over a store; `snapshotInterval` bounds how much of a lane recovery replays.
    public init(store: some JournalStore, snapshotInterval: Int = 1_000) {
        self.store = store
        self.snapshotInterval = max(1, snapshotInterval)
    }

    /// What has been written so far.
    public var statistics: Statistics { pending.withLock { $0.statistics } }

    /// The failure that stopped the journal, if any: after one, nothing more is written.
    public var failure: JournalError? { pending.withLock { $0.failure } }

    /// What an append's completion is told: the write's result, and whether the store was asked
    /// to write the records at all (false when the journal had failed before: they were never
    /// written; true for a write that failed, which the store may have kept all the same).
    typealias Completion = @Sendable (_ result: Result<Void, JournalError>, _ attempted: Bool) -> Void

    /// Queues records for the next group commit; `completion` runs once they are durable (or the
    /// write failed). Records of one caller are written in the order given.
    func append(_ records: [JournalRecord], completion: @escaping Completion) {
        let start = pending.withLock { state -> Result<Bool, JournalError> in
            if let failure = state.failure { return .failure(failure) }
            state.records.append(contentsOf: records)
            state.callbacks.append(completion)
            if state.writing { return .success(false) }
            state.writing = true
            return .success(true)
        }
        switch start {
        case .failure(let error): completion(.failure(error), false)
        case .success(true):
            // High priority: lanes wait on this writer; it must not queue behind their work.
            Task.detached(priority: .high) { await self.writeBatches() }
        case .success(false): break
        }
    }

    private func writeBatches() async {
        while true {
            let (records, callbacks, waiters, failed) = pending.withLock { state -> ([JournalRecord], [Completion], [CheckedContinuation<Void, Never>], JournalError?) in
                if state.records.isEmpty && state.callbacks.isEmpty {
                    state.writing = false
                    let waiters = state.drainWaiters
                    state.drainWaiters = []
                    return ([], [], waiters, nil)
                }
                defer {
                    state.records = []
                    state.callbacks = []
                }
                return (state.records, state.callbacks, [], state.failure)
            }
            if callbacks.isEmpty {
                for waiter in waiters { waiter.resume() }
                return
            }
            let result: Result<Void, JournalError>
            if let failed {
                // Queued while the write that failed was under way: after a failure nothing more
                // is written, even should the store take it (a disk-full that cleared).
                result = .failure(failed)
            } else {
                do throws(JournalError) {
                    if !records.isEmpty { try await store.append(records) }
                    result = .success(())
                } catch {
                    result = .failure(error)
                }
            }
            pending.withLock { state in
                switch result {
                case .success:
                    state.statistics.records += records.count
                    state.statistics.batches += records.isEmpty ? 0 : 1
                    state.statistics.snapshots += records.reduce(0) { $0 + ($1.kind == .snapshot ? 1 : 0) }
                case .failure(let error):
                    if state.failure == nil { state.failure = error }
                }
            }
            for callback in callbacks { callback(result, failed == nil) }
        }
    }

    /// Waits until every queued record has been written (or failed).
    public func flush() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = pending.withLock { state -> Bool in
                if !state.writing { return true }
                state.drainWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// Writes what is queued, then closes the store (once: a second call does nothing).
    public func close() async {
        await flush()
        let first = pending.withLock { state -> Bool in
            if state.failure == nil { state.failure = JournalError(.closed, "the journal is closed") }
            defer { state.closing = true }
            return !state.closing
        }
        if first { await store.close() }
    }

    /// Makes `owner` the journal's one manager; false if another already is (two managers
    /// writing one journal would interleave their records).
    func claim(for owner: ObjectIdentifier) -> Bool {
        pending.withLock { state in
            if let current = state.owner { return current == owner }
            state.owner = owner
            return true
        }
    }
}
