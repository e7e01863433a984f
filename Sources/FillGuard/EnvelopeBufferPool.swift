/// Spare mailbox buffers for lanes waking up, shared by one manager's lanes.
///
/// An idle lane keeps no buffer (an idle symbol costs its state only), so every wake-up needs
/// one. Taken from `malloc`, that buffer is allocated by the thread that delivers the event (a
/// feed, a network thread) and freed by the runner that drained the lane: glibc then locks the
/// allocating thread's arena from the runner, and the two threads put each other to sleep on
/// that lock (seen as futex waits on both at 100,000 fills/s). Here the buffers go round under a
/// lock that never sleeps. Only buffers of `bufferCapacity` come back (a grown one is freed), and
/// at most `limit` are kept.
final class EnvelopeBufferPool: @unchecked Sendable {
    /// The capacity of every pooled buffer: the room a waking lane starts with (a fill and the
    /// outcomes of the operations it caused fit without growing the buffer, which would allocate
    /// on the delivering thread again).
    static let bufferCapacity = 8

    private let lock = SpinLock()
    /// Guarded by `lock`.
    @exclusivity(unchecked) private var spare: [UnsafeMutablePointer<SymbolLane.Envelope>] = []
    private let limit: Int

    /// A pool keeping at most `limit` spare buffers.
    init(limit: Int = 256) {
        self.limit = max(0, limit)
        spare.reserveCapacity(self.limit)
    }

    deinit {
        for buffer in spare { buffer.deallocate() }
    }

    /// An empty buffer of `bufferCapacity` envelopes: a spare one, else a new one.
    func take() -> UnsafeMutablePointer<SymbolLane.Envelope> {
        lock.lock()
        let buffer = spare.popLast()
        lock.unlock()
        return buffer ?? .allocate(capacity: Self.bufferCapacity)
    }

    /// Keeps an empty buffer of `bufferCapacity` envelopes for the next waking lane (or frees it
    /// when `limit` are kept already).
    func give(_ buffer: UnsafeMutablePointer<SymbolLane.Envelope>) {
        lock.lock()
        let kept = spare.count < limit
        if kept { spare.append(buffer) }
        lock.unlock()
        if !kept { buffer.deallocate() }
    }

    /// Spare buffers held now (for tests).
    var spareCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return spare.count
    }
}
